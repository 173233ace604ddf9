"""Check a reserve attestation offline: no database, no Django settings, nothing of ours to trust.

    python -m ledger.verify_attestation attestation.json --pubkey key.pem [--log export.jsonl]

1. The signature: Ed25519 over the document's RFC 8785 bytes (without "signature"), by the key given.
2. With --log (a `manage.py ledger export` / staff API export, one event per line): the hash chain
   recomputed from the first event up to the attested head, which must match the attested hash;
   then every figure of the payload recomputed from those events (ledger.attestation) and compared.

Exit status 0 when everything checks out, 1 with the first discrepancy named otherwise, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys

from ledger import attestation, canonical


def load_public_key(path: str, key_id: str) -> bytes:
    """Raw 32 bytes of an Ed25519 public key from a PEM (SubjectPublicKeyInfo) file, or the key named
    `key_id` in a saved copy of GET /api/v1/attestations/keys (JSON)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    with open(path, "rb") as handle:
        content = handle.read()
    if content.lstrip().startswith(b"{"):
        keys = {k.get("key_id"): k for k in json.loads(content).get("keys", [])}
        if key_id not in keys:
            raise attestation.AttestationError(f"{path} lists no key {key_id}")
        return bytes.fromhex(keys[key_id]["public_key_hex"])
    key = serialization.load_pem_public_key(content)
    if not isinstance(key, Ed25519PublicKey):
        raise attestation.AttestationError(f"{path} is not an Ed25519 public key")
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def check_log(payload: dict, lines) -> None:
    """Recompute the chain to the attested head and every figure; raise naming the first discrepancy."""
    head = payload["ledger_head"]
    target = head["position"]
    fold = attestation.LogFold()
    previous = canonical.GENESIS_HASH
    last = None
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            document = json.loads(line)
            stored_hash = bytes.fromhex(document.pop("hash"))
            position = document["position"]
            event = document["event"]
        except (ValueError, KeyError, TypeError) as exc:
            raise attestation.AttestationError(f"log line {number} is not an exported event ({exc})") from None
        if position > target:
            break
        expected_position = 1 if last is None else last["position"] + 1
        if position != expected_position:
            raise attestation.AttestationError(f"event #{position}: expected position {expected_position} (a gap "
                                               "or reordering in the log)")
        computed = canonical.chain_hash(previous, document)
        if computed != stored_hash:
            raise attestation.AttestationError(f"event #{position}: its hash does not match its content and the "
                                               "previous hash (the event was altered)")
        previous = computed
        fold.apply_postings(event["postings"])
        if event["type"] in attestation.REFERENCE_EVENTS:
            fold.apply_reference(event["type"], event["data"], position)
        last = document
    reached = 0 if last is None else last["position"]
    if reached != target:
        raise attestation.AttestationError(f"the log ends at event #{reached}; the attestation is at #{target}")
    if previous.hex() != head["hash"]:
        raise attestation.AttestationError(f"event #{target}: hash {previous.hex()} is not the attested head hash "
                                           f"{head['hash']}")
    recomputed = attestation.build_payload(
        head_position=target, head_hash=previous.hex(),
        head_recorded_at=None if last is None else last["recorded_at"], fold=fold)
    difference = attestation.first_difference(payload, recomputed)
    if difference:
        raise attestation.AttestationError(f"figure disagrees with the log: {difference}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="verify-attestation", description=__doc__.split("\n\n")[0])
    parser.add_argument("attestation", help="the attestation JSON document")
    parser.add_argument("--pubkey", required=True,
                        help="the issuer's Ed25519 public key (PEM), or a saved GET /api/v1/attestations/keys")
    parser.add_argument("--log", help="a JSON Lines export of the ledger, to recompute every figure")
    args = parser.parse_args(argv)
    try:
        with open(args.attestation, "rb") as handle:
            document = json.loads(handle.read())
        if not isinstance(document, dict) or not isinstance(document.get("key_id"), str):
            raise attestation.AttestationError("not an attestation document: no key_id")
        public_key = load_public_key(args.pubkey, document["key_id"])
        attestation.verify_signature(document, public_key)
        print(f"signature OK: key {document['key_id']}, issued {document['issued_at']}")
        if args.log:
            with open(args.log, encoding="utf-8") as lines:
                check_log(document["payload"], lines)
            head = document["payload"]["ledger_head"]
            print(f"log OK: hash chain to event #{head['position']} and every figure match")
    except (OSError, ValueError) as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    except attestation.AttestationError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
