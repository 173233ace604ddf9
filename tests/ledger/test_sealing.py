"""Sealing in commit order (ledger/sql/seal.sql), the shape of the guarantee when an append finds the
sealing lock taken: its transaction commits with its projections, its events wait in the journal with
no position, and they are sealed a few milliseconds after the commit without the append waiting. Until
then readers of the log do not see them and the caller inside the transaction gets NotYetSealed for the
position, never a wrong one."""

from __future__ import annotations

import logging

import psycopg
import pytest
from django.db import DatabaseError, connection, transaction

from ledger import integrity, selectors, services
from ledger.errors import NotYetSealed
from ledger.postings import Line
from ledger.services import NewEvent, append
from tests.conftest import as_database_owner, database_url_for_tests

SEAL_LOCK = 7295316


def moved(tag, n=0):
    return NewEvent(stream=f"s-{tag}-{n}", type="test.moved", data={},
                    postings=[Line(f"t/{tag}/a", "USD", -1), Line(f"t/{tag}/b", "USD", 1)])


@pytest.fixture
def sealing_elsewhere(committed):
    """Another session holds the sealing lock (as a sealer or an inline append in progress would)."""
    other = psycopg.connect(database_url_for_tests(), autocommit=True)
    other.execute("SELECT pg_advisory_lock(%s)", [SEAL_LOCK])
    yield other
    other.close()


def test_an_append_that_finds_the_lock_taken_is_journalled_and_sealed_after_its_commit(sealing_elsewhere, tag,
                                                                                       caplog):
    caplog.set_level(logging.INFO, logger="ledger.head")
    head = selectors.head()
    with transaction.atomic():
        result = append(events=[moved(tag, 0), moved(tag, 1)], actor="system")
        assert [event.position for event in result.events] == [None, None]
        assert [event.version for event in result.events] == [1, 1]  # stream versions are known at once
        with pytest.raises(NotYetSealed):
            result.last_position  # noqa: B018 - the property is what is tested
        # Stop here, between the commit and the seal (the after-commit seal would wait for the lock).
        after_commit = list(transaction.get_connection().run_on_commit)
        transaction.get_connection().run_on_commit.clear()
    # Committed: projections moved, the log has not (the sealer is held up), nothing logged as head.
    assert selectors.balance(account=f"t/{tag}/b", asset="USD").posted == 2
    assert selectors.stream_version(stream=f"s-{tag}-0") == 1
    assert selectors.head() == head and selectors.read_log(after_position=head.position) == []
    assert [r for r in caplog.records if r.name == "ledger.head"] == []
    assert integrity.verify() == []  # journalled events count in the projections' replay

    sealing_elsewhere.execute("SELECT pg_advisory_unlock(%s)", [SEAL_LOCK])
    for _savepoints, hook, _robust in after_commit:
        hook()
    assert result.last_position == head.position + 2
    logged = [(event.position, event.hash.hex()) for event in selectors.read_log(after_position=head.position)]
    assert logged == [(event.position, event.hash.hex()) for event in result.events]
    assert [(r.position, r.hash) for r in caplog.records if r.name == "ledger.head"] == [logged[-1]]
    assert integrity.verify() == []


def test_after_the_commit_a_journalled_append_waits_for_no_one_and_its_positions_are_known_when_read(
        sealing_elsewhere, tag, caplog):
    """In a caller's transaction and autocommitted alike: the look at the journal right after the commit
    finds the lock taken (here by another session, done half a second later) and returns at once, so
    the command never waits for another's seal; reading the result's position waits for the sealer in
    progress and then seals, so it is always known after the commit."""
    import threading

    caplog.set_level(logging.INFO, logger="ledger.head")
    head = selectors.head()
    release = threading.Timer(0.5, lambda: sealing_elsewhere.execute("SELECT pg_advisory_unlock(%s)", [SEAL_LOCK]))
    release.start()
    with transaction.atomic():
        first = append(events=[moved(tag, 0)], actor="system")
    assert first.events[0].position is None  # committed, and back without waiting for the lock
    assert selectors.head() == head
    assert first.last_position == head.position + 1  # waits for the holder, then seals
    release.join()
    second = append(events=[moved(tag, 1)], actor="system")
    assert second.last_position == head.position + 2
    assert selectors.head().position == head.position + 2
    # The head a seal leaves is logged by whoever sealed inline or by a look that sealed; the first
    # append's event, sealed by the read of its position, is covered by the next head's hash chain.
    assert [(r.position, r.hash) for r in caplog.records if r.name == "ledger.head"] == [
        (head.position + 2, second.events[0].hash.hex())]


