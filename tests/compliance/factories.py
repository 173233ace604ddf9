"""Helpers other apps' tests use to reach the API as a real market maker:

    mm = make_market_maker()                      # approved, limits set, verified wallet per chain
    headers = sign_request(mm.credentials, "POST", "/api/v1/mints", body)
    client.post("/api/v1/mints", data=body, content_type="application/json", headers=headers)

`sign_request` builds Authorization, Content-Digest, Signature-Input and Signature (RFC 9421) exactly as
a market maker's client would, and an Idempotency-Key for POSTs unless one is given.
"""

from __future__ import annotations

import base64
import itertools
import json
import secrets
import uuid
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.utils import timezone
from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

from compliance import roles, services
from compliance.models import EVM_CHAINS, ApiScope, Chain, Participant, SignatureAlgorithm, Wallet
from compliance.validation import lei_with_check_digits

_counter = itertools.count(1)


@dataclass
class Credentials:
    key_id: str
    secret: str
    signature_alg: str
    hmac_key: bytes | None = None
    ed25519_private_key: Ed25519PrivateKey | None = None

    @property
    def token(self) -> str:
        return f"{self.key_id}.{self.secret}"


@dataclass
class MarketMaker:
    participant: Participant
    user: object
    api_key: object
    credentials: Credentials
    wallets: dict[str, Wallet] = field(default_factory=dict)
    wallet_keys: dict[str, object] = field(default_factory=dict)  # chain -> eth LocalAccount | solders Keypair

    @property
    def key_id(self) -> str:
        return self.credentials.key_id

    @property
    def secret(self) -> str:
        return self.credentials.secret


def _unique() -> str:
    return f"{next(_counter)}{uuid.uuid4().hex[:6]}"


def make_staff(role: str, username: str | None = None):
    return services.staff_user_create(username=username or f"{role}-{_unique()}", role=role,
                                      email=f"{role}-{_unique()}@issuer.example")


def make_lei() -> str:
    return lei_with_check_digits("5493" + secrets.token_hex(7).upper())


def make_participant(*, legal_name: str | None = None, approved: bool = True, kyc_expires_on: date | None = None,
                     min_request_cents: int = 100_00, max_request_cents: int = 1_000_000_00,
                     daily_limit_cents: int = 5_000_000_00, operations=None, officer=None) -> Participant:
    operations = operations or make_staff(roles.OPERATIONS)
    officer = officer or make_staff(roles.COMPLIANCE_OFFICER)
    participant = services.participant_create(
        legal_name=legal_name or f"Test Liquidity {_unique()} LLC", lei=make_lei(), jurisdiction="US",
        created_by=operations, contact_email="desk@example.com")
    if approved:
        participant = services.participant_kyc_approve(
            participant=participant, approved_by=officer, reason="documents verified",
            expires_on=kyc_expires_on or timezone.localdate() + timedelta(days=365))
    return services.participant_limits_set(
        participant=participant, min_request_cents=min_request_cents, max_request_cents=max_request_cents,
        daily_limit_cents=daily_limit_cents, decided_by=officer, reason="standard limits")


def new_wallet_key(chain: str):
    if chain in EVM_CHAINS:
        from eth_account import Account

        return Account.create()
    from solders.keypair import Keypair

    return Keypair()


def wallet_address(chain: str, key) -> str:
    return str(key.address) if chain in EVM_CHAINS else str(key.pubkey())


def sign_challenge(chain: str, key, message: str) -> str:
    """EIP-191 personal_sign for EVM chains (0x hex), Ed25519 for Solana (base58), as wallets do."""
    if chain in EVM_CHAINS:
        from eth_account.messages import encode_defunct

        return "0x" + key.sign_message(encode_defunct(text=message)).signature.hex().removeprefix("0x")
    return str(key.sign_message(message.encode()))


def make_verified_wallet(participant: Participant, chain: str) -> tuple[Wallet, object]:
    key = new_wallet_key(chain)
    wallet = services.wallet_register(participant=participant, chain=chain, address=wallet_address(chain, key),
                                      actor=f"participant:{participant.id}")
    challenge = services.wallet_challenge_issue(wallet=wallet)
    wallet = services.wallet_verify(wallet=wallet, signature=sign_challenge(chain, key, challenge.message),
                                    actor=f"participant:{participant.id}")
    return wallet, key


def make_api_key(*, participant: Participant | None, user=None, scope: str = ApiScope.TRADE,
                 signature_alg: str = SignatureAlgorithm.HMAC_SHA256):
    if user is None:
        user = services.participant_user_create(participant=participant, username=f"mm-api-{_unique()}")
    private = None
    public = None
    if signature_alg == SignatureAlgorithm.ED25519:
        private = Ed25519PrivateKey.generate()
        public = private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    api_key, issued = services.api_key_create(user=user, participant=participant, scope=scope,
                                              signature_alg=signature_alg, ed25519_public_key=public)
    hmac_key = None
    if issued.hmac_key is not None:
        hmac_key = base64.urlsafe_b64decode(issued.hmac_key + "=" * (-len(issued.hmac_key) % 4))
    creds = Credentials(key_id=issued.key_id, secret=issued.secret, signature_alg=signature_alg, hmac_key=hmac_key,
                        ed25519_private_key=private)
    return user, api_key, creds


