"""Reserve attestations: compute the signed document from the log, issue it, find it again.

`attestation_payload(position=P)` reads only the ledger as of event P: products, deployments and
multipliers from their registration events, statements from their import events, balances as of P
(one index probe per account), the head event's hash and time. Issuing and the as-of API go through
this one function, which is why an attestation recomputed for the position it attests is byte for
byte the payload issued then (tests/custody/test_attestations.py checks it). ledger.attestation
defines the figures; the offline verifier recomputes them from an export with the same code.

`attestation_issue` signs the payload for the current head and appends it as a
custody.attestation_issued event on the `attestations` stream with its projection row, in one
transaction. The payload is encoded once (ledger.attestation.sign_encoded): the bytes signed, the
content address and the stored document all come from that one encoding. The stream's expected
version makes two concurrent issuers safe: one wins, the other gets StreamVersionConflict (the beat
task skips; nothing half-written remains).
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from config.api import DomainError
from custody import attestation_keys
from custody.ledger_reads import balances_as_of_by_prefix
from custody.models import Attestation, supply_stream
from custody.services import ledger_position_note
from ledger import attestation, canonical
from ledger.selectors import head, last_event_of_streams, read_event_data_of_types, read_log, stream_version
from ledger.services import NewEvent, append

STREAM = "attestations"
_PREFIXES = ("custody/", "in_transit/", "tokens/")


class AttestationRefusal(DomainError):
    code = "invalid_as_of"
    http_status = 400


def attestation_payload(*, position: int) -> dict:
    """The attested figures after the ledger event at `position` (0: the empty ledger)."""
    if position < 0 or position > head().position:
        raise AttestationRefusal(f"log position {position} is not in the ledger", code="invalid_as_of")
    if position == 0:
        head_hash, recorded_at = canonical.GENESIS_HASH.hex(), None
    else:
        [event] = read_log(after_position=position - 1, limit=1)
        head_hash, recorded_at = event.hash.hex(), canonical.format_recorded_at(event.recorded_at)
    fold = attestation.LogFold()
    reference_types = [t for t in attestation.REFERENCE_EVENTS if t != attestation.SUPPLY_EVENT]
    for event_position, event_type, data in read_event_data_of_types(types=reference_types,
                                                                     up_to_position=position):
        fold.apply_reference(event_type, data, event_position)
    # Supply is observed every few seconds: read only each stream's last observation, not all of them.
    streams = [supply_stream(symbol, chain) for symbol, info in fold.products.items() for chain in info["chains"]]
    for event in last_event_of_streams(streams=streams, event_type=attestation.SUPPLY_EVENT, up_to_position=position):
        fold.apply_reference(event.type, event.data, event.position)
    balances = {}
    for prefix in _PREFIXES:
        for key, figures in balances_as_of_by_prefix(prefix=prefix, position=position).items():
            balances[key] = (figures.posted, figures.pending_in, figures.pending_out)
    fold.set_balances(balances)
    return attestation.build_payload(head_position=position, head_hash=head_hash, head_recorded_at=recorded_at,
                                     fold=fold)


def attestation_sign_encoded(*, payload_bytes: bytes, issued_at=None) -> attestation.SignedDocument:
    """Sign a payload encoded by ledger.attestation.encode_payload with the current key, issued now
    unless `issued_at` is given."""
    return attestation.sign_encoded(payload_bytes, issued_at=canonical.format_recorded_at(issued_at or timezone.now()),
                                    signing_key=attestation_keys.signing_key())


def attestation_sign(*, payload: dict, issued_at=None) -> dict:
    """Sign `payload` with the current key, issued now unless `issued_at` is given; the document as a
    JSON value."""
    return attestation_sign_encoded(payload_bytes=attestation.encode_payload(payload),
                                    issued_at=issued_at).document(payload)


def attestation_issue(*, actor: str, only_if_changed: bool = False) -> Attestation | None:
    """Issue and store an attestation of the ledger's current head. With `only_if_changed` (the beat),
    nothing is issued when the only event since the latest attestation is that attestation itself."""
    with transaction.atomic():
        expected = stream_version(stream=STREAM)
        position = head().position
        if only_if_changed:
            latest = Attestation.objects.order_by("-id").only("ledger_position").first()
            if latest is not None and latest.ledger_position == position:
                return None
        issued_at = timezone.now()
        payload = attestation_payload(position=position)
        signed = attestation_sign_encoded(payload_bytes=attestation.encode_payload(payload), issued_at=issued_at)
        public_key = bytes(attestation_keys.signing_key().verify_key).hex()
        row = Attestation.objects.create(
            attestation_id=signed.attestation_id, head_position=position, issued_at=issued_at,
            key_id=signed.key_id, public_key=public_key, document=signed.document_bytes.decode("utf-8"))
        result = append(events=[NewEvent(stream=STREAM, type="custody.attestation_issued", data={
            "attestation_id": signed.attestation_id, "public_key": public_key,
            "document": signed.document(payload)})],
            expected={STREAM: expected}, actor=actor)
    # Where the attestation's own event landed: known once it is sealed (after the commit when the append
    # was journalled behind another writer's seal).
    ledger_position_note(Attestation, row, result)
    return row
