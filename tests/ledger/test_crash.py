"""Writers killed with SIGKILL in every state an append can be in (inside its transaction, committed but
journalled and not yet sealed, anywhere in a loop), then PostgreSQL stopped as a crash stops it and
started again (WAL recovery): no gap, no duplicate, nothing uncommitted, every committed event sealed
exactly once, and a chain and projections that verify."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import psycopg
from django.db import connection, connections

from config import embedded
from ledger import integrity, selectors
from tests.conftest import ROOT, database_url_for_tests
from tests.subprocesses import command_env, describe, manage

SEAL_LOCK = 7295316  # ledger/sql/seal.sql

WRITER = """
import os, sys, time
import django
django.setup()
from django.db import transaction
from ledger.events import EventData, event_type
from ledger.postings import Line
from ledger.services import NewEvent, append

@event_type("crash.moved", version=1)
class Moved(EventData):
    n: int

tag, mode, index = os.environ["CRASH_TAG"], os.environ["CRASH_MODE"], os.environ["CRASH_INDEX"]

def event(n):
    # The loops share one account; the writer killed inside its transaction posts to its own, so the row
    # lock it holds until the kill cannot stop a loop from journalling its next append.
    sink = f"t/{tag}/held{index}" if mode == "in_transaction" else f"t/{tag}/hot"
    return NewEvent(stream=f"crash-{tag}-{index}-{n}", type="crash.moved", data={"n": n},
                    postings=[Line(f"t/{tag}/src{index}", "USD", -1), Line(sink, "USD", 1)])

if mode == "in_transaction":
    with transaction.atomic():
        result = append(events=[event(0)], actor="system")
        print("appended", result.events[0].event_id, flush=True)
        time.sleep(600)  # killed here, before the commit
else:
    n = 0
    while True:
        print("starting", n, flush=True)
        result = append(events=[event(n)], actor="system")
        print("sealed", result.events[0].event_id, result.last_position, flush=True)
        n += 1
"""


def start_writer(tag: str, mode: str, index: int) -> subprocess.Popen:
    env = command_env(CRASH_TAG=tag, CRASH_MODE=mode, CRASH_INDEX=str(index), DJANGO_SETTINGS_MODULE="config.settings")
    return subprocess.Popen([sys.executable, "-c", WRITER], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(predicate, what: str, timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def journal_ids(conn) -> set[str]:
    return {str(row[0]) for row in conn.execute("SELECT event_id FROM ledger_journal").fetchall()}


def test_writers_killed_mid_append_and_a_database_crash_leave_no_gap_no_duplicate(committed, tag):
    url = database_url_for_tests()
    start_head = selectors.head().position
    loopers = [start_writer(tag, "loop", i) for i in range(3)]
    held = psycopg.connect(url, autocommit=True)
    try:
        # Let the loops run and seal for a moment, then hold the sealing lock: every append from now on
        # is journalled, commits, and waits for its seal, which the kill then cuts off.
        wait_for(lambda: selectors.head().position >= start_head + 10, "the writers to seal some events")
        held.execute("SELECT pg_advisory_lock(%s)", [SEAL_LOCK])
        in_transaction = start_writer(tag, "in_transaction", 9)
        line = in_transaction.stdout.readline().split()
        assert line[:1] == ["appended"], describe_popen(in_transaction, line)
        uncommitted_id = line[1]
        wait_for(lambda: len(journal_ids(held)) >= 3, "committed appends waiting for their seal")
    except BaseException:
        held.close()  # releases the sealing lock, or every later append in the suite would wait for it
        raise
    finally:
        for process in [*loopers, *([in_transaction] if "in_transaction" in locals() else [])]:
            os.kill(process.pid, signal.SIGKILL)
        for process in [*loopers, *([in_transaction] if "in_transaction" in locals() else [])]:
            process.wait(timeout=30)
    journalled = journal_ids(held)
    sealed_before = {str(row[0]): row[1] for row in held.execute(
        "SELECT event_id, position FROM ledger_event WHERE position > %s", [start_head]).fetchall()}
    head_before = held.execute("SELECT position FROM ledger_head").fetchone()[0]
    reported = {}  # what the killed writers were told: event id -> position
    for process in loopers:
        for out in process.stdout.read().splitlines():
            if out.startswith("sealed "):
                _, event_id, position = out.split()
                reported[event_id] = int(position)

    connections.close_all()
    embedded.restart_postgres(crash=True)  # the held session and its lock die with the server
    held.close()

    with psycopg.connect(url, autocommit=True) as conn:
        assert journal_ids(conn) == journalled  # committed journal rows survive the crash
        assert conn.execute("SELECT position FROM ledger_head").fetchone()[0] == head_before
        sealed = manage("ledger", "seal")  # what the periodic sealer (ledger.seal) does every few seconds
        assert sealed.returncode == 0, describe(sealed)
        assert journal_ids(conn) == set()
        rows = conn.execute("SELECT event_id, position FROM ledger_event WHERE position > %s ORDER BY position",
                            [start_head]).fetchall()
    positions = [position for _, position in rows]
    ids = [str(event_id) for event_id, _ in rows]
    assert positions == list(range(start_head + 1, start_head + 1 + len(rows)))  # no gap
    assert len(ids) == len(set(ids))  # no duplicate
    assert set(ids) == set(sealed_before) | journalled  # every committed event, once
    assert uncommitted_id not in ids  # nothing of the writer killed inside its transaction
    assert {event_id: position for event_id, position in zip(ids, positions, strict=True)
            if event_id in sealed_before} == sealed_before  # sealed positions never move
    assert all(sealed_before[event_id] == position for event_id, position in reported.items())
    assert integrity.verify() == []  # chain, positions, stream versions, running totals, projections
    hot = selectors.balance(account=f"t/{tag}/hot", asset="USD").posted
    assert hot == len(ids)
    connection.close()


def describe_popen(process: subprocess.Popen, line) -> str:
    process.kill()
    out, err = process.communicate(timeout=30)
    return f"first line {line!r}\n--- stdout\n{out[-2000:]}\n--- stderr\n{err[-3000:]}"
