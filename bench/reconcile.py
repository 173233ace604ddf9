"""Custody reconciliation benchmark: 500 products, 3 custodians, 10,000 broker fills.

    .venv/bin/python bench/reconcile.py

Runs in a fresh database `bench_custody` on the embedded PostgreSQL (or the server DATABASE_URL
names). Setup: 500 securities and token products, 3 custodians (one safekeeping account and one
simulated broker each), 10,000 buy fills recorded with the same ledger events and pending transfers
custody.services.order_sync writes (in bulk, to keep setup short), 9,000 of them settled by the real
`fills_settle_due`, 1,000 left in transit. Each custodian then sends a semt.002 statement of its
holdings (built in the official structure and imported by `statement_import`) in which 7 positions
deliberately disagree with the ledger. Measured: `reconciliation_run` over all 1,500 custodian x
security positions (target < 5 s), a second (steady-state) run, the statement imports, and the
reserves of all 500 products. Prints ONE JSON line; progress goes to stderr.
"""

from __future__ import annotations

import json
import os
import random
import sys
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ledger.units import NANO

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DB_NAME = "bench_custody"
PRODUCTS = 500
CUSTODIANS = 3
FILLS = 10_000
IN_TRANSIT = 1_000
TARGET_S = 5.0
SEED = 20251114


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def server_url(database: str) -> str:
    base = os.environ.get("DATABASE_URL")
    if not base:
        from config import embedded

        base = embedded.postgres_url("postgres")
    parts = urlsplit(base)
    return urlunsplit(parts._replace(path=f"/{database}"))


def recreate_database() -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    return server_url(DB_NAME)


def django_setup(url: str) -> None:
    os.environ["ISSUER_ENV"] = "test"
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def reference_data():
    from custody.models import Broker, ChainDeployment, Custodian, CustodyAccount, Security, TokenProduct

    custodians = [Custodian.objects.create(code=f"cust{i}", name=f"Custodian {i}") for i in range(CUSTODIANS)]
    accounts = [CustodyAccount.objects.create(custodian=c, account_number=f"SAFE-{c.code.upper()}") for c in custodians]
    brokers = [Broker.objects.create(code=f"brk{i}", name=f"Broker {i}", custodian=c)
               for i, c in enumerate(custodians)]
    securities = Security.objects.bulk_create([
        Security(ticker=f"T{i:04d}", isin=f"US{i:09d}0", cusip=f"{i:08d}0", exchange_mic="XNYS", name=f"Company {i}")
        for i in range(PRODUCTS)])
    products = TokenProduct.objects.bulk_create([
        TokenProduct(symbol=f"T{i:04d}x", security=s) for i, s in enumerate(securities)])
    ChainDeployment.objects.bulk_create([ChainDeployment(product=p, chain=chain, decimals=decimals)
                                         for p in products for chain, decimals in (("ethereum", 18), ("solana", 9))])
    return custodians, accounts, brokers, securities, products


def record_fills(brokers, securities, rng: random.Random) -> None:
    """10,000 fills with the events and pending transfers order_sync records, appended 500 at a time."""
    from django.db import transaction
    from django.utils import timezone

    from custody.models import BrokerOrder, Fill
    from custody.services import in_transit_account, market_account, share_asset
    from ledger.postings import PendingOpen
    from ledger.services import NewEvent, append

    now = timezone.now()
    past, future = date.today() - timedelta(days=3), date.today() + timedelta(days=30)
    plan = [(rng.randrange(CUSTODIANS), rng.randrange(PRODUCTS), rng.randrange(1_000_000, 100 * NANO))
            for _ in range(FILLS)]
    for start in range(0, FILLS, 500):
        chunk = plan[start:start + 500]
        with transaction.atomic():
            orders = BrokerOrder.objects.bulk_create([
                BrokerOrder(broker=brokers[b], security=securities[s], side="buy", quantity_nano=q,
                            client_order_id=f"bench-{start + n}", broker_order_id=f"sim-{start + n}",
                            status="filled", filled_quantity_nano=q, created_by="bench")
                for n, (b, s, q) in enumerate(chunk)])
            fills = Fill.objects.bulk_create([
                Fill(order=order, broker_fill_id=f"sim-{start + n}-1", quantity_nano=q, price=Decimal("100.25"),
                     gross_cents=q * 10025 // NANO, fee_cents=0, executed_at=now, trade_date=past,
                     settlement_date=future if start + n < IN_TRANSIT else past)
                for n, (order, (_b, _s, q)) in enumerate(zip(orders, chunk, strict=True))])
            events = []
            for fill, order in zip(fills, orders, strict=True):
                broker, ticker = order.broker, order.security.ticker
                events.append(NewEvent(stream=order.stream, type="custody.fill_recorded", postings=[PendingOpen(
                    pending_id=fill.pending_id, debit=market_account(broker.code, ticker),
                    credit=in_transit_account(broker.code, ticker), asset=share_asset(ticker),
                    amount=fill.quantity_nano)], data={
                    "fill_id": fill.id, "order_id": order.id, "broker": broker.code,
                    "broker_fill_id": fill.broker_fill_id, "ticker": ticker, "side": "buy",
                    "quantity_nano": fill.quantity_nano, "price": str(fill.price), "gross_cents": fill.gross_cents,
                    "fee_cents": 0, "executed_at": now.isoformat(), "trade_date": past.isoformat(),
                    "settlement_date": fill.settlement_date.isoformat()}))
            append(events=events, actor="bench")


