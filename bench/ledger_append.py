"""Ledger benchmark (issue 3): append throughput, replay rate and as-of query latency.

    .venv/bin/python bench/ledger_append.py            # full run (about 10 minutes)
    .venv/bin/python bench/ledger_append.py --quick    # smoke run, under a minute

Runs on the embedded PostgreSQL (or on the server DATABASE_URL names), always in fresh databases
created here: `bench_ledger` (the ledger, migrated), `bench_es` (the `eventsourcing` library's
PostgreSQL recorder) and `bench_raw` (plain tables, the ceiling). Prints ONE JSON line with every
figure to stdout; progress goes to stderr.

 (a) single writer: commands/s, one command = one transaction = `ledger.services.append` of one event
     with two postings on a new stream (expected version 0), beside `eventsourcing` saving one new
     aggregate (one event) per command;
 (b) the same with 1, 2, 4, 8 writer processes on distinct streams and distinct accounts, with the CPU
     each command cost the writers and the server (b_cpu_per_command) and, at the top count, the bound
     that puts on commands/s with the cores busy (ratios: *_cpu_bound_commands_per_s);
 (c) the same rows inserted through bare psycopg into plain tables (no function, no lock);
 (d) load N events (1000 per append), then `ledger.integrity.rebuild(check=True)`: events/s;
 (e) `balance_as_of` latency p50/p99 by position and by instant over random samples.

`--seal-at-append off` measures the alternative issue 16 weighed: every append journalled and sealed
by ledger_seal() after its commit, never sealed inside its own transaction (see bench/RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import random
import statistics
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

LEDGER_DB = "bench_ledger"
ES_DB = "bench_es"
RAW_DB = "bench_raw"
EVENT_TYPE = "bench.transfer"
ASSET = "shares:BENCH"
ACCOUNTS_PER_WRITER = 50


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# --- databases --------------------------------------------------------------------------------

def server_url(database: str) -> str:
    """A URL for `database` on the benchmark's server (DATABASE_URL's, else the embedded one)."""
    base = os.environ.get("BENCH_SERVER_URL")
    if base is None:
        raise RuntimeError("server URL not resolved")
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{database}"))


def resolve_server() -> None:
    """Fix the server once, in the parent; child processes inherit BENCH_SERVER_URL."""
    if os.environ.get("BENCH_SERVER_URL"):
        return
    if os.environ.get("DATABASE_URL"):
        os.environ["BENCH_SERVER_URL"] = os.environ["DATABASE_URL"]
    else:
        from config import embedded

        os.environ["BENCH_SERVER_URL"] = embedded.postgres_url("postgres")


def recreate_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def django_setup() -> None:
    """Point Django at bench_ledger (must run before anything imports settings), register the type."""
    os.environ["ISSUER_ENV"] = "test"
    os.environ["DATABASE_URL"] = server_url(LEDGER_DB)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    register_event_type()
    from ledger import services

    # Only to measure the alternative: every append journalled and sealed after its commit.
    services.SEAL_AT_APPEND = os.environ.get("BENCH_SEAL_AT_APPEND", "on") == "on"


def register_event_type() -> None:
    from ledger.events import EventData, event_type

    @event_type(EVENT_TYPE, version=1)
    class BenchTransfer(EventData):
        n: int


# --- (a)/(b) ledger writers -------------------------------------------------------------------

def _ledger_command(writer: int, i: int, accounts: list[str]) -> None:
    from ledger.postings import Line
    from ledger.services import NewEvent, append

    a, b = random.sample(accounts, 2)
    amount = random.randint(1, 1_000_000)
    stream = f"bench-{writer}-{uuid.uuid4().hex[:12]}"
    append(events=[NewEvent(stream=stream, type=EVENT_TYPE, data={"n": i},
                            postings=[Line(a, ASSET, -amount), Line(b, ASSET, amount)])],
           expected={stream: 0}, actor="task:bench")


def _run_for(fn, seconds: float, start_at: float) -> tuple[int, float, float]:
    """Run `fn` until `seconds` have passed: (commands, wall seconds, this process's CPU seconds)."""
    while time.time() < start_at:
        time.sleep(0.001)
    started, cpu_started = time.perf_counter(), time.process_time()
    deadline = started + seconds
    count = 0
    while time.perf_counter() < deadline:
        fn(count)
        count += 1
    return count, time.perf_counter() - started, time.process_time() - cpu_started


def _ledger_worker(writer: int, seconds: float, ready, start_at, results, done) -> None:
    django_setup()
    accounts = [f"bench/w{writer}/{k}" for k in range(ACCOUNTS_PER_WRITER)]
    for i in range(20):  # warm-up: connection, prepared plans, account rows
        _ledger_command(writer, -i - 1, accounts)
    ready.release()
    while start_at.value == 0:
        time.sleep(0.001)
    results.put((writer, *_run_for(lambda i: _ledger_command(writer, i, accounts), seconds, start_at.value)))
    done.wait(120)  # keep the connection (and its backend's CPU figure) until the parent has read it


def _es_worker(writer: int, seconds: float, ready, start_at, results, done) -> None:
    # The parent created the tables; concurrent CREATE ... IF NOT EXISTS races on the catalog.
    app = _es_app(create_table=False)
    for _ in range(20):
        app.save(_es_aggregate_class()(n=-1))
    ready.release()
    while start_at.value == 0:
        time.sleep(0.001)
    aggregate_class = _es_aggregate_class()
    results.put((writer, *_run_for(lambda i: app.save(aggregate_class(n=i)), seconds, start_at.value)))
    done.wait(120)  # keep the connection (and its backend's CPU figure) until the parent has read it


def _raw_worker(writer: int, seconds: float, ready, start_at, results, done) -> None:
    import psycopg
    from psycopg.types.json import Jsonb

    conn = psycopg.connect(server_url(RAW_DB))
    accounts = list(range(writer * ACCOUNTS_PER_WRITER + 1, (writer + 1) * ACCOUNTS_PER_WRITER + 1))
    metadata = Jsonb({"actor": "task:bench", "causation_id": None, "correlation_id": None, "idempotency_key": None})

    def command(i: int) -> None:
        a, b = random.sample(accounts, 2)
        amount = random.randint(1, 1_000_000)
        with conn.transaction():
            conn.execute(
                "WITH e AS (INSERT INTO raw_event(event_id, stream_id, stream_version, event_type, schema_version, "
                "data, metadata, recorded_at, hash) VALUES (%s, %s, 1, %s, 1, %s, %s, clock_timestamp(), %s) "
                "RETURNING position) "
                "INSERT INTO raw_posting(position, line_no, account_id, asset, posted_delta, pending_in_delta, "
                "pending_out_delta, pending_id, posted_after, pending_in_after, pending_out_after) "
                "SELECT e.position, v.line_no, v.account_id, %s, v.delta, 0, 0, NULL, v.delta, 0, 0 "
                "FROM e, (VALUES (0, %s::bigint, %s::numeric), (1, %s::bigint, %s::numeric)) AS v(line_no, account_id, delta)",
                [uuid.uuid4(), f"bench-{writer}-{uuid.uuid4().hex[:12]}", EVENT_TYPE, Jsonb({"n": i}), metadata,
                 os.urandom(32), ASSET, a, -amount, b, amount],
            )

    for i in range(20):
        command(-i - 1)
    ready.release()
    while start_at.value == 0:
        time.sleep(0.001)
    results.put((writer, *_run_for(command, seconds, start_at.value)))
    done.wait(120)  # keep the connection (and its backend's CPU figure) until the parent has read it
    conn.close()


def _server_cpu_seconds() -> float:
    """CPU seconds used so far by the PostgreSQL server's processes on this machine (0 for a remote server)."""
    import psutil

    total = 0.0
    for process in psutil.process_iter(["name"]):
        if (process.info["name"] or "").startswith("postgres"):
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system
    return total


def run_writers(target, writers: int, seconds: float) -> dict:
    """Start `writers` processes, wait until all are warm, release them together, sum their rates.

    Also where the machine's CPU went while they ran, per command: the writer processes' own (client)
    and the PostgreSQL server's, and the share of both cores left idle. With the cores busy, commands/s
    cannot exceed cores / (client + server CPU per command): that is what bounds 8 writers on 2 cores."""
    import psutil

    ctx = mp.get_context("spawn")
    ready = ctx.Semaphore(0)
    start_at = ctx.Value("d", 0.0)
    results = ctx.Queue()
    done = ctx.Event()
    procs = [ctx.Process(target=target, args=(w, seconds, ready, start_at, results, done)) for w in range(writers)]
    for p in procs:
        p.start()
    for _ in procs:
        if not ready.acquire(timeout=120):
            raise RuntimeError("a writer process did not get ready")
    start_at.value = time.time() + 0.2
    while time.time() < start_at.value:
        time.sleep(0.001)
    server_before, machine_before = _server_cpu_seconds(), psutil.cpu_times()
    rows = [results.get(timeout=seconds + 120) for _ in procs]
    server_after, machine_after = _server_cpu_seconds(), psutil.cpu_times()
    done.set()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            raise RuntimeError(f"writer process exited with {p.exitcode}")
    total = sum(r[1] for r in rows)
    elapsed = max(r[2] for r in rows)
    machine_total = sum(machine_after) - sum(machine_before)
    server_cpu = server_after - server_before if not os.environ.get("BENCH_EXTERNAL_SERVER") else None
    return {"writers": writers, "commands": total, "seconds": round(elapsed, 3),
            "commands_per_s": round(total / elapsed, 1),
            "client_cpu_ms_per_command": round(sum(r[3] for r in rows) * 1000 / max(total, 1), 3),
            "server_cpu_ms_per_command": None if server_cpu is None else round(server_cpu * 1000 / max(total, 1), 3),
            "idle_share": round((machine_after.idle - machine_before.idle) / machine_total, 3) if machine_total else None}


# --- eventsourcing ----------------------------------------------------------------------------

def _es_env() -> dict:
    parts = urlsplit(server_url(ES_DB))
    query = dict(item.split("=", 1) for item in parts.query.split("&") if "=" in item)
    host = query.get("host") or parts.hostname or "localhost"
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": ES_DB,
        "POSTGRES_HOST": host,  # libpq takes a socket directory as host when it starts with "/"
        "POSTGRES_PORT": str(parts.port or query.get("port") or 5432),
        "POSTGRES_USER": parts.username or "postgres",
        "POSTGRES_PASSWORD": parts.password or "",
    }


