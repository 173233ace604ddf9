"""Chain executor throughput: mints from `minting` to confirmed, beside a bare client loop on the same chain.

    .venv/bin/python bench/chain_throughput.py --chain evm [--mints 1000]
    .venv/bin/python bench/chain_throughput.py --chain solana [--mints 1000]

Runs in a fresh database `bench_chain` on the embedded PostgreSQL (or the server DATABASE_URL names),
on the development profile's chains: for `evm` the embedded anvil of the `ethereum` chain (automine:
every transaction is mined as it arrives; confirmation depth 0 unless EVM_ETHEREUM_CONFIRMATIONS says
otherwise), for `solana` the local Solana RPC over LiteSVM (chains.solana_rpc; a transaction is
`confirmed` as it lands, which is the default SOLANA_COMMITMENT; SOLANA_BATCH_SIZE mints per transaction).

Setup (not measured): a product with a fresh token on the chain (an ERC-20 contract, or a Token-2022
mint), a market maker, and N in-kind mints of one share each moved to `minting` by the real services
(request, shares received, advance: each writes its chain operation). Then:

- executor: the executor's task function (`chains.executor.execute_pending`, what the Celery task
  `chains.execute_pending` calls, and which hands Solana to chains.executor_solana) runs in this
  process, run after run, until every operation is confirmed and every mint `minted` (each
  confirmation is the real `mint_confirm_on_chain`, a ledger transition). minting_to_minted is
  measured from the instant all N mints wait in `minting` (the executor's start) to each mint's
  `minted` event, so it is the latency of a burst of N.
- bare, no database, batches of the executor's size:
  evm: a web3.py loop that signs the same mints (gas estimated, nonces counted locally), sends every
  batch, and waits for every receipt;
  solana: a `solana`-client loop that builds each batch as the executor does (per mint: the holder's
  associated token account created idempotently, mint_to_checked, a Memo with a reference), signs it
  with the operator key, sends every transaction, and waits until every signature is at the
  configured commitment.

Prints ONE JSON line with the same keys for both chains (`confirmations` is the confirmation depth on
EVM, the commitment on Solana); progress goes to stderr.
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
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DB_NAME = "bench_chain"
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
    # The development profile's chains: the test profile's are reset by every test session.
    os.environ["ISSUER_ENV"] = "development"
    os.environ["DATABASE_URL"] = url
    # Work the services queue on commit goes to a queue of this run only, purged at the end.
    os.environ["CELERY_DEFAULT_QUEUE"] = queue
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


@dataclass(frozen=True)
class Venue:
    """One chain kind as the benchmark drives it: its token for the product, and its bare loop."""

    kind: str  # the --chain argument: "evm" or "solana"
    chain: str  # the configured chain's name
    token: str  # the token contract, or the Token-2022 mint
    decimals: int
    deployed_block: int
    redemption_address: str
    batch_size: int
    confirmations: int | str  # EVM: the confirmation depth; Solana: the commitment
    target_per_s: int
    bare: Callable[[str, int], float]  # (recipient, mints) -> seconds from the first send to the last confirmation
    supply: Callable[[], int]  # the token's total supply on chain, in base units


def evm_venue() -> Venue:
    from django.conf import settings

    from chains.evm import evm_chain
    from chains.services import token_deploy_receipt

    chain = "ethereum"
    evm, config = evm_chain(chain), settings.EVM_CHAINS[chain]
    receipt = token_deploy_receipt(chain=evm, name="Apple tokenized share (bench)", symbol="AAPLx", decimals=18)
    token = receipt.contract_address

    def bare(recipient: str, count: int) -> float:
        return evm_bare(evm, token, recipient, count, config["batch_size"])

    return Venue(kind="evm", chain=chain, token=token, decimals=18, deployed_block=receipt.block_number,
                 redemption_address="0x" + "cd" * 20, batch_size=config["batch_size"],
                 confirmations=config["confirmations"], target_per_s=200, bare=bare,
                 supply=lambda: evm.total_supply(token))


def solana_venue() -> Venue:
    from chains.services import solana_mint_deploy
    from chains.signers import solana_signer_for
    from chains.solana import solana_chain

    sol = solana_chain("solana")
    decimals = 9
    mint = solana_mint_deploy(chain=sol, name="Apple tokenized share (bench)", symbol="AAPLx", decimals=decimals)

    def bare(recipient: str, count: int) -> float:
        return solana_bare(sol.config.rpc_url, mint, decimals, recipient, count, sol.config.batch_size,
                           sol.config.commitment)

    return Venue(kind="solana", chain=sol.name, token=mint, decimals=decimals, deployed_block=sol.slot(),
                 redemption_address=str(solana_signer_for("vault").pubkey()), batch_size=sol.config.batch_size,
                 confirmations=sol.config.commitment, target_per_s=300, bare=bare,
                 supply=lambda: sol.supply(mint)[0])


VENUES = {"evm": evm_venue, "solana": solana_venue}


def market(venue: Venue, mints: int):
    """The product on the venue's token, its terms, a market maker with a verified wallet on the chain,
    and an operations user (as tests/mint_redeem/conftest.py's market, which is a pytest fixture)."""
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

    security = Security.objects.create(ticker="AAPL", isin="US0378331005", cusip="037833100", exchange_mic="XNAS",
                                       name="Apple Inc.")
    custodian = Custodian.objects.create(code="bny", name="Custody Bank")
    CustodyAccount.objects.create(custodian=custodian, account_number="SAFE-0001")
    broker = Broker.objects.create(code="sim", name="Simulated broker", custodian=custodian)
    SimulatedPrice.objects.create(broker=broker, security=security, price=Decimal("200.00"))
    product = TokenProduct.objects.create(symbol="AAPLx", security=security)
    ChainDeployment.objects.create(product=product, chain=venue.chain, decimals=venue.decimals, address=venue.token,
                                   deployed_block=venue.deployed_block)
    ProductTerms.objects.create(product=product, broker=broker, custodian=custodian,
                                reference_price=Decimal("200.00"), approval_threshold_cents=10**12,
                                market_hours_only=False, redemption_addresses={venue.chain: venue.redemption_address})
    mm = make_market_maker(chains=(venue.chain,), daily_limit_cents=max(mints * 1_000_00, 1_000_000_00))
    return mm, make_staff(roles.OPERATIONS)


def to_minting(chain: str, mm, operations, count: int) -> list[int]:
    from mint_redeem import services
    from mint_redeem.models import MintRequest

    ids = []
    for n in range(count):
        mint = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain=chain,
                                            quantity="1", wallet_id=mm.wallets[chain].pk, funding="in_kind",
                                            actor="bench")
        services.mint_shares_receive(mint=mint, custodian_confirmation=f"BENCH-{n}", user=operations)
        services.mint_advance(mint=mint, actor="bench")
        ids.append(mint.pk)
        if (n + 1) % 200 == 0:
            log(f"{n + 1} mints in minting")
    assert MintRequest.objects.filter(pk__in=ids, state="minting").count() == count
    return ids


