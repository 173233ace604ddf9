"""The only way anything is written to the ledger: `append`.

    append(events=[NewEvent(stream="mint-42", type="mint.requested", data={...},
                            postings=[Line("participant/7/cash", "USD", -100_00), ...])],
           expected={"mint-42": 0}, actor="user:3", correlation_id=..., idempotency_key=...)

`idempotency_key` is recorded in the events' metadata (the API request's `Idempotency-Key`); the API
deduplicates requests (compliance.idempotency), the ledger records which request an event came from.

Several events on several streams go in one call and one transaction. `expected` maps a stream to
the version the caller last saw (0 for a new stream); a stream left out is appended to at whatever
version it has (its row lock serialises writers). Projections (balances, pending transfers, stream
versions) change in the caller's transaction, whatever happens next.

Positions and hashes are sealed in commit order (ledger/sql/seal.sql). When no other transaction is
sealing, the append seals its own events at once: the result carries their positions and hashes
inside the transaction, and the sealing lock is held until commit (call `append` last in a command's
transaction, see config.transactions.last). When another transaction holds that lock, the events are
journalled instead and the transaction commits without waiting. Right after the commit, `append` (or,
inside a caller's transaction, its on-commit hook) looks at the journal once without waiting
(ledger_seal_waiting): it seals what waits if the sealing lock is free, and otherwise leaves it to the
lock's holder, who looks again after its own commit, so journalled events are sealed a few
milliseconds after their commit. Three refinements (ledger/sql/seal.sql): an append that sealed inline
while no journalled append was in flight (the flight lock) makes no look at all, so a lone writer's
command is one statement; an append journalled while such a lone sealer held the lock waits, after its
own commit, for that sealer's commit and then looks (its transaction has committed and holds nothing;
only its return waits); and one append at a time (the queue lock) may wait for the sealing lock,
SEAL_WAIT_MS at most, instead of journalling, and then seals inline what the others journalled
meanwhile with its own. The result's positions stay None until asked for: `result.last_position` raises NotYetSealed inside the transaction; read
after the commit, it waits at most for the sealer in progress and is always known. Readers of the log
only ever see the sealed prefix.

Whoever seals logs the head it leaves (logger `ledger.head`: position and hash): an append sealed
inline after its commit, a look at the journal that sealed. So the chain's tip is recorded outside the
database as it grows (a head covers every event before it through the hash chain), and a rewrite of
the database would have to match every head already in the logs.
"""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from django.db import DatabaseError, connections, transaction

from ledger import accounts, canonical, events
from ledger.errors import (
    SQLSTATE_ERRORS,
    InvalidEventData,
    LedgerError,
    NotYetSealed,
    PendingTransferNotOpen,
    UnbalancedPostings,
)
from ledger.postings import Line, PendingOpen, PendingPost, PendingVoid, Posting

head_log = logging.getLogger("ledger.head")


@dataclass(frozen=True)
class NewEvent:
    stream: str
    type: str
    data: dict | events.EventData
    postings: Sequence[Posting] = ()


@dataclass(frozen=True)
class RecordedEvent:
    position: int | None  # None until sealed (see the module docstring)
    event_id: str
    stream: str
    version: int
    type: str
    schema_version: int
    data: dict
    metadata: dict
    recorded_at: datetime | None
    hash: bytes | None


# False only to measure the always-journal alternative (bench/ledger_append.py --seal-at-append off).
SEAL_AT_APPEND = True
# How long the one append allowed to wait for the sealing lock waits before it journals instead
# (ledger_take_sealing_lock in ledger/sql/seal.sql): a holder's commit, a flush or two, is well inside it.
SEAL_WAIT_MS = 20


