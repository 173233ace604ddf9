"""Reads from the ledger: balances (now and as of any past position or instant), streams, the log."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connections

from ledger.models import Event
from ledger.services import RecordedEvent, row_to_event

# Interpolated into queries below; a constant, never input.
_EVENT_COLUMNS = ("position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, "
                  "recorded_at, hash")


@dataclass(frozen=True)
class BalanceFigures:
    posted: int = 0
    pending_in: int = 0
    pending_out: int = 0

    @property
    def available(self) -> int:
        """What can leave the account now: posted, less what is reserved to leave it."""
        return self.posted - self.pending_out


@dataclass(frozen=True)
class Head:
    position: int
    hash: bytes


def head(*, using: str = "default") -> Head:
    """The sealed log's head (events committed but still in the journal are a few ms behind it)."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT position, hash FROM ledger_head WHERE id = 1")
        position, hash_ = cursor.fetchone()
    return Head(position=position, hash=bytes(hash_))


def journal_pending(*, using: str = "default") -> bool:
    """Whether committed events wait in the journal, unsealed, as this transaction's snapshot sees them:
    their effects are already in the projections but not yet at `head()`. A reader that pairs the head
    with projection rows (chains.observers.ledger_snapshot) needs this False to see one consistent point."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM ledger_journal)")
        return bool(cursor.fetchone()[0])


def balance(*, account: str, asset: str, using: str = "default") -> BalanceFigures:
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT b.posted, b.pending_in, b.pending_out FROM ledger_balance b "
            "JOIN ledger_account a ON a.id = b.account_id WHERE a.path = %s AND b.asset = %s",
            [account, asset],
        )
        row = cursor.fetchone()
    return BalanceFigures(*(int(v) for v in row)) if row else BalanceFigures()


def balances_by_prefix(*, prefix: str, asset: str | None = None, using: str = "default") -> dict[tuple[str, str], BalanceFigures]:
    """Current balances of every account under `prefix` (optionally one asset), keyed by (path, asset)."""
    sql = ("SELECT a.path, b.asset, b.posted, b.pending_in, b.pending_out FROM ledger_balance b "
           "JOIN ledger_account a ON a.id = b.account_id WHERE a.path LIKE %s")
    params: list = [_like_prefix(prefix)]
    if asset is not None:
        sql += " AND b.asset = %s"
        params.append(asset)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        return {(row[0], row[1]): BalanceFigures(int(row[2]), int(row[3]), int(row[4])) for row in cursor.fetchall()}


def _like_prefix(prefix: str) -> str:
    return prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def position_at(*, instant: datetime, using: str = "default") -> int:
    """The last position recorded at or before `instant` (0 before the first event).

    Positions are assigned and timestamped together under the sealing lock (recorded_at is the seal's
    instant), so recorded_at never decreases along the log and this is a single index probe.
    """
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT position FROM ledger_event WHERE recorded_at <= %s ORDER BY recorded_at DESC, position DESC LIMIT 1",
            [instant],
        )
        row = cursor.fetchone()
    return row[0] if row else 0


def balance_as_of(*, account: str, asset: str, position: int | None = None, instant: datetime | None = None,
                  using: str = "default") -> BalanceFigures:
    """The balance after the event at `position` (or the last event at or before `instant`).

    Each posting stores the account's running totals after it, so this is one index probe,
    whatever the length of the log.
    """
    if (position is None) == (instant is None):
        raise ValueError("give exactly one of position or instant")
    if instant is not None:
        position = position_at(instant=instant, using=using)
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT p.posted_after, p.pending_in_after, p.pending_out_after FROM ledger_posting p "
            "WHERE p.account_id = (SELECT id FROM ledger_account WHERE path = %s) AND p.asset = %s "
            "AND p.position <= %s ORDER BY p.position DESC, p.line_no DESC LIMIT 1",
            [account, asset, position],
        )
        row = cursor.fetchone()
    return BalanceFigures(*(int(v) for v in row)) if row else BalanceFigures()


def stream_version(*, stream: str, using: str = "default") -> int:
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT version FROM ledger_stream WHERE stream_id = %s", [stream])
        row = cursor.fetchone()
    return row[0] if row else 0


def read_stream(*, stream: str, using: str = "default") -> list[RecordedEvent]:
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {_EVENT_COLUMNS} FROM ledger_event WHERE stream_id = %s ORDER BY stream_version",  # noqa: S608
                       [stream])
        return [row_to_event(row) for row in cursor.fetchall()]


def read_log(*, after_position: int = 0, limit: int = 1000, using: str = "default") -> list[RecordedEvent]:
    """Tail the log: events after `after_position` in commit order. Never skips: only sealed events are
    in ledger_event, and each seal commits a gapless run after the previous one (see seal.sql)."""
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {_EVENT_COLUMNS} FROM ledger_event WHERE position > %s ORDER BY position LIMIT %s",  # noqa: S608
                       [after_position, limit])
        return [row_to_event(row) for row in cursor.fetchall()]


def read_event_data_of_types(*, types: list[str], up_to_position: int, using: str = "default"
                             ) -> list[tuple[int, str, dict]]:
    """(position, type, data) of every event of the given types at or before `up_to_position`, in log
    order: reference data such as products and statements, read as of a past point, for a fold that
    needs neither metadata, hash nor time (decoding those took two thirds of the time of reading the
    1,500 reference events of 500 products). ledger_event_type_idx serves it."""
    return list(Event.objects.using(using).filter(event_type__in=types, position__lte=up_to_position)
                .order_by("position").values_list("position", "event_type", "data"))


def last_event_of_streams(*, streams: list[str], event_type: str, up_to_position: int, using: str = "default"
                          ) -> list[RecordedEvent]:
    """Per stream, its last event of `event_type` at or before `up_to_position` (streams without one are
    left out): one backward walk of the (stream, version) index per stream, however long the stream."""
    with connections[using].cursor() as cursor:
        cursor.execute(
            "SELECT e.* FROM unnest(%s::text[]) AS s(stream_id) CROSS JOIN LATERAL ("  # noqa: S608
            f"  SELECT {_EVENT_COLUMNS} FROM ledger_event WHERE stream_id = s.stream_id AND event_type = %s "
            "  AND position <= %s ORDER BY stream_version DESC LIMIT 1) e ORDER BY e.position",
            [list(streams), event_type, up_to_position])
        return [row_to_event(row) for row in cursor.fetchall()]


def read_log_filtered(*, after_position: int = 0, limit: int = 100, stream: str | None = None,
                      event_type: str | None = None, actor: str | None = None, up_to_position: int | None = None,
                      since: datetime | None = None, until: datetime | None = None, using: str = "default"
                      ) -> list[RecordedEvent]:
    """A page of the log for the event-log browser and the staff API: events after `after_position` in
    log order that match every filter given (stream, type, actor, position and time ranges)."""
    where, params = ["position > %s"], [after_position]
    for clause, value in (("stream_id = %s", stream), ("event_type = %s", event_type),
                          ("metadata->>'actor' = %s", actor), ("position <= %s", up_to_position),
                          ("recorded_at >= %s", since), ("recorded_at < %s", until)):
        if value is not None:
            where.append(clause)
            params.append(value)
    with connections[using].cursor() as cursor:
        cursor.execute(f"SELECT {_EVENT_COLUMNS} FROM ledger_event WHERE {' AND '.join(where)} "  # noqa: S608
                       "ORDER BY position LIMIT %s", [*params, limit])
        return [row_to_event(row) for row in cursor.fetchall()]