def run_executor(chain: str, ids: list[int]) -> tuple[float, list[float], int]:
    from chains import executor
    from ledger.models import Event
    from mint_redeem.models import ChainOperation, MintRequest

    started_wall = time.time()
    started = time.monotonic()
    runs = 0
    while True:
        result = executor.execute_pending(chain_name=chain)
        runs += 1
        if not result.more and not result.in_flight and not ChainOperation.objects.filter(
                chain=chain, status__in=("pending", "signed", "broadcast")).exists():
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


def evm_bare(evm, token: str, recipient: str, count: int, batch_size: int) -> float:
    from chains.evm import Mint, ref_bytes
    from chains.signers import signer_for

    operator = signer_for(evm.name, "operator")
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


def solana_bare(rpc_url: str, mint: str, decimals: int, recipient: str, count: int, batch_size: int,
                commitment: str) -> float:
    """The `solana` client alone (its asyncio client, the only one it has): the executor's transactions
    without the database, the adapter, the simulation or a blockhash per transaction (one is fetched
    again only after BLOCKHASH_REUSE_S, far inside its validity)."""
    import asyncio

    from solana.rpc.async_api import AsyncClient
    from solana.rpc.commitment import Commitment
    from solana.rpc.models import TxOpts
    from solders.message import Message
    from solders.pubkey import Pubkey
    from solders.transaction import Transaction
    from spl.memo.constants import MEMO_PROGRAM_ID
    from spl.memo.instructions import create_memo
    from spl.memo.models import MemoParams
    from spl.token.constants import TOKEN_2022_PROGRAM_ID
    from spl.token.instructions import (
        create_idempotent_associated_token_account,
        get_associated_token_address,
        mint_to_checked,
    )
    from spl.token.models import MintToCheckedParams

    from chains.signers import solana_signer_for

    blockhash_reuse_s = 5.0
    operator = solana_signer_for("operator")
    authority, mint_key, owner = operator.pubkey(), Pubkey.from_string(mint), Pubkey.from_string(recipient)
    account = get_associated_token_address(owner, mint_key, TOKEN_2022_PROGRAM_ID)
    run = uuid.uuid4().hex[:8]
    order = {"processed": 0, "confirmed": 1, "finalized": 2}
    opts = TxOpts(skip_preflight=True, skip_confirmation=True, max_retries=0)

    def batch(start: int) -> list:
        instructions = []
        for n in range(start, min(start + batch_size, count)):
            instructions += [
                create_idempotent_associated_token_account(authority, owner, mint_key, TOKEN_2022_PROGRAM_ID),
                mint_to_checked(MintToCheckedParams(program_id=TOKEN_2022_PROGRAM_ID, mint=mint_key, dest=account,
                                                    mint_authority=authority, amount=10**decimals, decimals=decimals)),
                create_memo(MemoParams(program_id=MEMO_PROGRAM_ID, signer=authority,
                                       message=f"bare-{run}-{n}".encode())),
            ]
        return instructions

    async def loop() -> float:
        async with AsyncClient(rpc_url, commitment=Commitment(commitment), timeout=30) as client:
            started = time.monotonic()
            blockhash, fetched = None, 0.0
            signatures = []
            for start in range(0, count, batch_size):
                if blockhash is None or time.monotonic() - fetched > blockhash_reuse_s:
                    blockhash = (await client.get_latest_blockhash(Commitment("confirmed"))).value.blockhash
                    fetched = time.monotonic()
                message = Message.new_with_blockhash(batch(start), authority, blockhash)
                tx = Transaction.populate(message, [operator.sign_message(bytes(message))])
                signatures.append((await client.send_raw_transaction(bytes(tx), opts=opts)).value)
            waiting = signatures
            while waiting:
                statuses = []
                for chunk in range(0, len(waiting), 256):
                    statuses += (await client.get_signature_statuses(waiting[chunk:chunk + 256])).value
                for status in statuses:
                    if status is not None and status.err is not None:
                        raise SystemExit(f"a bare transaction failed: {status.err}")
                waiting = [signature for signature, status in zip(waiting, statuses, strict=True)
                           if status is None or status.confirmation_status is None or order[
                               str(status.confirmation_status).rsplit(".", 1)[-1].lower()] < order[commitment]]
                if waiting:
                    await asyncio.sleep(0.005)
            return time.monotonic() - started

    return asyncio.run(loop())


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
    parser.add_argument("--chain", choices=sorted(VENUES), required=True)
    parser.add_argument("--mints", type=int, default=1000)
    args = parser.parse_args()

    queue = f"bench-chain-{uuid.uuid4().hex[:8]}"
    os.environ.setdefault("ISSUER_ENV", "development")
    machine_info = machine()
    django_setup(recreate_database(), queue)
    venue = VENUES[args.chain]()
    mm, operations = market(venue, args.mints)
    log(f"setting up {args.mints} mints in minting on {venue.chain} (batch size {venue.batch_size})")
    ids = to_minting(venue.chain, mm, operations, args.mints)

    log("executor")
    if os.environ.get("BENCH_PROFILE"):
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.enable()
        executor_s, latencies, runs = run_executor(venue.chain, ids)
        profiler.disable()
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(45)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("tottime").print_stats(25)
    else:
        executor_s, latencies, runs = run_executor(venue.chain, ids)
    log(f"executor: {args.mints} in {executor_s:.2f} s ({runs} runs); bare loop")
    bare_s = venue.bare(mm.wallets[venue.chain].address, args.mints)
    supply = venue.supply()
    if supply != 2 * args.mints * 10**venue.decimals:
        raise SystemExit(f"total supply {supply} is not {2 * args.mints} tokens")

    from ledger import integrity

    problems = integrity.verify()
    from config.celery import app

    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge(queue)

    executor_per_s = args.mints / executor_s
    bare_per_s = args.mints / bare_s
    print(json.dumps({
        "benchmark": "chain_throughput", "chain": args.chain, "mints": args.mints, "batch_size": venue.batch_size,
        "confirmations": venue.confirmations, "executor_mode": "task functions in-process",
        "executor_per_s": round(executor_per_s, 1), "bare_per_s": round(bare_per_s, 1),
        "ratio": round(executor_per_s / bare_per_s, 3),
        "minting_to_minted_p50_ms": round(statistics.median(latencies), 1),
        "minting_to_minted_p99_ms": round(percentile(latencies, 0.99), 1),
        "executor_runs": runs, "ledger_verify_problems": len(problems),
        "targets": {"executor_per_s": venue.target_per_s, "ratio": TARGET_RATIO,
                    "met": executor_per_s >= venue.target_per_s and executor_per_s / bare_per_s >= TARGET_RATIO},
        "machine": machine_info,
    }))


if __name__ == "__main__":
    main()
