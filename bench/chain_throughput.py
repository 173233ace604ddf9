"""Chain executor throughput on anvil: mints from `minting` to confirmed, beside a bare web3.py loop.

    .venv/bin/python bench/chain_throughput.py --chain evm [--mints 1000]

Runs in a fresh database `bench_chain` on the embedded PostgreSQL (or the server DATABASE_URL names),
on the development profile's embedded anvil of the `ethereum` chain (automine: every transaction is
mined as it arrives; confirmation depth 0 unless EVM_ETHEREUM_CONFIRMATIONS says otherwise).

Setup (not measured): a product with a freshly deployed token, a market maker, and N in-kind mints of
one share each moved to `minting` by the real services (request, shares received, advance: each writes
its chain operation). Then:

- executor: the executor's task function (`chains.executor.execute_pending`, what the Celery task
  `chains.execute_pending` calls) runs in this process, run after run, until every operation is
  confirmed and every mint `minted` (each confirmation is the real `mint_confirm_on_chain`, a ledger
  transition). minting_to_minted is measured from the instant all N mints wait in `minting` (the
  executor's start) to each mint's `minted` event, so it is the latency of a burst of N.
- bare: a web3.py loop that signs the same mints in batches of the same size (gas estimated, nonces
  counted locally), sends every batch, and waits for every receipt. No database.

Prints ONE JSON line; progress goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DB_NAME = "bench_chain"
CHAIN = "ethereum"
TARGET_PER_S = 200
TARGET_RATIO = 0.5


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def server_url(database: str) -> str:
    base = os.environ.get("DATABASE_URL")
    if not base:
        from config import embedded

        base = embedded.postgres_url("postgres")
    return urlunsplit(urlsplit(base)._replace(path=f"/{database}"))


def recreate_database() -> str:
    import psycopg
    from psycopg import sql

    with psycopg.connect(server_url("postgres"), autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(DB_NAME)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(DB_NAME)))
    return server_url(DB_NAME)


def django_setup(url: str, queue: str) -> None:
    # The development profile's anvil: the test profile's is reset by every test session.
    os.environ["ISSUER_ENV"] = "development"
    os.environ["DATABASE_URL"] = url
    # Work the services queue on commit goes to a queue of this run only, purged at the end.
    os.environ["CELERY_DEFAULT_QUEUE"] = queue
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def market(mints: int):
    from django.conf import settings

    from chains.evm import evm_chain
    from chains.services import token_deploy_receipt
    from compliance import roles
    from custody.models import (
        Broker,
        ChainDeployment,
        Custodian,
        CustodyAccount,
        Security,
        SimulatedPrice,
        TokenProduct,
    )
    from mint_redeem.models import ProductTerms
    from tests.compliance.factories import make_market_maker, make_staff

    evm = evm_chain(CHAIN)
    security = Security.objects.create(ticker="AAPL", isin="US0378331005", cusip="037833100", exchange_mic="XNAS",
                                       name="Apple Inc.")
    custodian = Custodian.objects.create(code="bny", name="Custody Bank")
    CustodyAccount.objects.create(custodian=custodian, account_number="SAFE-0001")
    broker = Broker.objects.create(code="sim", name="Simulated broker", custodian=custodian)
    SimulatedPrice.objects.create(broker=broker, security=security, price=Decimal("200.00"))
    product = TokenProduct.objects.create(symbol="AAPLx", security=security)
    receipt = token_deploy_receipt(chain=evm, name="Apple tokenized share (bench)", symbol="AAPLx", decimals=18)
    ChainDeployment.objects.create(product=product, chain=CHAIN, decimals=18, address=receipt.contract_address,
                                   deployed_block=receipt.block_number)
    ProductTerms.objects.create(product=product, broker=broker, custodian=custodian,
                                reference_price=Decimal("200.00"), approval_threshold_cents=10**12,
                                market_hours_only=False, redemption_addresses={CHAIN: "0x" + "cd" * 20})
    mm = make_market_maker(chains=(CHAIN,), daily_limit_cents=max(mints * 1_000_00, 1_000_000_00))
    return evm, receipt.contract_address, product, mm, make_staff(roles.OPERATIONS), settings.EVM_CHAINS[CHAIN]


def to_minting(mm, operations, count: int) -> list[int]:
    from mint_redeem import services
    from mint_redeem.models import MintRequest

    ids = []
    for n in range(count):
        mint = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain=CHAIN,
                                            quantity="1", wallet_id=mm.wallets[CHAIN].pk, funding="in_kind",
                                            actor="bench")
        services.mint_shares_receive(mint=mint, custodian_confirmation=f"BENCH-{n}", user=operations)
        services.mint_advance(mint=mint, actor="bench")
        ids.append(mint.pk)
        if (n + 1) % 200 == 0:
            log(f"{n + 1} mints in minting")
    assert MintRequest.objects.filter(pk__in=ids, state="minting").count() == count
    return ids


def run_executor(ids: list[int]) -> tuple[float, list[float], int]:
    from chains import executor
    from ledger.models import Event
    from mint_redeem.models import ChainOperation, MintRequest

    started_wall = time.time()
    started = time.monotonic()
    runs = 0
    while True:
        result = executor.execute_pending(chain_name=CHAIN)
        runs += 1
        if not result.more and not result.in_flight and not ChainOperation.objects.filter(
                status__in=("pending", "signed", "broadcast")).exists():
            break
        if not result.more and not result.broadcast:
            time.sleep(0.01)
    elapsed = time.monotonic() - started
    minted = MintRequest.objects.filter(pk__in=ids, state="minted").count()
    if minted != len(ids):
        raise SystemExit(f"only {minted} of {len(ids)} mints ended minted")
    streams = [f"mint-{pk}" for pk in ids]
    latencies = [(at.timestamp() - started_wall) * 1000 for at in Event.objects.filter(
        stream_id__in=streams, event_type="mint.minted").values_list("recorded_at", flat=True)]
    return elapsed, latencies, runs


def run_bare(evm, token: str, recipient: str, count: int, batch_size: int) -> float:
    from chains.evm import Mint, ref_bytes
    from chains.signers import signer_for

    operator = signer_for(CHAIN, "operator")
    run = uuid.uuid4().hex[:8]
    mints = [Mint(to=recipient, amount_base_units=10**18, ref=ref_bytes(f"bare-{run}-{n}")) for n in range(count)]
    started = time.monotonic()
    nonce = evm.pending_nonce(operator.address)
    hashes = []
    for start in range(0, count, batch_size):
        signed = evm.sign_mint_batch(signer=operator, token=token, mints=mints[start:start + batch_size], nonce=nonce)
        evm.send_raw(signed)
        hashes.append(signed.tx_hash)
        nonce += 1
    receipts = [evm.wait_for_receipt(tx_hash, poll_s=0.005) for tx_hash in hashes]
    elapsed = time.monotonic() - started
    if not all(r.succeeded for r in receipts):
        raise SystemExit("a bare batch reverted")
    return elapsed


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(fraction * (len(ordered) - 1))))]


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
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "postgresql": version,
            "server": "embedded" if not os.environ.get("DATABASE_URL") else "DATABASE_URL"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chain", choices=["evm"], required=True, help="evm (Solana: issue 13)")
    parser.add_argument("--mints", type=int, default=1000)
    args = parser.parse_args()

    queue = f"bench-chain-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("ISSUER_ENV", "development")
    machine_info = machine()
    django_setup(recreate_database(), queue)
    evm, token, _product, mm, operations, config = market(args.mints)
    batch_size = config["batch_size"]
    log(f"setting up {args.mints} mints in minting (batch size {batch_size})")
    ids = to_minting(mm, operations, args.mints)

    log("executor")
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        executor_s, latencies, runs = run_executor(ids)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
    else:
        executor_s, latencies, runs = run_executor(ids)
    log(f"executor: {args.mints} in {executor_s:.2f} s ({runs} runs); bare loop")
    bare_s = run_bare(evm, token, mm.wallets[CHAIN].address, args.mints, batch_size)
    supply = evm.total_supply(token)
    if supply != 2 * args.mints * 10**18:
        raise SystemExit(f"total supply {supply} is not {2 * args.mints} tokens")

    from ledger import integrity

    problems = integrity.verify()
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)

    executor_per_s = args.mints / executor_s
    bare_per_s = args.mints / bare_s
    print(json.dumps({
        "benchmark": "chain_throughput", "chain": "evm", "mints": args.mints, "batch_size": batch_size,
        "confirmations": config["confirmations"], "executor_mode": "task functions in-process",
        "executor_per_s": round(executor_per_s, 1), "bare_per_s": round(bare_per_s, 1),
        "ratio": round(executor_per_s / bare_per_s, 3),
        "minting_to_minted_p50_ms": round(statistics.median(latencies), 1),
        "minting_to_minted_p99_ms": round(percentile(latencies, 0.99), 1),
        "executor_runs": runs, "ledger_verify_problems": len(problems),
        "targets": {"executor_per_s": TARGET_PER_S, "ratio": TARGET_RATIO,
                    "met": executor_per_s >= TARGET_PER_S and executor_per_s / bare_per_s >= TARGET_RATIO},
        "machine": machine_info,
    }))


if __name__ == "__main__":
    main()