@dataclass
class AppendResult:
    events: list[RecordedEvent]
    using: str = field(default="default", repr=False)
    # What follows the commit (ledger_append's out_after): "none" (sealed inline, alone), "look" (look at
    # the journal once) or "wait" (journalled while a lone sealer held the lock: wait for it, then look).
    after_commit: str = field(default="look", repr=False)

    @property
    def sealed(self) -> bool:
        return self.events[-1].position is not None

    @property
    def last_position(self) -> int:
        self.seal()
        return self.events[-1].position

    def seal(self) -> None:
        """Make sure the events are sealed and fill in their positions, recorded_at and hashes. After
        the commit this waits at most for the sealer in progress; inside the transaction that journalled
        them it cannot (they are not committed), and raises NotYetSealed."""
        if self.sealed:
            return
        if connections[self.using].in_atomic_block:
            raise NotYetSealed("the append is sealed once its transaction commits; read its position after that")
        with connections[self.using].cursor() as cursor:
            cursor.execute("SELECT * FROM ledger_seal(%s::uuid[])", [[event.event_id for event in self.events]])
            sealed = {str(row[0]): row for row in cursor.fetchall()}
        seal_waiting(using=self.using)  # this call may have held the lock: look after its commit (seal.sql)
        if len(sealed) != len(self.events):
            raise LedgerError("the append's events are not in the log: was its transaction rolled back?")
        self.events[:] = [replace(event, position=sealed[event.event_id][1], hash=bytes(sealed[event.event_id][3]),
                                  recorded_at=sealed[event.event_id][4]) for event in self.events]


def append(
    *,
    events: Sequence[NewEvent],
    actor: str,
    expected: Mapping[str, int] | None = None,
    correlation_id: str | None = None,
    causation_id: str | None = None,
    idempotency_key: str | None = None,
    using: str = "default",
    savepoint: bool = True,
) -> AppendResult:
    if not events:
        raise InvalidEventData("append needs at least one event")
    expected = dict(expected or {})
    metadata = {
        "actor": actor,
        "causation_id": causation_id,
        "correlation_id": correlation_id,
        "idempotency_key": idempotency_key,
    }
    prepared = [_prepare(event) for event in events]
    unknown_streams = set(expected) - {event.stream for event in events}
    if unknown_streams:
        raise InvalidEventData(f"expected versions given for streams without events: {sorted(unknown_streams)}")

    connection = connections[using]
    # Outside a caller's transaction the SQL function is the whole command: run it as one autocommitted
    # statement, one round trip instead of BEGIN/SELECT/COMMIT. (Reading the pending transfers a batch
    # resolves needs no transaction: see _read_pending.)
    single_statement = not connection.in_atomic_block
    # Otherwise a transaction: a savepoint when nested, so a caller can catch a conflict and go on,
    # unless the caller says it never does (`savepoint=False`: a failure rolls its whole transaction back).
    scope = (contextlib.nullcontext() if single_statement
             else transaction.atomic(using=using, savepoint=savepoint))
    with scope, connection.cursor() as cursor:
        pending_rows = _read_pending(cursor, prepared)
        batch_events, pending_ops, account_paths = [], [], {}
        ordinals: dict[str, int] = defaultdict(int)
        for item in prepared:
            event_id = str(uuid.uuid4())
            lines = _lines(item.postings, pending_rows, event_id, pending_ops)
            _check_balanced(item.type, lines)
            for line in lines:
                account_paths[line[0]] = accounts.is_non_negative(line[0])
            ordinals[item.stream] += 1
            body = canonical.event_body(
                data=item.data, event_id=event_id, metadata=metadata, postings=lines,
                schema_version=item.schema_version, stream=item.stream, event_type=item.type,
            )
            batch_events.append({
                "event_id": event_id, "stream": item.stream, "ordinal": ordinals[item.stream],
                "type": item.type, "schema_version": item.schema_version, "data": item.data,
                "body": canonical.encode(body).decode("utf-8"), "lines": lines,
            })

        batch = {
            "streams": [{"id": stream, "expected": expected.get(stream), "count": ordinals[stream]}
                        for stream in sorted(ordinals)],
            "accounts": [{"path": path, "non_negative": flag} for path, flag in sorted(account_paths.items())],
            "pending": pending_ops,
            "events": batch_events,
            "metadata": metadata,
            "seal": SEAL_AT_APPEND,
            "wait_ms": SEAL_WAIT_MS,
        }
        try:
            cursor.execute("SELECT * FROM ledger_append(%s::jsonb)", [json.dumps(batch, separators=(",", ":"))])
            rows = cursor.fetchall()
        except DatabaseError as exc:
            raise _translate(exc) from exc

        recorded = [
            RecordedEvent(position=row[0], event_id=ev["event_id"], stream=ev["stream"], version=row[1],
                          type=ev["type"], schema_version=ev["schema_version"], data=ev["data"],
                          metadata=metadata, recorded_at=row[3], hash=None if row[2] is None else bytes(row[2]))
            for row, ev in zip(rows, batch_events, strict=True)
        ]
    result = AppendResult(events=recorded, using=using, after_commit=rows[0][4])
    # Runs at once when the statement autocommitted; never if the caller's transaction rolls back. A
    # journalled append is sealed here, right after its commit (robust: the command has committed
    # whatever happens; a failed seal leaves the events to the next sealer and `result.seal()`).
    transaction.on_commit(lambda: _after_commit(result), using=using, robust=True)
    return result


