"""Other apps' read models are kept by projections in the append's transaction, and rebuilt from
the log; old event versions are upcast to the current schema when read."""

import pytest
from django.db import connection

from ledger import events, integrity, projections, selectors
from ledger.errors import InvalidEventData
from ledger.services import NewEvent, append


def _rows():
    with connection.cursor() as cursor:
        cursor.execute("SELECT stream, events, last_text FROM test_stream_summary ORDER BY stream")
        return cursor.fetchall()


def _apply(envelope):
    if envelope.data.get("text") == "explode":
        raise RuntimeError("projection failed")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO test_stream_summary (stream, events, last_text) VALUES (%s, 1, %s) "
            "ON CONFLICT (stream) DO UPDATE SET events = test_stream_summary.events + 1, last_text = EXCLUDED.last_text",
            [envelope.stream, envelope.data["text"]])


@pytest.fixture
def summary_projection(db):
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE test_stream_summary (stream text PRIMARY KEY, events int, last_text text)")

    def reset():
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM test_stream_summary")

    projection = projections.Projection(name="test_stream_summary", event_types=frozenset({"test.noted"}),
                                        apply=_apply, reset=reset, snapshot=_rows)
    projections.register_projection(projection)
    yield projection
    projections._PROJECTIONS.pop("test_stream_summary")


def note(stream, text):
    return NewEvent(stream=stream, type="test.noted", data={"text": text})


def test_a_projection_is_updated_with_the_append_and_rolls_back_with_it(summary_projection, tag):
    append(events=[note(f"a-{tag}", "one"), note(f"a-{tag}", "two"), note(f"b-{tag}", "x")], actor="system")
    assert _rows() == [(f"a-{tag}", 2, "two"), (f"b-{tag}", 1, "x")]
    with pytest.raises(RuntimeError):
        append(events=[note(f"a-{tag}", "three"), note(f"c-{tag}", "explode")], actor="system")
    assert _rows() == [(f"a-{tag}", 2, "two"), (f"b-{tag}", 1, "x")]
    assert [e.version for e in selectors.read_stream(stream=f"a-{tag}")] == [1, 2]


def test_rebuild_finds_a_drifted_read_model_and_repairs_it(summary_projection, tag):
    append(events=[note(f"a-{tag}", "one"), note(f"a-{tag}", "two")], actor="system")
    with connection.cursor() as cursor:
        cursor.execute("UPDATE test_stream_summary SET events = 99")
    checked = integrity.rebuild(check=True)
    assert [p.check for p in checked.problems] == ["projection:test_stream_summary"]
    assert _rows()[0][1] == 99  # --check changes nothing
    assert integrity.rebuild().problems == []
    assert _rows() == [(f"a-{tag}", 2, "two")]
    assert integrity.verify() == []


@events.event_type("test.renamed", version=1)
class RenamedV1(events.EventData):
    name: str


@events.event_type("test.renamed", version=2)
class RenamedV2(events.EventData):
    given_name: str
    family_name: str


@events.upcaster("test.renamed", from_version=1)
def _split_name(data: dict) -> dict:
    given, _, family = data["name"].partition(" ")
    return {"given_name": given, "family_name": family}


def test_new_events_use_the_latest_schema_and_old_ones_are_upcast():
    assert events.latest_version("test.renamed") == 2
    with pytest.raises(InvalidEventData):
        events.validate("test.renamed", {"name": "Ada Lovelace"})  # v1 shape is no longer accepted
    assert events.validate("test.renamed", {"given_name": "Ada", "family_name": "Lovelace"})[0] == 2
    decoded = events.decode("test.renamed", 1, {"name": "Ada Lovelace"})
    assert (decoded.given_name, decoded.family_name) == ("Ada", "Lovelace")