def _es_aggregate_class():
    # Imported lazily so the ledger-only processes never load the library.
    from bench._common import BenchAggregate

    return BenchAggregate


def _es_app(*, create_table: bool = True):
    from eventsourcing.application import Application

    _es_aggregate_class()
    return Application(env={**_es_env(), "CREATE_TABLE": "yes" if create_table else "no"})


# --- (c) raw psycopg ceiling ------------------------------------------------------------------

RAW_SCHEMA = """
CREATE TABLE raw_event (
    position bigserial PRIMARY KEY, event_id uuid NOT NULL UNIQUE, stream_id text NOT NULL,
    stream_version integer NOT NULL, event_type text NOT NULL, schema_version smallint NOT NULL,
    data jsonb NOT NULL, metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL, hash bytea NOT NULL,
    UNIQUE (stream_id, stream_version));
CREATE INDEX raw_event_recorded_at_idx ON raw_event (recorded_at);
CREATE INDEX raw_event_type_idx ON raw_event (event_type);
CREATE TABLE raw_posting (
    position bigint NOT NULL REFERENCES raw_event, line_no smallint NOT NULL, account_id bigint NOT NULL,
    asset text NOT NULL, posted_delta numeric(78,0) NOT NULL, pending_in_delta numeric(78,0) NOT NULL,
    pending_out_delta numeric(78,0) NOT NULL, pending_id text, posted_after numeric(78,0) NOT NULL,
    pending_in_after numeric(78,0) NOT NULL, pending_out_after numeric(78,0) NOT NULL,
    PRIMARY KEY (position, line_no));
CREATE INDEX raw_posting_asof_idx ON raw_posting (account_id, asset, position DESC, line_no DESC)
    INCLUDE (posted_after, pending_in_after, pending_out_after);
"""


