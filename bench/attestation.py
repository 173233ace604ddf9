"""Reserve attestation benchmark: 500 products, 1,000,000 ledger events.

    .venv/bin/python bench/attestation.py          (BENCH_EVENTS=20000 for a quick run)

Runs in a fresh database `bench_attestation` on the embedded PostgreSQL (or the server DATABASE_URL
names). Setup: 500 products registered through the real services (their registration and deployment
events), then BENCH_EVENTS events appended through the ledger service BENCH_BATCH (1000) per call,
each moving shares into custody at one of 3 custodians and minting tokens on ethereum or solana for a
random product, with an attestation issued every tenth of the way (so as-of reads find earlier ones).
At a million events the load takes many minutes: BENCH_REUSE=1 measures again on the database an
earlier run left, when it holds at least BENCH_EVENTS events.

Measured, after ANALYZE: issuing an attestation (`attestation_issue`, three in a row, the slowest
reported; target < 2 s), GET /api/v1/attestations/latest (300 requests, p99 target < 20 ms) and GET
/api/v1/attestations?as_of=<random past position> computed from the log (40 requests, p99 target
< 500 ms), through Django's test client (the whole middleware stack, no network) after importing
config.wsgi as a server process does, each endpoint's first request excluded. Prints ONE JSON line; progress on stderr.
"""

from __future__ import annotations

import json
import logging
import os
import random
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.reconcile import log, server_url  # noqa: E402

DB_NAME = "bench_attestation"
PRODUCTS = 500
CUSTODIANS = ("cust0", "cust1", "cust2")
EVENTS = int(os.environ.get("BENCH_EVENTS", "1000000"))
BATCH = int(os.environ.get("BENCH_BATCH", "1000"))
SEED = 20261202


def recreate_database() -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    return server_url(DB_NAME)


def setup_django(url: str) -> None:
    os.environ["ISSUER_ENV"] = "test"
    os.environ["DATABASE_URL"] = url
    os.environ["PUBLIC_RATE_LIMIT_PER_S"] = "1000000"
    os.environ["PUBLIC_RATE_LIMIT_BURST"] = "1000000"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    # Every append logs the new head (ledger.services): thousands of lines at this size, not progress.
    logging.getLogger("ledger.head").setLevel(logging.WARNING)


def products() -> list[str]:
    from custody import services
    from custody.models import Security

    securities = Security.objects.bulk_create([
        Security(ticker=f"T{i:04d}", isin=f"US{i:09d}0", cusip=f"{i:08d}0", exchange_mic="XNYS", name=f"Company {i}")
        for i in range(PRODUCTS)])
    symbols = []
    for security in securities:
        product = services.product_register(symbol=f"{security.ticker}x", security=security, actor="bench")
        services.deployment_register(product=product, chain="ethereum", decimals=18, address="", actor="bench")
        services.deployment_register(product=product, chain="solana", decimals=9, address="", actor="bench")
        symbols.append(product.symbol)
    return symbols


def fill_log(symbols: list[str], rng: random.Random) -> None:
    from custody.attestations import attestation_issue
    from ledger.events import EventData, event_type
    from ledger.postings import Line
    from ledger.services import NewEvent, append

    @event_type("bench.backed_mint", version=1)
    class BackedMint(EventData):
        n: int

    written = 0
    next_attestation = EVENTS // 10
    while written < EVENTS:
        events = []
        for n in range(min(BATCH, EVENTS - written)):
            symbol = rng.choice(symbols)
            ticker, chain = symbol[:-1], rng.choice(("ethereum", "solana"))
            shares = rng.randrange(1, 100) * 10**9
            tokens = shares * (10**9 if chain == "ethereum" else 1)
            events.append(NewEvent(stream=f"bench-{symbol}", type="bench.backed_mint", data={"n": written + n},
                                   postings=[Line(f"market/sim/{ticker}", f"shares:{ticker}", -shares),
                                             Line(f"custody/{rng.choice(CUSTODIANS)}/{ticker}", f"shares:{ticker}",
                                                  shares),
                                             Line(f"issuance/{chain}/{symbol}", f"tok:{symbol}:{chain}", -tokens),
                                             Line(f"tokens/{chain}/{symbol}", f"tok:{symbol}:{chain}", tokens)]))
        append(events=events, actor="bench")
        written += len(events)
        if written >= next_attestation:
            attestation_issue(actor="bench")
            next_attestation += EVENTS // 10
            log(f"{written} events")


