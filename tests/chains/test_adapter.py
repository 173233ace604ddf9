"""The adapter's own refusals: a node for another chain never gets a signature, fees stay under the
caps, and a re-broadcast of a transaction the node already has is harmless."""

from __future__ import annotations

import dataclasses

import pytest

from chains.evm import EvmChain, FeesAboveCap, Mint, WrongChain, ref_bytes
from tests.chains.conftest import holder

pytestmark = pytest.mark.django_db


def test_a_node_answering_for_another_chain_id_gets_no_signature(evm, roles):
    mainnet_config = EvmChain(dataclasses.replace(evm.config, chain_id=1))
    with pytest.raises(WrongChain):
        mainnet_config.sign(signer=roles.operator, to=roles.vault, data="0x", nonce=0, gas=21000)


def test_fees_are_the_nodes_suggestion_under_the_caps(evm):
    base_fee = int(evm.w3.eth.get_block("latest")["baseFeePerGas"])
    max_fee, tip = evm.fees()
    assert tip <= evm.config.max_priority_fee_per_gas_wei and max_fee <= evm.config.max_fee_per_gas_wei
    assert max_fee >= base_fee + tip
    capped = EvmChain(dataclasses.replace(evm.config, max_fee_per_gas_wei=base_fee + 1, max_priority_fee_per_gas_wei=1))
    assert capped.fees() == (base_fee + 1, 1)
    too_low = EvmChain(dataclasses.replace(evm.config, max_fee_per_gas_wei=max(base_fee - 1, 0),
                                           max_priority_fee_per_gas_wei=0))
    with pytest.raises(FeesAboveCap):
        too_low.fees()


def test_sending_the_same_signed_transaction_again_is_harmless(evm, token, roles):
    from chains.nonces import nonce_assign

    nonce = nonce_assign(chain=evm.name, address=roles.operator.address,
                         chain_pending_nonce=lambda: evm.pending_nonce(roles.operator.address))
    signed = evm.sign_mint_batch(signer=roles.operator, token=token, nonce=nonce,
                                 mints=[Mint(holder(4).address, 9, ref_bytes("mint-1"))])
    assert evm.send_raw(signed) == signed.tx_hash
    assert evm.send_raw(signed) == signed.tx_hash  # a retry after a crash: the node has it already
    receipt = evm.wait_for_receipt(signed.tx_hash)
    assert evm.send_raw(signed.raw) == signed.tx_hash  # and once it is mined
    assert receipt.succeeded and evm.total_supply(token) == 9
    assert evm.is_final(receipt)  # depth 0 on the test chain
    assert not EvmChain(dataclasses.replace(evm.config, confirmations=5)).is_final(evm.receipt(signed.tx_hash))