def setup_raw() -> None:
    import psycopg

    recreate_database(RAW_DB)
    with psycopg.connect(server_url(RAW_DB), autocommit=True) as conn:
        conn.execute(RAW_SCHEMA)


# --- (d) load and rebuild ---------------------------------------------------------------------

def load_events(total: int, batch: int, accounts: int) -> dict:
    from ledger.postings import Line
    from ledger.services import NewEvent, append

    rng = random.Random(3)
    paths = [f"load/{k:05d}" for k in range(accounts)]
    loaded = 0
    started = time.perf_counter()
    last_report = started
    while loaded < total:
        size = min(batch, total - loaded)
        new_events = []
        for i in range(size):
            a, b = rng.sample(range(accounts), 2)
            amount = rng.randint(1, 1_000_000)
            new_events.append(NewEvent(stream=f"acct-{a:05d}", type=EVENT_TYPE, data={"n": loaded + i},
                                       postings=[Line(paths[a], ASSET, -amount), Line(paths[b], ASSET, amount)]))
        append(events=new_events, actor="task:bench-load")
        loaded += size
        now = time.perf_counter()
        if now - last_report > 10:
            log(f"  loaded {loaded:,} events ({loaded / (now - started):,.0f}/s)")
            last_report = now
    elapsed = time.perf_counter() - started
    return {"events": loaded, "events_per_append": batch, "accounts": accounts, "seconds": round(elapsed, 2),
            "events_per_s": round(loaded / elapsed, 1)}


