"""The executor against real anvil: pending mint operations become mintBatch transactions recorded
before they are broadcast, batches never overlap, and a worker that died after recording leaves
exactly the recorded transaction to be broadcast."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection
from eth_utils import keccak

from chains import executor
from chains.evm import evm_chain, ref_bytes
from chains.models import SignerNonce
from custody.models import ChainDeployment, Security, TokenProduct
from mint_redeem.models import ChainOperation
from tests.chains.conftest import holder


@pytest.fixture
def product(token):
    security = Security.objects.create(ticker="AAPL", isin="US0378331005", cusip="037833100", exchange_mic="XNAS",
                                       name="Apple Inc.")
    product = TokenProduct.objects.create(symbol="AAPLx", security=security, multiplier=Decimal(1))
    ChainDeployment.objects.create(product=product, chain="ethereum", decimals=18, address=token)
    return product


def pending(product, count, *, start=1, amount=10**18):
    return [ChainOperation.objects.create(kind="mint", chain="ethereum", product=product, address=holder(4 + n % 3).address,
                                          amount_base_units=amount + n, request_reference=f"mint-{start + n}")
            for n in range(count)]


def batch_size(settings, size):
    settings.EVM_CHAINS = {**settings.EVM_CHAINS, "ethereum": {**settings.EVM_CHAINS["ethereum"], "batch_size": size}}


def assert_minted_on_chain(evm, token, operations):
    expected: dict[str, int] = {}
    for op in operations:
        expected[op.address] = expected.get(op.address, 0) + int(op.amount_base_units)
        assert evm.ref_minted(token, ref_bytes(op.request_reference))
    for address, amount in expected.items():
        assert evm.balance_of(token, address) == amount
    assert evm.total_supply(token) == sum(expected.values())


@pytest.mark.django_db
def test_pending_mints_are_signed_recorded_then_broadcast_in_batches(evm, token, product, settings):
    batch_size(settings, 2)
    ops = pending(product, 5)
    result = executor.execute_pending(chain_name="ethereum")
    assert result.operations == 5 and len(result.broadcast) == 3 and result.rebroadcast == []

    rows = list(ChainOperation.objects.order_by("pk"))
    assert {row.status for row in rows} == {"broadcast"}
    assert [row.tx_hash for row in rows] == [result.broadcast[0]] * 2 + [result.broadcast[1]] * 2 + [result.broadcast[2]]
    for row in rows:
        raw = bytes.fromhex(row.signed_tx.removeprefix("0x"))
        assert "0x" + keccak(raw).hex() == row.tx_hash  # the record is the transaction itself
        assert row.attempts == 1
    receipts = [evm.wait_for_receipt(tx_hash) for tx_hash in result.broadcast]
    assert all(r.succeeded for r in receipts)
    assert_minted_on_chain(evm, token, ops)
    assert executor.execute_pending(chain_name="ethereum").operations == 0  # nothing left, nothing sent twice


@pytest.mark.django_db
def test_a_worker_that_died_after_recording_leaves_exactly_that_transaction_to_broadcast(evm, token, product):
    ops = pending(product, 3)
    raw_hex, tx_hash, claimed = executor.sign_batch(chain=evm)  # ... and the worker dies here
    assert {op.id for op in claimed} == {op.pk for op in ops}
    assert set(ChainOperation.objects.values_list("status", flat=True)) == {"signed"}
    assert not evm.transaction_known(tx_hash) and evm.total_supply(token) == 0

    result = executor.execute_pending(chain_name="ethereum")  # the next run
    assert result.rebroadcast == [tx_hash] and result.broadcast == []
    assert evm.wait_for_receipt(tx_hash).succeeded
    assert set(ChainOperation.objects.values_list("tx_hash", flat=True)) == {tx_hash}
    assert set(ChainOperation.objects.values_list("status", flat=True)) == {"broadcast"}
    assert_minted_on_chain(evm, token, ops)


@pytest.mark.django_db
def test_a_product_without_a_token_is_skipped_with_nothing_recorded_and_no_nonce_taken(evm, product, roles):
    no_code = TokenProduct.objects.create(symbol="MSFTx", security=Security.objects.create(
        ticker="MSFT", isin="US5949181045", cusip="594918104", exchange_mic="XNAS", name="Microsoft"))
    # An address without code: a mint sent there would "succeed" and mint nothing.
    ChainDeployment.objects.create(product=no_code, chain="ethereum", decimals=18, address=holder(9).address)
    op = ChainOperation.objects.create(kind="mint", chain="ethereum", product=no_code, address=holder(4).address,
                                       amount_base_units=1, request_reference="mint-99")
    nonce_before = list(SignerNonce.objects.values_list("address", "next_nonce"))
    result = executor.execute_pending(chain_name="ethereum")
    assert result.skipped_products == [no_code.pk] and result.operations == 0  # skipped, never blocking
    op.refresh_from_db()
    assert (op.status, op.signed_tx, op.tx_hash, op.attempts) == ("pending", "", "", 0)
    assert list(SignerNonce.objects.values_list("address", "next_nonce")) == nonce_before


def test_concurrent_executors_claim_disjoint_batches_with_consecutive_nonces(committed, settings):
    from chains.services import token_deploy

    batch_size(settings, 3)
    evm = evm_chain("ethereum")
    token = token_deploy(chain=evm, name="Apple", symbol="AAPLx", decimals=18)
    security = Security.objects.create(ticker="AAPL", isin="US0378331005", cusip="037833100", exchange_mic="XNAS",
                                       name="Apple Inc.")
    product = TokenProduct.objects.create(symbol="AAPLx", security=security)
    ChainDeployment.objects.create(product=product, chain="ethereum", decimals=18, address=token)
    ops = pending(product, 6)
    start = threading.Barrier(2)
    batches, errors = [], []

    def worker():
        try:
            start.wait()
            batches.append(executor.sign_batch(chain=evm_chain("ethereum")))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    claimed = [{op.id for op in batch[2]} for batch in batches]
    assert len(claimed[0]) == len(claimed[1]) == 3 and not claimed[0] & claimed[1]
    executor.execute_pending(chain_name="ethereum")
    for _, tx_hash, _ in batches:
        assert evm.wait_for_receipt(tx_hash).succeeded
    nonces = sorted(evm.w3.eth.get_transaction(tx_hash)["nonce"] for _, tx_hash, _ in batches)
    assert nonces[1] == nonces[0] + 1
    assert_minted_on_chain(evm, token, ops)


@pytest.mark.celery
def test_the_task_runs_in_a_real_worker(committed, celery_worker_process):
    from chains.services import token_deploy
    from chains.tasks import execute_pending

    evm = evm_chain("ethereum")
    token = token_deploy(chain=evm, name="Apple", symbol="AAPLx", decimals=18)
    security = Security.objects.create(ticker="AAPL", isin="US0378331005", cusip="037833100", exchange_mic="XNAS",
                                       name="Apple Inc.")
    product = TokenProduct.objects.create(symbol="AAPLx", security=security)
    ChainDeployment.objects.create(product=product, chain="ethereum", decimals=18, address=token)
    ops = pending(product, 4)
    execute_pending.delay("ethereum")
    deadline = time.monotonic() + 60
    while set(ChainOperation.objects.values_list("status", flat=True)) != {"broadcast"}:
        assert time.monotonic() < deadline, f"the worker did not broadcast; see {celery_worker_process.log_path}"
        time.sleep(0.2)
    for tx_hash in set(ChainOperation.objects.values_list("tx_hash", flat=True)):
        assert evm.wait_for_receipt(tx_hash).succeeded
    assert_minted_on_chain(evm, token, ops)
