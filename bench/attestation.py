"""Reserve attestation benchmark: 500 products, 1,000,000 ledger events.

    .venv/bin/python bench/attestation.py          (BENCH_EVENTS=20000 for a quick run)

Runs in a fresh database `bench_attestation` on the embedded PostgreSQL (or the server DATABASE_URL
names). Setup: 500 products registered through the real services (their registration and deployment
events), then BENCH_EVENTS events appended 500 per call, each moving shares into custody at one of
3 custodians and minting tokens on ethereum or solana for a random product, with an attestation
issued every tenth of the way (so as-of reads find earlier ones). Measured: issuing one attestation
(`attestation_issue`, target < 2 s), GET /api/v1/attestations/latest (p99 target < 20 ms) and GET
/api/v1/attestations?as_of=<random past position> computed from the log (p99 target < 500 ms), through
Django's test client (the whole middleware stack, no network). Prints ONE JSON line; progress on stderr.
"""

from __future__ import annotations

import json
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
BATCH = 500
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


def p99_ms(samples: list[float]) -> float:
    return round(statistics.quantiles(samples, n=100)[98] * 1000, 2) if len(samples) >= 2 else samples[0] * 1000


def main() -> None:
    url = recreate_database()
    setup_django(url)
    from django.test import Client

    from custody.attestations import attestation_issue
    from ledger.selectors import head

    rng = random.Random(SEED)
    log(f"registering {PRODUCTS} products")
    symbols = products()
    log(f"appending {EVENTS} events")
    started = time.perf_counter()
    fill_log(symbols, rng)
    setup_s = time.perf_counter() - started

    started = time.perf_counter()
    row = attestation_issue(actor="bench")
    issue_s = time.perf_counter() - started

    client = Client()
    latest = []
    for _ in range(300):
        t = time.perf_counter()
        response = client.get("/api/v1/attestations/latest")
        latest.append(time.perf_counter() - t)
        assert response.status_code == 200
    top = head().position
    as_of = []
    for _ in range(40):
        position = rng.randrange(1, top)
        t = time.perf_counter()
        response = client.get(f"/api/v1/attestations?as_of={position}")
        as_of.append(time.perf_counter() - t)
        assert response.status_code == 200, response.content[:300]
    print(json.dumps({
        "benchmark": "attestation", "events": top, "products": PRODUCTS,
        "document_bytes": len(row.document), "setup_s": round(setup_s, 1),
        "issue_ms": round(issue_s * 1000, 1), "latest_p99_ms": p99_ms(latest), "as_of_p99_ms": p99_ms(as_of),
        "targets": {"issue_ms": 2000, "latest_p99_ms": 20, "as_of_p99_ms": 500},
    }))


if __name__ == "__main__":
    main()