def test_an_event_journalled_while_another_append_seals_is_sealed_by_that_append_after_its_commit(committed, tag):
    """The hand-over that keeps a journalled append from waiting: B journals while A holds the sealing
    lock inline and finds it taken when it looks after its commit; A's own look after its commit seals
    B's event. No one waits, and nothing is left unsealed."""
    import threading

    head = selectors.head()
    a_appended, b_done = threading.Event(), threading.Event()
    results = {}

    def writer_b():
        a_appended.wait(10)
        try:  # accounts of its own: A's row locks would hold it back until A's commit
            results["b"] = append(events=[NewEvent(
                stream=f"s-{tag}-1", type="test.moved", data={},
                postings=[Line(f"t/{tag}/c", "USD", -1), Line(f"t/{tag}/d", "USD", 1)])], actor="system")
            b_done.set()  # journalled, committed and back: A holds the lock
        finally:
            connection.close()

    other = threading.Thread(target=writer_b)
    other.start()
    try:
        with transaction.atomic():
            results["a"] = append(events=[moved(tag, 0)], actor="system")  # sealed inline, lock held to commit
            assert results["a"].sealed
            a_appended.set()
            assert b_done.wait(10)  # B committed and returned while A still held the lock
            assert not results["b"].sealed
    finally:
        other.join(10)
    # A's after-commit look has run: B's event is sealed, after A's, with no one having asked for it.
    assert selectors.head().position == head.position + 2
    assert [event.stream for event in selectors.read_log(after_position=head.position)] == [
        f"s-{tag}-0", f"s-{tag}-1"]
    assert results["b"].last_position == head.position + 2
    assert integrity.verify() == []


def test_the_periodic_sealer_seals_what_a_dead_writer_left_in_the_journal(sealing_elsewhere, tag):
    head = selectors.head()
    with transaction.atomic():
        append(events=[moved(tag)], actor="system")
        # The writer "dies" after its commit: no on-commit seal runs.
        transaction.get_connection().run_on_commit.clear()
    sealing_elsewhere.execute("SELECT pg_advisory_unlock(%s)", [SEAL_LOCK])
    assert selectors.head() == head
    from ledger.tasks import seal

    assert seal() == head.position + 1
    assert [event.stream for event in selectors.read_log(after_position=head.position)] == [f"s-{tag}-0"]
    assert integrity.verify() == []


@pytest.mark.parametrize("sql", [
    "UPDATE ledger_journal SET data = '{}'::jsonb",
    "DELETE FROM ledger_journal",
    "TRUNCATE ledger_journal",
])
def test_the_journal_refuses_every_change_but_the_seals(sealing_elsewhere, tag, sql):
    with transaction.atomic():
        append(events=[moved(tag)], actor="system")
        transaction.get_connection().run_on_commit.clear()
    with pytest.raises(DatabaseError, match="append-only"), as_database_owner(), connection.cursor() as cursor:
        cursor.execute(sql)
    sealing_elsewhere.execute("SELECT pg_advisory_unlock(%s)", [SEAL_LOCK])
    services.seal_journal()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_journal")
        assert cursor.fetchone()[0] == 0


def test_the_application_role_cannot_call_the_sealing_internals(db):
    from tests import conftest

    if conftest.APP_ROLE is None:
        pytest.skip("needs two database roles")
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(), connection.cursor() as c:
        c.execute("SELECT * FROM ledger_seal_locked('[]'::jsonb)")
