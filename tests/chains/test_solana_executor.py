"""The executor on Solana against the local RPC: pending mints become Token-2022 transactions recorded
(bytes, signature, last valid block height) before they are sent; a process killed between signing
and sending, or between sending and confirming, leaves exactly one mint on chain; a transaction that
can no longer land is rebuilt, and only then. Balances and supply are read from the chain with the
`solana` client, never from our tables."""

from __future__ import annotations

import base64
import itertools
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest
from solders.keypair import Keypair

from chains import executor, executor_solana
from chains.config import solana_chain_config
from chains.services import solana_mint_deploy
from chains.solana import SolanaChain, solana_chain
from custody.models import ChainDeployment, Security, TokenProduct
from mint_redeem.models import ChainOperation
from tests.conftest import ROOT, database_url_for_tests

_symbols = itertools.count(1)
HOLDERS = [str(Keypair().pubkey()) for _ in range(3)]


def make_product(chain: SolanaChain) -> TokenProduct:
    n = next(_symbols)
    security = Security.objects.create(ticker=f"SOL{n}", isin=f"US03783310{n:02d}", cusip=f"0378331{n:02d}",
                                       exchange_mic="XNAS", name="Apple Inc.")
    product = TokenProduct.objects.create(symbol=f"AAPLs{n}", security=security, multiplier=Decimal(1))
    mint = solana_mint_deploy(chain=chain, name="Apple tokenized share", symbol=product.symbol, decimals=9)
    ChainDeployment.objects.create(product=product, chain="solana", decimals=9, address=mint)
    return product


def pending(product, count, *, start=1, amount=10**9):
    return [ChainOperation.objects.create(kind="mint", chain="solana", product=product, address=HOLDERS[n % 3],
                                          amount_base_units=amount + n, request_reference=f"mint-{product.pk}{start + n}")
            for n in range(count)]


def run_until_confirmed(ops, timeout_s: float = 60) -> None:
    """Executor runs until every operation is broadcast in a transaction landed at the configured
    commitment (these operations have no request behind them, so `on_confirmed` is refused and logged:
    mint_redeem's tests cover that side)."""
    chain = solana_chain()
    deadline = time.monotonic() + timeout_s
    ids = [op.pk for op in ops]
    while True:
        executor.execute_pending(chain_name="solana")
        rows = list(ChainOperation.objects.filter(pk__in=ids).values_list("status", "tx_hash"))
        statuses = chain.statuses(sorted({tx for _, tx in rows if tx}))
        if {status for status, _ in rows} == {"broadcast"} and all(
                statuses[tx] is not None and chain.is_final(statuses[tx]) for _, tx in rows):
            return
        assert time.monotonic() < deadline, rows
        time.sleep(0.2)


def assert_minted_once(chain: SolanaChain, product, ops) -> None:
    mint = ChainDeployment.objects.get(product=product, chain="solana").address
    expected: dict[str, int] = {}
    for op in ops:
        expected[op.address] = expected.get(op.address, 0) + int(op.amount_base_units)
    for owner, amount in expected.items():
        assert chain.balance(owner, mint) == amount
    assert chain.supply(mint)[0] == sum(expected.values())
    # Every reference in exactly one landed transaction's memos.
    landed = {transfer.signature: transfer.memos for owner in expected
              for transfer in chain.transfers_into(str(chain.ata(owner, mint)))}
    memos = [memo for tx_memos in landed.values() for memo in tx_memos]
    assert sorted(memos) == sorted({op.request_reference for op in ops}) and len(memos) == len(set(memos))


@pytest.fixture
def sol(db):
    return solana_chain()