def _after_commit(result: AppendResult) -> None:
    if result.sealed:  # sealed inline, holding the sealing lock to the commit just made
        _log_head(result.events[-1].position, result.events[-1].hash)
    # A lone inline sealer is done: nothing can have been journalled counting on it (seal.sql). Otherwise
    # look at the journal once without waiting: an inline sealer seals what committed while it held the
    # lock; a journalled append seals itself if the lock is free now, and otherwise its events are the
    # holder's to seal after that holder's commit. For nothing waiting: no write and no second commit.
    if result.after_commit != "none":
        seal_waiting(using=result.using, after_holder=result.after_commit == "wait")


def seal_waiting(*, using: str = "default", after_holder: bool = False) -> None:
    """Seal what waits in the journal unless another transaction is sealing (ledger_seal_waiting in
    ledger/sql/seal.sql); after each seal of its own, look again, since what committed while this call
    held the lock was left to it. `after_holder`: first wait for the lone sealer that holds the lock to
    end (ledger_seal_after_holder). Logs each head it leaves."""
    statement = "SELECT * FROM ledger_seal_after_holder()" if after_holder else "SELECT * FROM ledger_seal_waiting()"
    with connections[using].cursor() as cursor:
        while True:
            cursor.execute(statement)
            status, position, hash_ = cursor.fetchone()
            if status != "sealed":
                return
            _log_head(position, bytes(hash_))
            statement = "SELECT * FROM ledger_seal_waiting()"


def _log_head(position: int, hash_: bytes) -> None:
    if head_log.isEnabledFor(logging.INFO):
        head_log.info("ledger head", extra={"position": position, "hash": hash_.hex()})


def seal_journal(*, using: str = "default") -> int:
    """Seal every committed journalled event now (waiting for a sealer in progress); returns the head
    position. Appends seal what they can right after commit; this is for a writer that died in between."""
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM ledger_seal('{}'::uuid[])")
    seal_waiting(using=using)
    with connections[using].cursor() as cursor:
        cursor.execute("SELECT position FROM ledger_head WHERE id = 1")
        return cursor.fetchone()[0]


@dataclass(frozen=True)
class _Prepared:
    stream: str
    type: str
    schema_version: int
    data: dict
    postings: Sequence[Posting]


def _prepare(event: NewEvent) -> _Prepared:
    if not event.stream or len(event.stream) > 200 or "\x00" in event.stream:
        raise InvalidEventData(f"invalid stream id {event.stream!r}")
    version, data = events.validate(event.type, event.data)
    return _Prepared(stream=event.stream, type=event.type, schema_version=version, data=data,
                     postings=tuple(event.postings))


def _read_pending(cursor, prepared: list[_Prepared]) -> dict[str, tuple]:
    """The pending transfers the batch resolves: accounts, asset and amount never change once opened.
    No row lock (that needs UPDATE, which the application role lacks): ledger_append resolves a transfer
    only while it is still pending, so of two racing resolves the second is refused all the same."""
    resolving = sorted({p.pending_id for item in prepared for p in item.postings
                        if isinstance(p, PendingPost | PendingVoid)})
    if not resolving:
        return {}
    cursor.execute(
        """
        SELECT p.pending_id, d.path, c.path, p.asset, p.amount, p.state
        FROM ledger_pending p
        JOIN ledger_account d ON d.id = p.debit_account_id
        JOIN ledger_account c ON c.id = p.credit_account_id
        WHERE p.pending_id = ANY(%s)
        """,
        [resolving],
    )
    rows = {row[0]: row for row in cursor.fetchall()}
    for pending_id in resolving:
        if pending_id not in rows:
            raise PendingTransferNotOpen(f"pending transfer {pending_id} does not exist")
        if rows[pending_id][5] != "pending":
            raise PendingTransferNotOpen(f"pending transfer {pending_id} is already {rows[pending_id][5]}")
    return rows


