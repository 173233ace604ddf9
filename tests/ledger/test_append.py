import threading

import pytest
from django.db import connection, transaction

from ledger import selectors
from ledger.errors import (
    BalanceConstraintViolation,
    InvalidEventData,
    StreamVersionConflict,
    UnbalancedPostings,
    UnknownEventType,
)
from ledger.postings import Line
from ledger.services import NewEvent, append


def move(stream, src, dst, amount, asset="USD"):
    return NewEvent(stream=stream, type="test.moved", data={"note": "x"},
                    postings=[Line(src, asset, -amount), Line(dst, asset, amount)])


def test_append_assigns_positions_versions_and_chains_hashes(db, tag):
    first = append(events=[move(f"s-{tag}", f"t/{tag}/a", f"t/{tag}/b", 5)], expected={f"s-{tag}": 0}, actor="system")
    second = append(events=[move(f"s-{tag}", f"t/{tag}/a", f"t/{tag}/b", 7)], expected={f"s-{tag}": 1}, actor="system")
    assert second.events[0].position == first.events[0].position + 1
    assert [first.events[0].version, second.events[0].version] == [1, 2]
    assert first.events[0].hash != second.events[0].hash
    assert selectors.head().hash == second.events[0].hash
    assert selectors.balance(account=f"t/{tag}/b", asset="USD").posted == 12
    assert selectors.balance(account=f"t/{tag}/a", asset="USD").posted == -12


def test_several_events_on_several_streams_in_one_transaction(db, tag):
    result = append(
        events=[move(f"x-{tag}", f"t/{tag}/a", f"t/{tag}/b", 1), move(f"y-{tag}", f"t/{tag}/b", f"t/{tag}/c", 1),
                NewEvent(stream=f"x-{tag}", type="test.noted", data={"text": "second on x"})],
        expected={f"x-{tag}": 0, f"y-{tag}": 0}, actor="system",
    )
    assert [(e.stream, e.version) for e in result.events] == [(f"x-{tag}", 1), (f"y-{tag}", 1), (f"x-{tag}", 2)]
    positions = [e.position for e in result.events]
    assert positions == list(range(positions[0], positions[0] + 3))
    assert selectors.stream_version(stream=f"x-{tag}") == 2


def test_wrong_expected_version_is_a_conflict_and_changes_nothing(db, tag):
    append(events=[move(f"s-{tag}", f"t/{tag}/a", f"t/{tag}/b", 5)], expected={f"s-{tag}": 0}, actor="system")
    head_before = selectors.head()
    for wrong in (0, 2):
        with pytest.raises(StreamVersionConflict):
            append(events=[move(f"s-{tag}", f"t/{tag}/a", f"t/{tag}/b", 5)], expected={f"s-{tag}": wrong},
                   actor="system")
    assert selectors.head() == head_before
    assert selectors.balance(account=f"t/{tag}/b", asset="USD").posted == 5


def test_stream_without_expected_version_appends_at_its_current_version(db, tag):
    for _ in range(3):
        append(events=[NewEvent(stream=f"any-{tag}", type="test.noted", data={"text": "t"})], actor="system")
    assert [e.version for e in selectors.read_stream(stream=f"any-{tag}")] == [1, 2, 3]


def test_unbalanced_postings_are_refused(db, tag):
    head_before = selectors.head()
    with pytest.raises(UnbalancedPostings):
        append(events=[NewEvent(stream=f"s-{tag}", type="test.moved", data={},
                                postings=[Line(f"t/{tag}/a", "USD", -5), Line(f"t/{tag}/b", "USD", 4)])],
               actor="system")
    # Balanced in total but not per asset is still unbalanced.
    with pytest.raises(UnbalancedPostings):
        append(events=[NewEvent(stream=f"s-{tag}", type="test.moved", data={},
                                postings=[Line(f"t/{tag}/a", "USD", -5), Line(f"t/{tag}/b", "EUR", 5)])],
               actor="system")
    assert selectors.head() == head_before


