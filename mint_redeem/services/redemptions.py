"""Every way a redemption changes: create, receive tokens, burn, sell (with retries), settle, pay out or
deliver in kind, cancel, fail.

After the burn the participant is owed the tokens' value, and nothing may leave a redemption waiting
with nobody to move it:
- A sell order that ends with shares unsold (rejected, expired, cancelled, part-filled) records what it
  sold and goes back to `burned`, where the next order sells the rest; after MAX_AUTOMATIC_ORDERS
  orders it waits in `sale_failed` for operations to retry the sale or fail the redemption.
- A payout that cannot be made stays in `settled` (operations retry it) or is failed by operations.
- A redemption failed after its burn leaves the value owed on the ledger: the proceeds of what was
  sold are posted to the participant's cash (owed to them), and `shares_owed_nano` on the failure event
  names the shares still held for them in custody.
"""

from __future__ import annotations

from django.db import transaction
from django.utils import timezone

from compliance import gates
from compliance import services as compliance_services
from compliance.models import Participant
from config import sql, transactions
from custody import services as custody_services
from custody.models import BrokerOrder, ChainDeployment
from ledger.postings import Line
from ledger.services import NewEvent
from mint_redeem.lifecycle import MAX_AUTOMATIC_ORDERS
from mint_redeem.models import ChainOperation, ProductTerms, Redemption
from mint_redeem.services import accounts, chain, trading
from mint_redeem.services.approvals import assert_approved_if_needed, assert_not_the_approver
from mint_redeem.services.mints import request_context
from mint_redeem.services.quoting import RequestError
from mint_redeem.services.transitions import append_to_stream, lock, notify, transition


def redemption_request_create(*, participant: Participant, product_symbol: str, chain: str, quantity: str,
                              wallet_id: int, payout: str, actor: str, idempotency_key: str = "") -> Redemption:
    if payout not in Redemption.Payout.values:
        raise RequestError("payout must be \"cash\" or \"in_kind\"", code="invalid_payout", retryable=False)
    q, wallet, endpoint_ids = request_context(participant, product_symbol, chain, quantity, wallet_id)
    if not q.terms.redemption_addresses.get(chain):
        raise RequestError(f"no redemption address is configured for {q.product.symbol} on {chain}",
                           code="product_not_offered")
    with transactions.step():
        now = timezone.now()
        redemption = sql.insert(Redemption(
            participant_id=participant.pk, product=q.product, chain=chain, wallet=wallet,
            quantity_nano=q.quantity_nano, token_base_units=q.token_base_units, notional_cents=q.notional_cents,
            payout=payout, state="requested", needs_approval=q.notional_cents > q.terms.approval_threshold_cents,
            version=1, delivery_account=accounts.participant_shares(participant.pk)
            if payout == Redemption.Payout.IN_KIND else "", idempotency_key=idempotency_key[:200],
            created_by=actor, created_at=now, updated_at=now))
        gates.assert_may_transact_and_reserve(participant=participant, wallet=wallet,
                                              notional_cents=q.notional_cents, reference=redemption.stream)
        notify(redemption, event_type="redemption.requested", previous_state="", endpoint_ids=endpoint_ids)
        append_to_stream(redemption, [NewEvent(stream=redemption.stream, type="redemption.requested", data={
            "redemption_id": redemption.pk, "participant_id": participant.pk, "product": q.product.symbol,
            "chain": chain, "wallet_address": wallet.address, "quantity_nano": q.quantity_nano,
            "token_base_units": q.token_base_units, "payout": payout, "notional_cents": q.notional_cents,
            "needs_approval": redemption.needs_approval})], actor=actor, expected_version=0, savepoint=False)
    return redemption


def redemption_address(redemption: Redemption) -> str:
    return ProductTerms.objects.get(product=redemption.product).redemption_addresses.get(redemption.chain, "")


def redemption_instructions(redemption: Redemption) -> dict | None:
    """How the market maker hands the tokens over: on an EVM chain `redeem(amount, ref)` on the token,
    which moves them to the vault with the request's reference (the watcher matches by it); on Solana a
    transfer to the redemption token account with the reference in a Memo. None elsewhere."""
    from chains.config import evm_chain_names, solana_chain_names
    from chains.evm import ref_bytes

    token = ChainDeployment.objects.filter(product=redemption.product_id, chain=redemption.chain).values_list(
        "address", flat=True).first() or ""
    if redemption.chain in solana_chain_names():
        return _solana_instructions(redemption, mint=token)
    if redemption.chain not in evm_chain_names():
        return None
    return {"token": token, "function": "redeem", "signature": "redeem(uint256,bytes32)",
            "amount": str(int(redemption.token_base_units)), "ref": "0x" + ref_bytes(redemption.stream).hex(),
            "vault": redemption_address(redemption)}


