"""The append-only triggers: even the owner role, which has every privilege on the log's tables,
cannot change them through SQL. (The application role cannot even try: it has no UPDATE, DELETE or
TRUNCATE at all, tests/ledger/test_database_roles.py.)"""

import pytest
from django.db import DatabaseError, connection

from ledger.postings import Line
from ledger.services import NewEvent, append
from tests.conftest import as_database_owner


@pytest.fixture
def recorded(db, tag):
    return append(events=[NewEvent(stream=f"s-{tag}", type="test.moved", data={},
                                   postings=[Line(f"t/{tag}/a", "USD", -1), Line(f"t/{tag}/b", "USD", 1)])],
                  actor="system").events[0]


@pytest.mark.parametrize("sql", [
    "UPDATE ledger_event SET data = '{}'::jsonb WHERE position = %s",
    "DELETE FROM ledger_event WHERE position = %s",
    "UPDATE ledger_posting SET posted_delta = 0 WHERE position = %s",
    "DELETE FROM ledger_posting WHERE position = %s",
])
def test_raw_sql_cannot_change_the_log(recorded, sql):
    with pytest.raises(DatabaseError, match="append-only"), as_database_owner(), connection.cursor() as cursor:
        cursor.execute(sql, [recorded.position])


@pytest.mark.parametrize("table", ["ledger_event", "ledger_posting"])
def test_raw_sql_cannot_truncate_the_log(committed, tag, table):
    append(events=[NewEvent(stream=f"s-{tag}", type="test.moved", data={},
                            postings=[Line(f"t/{tag}/a", "USD", -1), Line(f"t/{tag}/b", "USD", 1)])], actor="system")
    with pytest.raises(DatabaseError, match="append-only"), as_database_owner(), connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {table} CASCADE")


def test_the_orm_cannot_change_the_log_either(recorded):
    from ledger.models import Event

    with pytest.raises(DatabaseError, match="append-only"), as_database_owner():
        Event.objects.filter(position=recorded.position).update(event_type="tampered")