def quantile_ms(samples: list[float], q: int) -> float:
    """The q-th percentile of `samples` (seconds), in ms."""
    return round(statistics.quantiles(samples, n=100, method="inclusive")[q - 1] * 1000, 2)


def loaded_database() -> str | None:
    """With BENCH_REUSE=1, the bench database of an earlier run if it holds at least BENCH_EVENTS events
    (loading a million takes many minutes; the measurements only read, and issue a few attestations)."""
    import psycopg

    if os.environ.get("BENCH_REUSE") != "1":
        return None
    url = server_url(DB_NAME)
    try:
        with psycopg.connect(url) as conn:
            position = conn.execute("SELECT position FROM ledger_head WHERE id = 1").fetchone()[0]
    except psycopg.Error:
        return None
    return url if position >= EVENTS else None


def timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def main() -> None:
    url = loaded_database()
    reused = url is not None
    setup_s = None
    if reused:
        log(f"reusing {DB_NAME}")
        setup_django(url)
    else:
        setup_django(recreate_database())
        rng = random.Random(SEED)
        log(f"registering {PRODUCTS} products")
        symbols = products()
        log(f"appending {EVENTS} events, {BATCH} per append")
        started = time.perf_counter()
        fill_log(symbols, rng)
        setup_s = round(time.perf_counter() - started, 1)
    from django.db import connection
    from django.test import Client

    from custody.attestations import attestation_issue
    from custody.selectors import attestation_latest
    from ledger.selectors import head

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")  # as autovacuum would have by now on a server that grew to this size
    log("issuing")
    issue = [timed(lambda: attestation_issue(actor="bench")) for _ in range(3)]
    document_bytes = len(attestation_latest().document.encode())

    import config.wsgi  # noqa: F401 -- start-up as a server process (gunicorn) does: freezes the start-up heap
    client = Client()

    def get(path: str) -> float:
        started = time.perf_counter()
        response = client.get(path)
        elapsed = time.perf_counter() - started
        assert response.status_code == 200, response.content[:300]
        return elapsed

    # One request of each first (excluded): a server process has imported its views before it serves.
    get("/api/v1/attestations/latest")
    latest = [get("/api/v1/attestations/latest") for _ in range(300)]
    top = head().position
    positions = random.Random(SEED + 1)
    get(f"/api/v1/attestations?as_of={positions.randrange(1, top)}")
    log("as-of")
    as_of = [get(f"/api/v1/attestations?as_of={positions.randrange(1, top)}") for _ in range(40)]
    print(json.dumps({
        "benchmark": "attestation", "events": top, "products": PRODUCTS, "document_bytes": document_bytes,
        "setup_s": setup_s, "reused_database": reused,
        "issue_ms": round(max(issue) * 1000, 1), "issue_ms_each": [round(s * 1000, 1) for s in issue],
        "latest_p50_ms": quantile_ms(latest, 50), "latest_p99_ms": quantile_ms(latest, 99),
        "as_of_p50_ms": quantile_ms(as_of, 50), "as_of_p99_ms": quantile_ms(as_of, 99),
        "as_of_max_ms": round(max(as_of) * 1000, 2),
        "targets": {"issue_ms": 2000, "latest_p99_ms": 20, "as_of_p99_ms": 500},
    }))


if __name__ == "__main__":
    main()
