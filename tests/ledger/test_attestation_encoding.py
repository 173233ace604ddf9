"""The issuer encodes an attestation once, by the standard library's shortcut and a splice; whoever
checks it re-encodes the parsed document with the RFC 8785 library. The two must give the same bytes,
or an honest attestation would fail to verify."""

from __future__ import annotations

import json

import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st
from nacl.signing import SigningKey

from ledger import attestation
from tests.ledger.test_canonical import JSON_SAFE, TEXT

SIGNING_KEY = SigningKey(b"\x05" * 32)
ISSUED_AT = "2026-12-02T04:16:13.183000Z"


def _payload(**figures) -> dict:
    # The shape of build_payload's output, with text an issuer does not control (statement references,
    # block hashes) where it can hold anything JSON-safe.
    return {"format": attestation.FORMAT, "ledger_head": {"position": 41, "hash": "ab" * 32, "recorded_at": None},
            "products": [{"symbol": "AAPLx", "coverage": "1.000000000", "custodians": [], **figures}],
            "totals": {"products": 1, "undercovered": []}}


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(TEXT, JSON_SAFE, max_size=4))
def test_the_signed_bytes_are_the_rfc8785_encoding_of_the_document(figures):
    payload = _payload(**{f"x{key}": value for key, value in figures.items()})
    signed = attestation.sign_encoded(attestation.encode_payload(payload), issued_at=ISSUED_AT,
                                      signing_key=SIGNING_KEY)
    document = signed.document(payload)
    assert signed.document_bytes == rfc8785.dumps(document)
    assert signed.attestation_id == attestation.attestation_id(document)
    # What an auditor does with the bytes served: parse, re-encode with the library, verify.
    attestation.verify_signature(json.loads(signed.document_bytes), bytes(SIGNING_KEY.verify_key))


def test_non_ascii_and_escaped_text_in_a_statement_reference_verifies():
    payload = _payload(statement={"statement_ref": "Zürich \"Q4\"\n\U0001f600\ue000", "sha256": "00" * 32})
    signed = attestation.sign_encoded(attestation.encode_payload(payload), issued_at=ISSUED_AT,
                                      signing_key=SIGNING_KEY)
    assert signed.document_bytes == rfc8785.dumps(signed.document(payload))
    attestation.verify_signature(json.loads(signed.document_bytes), bytes(SIGNING_KEY.verify_key))


def test_sign_returns_the_document_whose_bytes_were_signed():
    payload = _payload()
    document = attestation.sign(payload, issued_at=ISSUED_AT, signing_key=SIGNING_KEY)
    assert set(document) == {"issued_at", "key_id", "payload", "signature"} and document["payload"] is payload
    attestation.verify_signature(document, bytes(SIGNING_KEY.verify_key))
