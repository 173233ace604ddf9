"""The public attestation endpoints: exact signed bytes, ETag/304, as-of by instant and by position,
keys, per-product reserves, bad input and the per-address rate limit."""

from __future__ import annotations

import json
import uuid

import pytest
from cryptography.hazmat.primitives import serialization

from custody.attestations import attestation_issue, attestation_payload
from ledger import attestation
from ledger.selectors import head
from tests.custody.conftest import E18, mint


def _get(client, path, **headers):
    # A fresh client address per request group keeps other tests' buckets out of the way.
    return client.get(path, REMOTE_ADDR=headers.pop("address", "10.0.0.1"), headers=headers)


@pytest.fixture
def address():
    return f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"


def test_latest_is_the_signed_bytes_with_an_etag_and_304_when_unchanged(client, registered, address):
    assert _get(client, "/api/v1/attestations/latest", address=address).status_code == 404
    row = attestation_issue(actor="user:1")
    response = _get(client, "/api/v1/attestations/latest", address=address)
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response.content == row.document.encode()
    assert response["ETag"] == f'"{row.attestation_id}"'
    cached = _get(client, "/api/v1/attestations/latest", address=address, **{"If-None-Match": response["ETag"]})
    assert cached.status_code == 304 and cached.content == b""
    by_id = _get(client, f"/api/v1/attestations/{row.attestation_id}", address=address)
    assert by_id.content == row.document.encode() and "immutable" in by_id["Cache-Control"]
    assert _get(client, "/api/v1/attestations/" + "0" * 32, address=address).status_code == 404


def test_as_of_a_position_or_instant_is_the_attestation_issued_then(client, registered, address):
    row = attestation_issue(actor="user:1")
    issued = json.loads(row.document)
    mint("ethereum", "AAPLx", E18)  # the ledger moves on
    by_position = _get(client, f"/api/v1/attestations?as_of={row.head_position}", address=address)
    assert by_position.content == row.document.encode()
    instant = issued["payload"]["ledger_head"]["recorded_at"]
    by_instant = _get(client, f"/api/v1/attestations?as_of={instant}", address=address)
    assert by_instant.content == row.document.encode()
    # Recomputed, not looked up: the figures as of that position are the same bytes.
    assert attestation.canonical(attestation_payload(position=row.head_position)) == attestation.canonical(
        issued["payload"])


def test_as_of_a_point_nobody_attested_is_computed_and_signed_now(client, registered, address):
    attestation_issue(actor="user:1")
    position = head().position - 2
    response = _get(client, f"/api/v1/attestations?as_of={position}", address=address)
    assert response.status_code == 200 and response["ETag"].startswith('W/"')
    document = json.loads(response.content)
    assert document["payload"] == attestation_payload(position=position)
    keys = _get(client, "/api/v1/attestations/keys", address=address).json()["keys"]
    current = next(k for k in keys if k["key_id"] == document["key_id"])
    attestation.verify_signature(document, bytes.fromhex(current["public_key_hex"]))
    pem_key = serialization.load_pem_public_key(current["public_key_pem"].encode())
    assert pem_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex() == \
        current["public_key_hex"]


@pytest.mark.parametrize("as_of", ["yesterday", "2026-01-02T03:04:05", "2999-01-01T00:00:00Z", "99999999", ""])
def test_a_bad_as_of_is_a_400_that_says_why(client, registered, address, as_of):
    response = _get(client, f"/api/v1/attestations?as_of={as_of}", address=address)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_as_of"


def test_a_products_reserves_come_from_the_latest_attestation(client, registered, address):
    row = attestation_issue(actor="user:1")
    body = _get(client, "/api/v1/products/AAPLx/reserves", address=address).json()
    assert body["attestation_id"] == row.attestation_id
    assert body["reserves"]["coverage"] == "1.999999999"
    assert _get(client, "/api/v1/products/NOPEx/reserves", address=address).status_code == 404


def test_the_public_endpoints_are_rate_limited_per_address(client, registered, settings, address):
    settings.PUBLIC_RATE_LIMIT_PER_S = 0.01
    settings.PUBLIC_RATE_LIMIT_BURST = 2
    statuses = [_get(client, "/api/v1/attestations/keys", address=address).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    refused = _get(client, "/api/v1/attestations/keys", address=address)
    assert refused.json()["error"]["code"] == "rate_limited" and int(refused["Retry-After"]) > 0
    assert _get(client, "/api/v1/attestations/keys", address=address + "9").status_code == 200  # another address
