"""Observed supply on a real chain (the test profile's anvil): the supply read at the confirmation
depth agrees with the ledger through mints; tokens minted behind the ledger's back (the minter key
used directly) open a supply break that refuses new mints through the API; a mint on chain whose
confirmation the ledger has not recorded yet is in flight, not a break; resolving the break lets
minting go on. The executor runs in-process here (its task functions), the observer too."""

from __future__ import annotations

import pytest

from chains import executor
from chains.evm import Mint, evm_chain, ref_bytes
from chains.observers import supply_observe
from chains.services import transact
from chains.signers import signer_for
from custody import selectors as custody_selectors
from custody import services as custody_services
from custody.models import SupplyBreak, SupplyObservation
from ledger import integrity
from mint_redeem import services
from mint_redeem.models import ChainOperation, MintRequest

from .test_chain_end_to_end import tokens_outstanding

pytestmark = pytest.mark.django_db


def request_mint(api, mm, quantity: str, chain: str = "ethereum"):
    return api.post("/api/v1/mints", {"product": "AAPLx", "chain": chain, "quantity": quantity,
                                      "wallet": mm.wallets[chain].pk, "funding": "in_kind"})


def in_kind_mint_to_minting(api, mm, operations, quantity: str, confirmation: str, chain: str = "ethereum"
                            ) -> MintRequest:
    response = request_mint(api, mm, quantity, chain)
    assert response.status_code == 201, response.content
    mint = MintRequest.objects.get(pk=response.json()["id"])
    services.mint_shares_receive(mint=mint, custodian_confirmation=confirmation, user=operations)
    services.mint_advance(mint=mint, actor="test")
    mint.refresh_from_db()
    assert mint.state == "minting"
    return mint


def observe():
    (observation,) = [o for o in supply_observe(chain_name="ethereum") if o.product.symbol == "AAPLx"]
    return observation


def test_supply_that_agrees_opens_no_break(evm_market, mm, api, operations):
    evm = evm_chain("ethereum")
    mint = in_kind_mint_to_minting(api, mm, operations, "3", "BNY-S1")
    executor.execute_pending(chain_name="ethereum")
    mint.refresh_from_db()
    assert mint.state == "minted"

    observation = observe()
    assert int(observation.supply_base_units) == evm.total_supply(evm_market.token) == 3 * 10**18
    assert int(observation.ledger_outstanding_base_units) == tokens_outstanding() == 3 * 10**18
    assert observation.difference_base_units == 0 and observation.in_flight_base_units == 0
    assert observation.block == evm.head() - evm.config.confirmations
    assert observation.block_hash == evm.block_hash(observation.block)
    assert not SupplyBreak.objects.exists() and not evm_market.product.minting_paused_by_break
    assert custody_selectors.supply_observed_latest(product=evm_market.product) == {"ethereum": observation}
    assert integrity.verify() == []


def test_tokens_minted_behind_the_ledgers_back_pause_minting_until_resolved(evm_market, mm, api, operations):
    evm = evm_chain("ethereum")
    operator = signer_for("ethereum", "operator")
    # Someone with the minter key mints outside our operations (a leaked key, a script run by hand).
    transact(chain=evm, signer=operator, build=lambda nonce: evm.sign_mint_batch(
        signer=operator, token=evm_market.token, nonce=nonce,
        mints=[Mint(to=mm.wallets["ethereum"].address, amount_base_units=5 * 10**18, ref=ref_bytes("rogue-1"))]))

    observation = observe()
    assert observation.difference_base_units == 5 * 10**18 and observation.in_flight_base_units == 0
    item = SupplyBreak.objects.get(product=evm_market.product, chain="ethereum")
    assert item.status == "open" and int(item.unexplained_base_units) == 5 * 10**18
    assert evm_market.product.minting_paused_by_break

    refused = request_mint(api, mm, "1")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "minting_paused"
    assert not MintRequest.objects.exists()

    custody_services.supply_break_resolve(break_=item, reason="rogue mint traced, tokens to be burned",
                                          actor=f"user:{operations.pk}")
    assert request_mint(api, mm, "1").status_code == 201
    observe()  # the same unexplained amount, already looked at: not reopened
    assert SupplyBreak.objects.filter(status="open").count() == 0
    assert integrity.verify() == []


def test_a_mint_on_chain_not_yet_recorded_is_in_flight_not_a_break(evm_market, mm, api, operations):
    evm = evm_chain("ethereum")
    mint = in_kind_mint_to_minting(api, mm, operations, "2", "BNY-S2")
    batch = executor.sign_batch(chain=evm)
    raw_hex, tx_hash, ops = batch
    assert [op.reference for op in ops] == [mint.stream]
    evm.send_raw(bytes.fromhex(raw_hex[2:]))
    executor.outbox().on_broadcast(ops[0])
    assert evm.wait_for_receipt(tx_hash).succeeded  # on chain; the ledger has not recorded it

    observation = observe()
    assert int(observation.supply_base_units) == 2 * 10**18 and int(observation.ledger_outstanding_base_units) == 0
    assert observation.in_flight_base_units == observation.difference_base_units == 2 * 10**18
    assert not SupplyBreak.objects.exists()

    executor.execute_pending(chain_name="ethereum")  # follows it: the ledger records the mint
    assert ChainOperation.objects.get(request_reference=mint.stream).status == "confirmed"
    assert observe().difference_base_units == 0
    assert SupplyObservation.objects.filter(product=evm_market.product).count() == 2
    assert not SupplyBreak.objects.exists()
