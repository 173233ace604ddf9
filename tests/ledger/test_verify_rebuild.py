import hashlib
import io
import json

import pytest
import rfc8785
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection

from ledger import integrity, selectors
from ledger.postings import Line, PendingOpen, PendingPost
from ledger.services import NewEvent, append
from tests.conftest import as_database_owner, tamper


def populate(tag, count=5):
    positions = []
    for i in range(count):
        postings = [Line(f"t/{tag}/a", "USD", -(i + 1)), Line(f"t/{tag}/b", "USD", i + 1)]
        positions.append(append(events=[NewEvent(stream=f"s-{tag}-{i % 2}", type="test.moved", data={"note": f"n{i}"},
                                                 postings=postings)], actor="user:1").events[0].position)
    append(events=[NewEvent(stream=f"s-{tag}-0", type="test.moved", data={},
                            postings=[PendingOpen(f"pf-{tag}", f"t/{tag}/m", f"t/{tag}/it", "shares:X", 50)])],
           actor="system")
    append(events=[NewEvent(stream=f"s-{tag}-0", type="test.moved", data={},
                            postings=[PendingPost(f"pf-{tag}", 20)])], actor="system")
    return positions


def test_a_clean_ledger_verifies_and_rebuilds_identically(db, tag):
    populate(tag)
    assert integrity.verify() == []
    result = integrity.rebuild(check=True)
    assert result.problems == [] and result.events >= 7
    call_command("ledger", "verify")
    call_command("ledger", "rebuild", "--check")


def test_verify_names_an_event_whose_data_was_altered(db, tag):
    positions = populate(tag)
    tamper("UPDATE ledger_event SET data = jsonb_set(data, '{note}', '\"forged\"') WHERE position = %s", [positions[2]])
    problems = integrity.verify()
    assert problems and problems[0].position == positions[2] and problems[0].check == "hash_chain"
    with pytest.raises(CommandError, match=f"event #{positions[2]}"):
        call_command("ledger", "verify", stderr=io.StringIO())


def test_verify_finds_an_altered_posting_amount(db, tag):
    positions = populate(tag)
    tamper("UPDATE ledger_posting SET posted_delta = posted_delta * 10 WHERE position = %s AND line_no = 1",
           [positions[1]])
    checks = {(p.position, p.check) for p in integrity.verify()}
    assert (positions[1], "hash_chain") in checks
    assert (positions[1], "balanced") in checks


def test_verify_finds_a_deleted_event(db, tag):
    positions = populate(tag)
    tamper("DELETE FROM ledger_posting WHERE position = %s", [positions[3]])
    tamper("DELETE FROM ledger_event WHERE position = %s", [positions[3]])
    problems = integrity.verify()
    assert problems[0].position == positions[3] + 1 and problems[0].check == "gapless"


def test_verify_and_rebuild_find_a_tampered_balance_projection(db, tag):
    populate(tag)
    with as_database_owner(), connection.cursor() as cursor:  # the application role may not write it
        cursor.execute("UPDATE ledger_balance SET posted = posted + 1 WHERE account_id = "
                       "(SELECT id FROM ledger_account WHERE path = %s)", [f"t/{tag}/b"])
    assert any(p.check == "projection:balances" for p in integrity.rebuild(check=True).problems)
    assert any(p.check == "projection:balances" for p in integrity.verify(check_projections=False))
    # A real rebuild, as the owner (`manage.py ledger rebuild` uses its connection), repairs the
    # projection from the log.
    with as_database_owner():
        assert integrity.rebuild().problems == []
    assert integrity.verify() == []
    assert selectors.balance(account=f"t/{tag}/b", asset="USD").posted == 15


def test_rebuild_installs_projections_equal_to_the_live_ones(db, tag):
    populate(tag)
    before = {
        "b": selectors.balance(account=f"t/{tag}/b", asset="USD"),
        "it": selectors.balance(account=f"t/{tag}/it", asset="shares:X"),
        "head": selectors.head(),
    }
    with as_database_owner():
        assert integrity.rebuild().problems == []
    assert before == {
        "b": selectors.balance(account=f"t/{tag}/b", asset="USD"),
        "it": selectors.balance(account=f"t/{tag}/it", asset="shares:X"),
        "head": selectors.head(),
    }


def test_export_lets_an_auditor_recompute_the_chain_offline(db, tag):
    populate(tag)
    out = io.StringIO()
    call_command("ledger", "export", stderr=io.StringIO(), stdout=out)
    previous = bytes(32)
    lines = out.getvalue().splitlines()
    assert lines
    for line in lines:
        document = json.loads(line)
        stored = bytes.fromhex(document.pop("hash"))
        previous_check = hashlib.sha256(previous + rfc8785.dumps(document)).digest()
        assert previous_check == stored
        previous = stored
    assert previous == selectors.head().hash


def test_verify_finds_postings_that_refer_to_nothing(db, tag):
    positions = populate(tag)
    # The triggers do not refuse INSERT (the application role has no INSERT; the owner does): verify
    # must catch it.
    with as_database_owner(), connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO ledger_posting (position, line_no, account_id, asset, posted_delta, pending_in_delta, "
            "pending_out_delta, posted_after, pending_in_after, pending_out_after) "
            "VALUES (%s, 0, 987654321, 'USD', 1, 0, 0, 1, 0, 0)", [positions[-1] + 1000])
    checks = {p.check for p in integrity.verify(check_projections=False)}
    assert {"posting_event", "posting_account"} <= checks
