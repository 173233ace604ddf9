"""Verify, rebuild and export: how operators and auditors prove the ledger is what it claims.

`verify` recomputes the hash chain from the stored columns with the JCS library and checks every
invariant: positions gapless, stream versions contiguous, postings balanced per event and asset,
running totals and balances equal to their postings, each pending transfer opened once and
resolved at most once, head and projections consistent with a replay.
`rebuild` replays the log into fresh projections (balances, pending transfers, stream versions, the
head) and either compares (--check) or installs the result.
"""

from __future__ import annotations

import contextlib
import json
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from django.db import connections, transaction

from ledger import canonical

_ZERO3 = (0, 0, 0)


@dataclass(frozen=True)
class Problem:
    position: int | None
    check: str
    message: str

    def __str__(self) -> str:
        where = f"event #{self.position}" if self.position is not None else "ledger"
        return f"{where}: [{self.check}] {self.message}"


@dataclass
class ReplayState:
    balances: dict = field(default_factory=dict)  # (account_id, asset) -> [posted, pending_in, pending_out]
    pending: dict = field(default_factory=dict)  # pending_id -> dict
    streams: dict = field(default_factory=dict)  # stream -> version
    head_position: int = 0
    head_hash: bytes = canonical.GENESIS_HASH
    events: int = 0


@dataclass(frozen=True)
class ScannedEvent:
    position: int
    event_id: str
    stream: str
    version: int
    type: str
    schema_version: int
    data: dict
    metadata: dict
    recorded_at: object
    hash: bytes
    lines: list  # (line_no, account_id, asset, posted, pin, pout, pending_id, posted_after, pin_after, pout_after)


def _scan(conn, batch_size: int = 5000) -> Iterator[ScannedEvent]:
    """All events in position order with their posting lines, via two server-side cursors."""
    events_cur = conn.cursor(name="ledger_scan_events")
    events_cur.itersize = batch_size
    postings_cur = conn.cursor(name="ledger_scan_postings")
    postings_cur.itersize = batch_size * 2
    events_cur.execute(
        "SELECT position, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, "
        "recorded_at, hash FROM ledger_event ORDER BY position"
    )
    postings_cur.execute(
        "SELECT position, line_no, account_id, asset, posted_delta, pending_in_delta, pending_out_delta, pending_id, "
        "posted_after, pending_in_after, pending_out_after FROM ledger_posting ORDER BY position, line_no"
    )
    postings = iter(postings_cur)
    next_posting = next(postings, None)
    for row in events_cur:
        position = row[0]
        lines = []
        while next_posting is not None and next_posting[0] <= position:
            if next_posting[0] == position:
                p = next_posting
                lines.append((p[1], p[2], p[3], int(p[4]), int(p[5]), int(p[6]), p[7], int(p[8]), int(p[9]),
                              int(p[10])))
            next_posting = next(postings, None)
        yield ScannedEvent(position=position, event_id=str(row[1]), stream=row[2], version=row[3], type=row[4],
                           schema_version=row[5], data=_json(row[6]), metadata=_json(row[7]), recorded_at=row[8],
                           hash=bytes(row[9]), lines=lines)
    events_cur.close()
    postings_cur.close()


def _driver_connection(using: str):
    """The psycopg connection under Django's wrapper, opened first if need be. Reading
    `connections[using].connection` alone gives None in a process that has not queried yet, which is
    exactly what a fresh `manage.py ledger verify` is."""
    wrapper = connections[using]
    wrapper.ensure_connection()
    return wrapper.connection


def _account_paths(conn) -> dict[int, str]:
    with conn.cursor() as cursor:
        cursor.execute("SELECT id, path FROM ledger_account")
        return dict(cursor.fetchall())


