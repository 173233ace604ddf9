"""Mints and redemptions on Solana (the test profile's local RPC over LiteSVM), through the API and a
real Celery worker: the executor mints Token-2022 into the wallet's associated token account and burns
from the redemption account, the watcher sees the market maker's transfer with its Memo, and every
figure is read from the chain with the `solana` client, never from our tables. The wallet was proven
with an Ed25519 signature of its challenge (compliance), as a Solana wallet signs."""

from __future__ import annotations

import asyncio

import pytest
from solders.message import Message
from solders.pubkey import Pubkey
from solders.transaction import Transaction
from spl.token.constants import TOKEN_2022_PROGRAM_ID
from spl.token.instructions import transfer_checked
from spl.token.models import TransferCheckedParams

from chains.solana import solana_chain
from ledger import integrity, selectors
from mint_redeem import services
from mint_redeem.models import ChainOperation, DepositCase, MintRequest, Redemption
from mint_redeem.tasks import advance_request

from .conftest import wait_for
from .test_end_to_end import mint_state, redemption_state, settle_all_fills

pytestmark = [pytest.mark.celery]
SHARE = 10**9  # base units per token: the product has 9 decimals on Solana


def tokens_outstanding() -> int:
    return selectors.balance(account="tokens/solana/AAPLx", asset="tok:AAPLx:solana").posted


def mint_in_kind(api, mm, operations, quantity: str, confirmation: str) -> dict:
    wallet = mm.wallets["solana"]
    body = api.post("/api/v1/mints", {"product": "AAPLx", "chain": "solana", "quantity": quantity,
                                      "wallet": wallet.pk, "funding": "in_kind"}).json()
    services.mint_shares_receive(mint=MintRequest.objects.get(pk=body["id"]), custodian_confirmation=confirmation,
                                 user=operations)
    final = wait_for(lambda: mint_state(api, body["id"]), lambda m: m["state"] == "minted")
    assert final["state"] == "minted", final
    return final


def transfer_with_memo(mm, instructions: dict, *, amount: int | None = None, memo: str | None = None) -> str:
    """The market maker sends the tokens from its own wallet with its own key, as the API says."""
    chain = solana_chain()
    key = mm.wallet_keys["solana"]
    chain.fund(key.pubkey(), lamports=10**9)
    mint = Pubkey.from_string(instructions["mint"])
    ix = transfer_checked(TransferCheckedParams(
        program_id=TOKEN_2022_PROGRAM_ID, source=chain.ata(key.pubkey(), mint), mint=mint,
        dest=Pubkey.from_string(instructions["destination"]), owner=key.pubkey(),
        amount=amount if amount is not None else int(instructions["amount"]), decimals=instructions["decimals"]))
    blockhash, _ = chain.latest_blockhash()
    tx = Transaction([key], Message([ix, chain.memo(memo or instructions["memo"], signer=key.pubkey())], key.pubkey()),
                     blockhash)
    signature = chain.send(bytes(tx))
    assert not chain.wait(signature).failed
    return signature


def test_cash_and_in_kind_mints_on_solana_end_minted_with_the_tokens_in_the_wallets_ata(
        committed, celery_worker_process, solana_market, mm, api, operations):
    chain = solana_chain()
    wallet = mm.wallets["solana"]
    cash = api.post("/api/v1/mints", {"product": "AAPLx", "chain": "solana", "quantity": "10",
                                      "wallet": wallet.pk, "funding": "cash"}).json()
    services.mint_cash_record(mint=MintRequest.objects.get(pk=cash["id"]), amount_cents=cash["cash_due_cents"],
                              reference="WIRE-S1", user=operations)
    assert wait_for(lambda: mint_state(api, cash["id"]), lambda m: m["state"] == "settling")["state"] == "settling"
    settle_all_fills()
    advance_request.delay("mint", cash["id"])
    in_kind = mint_in_kind(api, mm, operations, "2.5", "BNY-S1")
    final = wait_for(lambda: mint_state(api, cash["id"]), lambda m: m["state"] == "minted")
    assert final["state"] == "minted", (final, celery_worker_process.log_path)
    for body in (final, in_kind):
        operation = ChainOperation.objects.get(request_reference=f"mint-{body['id']}")
        assert body["events"][-1]["data"]["refs"]["tx_hash"] == operation.tx_hash
        assert operation.last_valid_block_height is not None

    expected = 10 * SHARE + 25 * SHARE // 10
    # Read from the chain: the wallet's associated token account and the mint's supply.
    answer = asyncio.run(_balance_with_the_client(chain.config.rpc_url, wallet.address, solana_market.mint))
    assert answer == expected == chain.balance(wallet.address, solana_market.mint)
    assert chain.supply(solana_market.mint)[0] == expected == tokens_outstanding()
    assert integrity.verify() == []


