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


FLIGHT_LOCK = 7295318  # ledger/sql/seal.sql


def b_moved(tag):
    """B's event: accounts of its own, so A's row locks do not hold it back until A's commit."""
    return NewEvent(stream=f"s-{tag}-1", type="test.moved", data={},
                    postings=[Line(f"t/{tag}/c", "USD", -1), Line(f"t/{tag}/d", "USD", 1)])


def b_committed(tag) -> bool:
    """Seen from a session of its own: has B's transaction committed (its projection moved)?"""
    with psycopg.connect(database_url_for_tests(), autocommit=True) as conn:
        row = conn.execute("SELECT b.posted FROM ledger_balance b JOIN ledger_account a ON a.id = b.account_id "
                           "WHERE a.path = %s AND b.asset = 'USD'", [f"t/{tag}/d"]).fetchone()
    return row is not None and row[0] == 1


def sealed_up_to(position, within_s=5.0) -> bool:
    """Whether the sealed head reaches `position` within a few seconds, with no one asking for a seal.
    In the full suite another process may be the one sealing at that instant (the supply observer of the
    session's worker seals the journal): its seal commits a moment after a look that found it busy."""
    import time

    deadline = time.monotonic() + within_s
    while selectors.head().position < position:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def run_b_while_a_seals(tag, *, a_inside):
    """A appends and seals inline in a transaction it keeps open while B appends on other accounts; the
    steps A takes while the sealing lock is still its own are `a_inside(b_done)`."""
    import threading

    a_appended, b_done = threading.Event(), threading.Event()
    results = {}

    def writer_b():
        a_appended.wait(10)
        try:
            results["b"] = append(events=[b_moved(tag)], actor="system")
            b_done.set()
        finally:
            connection.close()

    other = threading.Thread(target=writer_b)
    other.start()
    try:
        with transaction.atomic():
            results["a"] = append(events=[moved(tag, 0)], actor="system")  # sealed inline, lock held to commit
            assert results["a"].sealed
            a_appended.set()
            a_inside(b_done)
    finally:
        other.join(10)
    assert b_done.is_set()
    return results


def test_an_event_journalled_while_another_append_seals_is_sealed_by_that_append_after_its_commit(committed, tag):
    """The hand-over that keeps a journalled append from waiting: B journals while A holds the sealing
    lock inline and finds it taken when it looks after its commit; A's own look after its commit seals
    B's event. No one waits, and nothing is left unsealed. (A saw a journalled append in flight when it
    took the lock, here another session holding the flight lock as one does, so A looks after its commit.)"""
    head = selectors.head()
    in_flight = psycopg.connect(database_url_for_tests(), autocommit=True)
    in_flight.execute("SELECT pg_advisory_lock_shared(%s)", [FLIGHT_LOCK])

    def a_inside(b_done):
        assert b_done.wait(10)  # B committed and returned while A still held the lock
        in_flight.close()

    try:
        results = run_b_while_a_seals(tag, a_inside=a_inside)
    finally:
        in_flight.close()
    assert results["a"].after_commit == "look" and results["b"].after_commit == "look"
    assert not results["b"].sealed
    # A's after-commit look has run: B's event is sealed, after A's, with no one having asked for it.
    assert sealed_up_to(head.position + 2)
    assert [event.stream for event in selectors.read_log(after_position=head.position)] == [
        f"s-{tag}-0", f"s-{tag}-1"]
    assert results["b"].last_position == head.position + 2
    assert integrity.verify() == []


def test_a_lone_sealer_makes_no_look_and_an_append_journalled_meanwhile_seals_itself_after_it(committed, tag,
                                                                                              caplog):
    """A seals inline with no journalled append in flight: it is alone, and after its commit it makes no
    look at the journal. B, journalled while A holds the lock, commits at once (its projections move
    while A still holds the lock) and then waits for A's end before it looks, so its own look seals it:
    nothing is left for A to do, and nothing is left unsealed."""
    import time

    caplog.set_level(logging.INFO, logger="ledger.head")
    head = selectors.head()

    def a_inside(b_done):
        deadline = time.monotonic() + 10
        while not b_committed(tag):  # B's transaction commits while A holds the sealing lock...
            assert time.monotonic() < deadline, "B's transaction did not commit while A held the lock"
            time.sleep(0.01)
        assert not b_done.wait(0.3)  # ...and B's call waits for A's end before it looks

    results = run_b_while_a_seals(tag, a_inside=a_inside)
    assert results["a"].after_commit == "none" and results["b"].after_commit == "wait"
    assert results["b"].sealed is False  # its positions are read from the log, where its own look put them
    assert sealed_up_to(head.position + 2)
    assert [event.stream for event in selectors.read_log(after_position=head.position)] == [
        f"s-{tag}-0", f"s-{tag}-1"]
    assert results["b"].last_position == head.position + 2
    # The heads logged here: A's inline seal, then B's, by B's look (unless another process's sealer, in
    # the full suite, happened to hold the lock when B looked: then that sealer sealed B and logged it).
    logged = [r.position for r in caplog.records if r.name == "ledger.head"]
    assert logged in ([head.position + 1, head.position + 2], [head.position + 1])
    assert integrity.verify() == []


def test_one_writer_alone_appends_with_one_statement(committed, tag):
    """No other writer: every append seals inline, alone, and nothing is sent after its statement."""
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        first = append(events=[moved(tag, 0)], actor="system")
        second = append(events=[moved(tag, 1)], actor="system")
    assert first.after_commit == second.after_commit == "none"
    assert [q["sql"].split("(")[0] for q in queries.captured_queries] == ["SELECT * FROM ledger_append"] * 2
    assert second.last_position == first.last_position + 1