@pytest.mark.django_db
def test_pending_mints_are_recorded_before_sending_then_confirmed_in_batches(sol, settings):
    settings.SOLANA_CHAINS = {"solana": {**settings.SOLANA_CHAINS["solana"], "batch_size": 2}}
    chain = solana_chain()
    product = make_product(chain)
    ops = pending(product, 5)
    result = executor.execute_pending(chain_name="solana")
    assert result.operations == 5 and len(result.broadcast) == 3
    rows = list(ChainOperation.objects.filter(product=product).order_by("pk"))
    assert all(row.signed_tx and row.tx_hash and row.last_valid_block_height for row in rows)
    assert len({row.tx_hash for row in rows}) == 3
    run_until_confirmed(ops)
    assert_minted_once(chain, product, ops)


@pytest.mark.django_db
def test_a_recorded_unsent_transaction_is_sent_as_recorded_while_its_blockhash_is_valid(sol):
    product = make_product(sol)
    ops = pending(product, 2)
    signed, claimed = executor_solana.sign_batch(chain=sol, kind="mint", skip=set())
    assert sol.status(signed.signature) is None  # signed and recorded; the "worker" died before sending
    result = executor.execute_pending(chain_name="solana")
    assert result.rebroadcast == [signed.signature] and result.broadcast == []
    run_until_confirmed(ops)
    assert set(ChainOperation.objects.filter(product=product).values_list("tx_hash", flat=True)) == {signed.signature}
    assert_minted_once(sol, product, ops)


def _dying_run(point: str) -> int:
    env = {**{k: v for k, v in os.environ.items() if k != "DATABASE_OWNER_URL"}, "ISSUER_ENV": "test",
           "DATABASE_URL": database_url_for_tests(), "DB_CONN_MAX_AGE": "0"}
    done = subprocess.run([sys.executable, "-m", "tests.chains.solana_dying_executor", point], cwd=ROOT, env=env,
                          capture_output=True, timeout=120)
    assert done.returncode == -signal.SIGKILL, done.stderr.decode()[-2000:]
    return done.returncode


@pytest.mark.parametrize("point", ["before_send", "after_send"])
def test_a_process_killed_between_signing_and_confirming_leaves_one_mint(committed, point):
    chain = solana_chain()
    product = make_product(chain)
    ops = pending(product, 3)
    _dying_run(point)
    rows = list(ChainOperation.objects.filter(product=product))
    assert {row.status for row in rows} == {"signed"}  # recorded, the broadcast never recorded
    signature = rows[0].tx_hash
    landed = chain.status(signature)
    assert (landed is None) if point == "before_send" else (landed is not None and not landed.failed)
    run_until_confirmed(ops)
    assert set(ChainOperation.objects.filter(product=product).values_list("tx_hash", flat=True)) == {signature}
    assert_minted_once(chain, product, ops)


def test_a_transaction_is_rebuilt_only_after_the_chain_passed_its_last_valid_height(committed, settings, tmp_path):
    from tests.chains.solana_helpers import own_solana_node

    with own_solana_node(tmp_path / "node", slot_ms=50, valid_blocks=10, finality_slots=2) as (_, url):
        settings.SOLANA_CHAINS = {"solana": {**settings.SOLANA_CHAINS["solana"], "rpc_url": url}}
        chain = solana_chain()
        assert chain.config == solana_chain_config()
        product = make_product(chain)
        ops = pending(product, 2)
        signed, _ = executor_solana.sign_batch(chain=chain, kind="mint", skip=set())
        # Died before sending; the next run comes after the blockhash expired (finalized height past it).
        while chain.block_height("finalized") <= signed.last_valid_block_height:
            time.sleep(0.05)
        result = executor.execute_pending(chain_name="solana")
        assert chain.status(signed.signature) is None
        assert result.rebroadcast == [] and len(result.broadcast) == 1 and result.broadcast[0] != signed.signature
        rows = list(ChainOperation.objects.filter(product=product))
        assert all(signed.signature in row.last_error for row in rows)
        run_until_confirmed(ops)
        assert chain.status(signed.signature) is None  # the old transaction can never land now
        assert base64.b64decode(rows[0].signed_tx) != signed.wire
        assert_minted_once(chain, product, ops)