async def _balance_with_the_client(url: str, owner: str, mint: str) -> int:
    from solana.rpc.async_api import AsyncClient
    from solana.rpc.commitment import Confirmed
    from spl.token.instructions import get_associated_token_address

    async with AsyncClient(url) as client:
        ata = get_associated_token_address(Pubkey.from_string(owner), Pubkey.from_string(mint), TOKEN_2022_PROGRAM_ID)
        return int((await client.get_token_account_balance(ata, Confirmed)).value.amount)


def test_a_redemption_on_solana_is_burned_and_paid_out_with_supply_down_by_exactly_that(
        committed, celery_worker_process, solana_market, mm, api, operations):
    from chains.tasks import watch_redemptions

    chain = solana_chain()
    wallet = mm.wallets["solana"]
    mint_in_kind(api, mm, operations, "4", "BNY-S2")
    supply_before = chain.supply(solana_market.mint)[0]

    body = api.post("/api/v1/redemptions", {"product": "AAPLx", "chain": "solana", "quantity": "3",
                                            "wallet": wallet.pk, "payout": "cash"}).json()
    instructions = body["redeem_on_chain"]
    assert instructions["mint"] == solana_market.mint and instructions["memo"] == f"redemption-{body['id']}"
    assert instructions["amount"] == str(3 * SHARE) and instructions["decimals"] == 9
    signature = transfer_with_memo(mm, instructions)
    watch_redemptions.delay("solana")  # what the beat does every few seconds

    settling = wait_for(lambda: redemption_state(api, body["id"]), lambda r: r["state"] == "settling")
    assert settling["state"] == "settling", (settling, celery_worker_process.log_path)
    redemption = Redemption.objects.get(pk=body["id"])
    assert redemption.deposit_tx == signature
    assert chain.supply(solana_market.mint)[0] == supply_before - 3 * SHARE == tokens_outstanding()
    assert chain.balance(instructions["destination_owner"], solana_market.mint) == 0
    assert chain.balance(wallet.address, solana_market.mint) == SHARE

    settle_all_fills()
    advance_request.delay("redemption", redemption.pk)
    assert wait_for(lambda: redemption_state(api, redemption.pk), lambda r: r["state"] == "settled")["state"] == "settled"
    services.redemption_payout_record(redemption=redemption, bank_reference="WIRE-OUT-S1", user=operations)
    assert redemption_state(api, redemption.pk)["state"] == "paid_out"
    assert integrity.verify() == []


def test_a_solana_deposit_that_matches_no_request_opens_a_case_and_is_never_burned(
        committed, celery_worker_process, solana_market, mm, api, operations):
    from chains.watcher_solana import redemptions_watch

    chain = solana_chain()
    wallet = mm.wallets["solana"]
    mint_in_kind(api, mm, operations, "2", "BNY-S3")
    body = api.post("/api/v1/redemptions", {"product": "AAPLx", "chain": "solana", "quantity": "1",
                                            "wallet": wallet.pk, "payout": "cash"}).json()
    instructions = body["redeem_on_chain"]
    transfer_with_memo(mm, instructions, amount=SHARE // 2)  # the right memo, the wrong amount
    transfer_with_memo(mm, instructions, amount=SHARE // 10, memo="redemption-999999")
    redemptions_watch(chain_name="solana")
    redemptions_watch(chain_name="solana")  # a second scan hands nothing on twice

    cases = list(DepositCase.objects.order_by("pk"))
    assert [(c.reference, int(c.amount_base_units)) for c in cases] == [
        (f"redemption-{body['id']}", SHARE // 2), ("redemption-999999", SHARE // 10)]
    assert "expects" in cases[0].problem and "no redemption" in cases[1].problem
    assert Redemption.objects.get(pk=body["id"]).state == "requested"
    assert not ChainOperation.objects.filter(kind="burn").exists()
    assert chain.balance(instructions["destination_owner"], solana_market.mint) == 6 * SHARE // 10  # kept
