"""The API's contract is its schema: schemathesis reads /api/schema/ from a live server (the whole stack:
middleware, authentication, rate limits, idempotency, services, real PostgreSQL and Redis), generates
requests for every operation, valid and invalid, and fails on any answer the schema does not declare: a
status code, a content type, a body that does not match, a missing declared header, and any 5xx.

Each generated request is sent twice: anonymously, then as a market maker would send it (the API key; for
a POST also an RFC 9421 signature over the exact bytes sent, with a fresh nonce and a fresh
Idempotency-Key), signed by a `requests` auth hook at the last moment, so whatever schemathesis generated
(query strings, bodies in every declared media type) is what the signature covers. Staff endpoints are
called with an auditor's read-only key.

So that answers other than refusals are exercised too, the market maker has mints, a redemption and an
unverified wallet, and generated ids, products, chains and quantities are often (not always) real ones.

Bounded and reproducible: a fixed seed, deterministic generation, no example database, a few hundred
examples in all."""

from __future__ import annotations

import socket
import uuid
from urllib.parse import urlsplit

import pytest
import requests
import schemathesis
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from compliance import services as compliance_services
from mint_redeem import services, webhook_transport
from tests.compliance.factories import make_auditor_api_key, new_wallet_key, sign_request, wallet_address

pytestmark = pytest.mark.reliability

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance,
          response_headers_conformance]
EXAMPLES_PER_OPERATION = 15
SEED = 11
PUBLIC = "93.184.215.14"  # what every webhook host resolves to here: nothing is ever sent to it


class MarketMakerAuth(requests.auth.AuthBase):
    """Signs the prepared request (its final method, path, query and body bytes) as sign_request does."""

    def __init__(self, credentials):
        self.credentials = credentials

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        url = urlsplit(request.url)
        path = url.path + (f"?{url.query}" if url.query else "")
        body = request.body or b""
        if isinstance(body, str):
            body = body.encode()
        for name in ("Authorization", "Signature", "Signature-Input", "Content-Digest"):
            request.headers.pop(name, None)
        request.headers.update(sign_request(self.credentials, request.method, path, body, host=url.netloc,
                                            idempotency_key=f"contract-{uuid.uuid4().hex}"))
        return request


class Anonymous(requests.auth.AuthBase):
    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        for name in ("Authorization", "Signature", "Signature-Input"):
            request.headers.pop(name, None)
        return request


def resolve_to_a_public_address(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002
    return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (PUBLIC, port))]


def config(*, wallets: list[int], mints: list[int], redemptions: list[int]) -> schemathesis.Config:
    real = {  # name: (values, where they are used)
        "wallets": (wallets, ("path.wallet_id", "body.wallet")),
        "mints": (mints, ("path.mint_id",)),
        "redemptions": (redemptions, ("path.redemption_id",)),
        "products": (["AAPLx"], ("body.product", "query.product")),
        "chains": (["ethereum", "solana"], ("body.chain", "query.chain")),
        "quantities": (["1", "0.5", "2.5", "0.000000001"], ("body.quantity",)),
    }
    return schemathesis.Config.from_dict({
        "seed": SEED,
        "generation": {"mode": "all", "max-examples": EXAMPLES_PER_OPERATION, "deterministic": True,
                       "database": "none"},
        "phases": {"stateful": {"enabled": False}},
        "dictionaries": {name: {"values": values} for name, (values, _) in real.items()},
        "parameters": {where: {"dictionary": name, "probability": 0.75}
                       for name, (_, places) in real.items() for where in places},
    })


@pytest.fixture
def api_schema(committed, live_server, market, mm, settings, monkeypatch):
    # One key sends every request here; the limit itself has its own tests (test_rate_limits.py).
    settings.API_RATE_LIMIT_PER_S = 100_000
    settings.API_RATE_LIMIT_BURST = 100_000
    monkeypatch.setattr(webhook_transport, "_getaddrinfo", resolve_to_a_public_address)
    actor = f"participant:{mm.participant.pk}"
    key = new_wallet_key("ethereum")
    unverified = compliance_services.wallet_register(participant=mm.participant, chain="ethereum",
                                                     address=wallet_address("ethereum", key), actor=actor)
    mints = [services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain=chain,
                                          quantity="1", wallet_id=mm.wallets[chain].pk, funding=funding, actor=actor)
             for chain, funding in (("ethereum", "cash"), ("solana", "in_kind"))]
    redemption = services.redemption_request_create(participant=mm.participant, product_symbol="AAPLx",
                                                     chain="solana", quantity="1", wallet_id=mm.wallets["solana"].pk,
                                                     payout="cash", actor=actor)
    return schemathesis.openapi.from_url(
        f"{live_server.url}/api/schema/?format=json",
        config=config(wallets=[unverified.pk, *(w.pk for w in mm.wallets.values())],
                      mints=[m.pk for m in mints], redemptions=[redemption.pk]))


@pytest.fixture
def auditor(committed):
    return make_auditor_api_key()[2]


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request):
    # schemathesis 4.32 labels each operation's subtest through Node._nodeid, which pytest 9.2 replaced.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")
# Public by design (anyone may check the backing): attestations, their keys, a product's reserves.
PUBLIC_PATHS = ("/api/v1/attestations", "/api/v1/products/{symbol}/reserves")


@schema.parametrize()
def test_every_answer_is_one_the_schema_declares(case, live_server, mm, auditor):
    anonymous = case.call_and_validate(base_url=live_server.url, checks=CHECKS, auth=Anonymous())
    if not case.path.startswith(PUBLIC_PATHS):
        assert anonymous.status_code >= 400, f"{case.method} {case.formatted_path} answered a caller with no key"
    staff = case.path.startswith(("/api/v1/compliance/", "/api/v1/staff/"))
    credentials = auditor if staff else mm.credentials
    case.call_and_validate(base_url=live_server.url, checks=CHECKS, auth=MarketMakerAuth(credentials))