def statements(accounts, custodians, securities, rng: random.Random) -> tuple[list[bytes], int]:
    """One semt.002 statement per custodian mirroring the ledger, with 7 deliberate differences."""
    from xml.etree.ElementTree import Element, SubElement, tostring  # noqa: S405 - building, not parsing

    from django.utils import timezone

    from ledger.selectors import balances_by_prefix

    isin = {s.ticker: s.isin for s in securities}
    as_of = (timezone.now() + timedelta(seconds=1)).isoformat()
    documents, breaks = [], 0
    for account, custodian in zip(accounts, custodians, strict=True):
        held = {path.split("/")[2]: figures.posted
                for (path, _asset), figures in balances_by_prefix(prefix=f"custody/{custodian.code}/").items()}
        tickers = sorted(held)
        if custodian.code == "cust0":  # 4 wrong quantities, 1 missing position
            for ticker in rng.sample(tickers, 4):
                held[ticker] += rng.choice([-1, 1]) * rng.randrange(1, 5 * NANO)
                breaks += 1
            del held[rng.choice(tickers)]
            breaks += 1
        elif custodian.code == "cust1":  # 2 wrong quantities
            for ticker in rng.sample(tickers, 2):
                held[ticker] -= 1
                breaks += 1
        document = Element("Document", xmlns="urn:iso:std:iso:20022:tech:xsd:semt.002.001.11")
        report = SubElement(document, "SctiesBalCtdyRpt")
        pagination = SubElement(report, "Pgntn")
        SubElement(pagination, "PgNb").text = "1"
        SubElement(pagination, "LastPgInd").text = "true"
        details = SubElement(report, "StmtGnlDtls")
        SubElement(details, "StmtId").text = f"BENCH-{custodian.code}"
        SubElement(SubElement(details, "StmtDtTm"), "DtTm").text = as_of
        SubElement(SubElement(details, "Frqcy"), "Cd").text = "DAIL"
        SubElement(SubElement(details, "UpdTp"), "Cd").text = "COMP"
        SubElement(SubElement(details, "StmtBsis"), "Cd").text = "SETT"
        SubElement(details, "ActvtyInd").text = "true"
        SubElement(details, "SubAcctInd").text = "false"
        SubElement(SubElement(report, "SfkpgAcct"), "Id").text = account.account_number
        for ticker, quantity in sorted(held.items()):
            balance = SubElement(report, "BalForAcct")
            SubElement(SubElement(balance, "FinInstrmId"), "ISIN").text = isin[ticker]
            aggregate = SubElement(balance, "AggtBal")
            SubElement(aggregate, "ShrtLngInd").text = "LONG"
            whole, frac = divmod(quantity, NANO)
            unit = SubElement(SubElement(SubElement(SubElement(aggregate, "Qty"), "Qty"), "Qty"), "Unit")
            unit.text = f"{whole}.{frac:09d}"
        documents.append(b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(document))
    return documents, breaks


def main() -> None:
    started = time.perf_counter()
    url = recreate_database()
    django_setup(url)
    from custody import services
    from custody.models import Fill, ReconciliationBreak
    from custody.selectors import products_with_reserves

    rng = random.Random(SEED)
    log("reference data")
    custodians, accounts, brokers, securities, _products = reference_data()
    log(f"recording {FILLS} fills")
    t = time.perf_counter()
    record_fills(brokers, securities, rng)
    record_s = time.perf_counter() - t
    log("settling due fills")
    t = time.perf_counter()
    settled = services.fills_settle_due(today=date.today(), actor="bench")
    settle_s = time.perf_counter() - t
    assert settled == FILLS - IN_TRANSIT, settled
    assert Fill.objects.filter(status="pending").count() == IN_TRANSIT

    documents, planted_breaks = statements(accounts, custodians, securities, rng)
    log("importing statements")
    t = time.perf_counter()
    for account, document in zip(accounts, documents, strict=True):
        services.statement_import(content=document, format="semt002", actor="bench", account=account)
    import_s = time.perf_counter() - t

    log("reconciling")
    t = time.perf_counter()
    run = services.reconciliation_run(actor="bench")
    reconcile_s = time.perf_counter() - t
    t = time.perf_counter()
    second = services.reconciliation_run(actor="bench")
    second_s = time.perf_counter() - t
    t = time.perf_counter()
    rows = products_with_reserves()
    reserves_s = time.perf_counter() - t
    paused = sum(1 for row in rows if row.minting_paused_by_break)

    result = {
        "bench": "custody_reconcile",
        "products": PRODUCTS, "custodians": CUSTODIANS, "fills": FILLS, "fills_settled": settled,
        "fills_in_transit": IN_TRANSIT,
        "positions_checked": run.pairs_checked,
        "breaks_planted": planted_breaks, "breaks_found": run.breaks_opened,
        "open_breaks": ReconciliationBreak.objects.filter(status="open").count(),
        "products_paused_by_breaks": paused,
        "reconcile_s": round(reconcile_s, 3), "target_s": TARGET_S, "within_target": reconcile_s < TARGET_S,
        "reconcile_again_s": round(second_s, 3), "second_run_new_breaks": second.breaks_opened,
        "statement_import_s": round(import_s, 3), "statements_holdings": sum(d.count(b"<BalForAcct>") for d in documents),
        "reserves_500_products_s": round(reserves_s, 3),
        "setup_record_fills_s": round(record_s, 3), "setup_settle_fills_s": round(settle_s, 3),
        "total_s": round(time.perf_counter() - started, 3),
    }
    print(json.dumps(result, separators=(",", ":")))


if __name__ == "__main__":
    main()