def make_market_maker(*, chains=tuple(Chain.values), scope: str = ApiScope.TRADE,
                      signature_alg: str = SignatureAlgorithm.HMAC_SHA256, **participant_kwargs) -> MarketMaker:
    participant = make_participant(**participant_kwargs)
    user, api_key, creds = make_api_key(participant=participant, scope=scope, signature_alg=signature_alg)
    mm = MarketMaker(participant=participant, user=user, api_key=api_key, credentials=creds)
    for chain in chains:
        mm.wallets[chain], mm.wallet_keys[chain] = make_verified_wallet(participant, chain)
    return mm


def make_auditor_api_key():
    auditor = make_staff(roles.AUDITOR)
    return make_api_key(participant=None, user=auditor, scope=ApiScope.READ)


class _Message:
    def __init__(self, method: str, url: str, headers: dict):
        self.method, self.url, self.headers = method, url, headers


def sign_request(credentials: Credentials, method: str, path: str, body: bytes | str | dict | None = b"", *,
                 host: str = "testserver", scheme: str = "http", created: datetime | None = None,
                 nonce: str | None = None, idempotency_key: str | None = None,
                 sign: bool | None = None) -> dict[str, str]:
    """Headers for a request to `path` (path and query, e.g. "/api/v1/wallets"). `body` is the exact
    bytes sent (a dict is JSON-encoded; send it with the same encoding). GETs are not signed unless
    `sign=True`; state-changing requests always are."""
    method = method.upper()
    if isinstance(body, dict):
        body = json.dumps(body).encode()
    elif isinstance(body, str):
        body = body.encode()
    body = body or b""
    headers: dict[str, str] = {"Authorization": f"ApiKey {credentials.token}"}
    if method == "POST":
        headers["Idempotency-Key"] = idempotency_key or uuid.uuid4().hex
    if sign is None:
        sign = method not in {"GET", "HEAD", "OPTIONS"}
    if not sign:
        return headers
    if credentials.signature_alg == SignatureAlgorithm.ED25519:
        algorithm, key = algorithms.ED25519, credentials.ed25519_private_key
    else:
        algorithm, key = algorithms.HMAC_SHA256, credentials.hmac_key
    signer = HTTPMessageSigner(signature_algorithm=algorithm,
                               key_resolver=MappingKeyResolver(public_keys={}, private_keys={credentials.key_id: key}))
    message = _Message(method, f"{scheme}://{host}{path}", headers)
    covered = ("@method", "@path") if method in {"GET", "HEAD", "OPTIONS"} else ("@method", "@path",
                                                                                 "content-digest")
    if "?" in path:
        covered = (*covered, "@query")
    signer.sign(message, key_id=credentials.key_id, created=created or datetime.now(tz=UTC),
                nonce=nonce or secrets.token_hex(16), label="sig", covered_component_ids=covered,
                body=body if "content-digest" in covered else None)
    return message.headers


def sdn_xml(entries: list[dict], *, publish_date: str = "11/20/2025") -> bytes:
    """A list in OFAC's sdn.xml format. entries: {"uid", "last_name", "first_name"?, "type"?, "akas"?: [str],
    "addresses"?: [(currency, address)]}."""
    parts = [
        '<?xml version="1.0" standalone="yes"?>',
        '<sdnList xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
        'xmlns="https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/XML">',
        f"<publshInformation><Publish_Date>{publish_date}</Publish_Date>"
        f"<Record_Count>{len(entries)}</Record_Count></publshInformation>",
    ]
    for e in entries:
        parts.append(f"<sdnEntry><uid>{e['uid']}</uid>")
        if e.get("first_name"):
            parts.append(f"<firstName>{e['first_name']}</firstName>")
        parts.append(f"<lastName>{e['last_name']}</lastName><sdnType>{e.get('type', 'Entity')}</sdnType>")
        parts.append("<programList><program>CYBER2</program></programList>")
        if e.get("addresses"):
            parts.append("<idList>")
            for i, (currency, address) in enumerate(e["addresses"]):
                parts.append(f"<id><uid>{e['uid'] * 100 + i}</uid><idType>Digital Currency Address - {currency}"
                             f"</idType><idNumber>{address}</idNumber></id>")
            parts.append("</idList>")
        if e.get("akas"):
            parts.append("<akaList>")
            for i, aka in enumerate(e["akas"]):
                parts.append(f"<aka><uid>{e['uid'] * 100 + 50 + i}</uid><type>a.k.a.</type><category>strong</category>"
                             f"<lastName>{aka}</lastName></aka>")
            parts.append("</akaList>")
        parts.append("</sdnEntry>")
    parts.append("</sdnList>")
    return "\n".join(parts).encode()
