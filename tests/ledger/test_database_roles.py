"""A database the application cannot rewrite (README). ledger_append() checks every batch itself,
whoever calls it and whatever the Python side checked first."""

from __future__ import annotations

import json
import uuid

import pytest
from django.db import DatabaseError, connection, transaction

from ledger import integrity, selectors
from ledger.services import NewEvent, append


def raw_batch(tag: str, *lines: list) -> str:
    """A batch for ledger_append as a caller that skips the Python checks would send it."""
    accounts = sorted({line[0] for line in lines})
    return json.dumps({
        "streams": [{"id": f"raw-{tag}", "expected": 0, "count": 1}],
        "accounts": [{"path": path, "non_negative": False} for path in accounts],
        "pending": [], "metadata": {},
        "events": [{"event_id": str(uuid.uuid4()), "stream": f"raw-{tag}", "ordinal": 1, "type": "test.moved",
                    "schema_version": 1, "data": {}, "body": "{}", "lines": [list(line) for line in lines]}],
    })


@pytest.mark.parametrize("amounts", [
    ("0.5", "0.5", "-1"),      # sums to zero, but numeric(78,0) would store 1 + 1 - 1
    ("1.4", "-1.4", "0"),      # would be stored as 1 and -1: balanced, yet not what was sent
    ("1e2", "-100", "0"),
    ("NaN", "NaN", "0"),
    (None, "0", "0"),
])
def test_ledger_append_refuses_amounts_that_are_not_whole_numbers(db, tag, amounts):
    lines = [[f"t/{tag}/{name}", "USD", amount, "0", "0", None] for name, amount in zip("abc", amounts, strict=True)]
    head = selectors.head()
    with pytest.raises(DatabaseError, match="not a whole number") as refused, transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute("SELECT * FROM ledger_append(%s::jsonb)", [raw_batch(tag, *lines)])
    assert refused.value.__cause__.sqlstate == "LG006"
    assert selectors.head() == head


def test_a_temporary_table_cannot_stand_in_for_the_ledger_head(db, tag):
    """ledger_append pins its search_path (pg_temp last): a caller's temporary ledger_head, which would
    otherwise come first, is not the one it chains from and moves."""
    real = selectors.head()
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMPORARY TABLE ledger_head (id smallint PRIMARY KEY, position bigint, hash bytea)")
        cursor.execute("INSERT INTO ledger_head VALUES (1, 1000000, %s)", [b"\xff" * 32])
    recorded = append(events=[NewEvent(stream=f"s-{tag}", type="test.noted", data={"text": "t"})],
                      actor="system").events[0]
    with connection.cursor() as cursor:
        cursor.execute("SELECT position, hash FROM pg_temp.ledger_head")
        assert cursor.fetchone() == (1000000, b"\xff" * 32)
        cursor.execute("SELECT position, hash FROM public.ledger_head")
        position, chain_hash = cursor.fetchone()
        cursor.execute("DROP TABLE pg_temp.ledger_head")
    assert recorded.position == real.position + 1 == position
    assert recorded.hash == bytes(chain_hash)
    assert integrity.verify(check_projections=False) == []
