"""Reserve attestations: signed, immutable in the log, equal when recomputed as of their head, and
checkable offline (signature, hash chain, every figure) by `python -m ledger.verify_attestation`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal

import pytest

from custody import attestation_keys, services
from custody.attestations import attestation_issue, attestation_payload, attestation_sign
from custody.models import Security
from custody.selectors import attestation_latest
from ledger import attestation, integrity
from ledger.errors import StreamVersionConflict
from ledger.selectors import head, read_stream
from ledger.services import NewEvent, append
from ledger.units import NANO
from tests.conftest import ROOT
from tests.custody.conftest import E18, mint


def _product(document, symbol="AAPLx"):
    return next(p for p in document["payload"]["products"] if p["symbol"] == symbol)


def test_the_document_has_every_figure_and_the_head_it_was_computed_at(registered):
    row = attestation_issue(actor="user:1")
    document = json.loads(row.document)
    payload = document["payload"]
    figures = _product(document)
    assert figures["custodians"] == [{"custodian": "bny", "shares_held_nano": str(10 * NANO), "statement": None}]
    assert figures["shares_available_nano"] == str(10 * NANO)
    assert [(c["chain"], c["tokens_outstanding_base_units"], c["tokens_minting_base_units"])
            for c in figures["chains"]] == [("ethereum", str(3 * E18 + 1), "0"), ("solana", "0", str(2 * NANO))]
    assert figures["coverage"] == "1.999999999"  # 10 / 5.000000000000000001, rounded down
    assert figures["multiplier"] == "1"
    assert payload["totals"]["undercovered"] == []
    # The attested head is the last event before the attestation's own, which follows it.
    assert payload["ledger_head"]["position"] == row.ledger_position - 1
    assert document["key_id"] == attestation_keys.current_public_key().key_id
    assert attestation_latest() == row
    [event] = read_stream(stream="attestations")
    assert event.data["document"] == document and event.position == row.ledger_position


def test_observed_supply_is_attested_with_its_block_as_of_each_position(registered):
    from django.utils import timezone

    from custody.supply import supply_observation_record

    assert [c["observed_supply"] for c in _product({"payload": attestation_payload(position=head().position)})[
        "chains"]] == [None, None]
    supply_observation_record(product=registered, chain="ethereum", supply_base_units=3 * E18 + 1, block=120,
                              block_hash="0x" + "12" * 32, observed_at=timezone.now(), actor="task:test")
    first = head().position
    supply_observation_record(product=registered, chain="ethereum", supply_base_units=3 * E18 + 1, block=130,
                              block_hash="0x" + "13" * 32, observed_at=timezone.now(), actor="task:test")
    observed_then = _product({"payload": attestation_payload(position=first)})["chains"][0]["observed_supply"]
    observed_now = _product({"payload": attestation_payload(position=head().position)})["chains"][0]["observed_supply"]
    assert (observed_then["block"], observed_then["supply_base_units"]) == (120, str(3 * E18 + 1))
    assert (observed_now["block"], observed_now["block_hash"]) == (130, "0x" + "13" * 32)
    assert observed_now["difference_base_units"] == "0"


def test_the_signature_verifies_and_fails_on_any_altered_byte(registered):
    row = attestation_issue(actor="user:1")
    public_key = attestation_keys.current_public_key().raw
    document = json.loads(row.document)
    attestation.verify_signature(document, public_key)
    raw = row.document.encode()
    for index in range(len(raw)):
        altered = bytearray(raw)
        altered[index] ^= 0x01
        try:
            tampered = json.loads(bytes(altered))
        except ValueError:
            continue  # no longer a document at all
        with pytest.raises(attestation.AttestationError):
            attestation.verify_signature(tampered, public_key)


def test_a_multiplier_change_is_attested_as_of_its_position(registered):
    before = attestation_payload(position=head().position)
    services.product_multiplier_set(product=registered, multiplier=Decimal("2"), reason="2:1 split", actor="user:1")
    after = attestation_payload(position=head().position)
    assert _product({"payload": before})["coverage"] == "1.999999999"
    assert _product({"payload": after})["coverage"] == "0.999999999"
    assert after["totals"]["undercovered"] == ["AAPLx"]


def test_an_attestation_recomputed_as_of_its_head_is_byte_for_byte_the_one_issued(registered, custodian, aapl):
    issued = json.loads(attestation_issue(actor="user:1").document)
    position = issued["payload"]["ledger_head"]["position"]
    # The ledger moves on: more shares, more tokens, a statement, a new product.
    services.shares_receive_in_kind(custodian=custodian, security=aapl, quantity_nano=5 * NANO,
                                    from_account="participant/1/shares", reference="r2",
                                    custodian_confirmation="C2", actor="user:1")
    mint("ethereum", "AAPLx", E18)
    msft = Security.objects.create(ticker="MSFT", isin="US5949181045", cusip="594918104", exchange_mic="XNAS",
                                   name="Microsoft Corporation")
    services.product_register(symbol="MSFTx", security=msft, actor="user:1")
    attestation_issue(actor="user:1")
    recomputed = attestation_payload(position=position)
    assert attestation.canonical(recomputed) == attestation.canonical(issued["payload"])
    assert attestation.canonical(attestation_payload(position=head().position)) != attestation.canonical(recomputed)


def test_two_concurrent_issuers_cannot_both_append_on_one_stream_version(registered):
    # The stream's expected version is what serialises issuers; a stale one is refused and leaves nothing.
    attestation_issue(actor="user:1")
    with pytest.raises(StreamVersionConflict):
        append(events=[NewEvent(stream="attestations", type="custody.attestation_issued", data={
            "attestation_id": "x" * 32, "public_key": "00" * 32, "document": {}})],
            expected={"attestations": 0}, actor="user:1")
    assert len(read_stream(stream="attestations")) == 1


def test_the_beat_issues_only_when_the_ledger_moved(registered):
    from custody.tasks import issue_attestation

    first = issue_attestation()
    assert first is not None
    assert issue_attestation() is None  # only the attestation itself since
    mint("ethereum", "AAPLx", 1)
    assert issue_attestation() not in (None, first)


def test_rotation_keeps_old_attestations_verifiable(registered, settings):
    old = attestation_issue(actor="user:1")
    settings.ATTESTATION_SIGNING_KEY = "11" * 32
    new = attestation_issue(actor="user:1")
    assert old.key_id != new.key_id
    from custody.selectors import attestation_signer_keys

    published = {k.key_id: k for k in attestation_keys.published_keys(signer_keys_hex=attestation_signer_keys())}
    assert published[new.key_id].status == "current" and published[old.key_id].status == "retired"
    for row in (old, new):
        attestation.verify_signature(json.loads(row.document), published[row.key_id].raw)


# --------------------------------------------------------------------------- the offline verifier

def _verifier(*args: str) -> subprocess.CompletedProcess[str]:
    # No DJANGO_SETTINGS_MODULE, no DATABASE_URL: the verifier must need neither.
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "ledger.verify_attestation", *args], cwd="/", env=env,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.fixture
def exported(registered, tmp_path):
    from django.utils import timezone

    from custody.supply import supply_observation_record

    supply_observation_record(product=registered, chain="ethereum", supply_base_units=3 * E18 + 1, block=120,
                              block_hash="0x" + "12" * 32, observed_at=timezone.now(), actor="task:test")
    row = attestation_issue(actor="user:1")
    assert _product(json.loads(row.document))["chains"][0]["observed_supply"]["block"] == 120
    mint("ethereum", "AAPLx", 7)  # after the attestation: the verifier stops at the attested head
    (tmp_path / "attestation.json").write_text(row.document)
    (tmp_path / "key.pem").write_text(attestation_keys.current_public_key().pem)
    with open(tmp_path / "export.jsonl", "w", encoding="utf-8") as out:
        integrity.export_jsonl(out)
    return tmp_path, row


def test_the_verifier_checks_signature_chain_and_every_figure_from_an_export(exported):
    path, row = exported
    result = _verifier(str(path / "attestation.json"), "--pubkey", str(path / "key.pem"),
                       "--log", str(path / "export.jsonl"))
    assert result.returncode == 0, result.stderr
    assert "signature OK" in result.stdout and f"event #{row.head_position}" in result.stdout


def test_the_verifier_names_a_tampered_event(exported):
    path, row = exported
    lines = (path / "export.jsonl").read_text().splitlines()
    victim = next(i for i, line in enumerate(lines) if '"tokens/ethereum/AAPLx"' in line)
    event = json.loads(lines[victim])
    line = next(p for p in event["event"]["postings"] if p[0] == "tokens/ethereum/AAPLx")
    line[2] = str(int(line[2]) * 2)
    lines[victim] = json.dumps(event)
    (path / "export.jsonl").write_text("\n".join(lines) + "\n")
    result = _verifier(str(path / "attestation.json"), "--pubkey", str(path / "key.pem"),
                       "--log", str(path / "export.jsonl"))
    assert result.returncode == 1
    assert f"event #{event['position']}: its hash does not match" in result.stderr


def test_the_verifier_refuses_one_altered_byte_of_the_attestation(exported):
    path, _row = exported
    text = (path / "attestation.json").read_text()
    (path / "attestation.json").write_text(text.replace('"coverage":"1.999999999"', '"coverage":"1.999999998"'))
    result = _verifier(str(path / "attestation.json"), "--pubkey", str(path / "key.pem"))
    assert result.returncode == 1 and "signature does not verify" in result.stderr


def test_the_verifier_names_a_figure_the_log_does_not_support_even_when_signed(exported):
    # A validly signed document whose figure is wrong (a buggy or dishonest issuer): the log catches it.
    path, row = exported
    document = json.loads(row.document)
    _product(document)["custodians"][0]["shares_held_nano"] = str(11 * NANO)
    forged = attestation_sign(payload=document["payload"])
    (path / "attestation.json").write_text(json.dumps(forged))
    result = _verifier(str(path / "attestation.json"), "--pubkey", str(path / "key.pem"),
                       "--log", str(path / "export.jsonl"))
    assert result.returncode == 1
    assert "payload.products[0].custodians[0].shares_held_nano: attested '11000000000'" in result.stderr


def test_the_verifier_refuses_another_key(exported, tmp_path):
    path, _row = exported
    from nacl.signing import SigningKey

    other = attestation_keys.public_pem(bytes(SigningKey(b"\x07" * 32).verify_key))
    (tmp_path / "other.pem").write_text(other)
    result = _verifier(str(path / "attestation.json"), "--pubkey", str(tmp_path / "other.pem"))
    assert result.returncode == 1 and "but the public key given is" in result.stderr


def test_production_refuses_to_sign_without_a_configured_key_and_stores_nothing(registered, settings):
    from django.core.exceptions import ImproperlyConfigured

    settings.IS_PRODUCTION = True
    settings.ATTESTATION_SIGNING_KEY = settings.ATTESTATION_SIGNING_KEY_FILE = ""
    with pytest.raises(ImproperlyConfigured, match="ATTESTATION_SIGNING_KEY"):
        attestation_issue(actor="user:1")
    assert attestation_latest() is None and read_stream(stream="attestations") == []
    settings.ATTESTATION_SIGNING_KEY = "22" * 32
    assert attestation_issue(actor="user:1").key_id == attestation.key_id(
        bytes(attestation_keys.signing_key().verify_key))
