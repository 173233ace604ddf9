"""Mints and redemptions on a real chain (the test profile's anvil), through the API and a real Celery
worker: the executor mints and burns, the watcher sees the market maker's `redeem`, and the figures
are read from the chain with web3, never from our tables."""

from __future__ import annotations

import pytest

from chains.evm import evm_chain, ref_bytes
from chains.signers import redemption_vault
from ledger import integrity, selectors
from mint_redeem import services
from mint_redeem.models import ChainOperation, DepositCase, MintRequest, Redemption
from mint_redeem.tasks import advance_request

from .conftest import holder_of, wait_for
from .test_end_to_end import mint_state, redemption_state, settle_all_fills

pytestmark = [pytest.mark.celery]


def tokens_outstanding() -> int:
    return selectors.balance(account="tokens/ethereum/AAPLx", asset="tok:AAPLx:ethereum").posted


def test_cash_and_in_kind_mints_end_minted_with_the_tokens_in_the_wallet(
        committed, celery_worker_process, evm_market, mm, api, operations):
    evm = evm_chain("ethereum")
    wallet = mm.wallets["ethereum"]
    cash = api.post("/api/v1/mints", {"product": "AAPLx", "chain": "ethereum", "quantity": "10",
                                      "wallet": wallet.pk, "funding": "cash"}).json()
    in_kind = api.post("/api/v1/mints", {"product": "AAPLx", "chain": "ethereum", "quantity": "2.5",
                                         "wallet": wallet.pk, "funding": "in_kind"}).json()
    services.mint_cash_record(mint=MintRequest.objects.get(pk=cash["id"]), amount_cents=cash["cash_due_cents"],
                              reference="WIRE-1", user=operations)
    assert wait_for(lambda: mint_state(api, cash["id"]), lambda m: m["state"] == "settling")["state"] == "settling"
    services.mint_shares_receive(mint=MintRequest.objects.get(pk=in_kind["id"]), custodian_confirmation="BNY-1",
                                 user=operations)
    settle_all_fills()
    advance_request.delay("mint", cash["id"])

    for mint in (cash, in_kind):
        final = wait_for(lambda mint=mint: mint_state(api, mint["id"]), lambda m: m["state"] == "minted")
        assert final["state"] == "minted", (final, celery_worker_process.log_path)
        assert final["events"][-1]["data"]["refs"]["tx_hash"] == ChainOperation.objects.get(
            request_reference=f"mint-{mint['id']}").tx_hash
        assert evm.ref_minted(evm_market.token, ref_bytes(f"mint-{mint['id']}"))
    expected = 10 * 10**18 + 25 * 10**17
    assert evm.balance_of(evm_market.token, wallet.address) == expected  # read from the chain
    assert evm.total_supply(evm_market.token) == expected == tokens_outstanding()
    assert integrity.verify() == []