def _solana_instructions(redemption: Redemption, *, mint: str) -> dict | None:
    """Solana: one transaction from the wallet with a Token-2022 `transfer_checked` of `amount` to
    `destination` (the redemption address's associated token account for the mint) and a Memo
    instruction carrying `memo`, which the watcher matches."""
    from chains.solana import solana_chain

    owner = redemption_address(redemption)
    if not mint or not owner:
        return None
    decimals = ChainDeployment.objects.values_list("decimals", flat=True).get(product=redemption.product_id,
                                                                             chain=redemption.chain)
    return {"mint": mint, "instruction": "transfer_checked", "token_program": "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb",
            "destination": str(solana_chain(redemption.chain).ata(owner, mint)), "destination_owner": owner,
            "amount": str(int(redemption.token_base_units)), "decimals": decimals, "memo": redemption.stream}


def redemption_cancel(*, redemption: Redemption, actor: str, reason: str) -> Redemption:
    with transaction.atomic():
        redemption = lock(redemption)
        compliance_services.notional_usage_release(reference=redemption.stream)
        transition(redemption, "cancel", actor=actor, reason=reason or "cancelled")
    return redemption


def redemption_tokens_receive(*, redemption: Redemption, tx_hash: str, actor: str) -> Redemption:
    """The tokens reached the redemption address (the deposit watcher or operations saw it confirmed):
    gate again (status, sanctions, wallet; the daily cap was charged when the request was made), then
    write the burn to the outbox."""
    with transaction.atomic():
        redemption = lock(redemption)
        assert_not_the_approver(redemption, actor=actor)
        transition(redemption, "receive_tokens", actor=actor, refs={"tx_hash": tx_hash},
                   update_fields={"deposit_tx": tx_hash})
        try:
            gates.assert_may_continue(participant=redemption.participant, wallet=redemption.wallet)
        except gates.ComplianceRefusal as refusal:
            transition(redemption, "fail", actor=actor, reason=f"compliance: {refusal.code}",
                       amounts={"tokens_owed_base_units": int(redemption.token_base_units)})
            return redemption
        chain.chain_operation_create(kind=ChainOperation.Kind.BURN, request=redemption,
                                     address=redemption_address(redemption))
        transition(redemption, "start_burning", actor=actor, refs={"compliance": "passed"})
    return redemption


def redemption_confirm_burn(*, redemption: Redemption, tx_hash: str, actor: str) -> Redemption:
    """The chain executor saw the burn's broadcast transaction confirmed: the tokens are no longer outstanding."""
    with transaction.atomic():
        redemption = lock(redemption)
        chain.confirmation_accept(redemption, tx_hash=tx_hash, state="burning")
        product, chain_name = redemption.product, redemption.chain
        amount = int(redemption.token_base_units)
        transition(redemption, "confirm_burn", actor=actor, refs={"tx_hash": tx_hash}, postings=[
            *_token_move(product.tokens_account(chain_name), accounts.issuance_account(chain_name, product.symbol),
                         product.token_asset(chain_name), amount)])
    return redemption


def _token_move(credit: str, debit: str, asset: str, amount: int) -> list[Line]:
    return [Line(credit, asset, -amount), Line(debit, asset, amount)]


def redemption_shares_deliver(*, redemption: Redemption, custodian_confirmation: str, user) -> Redemption:
    with transaction.atomic():
        redemption = lock(redemption)
        assert_not_the_approver(redemption, actor=f"user:{user.pk}")
        if redemption.state == "burned":
            assert_approved_if_needed(redemption)
        terms = ProductTerms.objects.select_related("custodian").get(product=redemption.product)
        events = transition(redemption, "deliver_shares", actor=f"user:{user.pk}",
                            refs={"custodian_confirmation": custodian_confirmation}, append_events=False)
        custody_services.shares_deliver_in_kind(
            custodian=terms.custodian, security=redemption.product.security, quantity_nano=redemption.quantity_nano,
            to_account=redemption.delivery_account, reference=redemption.stream,
            custodian_confirmation=custodian_confirmation, actor=f"user:{user.pk}", extra_events=events)
    return redemption


def redemption_payout_record(*, redemption: Redemption, bank_reference: str, user) -> Redemption:
    with transaction.atomic():
        redemption = lock(redemption)
        assert_not_the_approver(redemption, actor=f"user:{user.pk}")
        transition(redemption, "pay_out", actor=f"user:{user.pk}", refs={"bank_reference": bank_reference},
                   postings=accounts.cash_paid_out(redemption.participant_id, redemption.proceeds_cents or 0))
    return redemption


def redemption_sale_retry(*, redemption: Redemption, user) -> Redemption:
    """Operations send the unsold shares of a `sale_failed` redemption to the broker again."""
    with transaction.atomic():
        redemption = lock(redemption)
        transition(redemption, "retry_sale", actor=f"user:{user.pk}")
    return redemption