def test_an_append_journalled_while_a_lone_sealer_never_ends_is_left_to_the_periodic_sealer(committed, tag):
    """B waits for a lone sealer at most five seconds after its commit; then the periodic sealer seals it."""
    stuck = psycopg.connect(database_url_for_tests(), autocommit=True)
    try:
        stuck.execute("SELECT pg_advisory_lock(%s)", [SEAL_LOCK])
        stuck.execute("SELECT pg_advisory_lock(%s)", [FLIGHT_LOCK])  # as a lone inline sealer holds them
        head = selectors.head()
        result = append(events=[b_moved(tag)], actor="system")
        assert result.after_commit == "wait" and not result.sealed
        assert b_committed(tag) and selectors.head() == head
    finally:
        stuck.close()
    from ledger.tasks import seal

    assert seal() == head.position + 1
    assert result.last_position == head.position + 1
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


@pytest.mark.parametrize("sql", [
    "SELECT * FROM ledger_seal_locked('[]'::jsonb)",  # would seal without holding the sealing lock
    "SELECT ledger_take_sealing_lock(600000)",  # would queue for the lock outside any append
])
def test_the_application_role_cannot_call_the_sealing_internals(db, sql):
    from tests import conftest

    if conftest.APP_ROLE is None:
        pytest.skip("needs two database roles")
    with pytest.raises(DatabaseError, match="permission denied"), transaction.atomic(), connection.cursor() as c:
        c.execute(sql)


QUEUE_LOCK = 7295319  # ledger/sql/seal.sql


def advisory_holders(key) -> int:
    with psycopg.connect(database_url_for_tests(), autocommit=True) as conn:
        return conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = %s AND granted",
                            [key]).fetchone()[0]


def test_one_append_waits_for_the_sealing_lock_and_seals_inline_what_the_others_journalled(
        sealing_elsewhere, tag, monkeypatch):
    """While the lock is held, the first append to find it taken waits for it (the queue lock); the next
    one journals at once. When the holder ends, the waiter seals the journalled event and then its own,
    in commit order, in its own transaction: no second commit for either."""
    import threading
    import time

    monkeypatch.setattr(services, "SEAL_WAIT_MS", 30_000)  # the holder here is a test: give it time
    head = selectors.head()
    results = {}

    def waiter():
        try:
            results["waiter"] = append(events=[b_moved(tag)], actor="system")
        finally:
            connection.close()

    other = threading.Thread(target=waiter)
    other.start()
    try:
        deadline = time.monotonic() + 10
        while advisory_holders(QUEUE_LOCK) == 0:  # the waiter is in the queue
            assert time.monotonic() < deadline, "no append waited for the sealing lock"
            time.sleep(0.01)
        journalled = append(events=[moved(tag, 0)], actor="system")  # the queue is taken: journal at once
        assert not journalled.sealed and "waiter" not in results
    finally:
        sealing_elsewhere.execute("SELECT pg_advisory_unlock(%s)", [SEAL_LOCK])
        other.join(10)
    assert results["waiter"].sealed  # sealed inline, in its own transaction
    assert [event.stream for event in selectors.read_log(after_position=head.position)] == [
        f"s-{tag}-0", f"s-{tag}-1"]
    assert journalled.last_position == head.position + 1
    assert results["waiter"].last_position == head.position + 2
    assert advisory_holders(QUEUE_LOCK) == 0  # handed on
    assert integrity.verify() == []


def test_the_waiting_append_journals_when_the_holder_outlasts_its_wait_and_hands_the_queue_on(
        sealing_elsewhere, tag):
    """The default wait is a few milliseconds: a holder that keeps the lock longer (here, forever) gets a
    journalled append after that wait, and the queue lock is free again for the next one."""
    head = selectors.head()
    result = append(events=[moved(tag, 0)], actor="system")
    assert not result.sealed and advisory_holders(QUEUE_LOCK) == 0
    with connection.cursor() as cursor:
        cursor.execute("SHOW lock_timeout")
        assert cursor.fetchone()[0] == "0"  # the wait's lock_timeout did not outlive it
    sealing_elsewhere.execute("SELECT pg_advisory_unlock(%s)", [SEAL_LOCK])
    assert result.last_position == head.position + 1
    assert integrity.verify() == []


def test_a_waiting_append_that_is_cancelled_hands_the_queue_on(sealing_elsewhere, tag, monkeypatch):
    """An error while it waits (a cancelled statement) rolls the append back and frees the queue lock,
    which is session-scoped and would otherwise outlive the transaction."""
    import threading

    monkeypatch.setattr(services, "SEAL_WAIT_MS", 30_000)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    # The wait runs inside ledger_append, as the owner role: the owner (an administrator) cancels it.
    owner = psycopg.connect(database_url_for_tests(owner=True), autocommit=True)
    cancel = threading.Timer(0.5, lambda: owner.execute("SELECT pg_cancel_backend(%s)", [pid]))
    cancel.start()
    with pytest.raises(DatabaseError, match="cancel"):
        append(events=[moved(tag, 0)], actor="system")
    cancel.join()
    owner.close()
    assert advisory_holders(QUEUE_LOCK) == 0
    assert selectors.stream_version(stream=f"s-{tag}-0") == 0  # nothing of it committed
