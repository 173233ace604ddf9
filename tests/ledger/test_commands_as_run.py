"""The auditor's commands, run as the README prints them: `manage.py ledger verify`, `ledger rebuild
--check`, `ledger export [-o FILE]`, each in a fresh process (see tests/subprocesses.py)."""

import hashlib
import json

import rfc8785
from django.db import connection

from ledger import selectors
from tests.conftest import as_database_owner, tamper
from tests.ledger.test_verify_rebuild import populate as populate_ledger
from tests.subprocesses import describe, manage


def populate(tag: str) -> list[int]:
    return populate_ledger(tag, count=4)


def test_verify_and_rebuild_check_pass_on_an_intact_ledger(committed, tag):
    populate(tag)
    events = selectors.head().position

    verify = manage("ledger", "verify")
    assert verify.returncode == 0, describe(verify)
    assert verify.stdout.strip() == "ledger verify OK"

    rebuild = manage("ledger", "rebuild", "--check")
    assert rebuild.returncode == 0, describe(rebuild)
    assert rebuild.stdout.startswith(f"ledger rebuild matched: {events} events in "), describe(rebuild)


def test_export_writes_a_log_an_auditor_can_rehash_with_nothing_else(committed, tag, tmp_path):
    populate(tag)
    head = selectors.head()
    output = tmp_path / "log.jsonl"

    to_file = manage("ledger", "export", "-o", str(output))
    assert to_file.returncode == 0, describe(to_file)
    assert to_file.stderr.strip() == f"exported {head.position} events"
    to_stdout = manage("ledger", "export")
    assert to_stdout.returncode == 0, describe(to_stdout)
    assert to_stdout.stdout == output.read_text(encoding="utf-8")

    # The README's recipe: from 32 zero bytes, sha256(previous hash + RFC 8785 bytes of the line without
    # its hash) must give each line's hash, and the last one is the ledger head.
    previous = bytes(32)
    lines = output.read_text(encoding="utf-8").splitlines()
    assert len(lines) == head.position
    for line in lines:
        document = json.loads(line)
        stored = bytes.fromhex(document.pop("hash"))
        assert hashlib.sha256(previous + rfc8785.dumps(document)).digest() == stored, document["position"]
        previous = stored
    assert previous == head.hash


def test_verify_exits_non_zero_and_names_a_tampered_event(committed, tag):
    positions = populate(tag)
    tamper("UPDATE ledger_event SET data = jsonb_set(data, '{note}', '\"forged\"') WHERE position = %s",
           [positions[1]])

    verify = manage("ledger", "verify")
    assert verify.returncode == 1, describe(verify)
    assert "ledger verify OK" not in verify.stdout
    assert f"first bad: event #{positions[1]}: [hash_chain]" in verify.stderr, describe(verify)


def test_rebuild_check_exits_non_zero_on_a_tampered_projection_and_changes_nothing(committed, tag):
    populate(tag)
    # Projections are not append-only, no trigger to get past, but only the owner may write them.
    with as_database_owner(), connection.cursor() as cursor:
        cursor.execute("UPDATE ledger_balance SET posted = posted + 7 WHERE account_id = "
                       "(SELECT id FROM ledger_account WHERE path = %s)", [f"t/{tag}/b"])

    check = manage("ledger", "rebuild", "--check")
    assert check.returncode == 1, describe(check)
    assert f"[projection:balances] t/{tag}/b USD" in check.stderr, describe(check)
    assert selectors.balance(account=f"t/{tag}/b", asset="USD").posted == 1 + 2 + 3 + 4 + 7

    # Without --check the rebuild (as the owner role) repairs the projection from the log, and the
    # ledger verifies again.
    repair = manage("ledger", "rebuild")
    assert repair.returncode == 0, describe(repair)
    assert selectors.balance(account=f"t/{tag}/b", asset="USD").posted == 1 + 2 + 3 + 4
    verify = manage("ledger", "verify")
    assert verify.returncode == 0, describe(verify)
