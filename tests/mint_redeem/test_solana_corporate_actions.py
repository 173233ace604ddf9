"""A product's multiplier on chain: a change (custody's, through the four-eyes reference change or the
service) writes one `multiplier` operation per Solana mint in its own transaction; the executor updates
the mint's ScaledUiAmount extension once per operation, from the product's multiplier when it signs,
and never while another update of the product is in flight; the chain ends at the latest value."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest

from chains import executor
from chains.services import solana_mint_deploy
from chains.solana import solana_chain
from compliance.reference_changes import changeable
from custody.models import ChainDeployment, Security, TokenProduct
from custody.services import CustodyError
from mint_redeem.models import ChainOperation
from mint_redeem.services.corporate_actions import product_multiplier_change


@pytest.fixture
def product(db):
    security = Security.objects.create(ticker="AAPL", isin="US0378331005", cusip="037833100", exchange_mic="XNAS",
                                       name="Apple Inc.")
    product = TokenProduct.objects.create(symbol="AAPLx", security=security, multiplier=Decimal(1))
    chain = solana_chain()
    mint = solana_mint_deploy(chain=chain, name="Apple tokenized share", symbol="AAPLx", decimals=9)
    ChainDeployment.objects.create(product=product, chain="solana", decimals=9, address=mint)
    ChainDeployment.objects.create(product=product, chain="ethereum", decimals=18, address="")
    return product


def run_until_settled(timeout_s: float = 60) -> None:
    deadline = time.monotonic() + timeout_s
    while ChainOperation.objects.filter(kind="multiplier").exclude(status__in=("confirmed", "failed")).exists():
        assert time.monotonic() < deadline, list(ChainOperation.objects.values_list("status", "last_error"))
        executor.execute_pending(chain_name="solana")
        time.sleep(0.2)


@pytest.mark.django_db
def test_a_multiplier_change_updates_the_mint_once_per_change(product):
    chain = solana_chain()
    mint = ChainDeployment.objects.get(product=product, chain="solana").address
    assert chain.multiplier(mint) == 1.0
    product_multiplier_change(product=product, multiplier=Decimal("2"), reason="2:1 split", actor="user:ops")
    product_multiplier_change(product=product, multiplier=Decimal("2"), reason="again", actor="user:ops")  # no change
    (op,) = ChainOperation.objects.filter(kind="multiplier")
    assert (op.chain, op.address, op.status) == ("solana", mint, "pending")
    run_until_settled()
    op.refresh_from_db()
    assert op.status == "confirmed" and op.tx_hash and chain.status(op.tx_hash) is not None
    assert chain.multiplier(mint) == 2.0


@pytest.mark.django_db
def test_updates_in_flight_never_overtake_each_other_and_the_latest_value_lands(product):
    chain = solana_chain()
    mint = ChainDeployment.objects.get(product=product, chain="solana").address
    product_multiplier_change(product=product, multiplier=Decimal("1.5"), reason="dividend", actor="user:ops")
    first = executor.execute_pending(chain_name="solana")
    assert first.operations == 1
    product_multiplier_change(product=product, multiplier=Decimal("3"), reason="2:1 split", actor="user:ops")
    run_until_settled()
    ops = list(ChainOperation.objects.filter(kind="multiplier").order_by("pk"))
    assert [op.status for op in ops] == ["confirmed", "confirmed"] and ops[0].tx_hash != ops[1].tx_hash
    assert chain.multiplier(mint) == 3.0


@pytest.mark.django_db
def test_the_four_eyes_applier_writes_the_operation_and_bad_input_writes_nothing(product):
    apply = changeable(TokenProduct).appliers["multiplier"]
    with pytest.raises(CustodyError):
        apply(product, Decimal("-1"), actor="user:ops", reason="bad")
    assert not ChainOperation.objects.exists()
    apply(product, Decimal("1.25"), actor="user:ops", reason="dividend")
    assert ChainOperation.objects.filter(kind="multiplier", chain="solana").count() == 1
    assert TokenProduct.objects.get(pk=product.pk).multiplier == Decimal("1.25")


@pytest.mark.django_db
def test_on_evm_the_token_publishes_the_multiplier_once_per_reference(product):
    from chains.evm import evm_chain, multiplier_scaled, ref_bytes
    from chains.services import token_deploy
    from chains.signers import dev_signer, signer_for

    evm = evm_chain("ethereum")
    token = token_deploy(chain=evm, name="Apple tokenized share", symbol="AAPLx", decimals=18)
    ChainDeployment.objects.filter(product=product, chain="ethereum").update(address=token)
    assert evm.multiplier_scaled(token) == 10**18
    product_multiplier_change(product=product, multiplier=Decimal("1.000000000000000001"), reason="dividend",
                              actor="user:ops")
    op = ChainOperation.objects.get(kind="multiplier", chain="ethereum")
    executor.execute_pending(chain_name="ethereum")
    op.refresh_from_db()
    assert op.status in ("broadcast", "confirmed") and evm.wait_for_receipt(op.tx_hash).succeeded
    assert evm.multiplier_scaled(token) == multiplier_scaled(Decimal("1.000000000000000001")) == 10**18 + 1
    assert evm.ref_multiplier_applied(token, ref_bytes(op.request_reference))
    logs = evm.token(token).events.MultiplierUpdated.get_logs(from_block=0)
    assert [(log["args"]["previousMultiplier"], log["args"]["newMultiplier"]) for log in logs] == [(10**18, 10**18 + 1)]
    # The token itself refuses the same reference again, and anyone without MULTIPLIER_ROLE.
    operator = signer_for("ethereum", "operator").address
    assert evm.call_reverts(sender=operator, token=token, function="setMultiplier",
                            args=[5 * 10**18, ref_bytes(op.request_reference)]) is not None
    assert evm.call_reverts(sender=operator, token=token, function="setMultiplier",
                            args=[5 * 10**18, ref_bytes("multiplier-other")]) is None
    assert evm.call_reverts(sender=dev_signer(5).address, token=token, function="setMultiplier",
                            args=[5 * 10**18, ref_bytes("multiplier-other")]) is not None
