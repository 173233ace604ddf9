"""Redemption events act only once deep enough, and a reorg withdraws one before it can move anything."""

from __future__ import annotations

import dataclasses
import time

import pytest

from chains.evm import EvmChain, Mint, ref_bytes, ref_text
from chains.models import RedeemedEventSeen, WatchCursor
from chains.watcher import redeemed_scan
from tests.chains.conftest import call_as, holder, mint, rpc

pytestmark = pytest.mark.django_db


def with_depth(evm: EvmChain, confirmations: int) -> EvmChain:
    return EvmChain(dataclasses.replace(evm.config, confirmations=confirmations))


def funded(evm, token, amount=100):
    alice = holder(4)
    receipt = mint(evm, token, [Mint(alice.address, amount, ref_bytes("mint-1"))])
    return alice, receipt.block_number


def test_at_depth_zero_a_mined_redemption_is_confirmed_at_once_and_only_once(evm, token):
    alice, start = funded(evm, token)
    receipt = call_as(evm, alice, token, "redeem", (30, ref_bytes("redemption-1")))
    first = redeemed_scan(chain=with_depth(evm, 0), token=token, start_block=start)
    [event] = first.confirmed
    assert (event.holder, int(event.amount_base_units), ref_text(bytes.fromhex(event.ref[2:]))) == (
        alice.address, 30, "redemption-1")
    assert (event.tx_hash, event.block_hash, event.block_number) == (receipt.tx_hash, receipt.block_hash,
                                                                     receipt.block_number)
    again = redeemed_scan(chain=with_depth(evm, 0), token=token)
    assert again.confirmed == [] and again.seen == []
    assert WatchCursor.objects.get(token=token).next_block == again.head + 1


def test_an_event_waits_for_its_confirmation_depth(evm, token):
    chain = with_depth(evm, 3)
    alice, start = funded(evm, token)
    call_as(evm, alice, token, "redeem", (30, ref_bytes("redemption-1")))
    scan = redeemed_scan(chain=chain, token=token, start_block=start)
    assert len(scan.seen) == 1 and scan.confirmed == []
    rpc(evm, "anvil_mine", [2])
    assert redeemed_scan(chain=chain, token=token).confirmed == []  # two blocks on top: not yet three
    rpc(evm, "anvil_mine", [1])
    [event] = redeemed_scan(chain=chain, token=token).confirmed
    assert event.status == RedeemedEventSeen.Status.CONFIRMED
    assert redeemed_scan(chain=chain, token=token).confirmed == []


def test_a_reorg_withdraws_an_unconfirmed_event_and_it_never_confirms(evm, token):
    chain = with_depth(evm, 3)
    alice, start = funded(evm, token)
    snapshot = rpc(evm, "evm_snapshot")
    reorged = call_as(evm, alice, token, "redeem", (30, ref_bytes("redemption-1")))
    assert len(redeemed_scan(chain=chain, token=token, start_block=start).seen) == 1

    # The block that held it is replaced: back to before it, then a longer chain without it.
    assert rpc(evm, "evm_revert", [snapshot]) is True
    rpc(evm, "anvil_mine", [5])
    assert evm.block_hash(reorged.block_number) != reorged.block_hash

    scan = redeemed_scan(chain=chain, token=token)
    assert [e.tx_hash for e in scan.withdrawn] == [reorged.tx_hash] and scan.confirmed == []
    assert RedeemedEventSeen.objects.get(tx_hash=reorged.tx_hash).status == RedeemedEventSeen.Status.WITHDRAWN
    rpc(evm, "anvil_mine", [5])
    assert redeemed_scan(chain=chain, token=token).confirmed == []
    assert evm.balance_of(token, alice.address) == 100  # on the canonical chain the tokens never moved

    # The holder redeems again on the new chain: that one is confirmed once deep enough.
    again = call_as(evm, alice, token, "redeem", (30, ref_bytes("redemption-1")))
    rpc(evm, "anvil_mine", [3])
    [event] = redeemed_scan(chain=chain, token=token).confirmed
    assert event.tx_hash == again.tx_hash and event.block_hash == again.block_hash


def test_a_transaction_remined_in_another_block_is_a_new_event(evm, token):
    """anvil_reorg replaces the last blocks and re-includes the given transactions in new ones."""
    chain = with_depth(evm, 3)
    alice, start = funded(evm, token)
    signed = evm.sign_call(signer=alice, token=token, function="redeem", args=[30, ref_bytes("redemption-2")],
                           nonce=evm.pending_nonce(alice.address))
    evm.send_raw(signed)
    first = evm.wait_for_receipt(signed.tx_hash)
    assert len(redeemed_scan(chain=chain, token=token, start_block=start).seen) == 1

    # The replacement block holds another transaction too: an identical block (same second, same
    # transactions) would have the same hash, and then nothing was reorged.
    other = holder(6)
    extra = evm.sign(signer=other, to=other.address, data="0x", nonce=evm.pending_nonce(other.address), gas=21000)
    rpc(evm, "anvil_reorg", [1, [[extra.raw_hex, 0], [signed.raw_hex, 0]]])
    deadline = time.monotonic() + 10
    while evm.block_hash(first.block_number) == first.block_hash:  # the node applies it in the background
        assert time.monotonic() < deadline, "anvil_reorg did not replace the block"
        time.sleep(0.05)
    remined = evm.wait_for_receipt(signed.tx_hash)
    assert remined.block_hash != first.block_hash
    scan = redeemed_scan(chain=chain, token=token)
    assert [e.block_hash for e in scan.withdrawn] == [first.block_hash]
    assert [e.block_hash for e in scan.seen] == [remined.block_hash]
    rpc(evm, "anvil_mine", [3])
    [event] = redeemed_scan(chain=chain, token=token).confirmed
    assert (event.tx_hash, event.block_hash) == (signed.tx_hash, remined.block_hash)
    assert RedeemedEventSeen.objects.filter(tx_hash=signed.tx_hash).count() == 2


def test_the_first_scan_of_a_token_starts_at_its_recorded_deployment_block(evm, token):
    """redemptions_watch starts a token's cursor at ChainDeployment.deployed_block, not at block 0 (a
    scan from genesis on a real chain would read millions of blocks before the first useful one)."""
    from decimal import Decimal

    from chains.observers import redemptions_watch
    from custody.models import ChainDeployment, Security, TokenProduct

    alice, _ = funded(evm, token)
    call_as(evm, alice, token, "redeem", (30, ref_bytes("redemption-1")))
    after = evm.head() + 1
    security = Security.objects.create(ticker="AAPL", isin="US0378331005", cusip="037833100", exchange_mic="XNAS",
                                       name="Apple Inc.")
    product = TokenProduct.objects.create(symbol="AAPLx", security=security, multiplier=Decimal(1))
    # Recorded as deployed after the redemption: the first scan must not look below that block.
    ChainDeployment.objects.create(product=product, chain="ethereum", decimals=18, address=token,
                                   deployed_block=after)
    result = redemptions_watch(chain_name="ethereum")
    assert (result["seen"], result["confirmed"]) == (0, 0)
    assert not RedeemedEventSeen.objects.filter(token=token).exists()
    assert WatchCursor.objects.get(token=token).next_block >= after
