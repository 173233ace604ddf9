"""Observed supply on Solana (custody.supply through chains.watcher_solana.supply_observe): the mint's
supply at a slot, compared with the ledger; our own operations landed but not yet on the ledger are
in flight, not a break; tokens minted outside the executor are a break."""

from __future__ import annotations

import pytest
from solders.keypair import Keypair

from chains import executor_solana
from chains.observers import supply_observe
from chains.signers import solana_signer_for
from chains.solana import SolanaMint, solana_chain
from custody.models import ChainDeployment, SupplyBreak, SupplyObservation
from tests.chains.test_solana_executor import make_product, pending


@pytest.mark.django_db
def test_landed_operations_are_in_flight_and_an_outside_mint_is_a_break():
    chain = solana_chain()
    product = make_product(chain)
    ops = pending(product, 2)
    signed, _ = executor_solana.sign_batch(chain=chain, kind="mint", skip=set())
    chain.send(signed.wire)
    chain.wait(signed.signature)  # landed; the ledger has no mint (no request confirmed it)

    (observation,) = supply_observe(chain_name="solana")
    minted = sum(int(op.amount_base_units) for op in ops)
    assert int(observation.supply_base_units) == minted == int(observation.in_flight_base_units)
    assert observation.block_hash == "" and observation.block > 0
    assert not SupplyBreak.objects.filter(product=product, chain="solana", status="open").exists()

    # The mint authority used outside the executor: tokens the ledger cannot explain.
    mint = ChainDeployment.objects.get(product=product, chain="solana").address
    operator = solana_signer_for("operator")
    outside = chain.sign(chain.mint_batch_instructions(
        mint=mint, decimals=9, mints=[SolanaMint(owner=str(Keypair().pubkey()), amount_base_units=7, reference="x")],
        authority=operator.pubkey(), payer=operator.pubkey()), payer=operator)
    chain.send(outside.wire)
    chain.wait(outside.signature)
    supply_observe(chain_name="solana")
    latest = SupplyObservation.objects.filter(product=product, chain="solana").order_by("-stream_version").first()
    assert int(latest.supply_base_units) == minted + 7
    assert SupplyBreak.objects.filter(product=product, chain="solana", status="open").exists()