def _replay_event(state: ReplayState, event: ScannedEvent, report: Callable[[Problem], None], *,
                  sealed: bool = True) -> None:
    """Fold one event into the replay state, reporting any invariant it breaks. An unsealed (journalled)
    event has no position yet: it moves the projections, not the head."""
    position = event.position
    if sealed and position != state.head_position + 1:
        report(Problem(position, "gapless", f"expected position {state.head_position + 1}"))
    expected_version = state.streams.get(event.stream, 0) + 1
    if event.version != expected_version:
        report(Problem(position, "stream_version",
                       f"{event.stream} version {event.version}, expected {expected_version}"))
    state.streams[event.stream] = event.version

    sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    pending_lines: dict[str, list] = defaultdict(list)
    for line in event.lines:
        _line_no, account_id, asset, posted, pin, pout, pending_id, posted_after, pin_after, pout_after = line
        sums[asset][0] += posted
        sums[asset][1] += pin - pout
        balance = state.balances.setdefault((account_id, asset), [0, 0, 0])
        balance[0] += posted
        balance[1] += pin
        balance[2] += pout
        if (posted_after, pin_after, pout_after) != tuple(balance):
            report(Problem(position, "running_total",
                           f"account {account_id} {asset}: stored totals {(posted_after, pin_after, pout_after)}, "
                           f"postings give {tuple(balance)}"))
        if pending_id is not None:
            pending_lines[pending_id].append(line)
    for asset, (posted_sum, pending_sum) in sums.items():
        if posted_sum or pending_sum:
            report(Problem(position, "balanced", f"postings do not sum to zero for {asset}"))

    for pending_id, lines in pending_lines.items():
        opening = [ln for ln in lines if ln[4] > 0 or ln[5] > 0]
        releasing = [ln for ln in lines if ln[4] < 0 or ln[5] < 0]
        if opening:
            if pending_id in state.pending:
                report(Problem(position, "pending", f"pending transfer {pending_id} opened twice"))
                continue
            debit = next((ln for ln in opening if ln[5] > 0), None)
            credit = next((ln for ln in opening if ln[4] > 0), None)
            if debit is None or credit is None:
                report(Problem(position, "pending", f"pending transfer {pending_id} opened without both sides"))
                continue
            state.pending[pending_id] = {
                "debit_account_id": debit[1], "credit_account_id": credit[1], "asset": debit[2],
                "amount": debit[5], "state": "pending", "posted_amount": None,
                "opened_event_id": event.event_id, "resolved_event_id": None,
            }
        if releasing:
            record = state.pending.get(pending_id)
            if record is None or record["state"] != "pending":
                report(Problem(position, "pending", f"pending transfer {pending_id} resolved more than once "
                               "or never opened"))
                continue
            posted_amount = sum(ln[3] for ln in releasing if ln[3] > 0)
            record["state"] = "posted" if posted_amount > 0 else "voided"
            record["posted_amount"] = posted_amount
            record["resolved_event_id"] = event.event_id
    if sealed:
        state.head_position = position
        state.events += 1


def replay(*, using: str = "default", on_event: Callable[[ScannedEvent], None] | None = None,
           report: Callable[[Problem], None] | None = None, check_hashes: bool = False,
           paths: dict[int, str] | None = None) -> ReplayState:
    """Replay the whole log into a fresh ReplayState (must run inside a transaction)."""
    conn = _driver_connection(using)
    state = ReplayState()
    report = report or (lambda problem: None)
    if check_hashes and paths is None:
        paths = _account_paths(conn)
    for event in _scan(conn):
        _replay_event(state, event, report)
        if check_hashes:
            expected_hash = canonical.chain_hash(state.head_hash, _document(event, paths))
            if expected_hash != event.hash:
                report(Problem(event.position, "hash_chain",
                               "stored hash does not match the event's canonical bytes and the previous hash"))
            state.head_hash = event.hash
        else:
            state.head_hash = event.hash
        if on_event is not None:
            on_event(event)
    for event in _journal(conn):
        _replay_event(state, event, report, sealed=False)
    return state


def _journal(conn) -> Iterator[ScannedEvent]:
    """The committed events not sealed yet, in journal (commit) order: their projections are already in
    place, their positions and hashes a few milliseconds away (ledger/sql/seal.sql)."""
    with conn.cursor() as cursor:
        cursor.execute("SELECT seq, event_id, stream_id, stream_version, event_type, schema_version, data, metadata, "
                       "lines FROM ledger_journal ORDER BY seq")
        rows = cursor.fetchall()
    for row in rows:
        lines = [(ln[0], ln[1], ln[2], int(ln[3]), int(ln[4]), int(ln[5]), ln[6], int(ln[7]), int(ln[8]), int(ln[9]))
                 for ln in _json(row[8])]
        yield ScannedEvent(position=None, event_id=str(row[1]), stream=row[2], version=row[3], type=row[4],
                           schema_version=row[5], data=_json(row[6]), metadata=_json(row[7]), recorded_at=None,
                           hash=b"", lines=lines)


def _document(event: ScannedEvent, paths: dict[int, str]) -> dict:
    lines = [canonical.posting_line(account=paths.get(ln[1], f"?{ln[1]}"), asset=ln[2], posted=ln[3], pending_in=ln[4],
                                    pending_out=ln[5], pending_id=ln[6]) for ln in event.lines]
    body = canonical.event_body(data=event.data, event_id=event.event_id, metadata=event.metadata, postings=lines,
                                schema_version=event.schema_version, stream=event.stream, event_type=event.type)
    return canonical.event_document(body=body, position=event.position, recorded_at=event.recorded_at,
                                    version=event.version)


