"""What the executor does when a transaction is stuck or the chain refuses it, on real anvil: a stuck
mint is replaced at the same nonce with higher fees (recorded before it is broadcast, both hashes
kept) and exactly one mint lands; a reference the chain already records for the operation is taken
from the chain's record and confirmed, never left broadcast or retried forever; one the chain records
otherwise fails, for operations, and its retry is refused."""

from __future__ import annotations

import pytest
from eth_account.typed_transactions import TypedTransaction
from hexbytes import HexBytes

from chains import executor
from chains.evm import Mint, evm_chain, ref_bytes
from chains.services import transact
from chains.signers import signer_for
from mint_redeem import services
from mint_redeem.models import ChainOperation
from mint_redeem.services.quoting import RequestError
from tests.chains.conftest import rpc

from .test_chain_supply import in_kind_mint_to_minting

pytestmark = pytest.mark.django_db
GWEI = 10**9


@pytest.fixture
def manual_mining():
    evm = evm_chain("ethereum")
    rpc(evm, "evm_setAutomine", [False])
    yield evm
    rpc(evm, "evm_setAutomine", [True])


def test_a_stuck_mint_is_replaced_at_the_same_nonce_and_lands_once(evm_market, mm, api, operations, manual_mining):
    evm = manual_mining
    mint = in_kind_mint_to_minting(api, mm, operations, "2", "BNY-R1")
    first = executor.execute_pending(chain_name="ethereum")
    (stuck_hash,) = first.broadcast
    assert first.in_flight == 1 and evm.transaction_known(stuck_hash)

    # The base fee jumps above the transaction's fee cap: the next block cannot include it.
    rpc(evm, "anvil_setNextBlockBaseFeePerGas", [hex(50 * GWEI)])
    rpc(evm, "evm_mine")
    stuck_raw = bytes.fromhex(ChainOperation.objects.get(request_reference=mint.stream).signed_tx[2:])
    assert evm.receipt(stuck_hash) is None and evm.stuck(stuck_raw)

    executor.execute_pending(chain_name="ethereum")
    operation = ChainOperation.objects.get(request_reference=mint.stream)
    replacement = operation.tx_hash
    assert replacement != stuck_hash and operation.other_tx_hashes == [stuck_hash]
    assert operation.status == "broadcast" and evm.transaction_known(replacement)
    old, new = (TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
                for raw in (stuck_raw, bytes.fromhex(operation.signed_tx[2:])))
    assert new["nonce"] == old["nonce"] and new["data"] == old["data"] and new["gas"] == old["gas"]
    assert new["maxFeePerGas"] > 50 * GWEI > old["maxFeePerGas"]

    rpc(evm, "evm_mine")
    executor.execute_pending(chain_name="ethereum")
    mint.refresh_from_db()
    operation.refresh_from_db()
    assert mint.state == "minted" and operation.status == "confirmed" and operation.tx_hash == replacement
    assert evm.receipt(stuck_hash) is None  # never mined: one mint, not two
    assert evm.balance_of(evm_market.token, mm.wallets["ethereum"].address) == 2 * 10**18
    assert evm.total_supply(evm_market.token) == 2 * 10**18


def mint_behind(evm, token, to: str, amount: int, reference: str):
    operator = signer_for("ethereum", "operator")
    return transact(chain=evm, signer=operator, build=lambda nonce: evm.sign_mint_batch(
        signer=operator, token=token, nonce=nonce, mints=[Mint(to=to, amount_base_units=amount,
                                                                ref=ref_bytes(reference))]))


def test_a_reference_the_chain_already_minted_for_the_operation_is_confirmed_from_the_chains_record(
        evm_market, mm, api, operations):
    evm = evm_chain("ethereum")
    mint = in_kind_mint_to_minting(api, mm, operations, "3", "BNY-R2")
    # An earlier transaction of ours already minted it (say, the database was restored from before it
    # was recorded): the chain refuses the reference again.
    earlier = mint_behind(evm, evm_market.token, mm.wallets["ethereum"].address, 3 * 10**18, mint.stream)

    executor.execute_pending(chain_name="ethereum")
    mint.refresh_from_db()
    operation = ChainOperation.objects.get(request_reference=mint.stream)
    assert (mint.state, operation.status, operation.tx_hash) == ("minted", "confirmed", earlier.tx_hash)
    assert evm.total_supply(evm_market.token) == 3 * 10**18  # once


def test_a_reference_the_chain_minted_otherwise_fails_and_its_retry_is_refused(evm_market, mm, api, operations):
    evm = evm_chain("ethereum")
    mint = in_kind_mint_to_minting(api, mm, operations, "3", "BNY-R3")
    mint_behind(evm, evm_market.token, mm.wallets["ethereum"].address, 1, mint.stream)  # not what it asks

    executor.execute_pending(chain_name="ethereum")
    operation = ChainOperation.objects.get(request_reference=mint.stream)
    assert operation.status == "failed" and f"the chain records {mint.stream} as minted otherwise" in (
        operation.last_error)
    assert executor.execute_pending(chain_name="ethereum").operations == 0  # not retried by itself
    with pytest.raises(RequestError) as refused:
        services.chain_operation_retry(operation=operation, actor="user:1")
    assert refused.value.code == "chain_operation_on_chain"
    mint.refresh_from_db()
    assert mint.state == "minting"


def test_an_operators_retry_of_a_failed_operation_done_on_chain_takes_the_chains_record(
        evm_market, mm, api, operations):
    evm = evm_chain("ethereum")
    mint = in_kind_mint_to_minting(api, mm, operations, "1", "BNY-R4")
    raw_hex, tx_hash, _ = executor.sign_batch(chain=evm)
    evm.send_raw(bytes.fromhex(raw_hex[2:]))
    operation = ChainOperation.objects.get(request_reference=mint.stream)
    services.chain_operation_record_broadcast(operation=operation)
    assert evm.wait_for_receipt(tx_hash).succeeded
    # Failed by mistake (say, by hand) although its transaction landed: the retry must not mint again.
    from mint_redeem.services.chain import chain_operation_record_failed
    chain_operation_record_failed(operation=operation, error="marked failed by hand")

    services.chain_operation_retry(operation=operation, actor="user:1")
    operation.refresh_from_db()
    assert (operation.status, operation.tx_hash) == ("broadcast", tx_hash)
    executor.execute_pending(chain_name="ethereum")
    mint.refresh_from_db()
    assert mint.state == "minted" and evm.total_supply(evm_market.token) == 10**18