def _check_amount(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidEventData(f"{what} must be an integer of base units, got {type(value).__name__}")
    return value


def _lines(postings: Sequence[Posting], pending_rows: dict, event_id: str, pending_ops: list) -> list[list]:
    lines: list[list] = []
    resolved_here: set[str] = set()

    def add(account: str, asset: str, posted: int, pending_in: int, pending_out: int, pending_id: str | None):
        if not accounts.is_valid_path(account):
            raise InvalidEventData(f"invalid account path {account!r}")
        if not accounts.is_valid_asset(asset):
            raise InvalidEventData(f"invalid asset {asset!r}")
        lines.append(canonical.posting_line(account=account, asset=asset, posted=posted, pending_in=pending_in,
                                            pending_out=pending_out, pending_id=pending_id))

    for posting in postings:
        if isinstance(posting, Line):
            add(posting.account, posting.asset, _check_amount(posting.amount, "amount"), 0, 0, None)
        elif isinstance(posting, PendingOpen):
            amount = _check_amount(posting.amount, "pending amount")
            if amount <= 0:
                raise InvalidEventData("a pending transfer's amount must be positive")
            if posting.debit == posting.credit:
                raise InvalidEventData("a pending transfer needs two different accounts")
            add(posting.debit, posting.asset, 0, 0, amount, posting.pending_id)
            add(posting.credit, posting.asset, 0, amount, 0, posting.pending_id)
            pending_ops.append({"op": "open", "id": posting.pending_id, "debit": posting.debit,
                                "credit": posting.credit, "asset": posting.asset, "amount": str(amount),
                                "event_id": event_id})
        elif isinstance(posting, PendingPost | PendingVoid):
            if posting.pending_id in resolved_here:
                raise PendingTransferNotOpen(f"pending transfer {posting.pending_id} resolved twice in one event")
            resolved_here.add(posting.pending_id)
            _, debit, credit, asset, amount, _ = pending_rows[posting.pending_id]
            amount = int(amount)
            if isinstance(posting, PendingVoid):
                posted, op = 0, "voided"
            else:
                posted = amount if posting.amount is None else _check_amount(posting.amount, "posted amount")
                op = "posted"
                if not 0 < posted <= amount:
                    raise InvalidEventData(f"posted amount must be in 1..{amount} for {posting.pending_id}")
            add(debit, asset, -posted, 0, -amount, posting.pending_id)
            add(credit, asset, posted, -amount, 0, posting.pending_id)
            pending_ops.append({"op": op, "id": posting.pending_id, "amount": str(posted), "event_id": event_id})
        else:
            raise InvalidEventData(f"unknown posting {posting!r}")
    return lines


def _check_balanced(event_type: str, lines: list[list]) -> None:
    posted: dict[str, int] = defaultdict(int)
    pending: dict[str, int] = defaultdict(int)
    for _account, asset, amount, pending_in, pending_out, _pid in lines:
        posted[asset] += int(amount)
        pending[asset] += int(pending_in) - int(pending_out)
    bad = sorted(asset for asset in set(posted) | set(pending) if posted[asset] or pending[asset])
    if bad:
        raise UnbalancedPostings(f"postings of {event_type} do not sum to zero for {', '.join(bad)}")


def row_to_event(row) -> RecordedEvent:
    data, metadata = row[6], row[7]
    return RecordedEvent(
        position=row[0], event_id=str(row[1]), stream=row[2], version=row[3], type=row[4], schema_version=row[5],
        data=data if isinstance(data, dict) else json.loads(data),
        metadata=metadata if isinstance(metadata, dict) else json.loads(metadata),
        recorded_at=row[8], hash=bytes(row[9]),
    )


def _translate(exc: DatabaseError) -> Exception:
    cause = exc.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    error_class = SQLSTATE_ERRORS.get(sqlstate or "")
    if error_class is None:
        return exc
    message = getattr(getattr(cause, "diag", None), "message_primary", None) or str(exc)
    return error_class(message)