# --- comparing a replay with the stored projections ------------------------------------------

def _dangling_postings(conn) -> list[Problem]:
    """Postings referring to no event or no account (the database does not enforce these references,
    so that no foreign-key check runs under the append lock; this is where they are checked)."""
    problems = []
    with conn.cursor() as cursor:
        cursor.execute("SELECT p.position FROM ledger_posting p LEFT JOIN ledger_event e ON e.position = p.position "
                       "WHERE e.position IS NULL ORDER BY p.position LIMIT 1")
        row = cursor.fetchone()
        if row:
            problems.append(Problem(row[0], "posting_event", "a posting refers to an event that does not exist"))
        cursor.execute("SELECT p.position FROM ledger_posting p LEFT JOIN ledger_account a ON a.id = p.account_id "
                       "WHERE a.id IS NULL ORDER BY p.position LIMIT 1")
        row = cursor.fetchone()
        if row:
            problems.append(Problem(row[0], "posting_account", "a posting refers to an account that does not exist"))
    return problems


def _stored_projections(conn) -> dict[str, dict]:
    with conn.cursor() as cursor:
        cursor.execute("SELECT account_id, asset, posted, pending_in, pending_out FROM ledger_balance")
        balances = {(r[0], r[1]): (int(r[2]), int(r[3]), int(r[4])) for r in cursor.fetchall()}
        cursor.execute("SELECT pending_id, debit_account_id, credit_account_id, asset, amount, state, posted_amount, "
                       "opened_event_id, resolved_event_id FROM ledger_pending")
        pending = {
            r[0]: {"debit_account_id": r[1], "credit_account_id": r[2], "asset": r[3], "amount": int(r[4]),
                   "state": r[5], "posted_amount": None if r[6] is None else int(r[6]),
                   "opened_event_id": str(r[7]), "resolved_event_id": None if r[8] is None else str(r[8])}
            for r in cursor.fetchall()
        }
        cursor.execute("SELECT stream_id, version FROM ledger_stream")
        streams = dict(cursor.fetchall())
        cursor.execute("SELECT position, hash FROM ledger_head WHERE id = 1")
        head_position, head_hash = cursor.fetchone()
    return {"balances": balances, "pending": pending, "streams": streams,
            "head": {"position": head_position, "hash": bytes(head_hash)}}


def _replayed_projections(state: ReplayState) -> dict[str, dict]:
    return {
        "balances": {k: tuple(v) for k, v in state.balances.items()},
        "pending": state.pending,
        "streams": state.streams,
        "head": {"position": state.head_position, "hash": state.head_hash},
    }


def _diff(name: str, stored: dict, replayed: dict, paths: dict[int, str]) -> list[Problem]:
    problems = []
    for key in sorted(set(stored) | set(replayed), key=repr):
        if name == "balances" and stored.get(key, _ZERO3) == replayed.get(key, _ZERO3):
            continue  # a zero balance row and no row at all mean the same
        if stored.get(key) != replayed.get(key):
            label = f"{paths.get(key[0], key[0])} {key[1]}" if name == "balances" else key
            problems.append(Problem(None, f"projection:{name}",
                                    f"{label}: stored {stored.get(key)!r}, replay gives {replayed.get(key)!r}"))
    return problems


def _check_ledger_projections(conn, state: ReplayState, paths: dict[int, str]) -> list[Problem]:
    stored = _stored_projections(conn)
    replayed = _replayed_projections(state)
    problems: list[Problem] = []
    for name in ("balances", "pending", "streams"):
        problems += _diff(name, stored[name], replayed[name], paths)
    if stored["head"] != replayed["head"]:
        problems.append(Problem(None, "projection:head", f"head {stored['head']['position']} does not match the "
                                f"last event {replayed['head']['position']}"))
    return problems


@contextlib.contextmanager
def _consistent_snapshot(using: str):
    """One snapshot for the whole scan, so events, postings and projections agree with each other.
    Nested in a caller's transaction, that transaction's snapshot is used as it is."""
    already_in_transaction = connections[using].in_atomic_block
    with transaction.atomic(using=using):
        if not already_in_transaction:
            connections[using].cursor().execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        yield


def verify(*, using: str = "default", check_projections: bool = True) -> list[Problem]:
    problems: list[Problem] = []
    with _consistent_snapshot(using):
        conn = _driver_connection(using)
        paths = _account_paths(conn)
        problems += _dangling_postings(conn)
        state = replay(using=using, report=problems.append, check_hashes=True, paths=paths)
        problems += _check_ledger_projections(conn, state, paths)
    if check_projections:
        problems += rebuild(using=using, check=True).problems
    return problems


@dataclass
class RebuildResult:
    events: int
    problems: list[Problem]
    seconds: float = 0.0