def run_rebuild() -> dict:
    from ledger import integrity

    result = integrity.rebuild(check=True)
    if result.problems:
        raise RuntimeError(f"rebuild --check found problems: {[str(p) for p in result.problems[:5]]}")
    return {"events": result.events, "seconds": round(result.seconds, 2),
            "events_per_s": round(result.events / result.seconds, 1), "problems": len(result.problems)}


# --- (e) as-of latency ------------------------------------------------------------------------

def _percentiles(samples_ms: list[float]) -> dict:
    ordered = sorted(samples_ms)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 3)

    return {"samples": len(ordered), "p50_ms": pct(50), "p99_ms": pct(99), "max_ms": round(ordered[-1], 3),
            "mean_ms": round(statistics.fmean(ordered), 3)}


def run_as_of(samples: int, accounts: int) -> dict:
    from django.db import connection

    from ledger import selectors

    rng = random.Random(5)
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(position), max(position), min(recorded_at), max(recorded_at) FROM ledger_event")
        first, last, t0, t1 = cursor.fetchone()
    paths = [f"load/{k:05d}" for k in range(accounts)]
    by_position, by_instant = [], []
    for _ in range(20):
        selectors.balance_as_of(account=paths[0], asset=ASSET, position=last)
    for _ in range(samples):
        account = rng.choice(paths)
        position = rng.randint(first, last)
        started = time.perf_counter()
        selectors.balance_as_of(account=account, asset=ASSET, position=position)
        by_position.append((time.perf_counter() - started) * 1000)
    span = (t1 - t0).total_seconds()
    from datetime import timedelta

    for _ in range(samples):
        account = rng.choice(paths)
        instant = t0 + timedelta(seconds=rng.uniform(0, span))
        started = time.perf_counter()
        selectors.balance_as_of(account=account, asset=ASSET, instant=instant)
        by_instant.append((time.perf_counter() - started) * 1000)
    return {"by_position": _percentiles(by_position), "by_instant": _percentiles(by_instant)}


def check_as_of_correct(accounts: int, checks: int = 20) -> int:
    """Spot-check balance_as_of against a direct sum of postings (a benchmark of wrong answers is useless)."""
    from django.db import connection

    from ledger import selectors

    rng = random.Random(11)
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(position) FROM ledger_event")
        last = cursor.fetchone()[0]
        for _ in range(checks):
            path = f"load/{rng.randrange(accounts):05d}"
            position = rng.randint(1, last)
            cursor.execute("SELECT coalesce(sum(p.posted_delta), 0) FROM ledger_posting p JOIN ledger_account a "
                           "ON a.id = p.account_id WHERE a.path = %s AND p.asset = %s AND p.position <= %s",
                           [path, ASSET, position])
            expected = int(cursor.fetchone()[0])
            got = selectors.balance_as_of(account=path, asset=ASSET, position=position).posted
            if got != expected:
                raise RuntimeError(f"balance_as_of({path}, {position}) = {got}, direct sum gives {expected}")
    return checks