def test_the_database_itself_refuses_unbalanced_postings(db, tag):
    """The SQL function checks too, so a caller bypassing the Python checks cannot unbalance the log."""
    import json

    batch = {"streams": [{"id": f"raw-{tag}", "expected": 0, "count": 1}],
             "accounts": [{"path": f"t/{tag}/a", "non_negative": False}, {"path": f"t/{tag}/b", "non_negative": False}],
             "pending": [], "metadata": {},
             "events": [{"event_id": "00000000-0000-0000-0000-000000000001", "stream": f"raw-{tag}", "ordinal": 1,
                         "type": "test.moved", "schema_version": 1, "data": {}, "body": "{}",
                         "lines": [[f"t/{tag}/a", "USD", "-5", "0", "0", None], [f"t/{tag}/b", "USD", "3", "0", "0", None]]}]}
    with pytest.raises(Exception, match="do not sum to zero"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT * FROM ledger_append(%s::jsonb)", [json.dumps(batch)])


def test_invalid_event_data_is_refused(db, tag):
    with pytest.raises(UnknownEventType):
        append(events=[NewEvent(stream=f"s-{tag}", type="no.such.type", data={})], actor="system")
    with pytest.raises(InvalidEventData):
        append(events=[NewEvent(stream=f"s-{tag}", type="test.noted", data={"text": 1.5})], actor="system")
    with pytest.raises(InvalidEventData):
        append(events=[NewEvent(stream=f"s-{tag}", type="test.noted", data={"text": "a", "extra": 1})], actor="system")
    with pytest.raises(InvalidEventData):
        append(events=[move(f"s-{tag}", f"t/{tag}/a", f"t/{tag}/b", 1.5)], actor="system")
    with pytest.raises(InvalidEventData):
        append(events=[move(f"s-{tag}", "Not A Path", f"t/{tag}/b", 1)], actor="system")
    assert selectors.stream_version(stream=f"s-{tag}") == 0


def test_amounts_beyond_64_bits_are_exact(db, tag):
    supply = 10**30 + 7  # an ERC-20 supply in 18-decimal base units
    append(events=[move(f"s-{tag}", f"issuance/{tag}/X", f"tokens/{tag}/X", supply, asset="tok:X:ethereum")],
           actor="system")
    assert selectors.balance(account=f"tokens/{tag}/X", asset="tok:X:ethereum").posted == supply


def test_non_negative_accounts_refuse_overdraft(db, tag):
    from ledger.accounts import register_account_policy

    register_account_policy(f"nn{tag}/", non_negative=True)
    append(events=[move(f"s-{tag}", f"ext/{tag}", f"nn{tag}/a", 10)], actor="system")
    with pytest.raises(BalanceConstraintViolation):
        append(events=[move(f"s-{tag}", f"nn{tag}/a", f"ext/{tag}", 11)], actor="system")
    assert selectors.balance(account=f"nn{tag}/a", asset="USD").posted == 10
    append(events=[move(f"s-{tag}", f"nn{tag}/a", f"ext/{tag}", 10)], actor="system")
    assert selectors.balance(account=f"nn{tag}/a", asset="USD").posted == 0


def test_the_idempotency_key_is_recorded_not_deduplicated(db, tag):
    """Requests are deduplicated by the API (one mechanism, compliance.idempotency); the ledger records
    which request an event came from."""
    result = append(events=[move(f"s-{tag}", f"t/{tag}/a", f"t/{tag}/b", 5)], actor="system",
                    idempotency_key=f"participant:1:k-{tag}")
    assert result.events[0].metadata["idempotency_key"] == f"participant:1:k-{tag}"
    assert selectors.read_stream(stream=f"s-{tag}")[0].metadata["idempotency_key"] == f"participant:1:k-{tag}"

def run_concurrently(count, fn):
    barrier = threading.Barrier(count)
    results, errors = [], []

    def worker(index):
        try:
            barrier.wait()
            results.append(fn(index))
        except Exception as exc:  # collected and asserted on by the caller
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results, errors


def test_concurrent_appends_to_one_stream_exactly_one_wins(committed, tag):
    stream = f"race-{tag}"

    def attempt(index):
        return append(events=[move(stream, f"t/{tag}/src", f"t/{tag}/w{index}", 1)], expected={stream: 0},
                      actor=f"user:{index}")

    results, errors = run_concurrently(8, attempt)
    assert len(results) == 1
    assert len(errors) == 7 and all(isinstance(e, StreamVersionConflict) for e in errors)
    assert selectors.stream_version(stream=stream) == 1
    assert selectors.balance(account=f"t/{tag}/src", asset="USD").posted == -1