def rebuild(*, using: str = "default", check: bool = False) -> RebuildResult:
    """Replay the log into fresh projections. With check, compare and change nothing: that reads one
    snapshot (the sealed log plus the journal of committed, not yet sealed events) and stops nobody."""
    import time

    started = time.perf_counter()
    problems: list[Problem] = []
    if check:
        with _consistent_snapshot(using):
            conn = _driver_connection(using)
            paths = _account_paths(conn)
            state = replay(using=using, report=problems.append)
            problems += _check_ledger_projections(conn, state, paths)
        return RebuildResult(events=state.events, problems=problems, seconds=time.perf_counter() - started)
    with transaction.atomic(using=using), connections[using].cursor() as cursor:
        # Freeze the projections: every append holds lock 7295317 shared, so this waits for those in
        # flight and holds off new ones; then seal the journal, so the log is all there is to replay.
        cursor.execute("SELECT pg_advisory_xact_lock(7295317)")
        cursor.execute("SELECT count(*) FROM ledger_seal('{}'::uuid[])")
        conn = _driver_connection(using)
        state = replay(using=using, report=problems.append)
        _install_ledger_projections(conn, state)
    return RebuildResult(events=state.events, problems=problems, seconds=time.perf_counter() - started)


def _install_ledger_projections(conn, state: ReplayState) -> None:
    with conn.cursor() as cursor:
        cursor.execute("DELETE FROM ledger_balance")
        cursor.execute("DELETE FROM ledger_pending")
        cursor.execute("DELETE FROM ledger_stream")
        with cursor.copy("COPY ledger_balance (account_id, asset, posted, pending_in, pending_out) FROM STDIN") as copy:
            for (account_id, asset), (posted, pin, pout) in state.balances.items():
                copy.write_row((account_id, asset, posted, pin, pout))
        with cursor.copy("COPY ledger_pending (pending_id, debit_account_id, credit_account_id, asset, amount, state, "
                         "posted_amount, opened_event_id, resolved_event_id) FROM STDIN") as copy:
            for pending_id, r in state.pending.items():
                copy.write_row((pending_id, r["debit_account_id"], r["credit_account_id"], r["asset"], r["amount"],
                                r["state"], r["posted_amount"], r["opened_event_id"], r["resolved_event_id"]))
        with cursor.copy("COPY ledger_stream (stream_id, version) FROM STDIN") as copy:
            for stream, version in state.streams.items():
                copy.write_row((stream, version))
        cursor.execute("UPDATE ledger_head SET position = %s, hash = %s WHERE id = 1",
                       [state.head_position, state.head_hash])


@dataclass(frozen=True)
class ExportFilter:
    """Which events an export keeps (the event-log browser's filters). An unfiltered export is what the
    offline verifier recomputes the hash chain from; a filtered one is for reading."""

    stream: str | None = None
    event_type: str | None = None
    actor: str | None = None
    after_position: int | None = None
    up_to_position: int | None = None
    since: object = None  # datetime, inclusive
    until: object = None  # datetime, exclusive

    def keeps(self, event: ScannedEvent) -> bool:
        return ((self.stream is None or event.stream == self.stream)
                and (self.event_type is None or event.type == self.event_type)
                and (self.actor is None or (event.metadata or {}).get("actor") == self.actor)
                and (self.after_position is None or event.position > self.after_position)
                and (self.up_to_position is None or event.position <= self.up_to_position)
                and (self.since is None or event.recorded_at >= self.since)
                and (self.until is None or event.recorded_at < self.until))


def export_documents(*, using: str = "default", keep: ExportFilter | None = None) -> Iterator[dict]:
    """Every event (or those `keep` keeps) as its canonical document plus "hash", in log order, from one
    snapshot, streamed (server-side cursors): memory stays flat whatever the length of the log."""
    with _consistent_snapshot(using):
        conn = _driver_connection(using)
        paths = _account_paths(conn)
        for event in _scan(conn):
            if keep is not None and keep.up_to_position is not None and event.position > keep.up_to_position:
                break
            if keep is not None and not keep.keeps(event):
                continue
            document = _document(event, paths)
            document["hash"] = event.hash.hex()
            yield document


def export_jsonl(out, *, using: str = "default") -> int:
    """Write the log as JSON Lines: every field the hash covers, plus the hash, one event per line."""
    count = 0
    for document in export_documents(using=using):
        out.write(json.dumps(document, separators=(",", ":"), ensure_ascii=False) + "\n")
        count += 1
    return count


def _json(value):
    # Django registers a text loader for jsonb on its connections; raw cursors may see either form.
    return json.loads(value) if isinstance(value, str | bytes) else value