# --- machine ----------------------------------------------------------------------------------

def machine() -> dict:
    import psycopg

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    with psycopg.connect(server_url("postgres")) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        settings = {name: conn.execute(f"SHOW {name}").fetchone()[0]  # noqa: S608 - fixed names
                    for name in ("fsync", "synchronous_commit", "shared_buffers")}
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "postgresql": version, "pg_settings": settings,
            "server": "embedded" if not os.environ.get("BENCH_EXTERNAL_SERVER") else "DATABASE_URL"}


# --- main -------------------------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each throughput measurement")
    parser.add_argument("--writers", default="1,2,4,8", help="writer process counts for (b)")
    parser.add_argument("--events", type=int, default=1_000_000, help="events loaded for (d) and (e)")
    parser.add_argument("--batch", type=int, default=1000, help="events per append call while loading")
    parser.add_argument("--accounts", type=int, default=10_000, help="accounts the loaded events move between")
    parser.add_argument("--samples", type=int, default=2000, help="as-of queries per kind for (e)")
    parser.add_argument("--quick", action="store_true", help="short smoke run (1 s each, 10,000 events)")
    parser.add_argument("--seal-at-append", choices=("on", "off"), default="on",
                        help="off: journal every append and seal after commit (the alternative measured)")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark databases afterwards")
    args = parser.parse_args(argv)
    if args.quick:
        args.seconds, args.events, args.samples, args.accounts = 1.0, 10_000, 500, 1000

    os.environ["BENCH_SEAL_AT_APPEND"] = args.seal_at_append
    os.environ["BENCH_EXTERNAL_SERVER"] = "1" if os.environ.get("DATABASE_URL") else ""
    resolve_server()
    writer_counts = [int(x) for x in args.writers.split(",") if x]
    results: dict = {"benchmark": "ledger_append", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "machine": machine(),
                     "params": {"seconds": args.seconds, "events": args.events, "batch": args.batch,
                                "accounts": args.accounts, "samples": args.samples, "writers": writer_counts,
                                "seal_at_append": args.seal_at_append}}

    log(f"fresh databases {LEDGER_DB}, {ES_DB}, {RAW_DB}")
    recreate_database(LEDGER_DB)
    recreate_database(ES_DB)
    setup_raw()
    django_setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    _es_app()  # creates the eventsourcing tables once, before concurrent writers

    log("(a) single writer: ledger append")
    ledger_single = run_writers(_ledger_worker, 1, args.seconds)
    log(f"    {ledger_single['commands_per_s']} commands/s")
    log("(a) single writer: eventsourcing")
    es_single = run_writers(_es_worker, 1, args.seconds)
    log(f"    {es_single['commands_per_s']} commands/s")
    results["a_single_writer"] = {
        "ledger_commands_per_s": ledger_single["commands_per_s"],
        "eventsourcing_commands_per_s": es_single["commands_per_s"],
        "ratio": round(ledger_single["commands_per_s"] / es_single["commands_per_s"], 2),
        "ledger": ledger_single, "eventsourcing": es_single,
    }

    concurrency = {"ledger": [], "eventsourcing": [], "raw_psycopg": []}
    for n in writer_counts:
        for name, target in (("ledger", _ledger_worker), ("eventsourcing", _es_worker),
                             ("raw_psycopg", _raw_worker)):
            log(f"(b) {n} writer(s): {name}")
            row = run_writers(target, n, args.seconds)
            log(f"    {row['commands_per_s']} commands/s")
            concurrency[name].append(row)
    results["b_concurrent_writers"] = {name: {str(r["writers"]): r["commands_per_s"] for r in rows}
                                       for name, rows in concurrency.items()}
    # Where the CPU went (ms per command: the writers' own, the server's; the share of the cores idle).
    results["b_cpu_per_command"] = {
        name: {str(r["writers"]): {"client_ms": r["client_cpu_ms_per_command"], "server_ms": r["server_cpu_ms_per_command"],
                                   "idle_share": r["idle_share"]} for r in rows}
        for name, rows in concurrency.items()}

    log("(c) raw psycopg, single writer")
    raw_single = run_writers(_raw_worker, 1, args.seconds)
    log(f"    {raw_single['commands_per_s']} commands/s")
    results["c_raw_psycopg_single_writer"] = {
        "commands_per_s": raw_single["commands_per_s"],
        "ledger_fraction_of_ceiling": round(ledger_single["commands_per_s"] / raw_single["commands_per_s"], 2),
    }

    log(f"(d) loading {args.events:,} events, {args.batch} per append, {args.accounts:,} accounts")
    load = load_events(args.events, args.batch, args.accounts)
    log(f"    {load['events_per_s']:,} events/s")
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE ledger_event")
        cursor.execute("VACUUM ANALYZE ledger_posting")
        cursor.execute("SELECT count(*) FROM ledger_event")
        total_events = cursor.fetchone()[0]
    log(f"(d) rebuild(check=True) over {total_events:,} events")
    rebuild = run_rebuild()
    log(f"    {rebuild['events_per_s']:,} events/s")
    results["d_load"] = load
    results["d_rebuild"] = rebuild

    log(f"(e) balance_as_of, {args.samples} samples by position and by instant")
    checked = check_as_of_correct(args.accounts)
    as_of = run_as_of(args.samples, args.accounts)
    as_of["log_events"] = total_events
    as_of["spot_checks_passed"] = checked
    log(f"    position p50 {as_of['by_position']['p50_ms']} ms p99 {as_of['by_position']['p99_ms']} ms; "
        f"instant p50 {as_of['by_instant']['p50_ms']} ms p99 {as_of['by_instant']['p99_ms']} ms")
    results["e_as_of"] = as_of

    b_ledger = results["b_concurrent_writers"]["ledger"]
    rising = [b_ledger[str(n)] for n in writer_counts if n <= 4]
    top = str(max(writer_counts))
    b_es, b_raw = results["b_concurrent_writers"]["eventsourcing"], results["b_concurrent_writers"]["raw_psycopg"]
    results["ratios"] = {
        f"ledger_{top}_over_ledger_1": round(b_ledger[top] / b_ledger["1"], 2) if "1" in b_ledger else None,
        f"ledger_{top}_over_eventsourcing_{top}": round(b_ledger[top] / b_es[top], 2),
        f"ledger_{top}_over_raw_{top}": round(b_ledger[top] / b_raw[top], 2),
        f"raw_{top}_over_raw_1": round(b_raw[top] / b_raw["1"], 2) if "1" in b_raw else None,
    }
    # With the cores saturated, commands/s <= cores / CPU per command: how close each got to that bound,
    # and the bound itself for the ledger (the writers run on the same cores as the server, as they did).
    cores = os.cpu_count() or 1
    for name, rows in (("ledger", concurrency["ledger"]), ("eventsourcing", concurrency["eventsourcing"]),
                       ("raw", concurrency["raw_psycopg"])):
        row = next(r for r in rows if str(r["writers"]) == top)
        if row["server_cpu_ms_per_command"] is not None:
            bound = cores * 1000 / (row["client_cpu_ms_per_command"] + row["server_cpu_ms_per_command"])
            results["ratios"][f"{name}_{top}_cpu_bound_commands_per_s"] = round(bound, 1)
            results["ratios"][f"{name}_{top}_over_its_cpu_bound"] = round(row["commands_per_s"] / bound, 2)
    results["targets"] = {
        "a_at_least_2x_eventsourcing": results["a_single_writer"]["ratio"] >= 2,
        "b_rising_up_to_4_writers": all(later > earlier for earlier, later in zip(rising, rising[1:], strict=False)),
        "d_rebuild_at_least_20000_events_per_s": rebuild["events_per_s"] >= 20_000,
        "e_p99_under_20_ms": max(as_of["by_position"]["p99_ms"], as_of["by_instant"]["p99_ms"]) < 20,
        # issue 16: the ledger grows with its writers
        "b_top_at_least_2_5x_single": (results["ratios"][f"ledger_{top}_over_ledger_1"] or 0) >= 2.5,
        "b_top_at_least_2x_eventsourcing": results["ratios"][f"ledger_{top}_over_eventsourcing_{top}"] >= 2,
    }
    connection.close()
    if not args.keep:
        for name in (LEDGER_DB, ES_DB, RAW_DB):
            drop_database(name)
    print(json.dumps(results, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