def redemption_fail(*, redemption: Redemption, actor: str, reason: str) -> Redemption:
    """Stop a redemption that cannot complete; what the participant is owed stays on the ledger."""
    with transaction.atomic():
        redemption = lock(redemption)
        data: dict = {}
        postings: list = []
        if redemption.state in ("tokens_received", "burning"):
            chain.assert_not_in_flight(redemption)
            chain.chain_operation_abandon(redemption, reason=reason)
            data["tokens_owed_base_units"] = int(redemption.token_base_units)  # still at the redemption address
        elif redemption.state in ("burned", "sale_failed"):
            sold = redemption.sold_quantity_nano
            data["shares_owed_nano"] = redemption.quantity_nano - sold
            data["owed_cents"] = redemption.proceeds_cents or 0
            postings = accounts.cash_received(redemption.participant_id, redemption.proceeds_cents or 0)
        elif redemption.state == "settled":
            data["owed_cents"] = redemption.proceeds_cents or 0  # posted to their cash at settlement
        transition(redemption, "fail", actor=actor, reason=reason, postings=postings, amounts=data)
    return redemption


def redemption_advance(*, redemption: Redemption, actor: str, now=None) -> Redemption:
    """Take every automatic step that is due now; safe to call any number of times, from any process."""
    now = now or timezone.now()
    if _state(redemption) == "burned":
        order = _claim_sale(redemption, actor=actor, now=now)
        if order is not None:
            custody_services.order_submit(order=order, actor=actor)
    if _state(redemption) == "order_placed":
        trading.on_order_done(Redemption.objects.get(pk=redemption.pk), actor=actor,
                              then=lambda locked, outcome: _record_sale(locked, outcome, actor=actor))
    if _state(redemption) == "settling":
        with transaction.atomic():
            redemption = lock(redemption)
            if redemption.state == "settling" and trading.fills_settled(order_ids=_order_ids(redemption)):
                proceeds = redemption.proceeds_cents or 0
                # The sale's proceeds reach the bank at settlement and are owed to the participant.
                transition(redemption, "settle", actor=actor,
                           postings=accounts.cash_received(redemption.participant_id, proceeds))
    return Redemption.objects.get(pk=redemption.pk)


def _state(redemption: Redemption) -> str:
    return Redemption.objects.values_list("state", flat=True).get(pk=redemption.pk)


def _client_order_id(redemption: Redemption, attempt: int) -> str:
    return redemption.stream if attempt == 1 else f"{redemption.stream}.{attempt}"


def _order_ids(redemption: Redemption) -> list[int]:
    client_ids = [_client_order_id(redemption, n) for n in range(1, redemption.order_attempts + 1)]
    return list(BrokerOrder.objects.filter(client_order_id__in=client_ids).values_list("pk", flat=True))


def _claim_sale(redemption: Redemption, *, actor: str, now) -> BrokerOrder | None:
    with transaction.atomic():
        redemption = lock(redemption)
        if redemption.state != "burned" or redemption.in_kind:
            return None
        terms = ProductTerms.objects.select_related("broker").get(product=redemption.product)
        if not trading.may_place_order(redemption, terms, now):
            return None
        attempt = redemption.order_attempts + 1
        return trading.order_claim(redemption, terms=terms, side="sell",
                                   quantity_nano=redemption.quantity_nano - redemption.sold_quantity_nano,
                                   client_order_id=_client_order_id(redemption, attempt), actor=actor,
                                   update_fields={"order_attempts": attempt})


def _record_sale(redemption: Redemption, outcome: trading.OrderOutcome, *, actor: str) -> None:
    sold = redemption.sold_quantity_nano + outcome.quantity_nano
    proceeds = (redemption.proceeds_cents or 0) + outcome.gross_cents - outcome.broker_fee_cents
    refs = {"order_id": outcome.order.pk, "sold_nano": outcome.quantity_nano, "proceeds_cents": proceeds}
    figures = {"sold_quantity_nano": sold, "proceeds_cents": proceeds}
    if sold == redemption.quantity_nano:
        transition(redemption, "fill", actor=actor, refs=refs, update_fields=figures)
        settles_on = max(trading.settlement_dates(order_ids=_order_ids(redemption)))
        transition(redemption, "start_settling", actor=actor, refs={"settlement_date": settles_on})
        return
    reason = f"sell order {outcome.order.status} with {redemption.quantity_nano - sold} nano-shares unsold"
    if redemption.order_attempts % MAX_AUTOMATIC_ORDERS == 0:
        transition(redemption, "give_up_order", actor=actor, refs=refs, reason=reason, update_fields=figures)
    else:
        transition(redemption, "retry_order", actor=actor, refs=refs, reason=reason, update_fields=figures)