def test_a_redemption_redeemed_on_chain_is_burned_and_paid_out(
        committed, celery_worker_process, evm_market, mm, api, operations):
    from chains.tasks import watch_redemptions

    evm = evm_chain("ethereum")
    wallet = mm.wallets["ethereum"]
    mint = api.post("/api/v1/mints", {"product": "AAPLx", "chain": "ethereum", "quantity": "4",
                                      "wallet": wallet.pk, "funding": "in_kind"}).json()
    services.mint_shares_receive(mint=MintRequest.objects.get(pk=mint["id"]), custodian_confirmation="BNY-2",
                                 user=operations)
    assert wait_for(lambda: mint_state(api, mint["id"]), lambda m: m["state"] == "minted")["state"] == "minted"
    supply_before = evm.total_supply(evm_market.token)

    body = api.post("/api/v1/redemptions", {"product": "AAPLx", "chain": "ethereum", "quantity": "3",
                                            "wallet": wallet.pk, "payout": "cash"}).json()
    assert body["redemption_address"] == redemption_vault("ethereum")
    instructions = body["redeem_on_chain"]
    assert instructions["token"] == evm_market.token and instructions["ref"] == "0x" + ref_bytes(
        f"redemption-{body['id']}").hex() and instructions["amount"] == str(3 * 10**18)

    # The market maker redeems with its own key, as the instructions say.
    holder = holder_of(mm)
    signed = evm.sign_call(signer=holder, token=evm_market.token, function=instructions["function"],
                           args=[int(instructions["amount"]), bytes.fromhex(instructions["ref"][2:])],
                           nonce=evm.pending_nonce(holder.address))
    evm.send_raw(signed)
    assert evm.wait_for_receipt(signed.tx_hash).succeeded
    watch_redemptions.delay("ethereum")  # what the beat does every few seconds

    settling = wait_for(lambda: redemption_state(api, body["id"]), lambda r: r["state"] == "settling")
    assert settling["state"] == "settling", (settling, celery_worker_process.log_path)
    redemption = Redemption.objects.get(pk=body["id"])
    assert redemption.deposit_tx == signed.tx_hash
    assert evm.ref_burned(evm_market.token, ref_bytes(redemption.stream))
    assert evm.total_supply(evm_market.token) == supply_before - 3 * 10**18 == tokens_outstanding()
    assert evm.balance_of(evm_market.token, redemption_vault("ethereum")) == 0

    settle_all_fills()
    advance_request.delay("redemption", redemption.pk)
    assert wait_for(lambda: redemption_state(api, redemption.pk), lambda r: r["state"] == "settled")["state"] == "settled"
    services.redemption_payout_record(redemption=redemption, bank_reference="WIRE-OUT-1", user=operations)
    assert redemption_state(api, redemption.pk)["state"] == "paid_out"
    assert integrity.verify() == []


def test_a_deposit_that_matches_no_request_opens_a_case_and_is_never_burned(
        committed, celery_worker_process, evm_market, mm, api, operations):
    from chains.observers import redemptions_watch

    evm = evm_chain("ethereum")
    wallet = mm.wallets["ethereum"]
    mint = api.post("/api/v1/mints", {"product": "AAPLx", "chain": "ethereum", "quantity": "2",
                                      "wallet": wallet.pk, "funding": "in_kind"}).json()
    services.mint_shares_receive(mint=MintRequest.objects.get(pk=mint["id"]), custodian_confirmation="BNY-3",
                                 user=operations)
    assert wait_for(lambda: mint_state(api, mint["id"]), lambda m: m["state"] == "minted")["state"] == "minted"
    body = api.post("/api/v1/redemptions", {"product": "AAPLx", "chain": "ethereum", "quantity": "1",
                                            "wallet": wallet.pk, "payout": "cash"}).json()
    holder = holder_of(mm)
    for amount, ref in ((5 * 10**17, f"redemption-{body['id']}"), (10**17, "redemption-999999")):
        signed = evm.sign_call(signer=holder, token=evm_market.token, function="redeem",
                               args=[amount, ref_bytes(ref)], nonce=evm.pending_nonce(holder.address))
        evm.send_raw(signed)
        assert evm.wait_for_receipt(signed.tx_hash).succeeded
    redemptions_watch(chain_name="ethereum")
    redemptions_watch(chain_name="ethereum")  # a second scan hands nothing on twice

    cases = list(DepositCase.objects.order_by("pk"))
    assert [(c.reference, int(c.amount_base_units)) for c in cases] == [
        (f"redemption-{body['id']}", 5 * 10**17), ("redemption-999999", 10**17)]
    assert "expects" in cases[0].problem and "no redemption" in cases[1].problem
    assert Redemption.objects.get(pk=body["id"]).state == "requested"
    assert not ChainOperation.objects.filter(kind="burn").exists()
    assert evm.balance_of(evm_market.token, redemption_vault("ethereum")) == 6 * 10**17  # kept, not burned
