"""Every way a mint changes: create, fund, order, fill, settle, top up, mint on chain, confirm, cancel, fail.

Money rules (the README's "Cash mints, to the cent"):
- A cash mint asks for `cash_due` (notional at the reference price + buffer + the issuer's fee).
- When its order is done, the shares' cost (fills + broker commission) and the issuer's fee (pro rata
  to what was bought) are posted; what is left of the cash is refunded when minting starts, so
  `cash received = cost + fee + refund`, to the cent.
- A cost + fee above the cash received does not go on chain: the mint waits in `topup_due` until
  operations record the shortfall as received.
- An order that ends part-filled (a DAY order expiring, a cancel) goes on for what was bought: the
  request's quantity and tokens become the bought shares (tokens rounded down to a whole base unit; a
  remainder below one base unit stays in custody as the issuer's surplus). An order that ends with
  nothing bought fails the mint and refunds all the cash.
- A mint that fails after its shares were bought (a compliance refusal before minting, an unpaid
  top-up, a person's decision) keeps what it cost and the fee; the rest of the cash is refunded and the
  shares stay in custody, owed to the participant in kind (`shares_owed_nano` on the failure event).
"""

from __future__ import annotations

import math

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from compliance import gates
from compliance import services as compliance_services
from compliance.models import Participant
from config import sql, transactions
from config.logging import current_correlation_id
from custody import services as custody_services
from custody.models import BrokerOrder, ChainDeployment
from custody.reserves import assert_mint_covered
from ledger.postings import PendingOpen, PendingPost, PendingVoid
from ledger.services import NewEvent, append
from mint_redeem import selectors
from mint_redeem.lifecycle import MintLifecycle, next_state
from mint_redeem.models import ChainOperation, MintRequest, ProductTerms
from mint_redeem.services import accounts, chain, trading
from mint_redeem.services.approvals import assert_not_the_approver
from mint_redeem.services.quoting import RequestError, base_units_of, cash_split, fee_for_bought, quote
from mint_redeem.services.transitions import append_to_stream, lock, notify, transition

# States in which the mint holds the participant's cash (refunded, in whole or in part, if it fails).
HOLDS_CASH = ("funded", "order_placed", "filled", "settling", "settled", "topup_due")


def request_context(participant: Participant, product_symbol: str, chain_name: str, quantity: str,
                    wallet_id: int):
    """Quote the request and find the caller's wallet for it (one read, before the transaction)."""
    found = selectors.request_context(product_symbol=product_symbol, chain=chain_name,
                                      participant_id=participant.pk, wallet_id=wallet_id)
    q = quote(found, product_symbol=product_symbol, chain=chain_name, quantity=quantity)
    wallet = found.wallet
    if wallet is None:
        raise RequestError("unknown wallet", code="unknown_wallet", http_status=404)
    if wallet.chain != chain_name:
        raise RequestError(f"wallet {wallet_id} is on {wallet.chain}, not {chain_name}",
                           code="wallet_chain_mismatch", retryable=False)
    return q, wallet, found.webhook_endpoint_ids


def mint_request_create(*, participant: Participant, product_symbol: str, chain: str, quantity: str,
                        wallet_id: int, funding: str, actor: str, idempotency_key: str = "") -> MintRequest:
    if funding not in MintRequest.Funding.values:
        raise RequestError("funding must be \"cash\" or \"in_kind\"", code="invalid_funding", retryable=False)
    q, wallet, endpoint_ids = request_context(participant, product_symbol, chain, quantity, wallet_id)
    if q.minting_paused:
        raise RequestError(f"minting of {q.product.symbol} is paused", code="minting_paused", http_status=409)
    cash = funding == MintRequest.Funding.CASH
    # A cash mint counts against the caps with all the cash it asks for; an in-kind one with its notional.
    notional = q.cash_due_cents if cash else q.notional_cents
    with transactions.step():
        # Requested and accepted in one step (the gate passes below), so the row is written once.
        accepted = next_state(MintLifecycle, "requested", "accept", in_kind=not cash)
        now = timezone.now()
        mint = sql.insert(MintRequest(
            participant_id=participant.pk, product=q.product, chain=chain, wallet=wallet,
            quantity_nano=q.quantity_nano, token_base_units=q.token_base_units, notional_cents=notional,
            funding=funding, cash_due_cents=q.cash_due_cents if cash else 0, fee_cents=q.fee_cents if cash else 0,
            state=accepted, version=2, needs_approval=notional > q.terms.approval_threshold_cents,
            idempotency_key=idempotency_key[:200], created_by=actor, created_at=now, updated_at=now))
        gates.assert_may_transact_and_reserve(participant=participant, wallet=wallet, notional_cents=notional,
                                              reference=mint.stream)
        requested = NewEvent(stream=mint.stream, type="mint.requested", data={
            "mint_id": mint.pk, "participant_id": participant.pk, "product": q.product.symbol, "chain": chain,
            "wallet_address": wallet.address, "quantity_nano": q.quantity_nano,
            "token_base_units": q.token_base_units, "funding": funding, "notional_cents": notional,
            "cash_due_cents": mint.cash_due_cents, "fee_cents": mint.fee_cents,
            "needs_approval": mint.needs_approval})
        accept = NewEvent(stream=mint.stream, type=f"mint.{accepted}", data={
            "request_id": mint.pk, "from_state": "requested", "to_state": accepted,
            "reason": "compliance checks passed", "refs": {}})
        notify(mint, event_type=f"mint.{accepted}", previous_state="requested", endpoint_ids=endpoint_ids)
        append_to_stream(mint, [requested, accept], actor=actor, expected_version=0, savepoint=False)
    return mint


def _positive_cents(amount_cents) -> None:
    if isinstance(amount_cents, bool) or not isinstance(amount_cents, int) or amount_cents <= 0:
        raise RequestError("amount must be a positive integer of cents", code="invalid_amount")


def mint_cash_record(*, mint: MintRequest, amount_cents: int, reference: str, user) -> MintRequest:
    """Operations record the market maker's cash as received at the bank."""
    _positive_cents(amount_cents)
    with transaction.atomic():
        mint = lock(mint)
        assert_not_the_approver(mint, actor=f"user:{user.pk}")
        if amount_cents < mint.cash_due_cents:
            raise RequestError(f"{amount_cents} cents is less than the {mint.cash_due_cents} due",
                               code="insufficient_funding")
        transition(mint, "fund", actor=f"user:{user.pk}", refs={"bank_reference": reference},
                   postings=accounts.cash_received(mint.participant_id, amount_cents),
                   update_fields={"cash_received_cents": amount_cents, "funded_by": user})
    return mint


def mint_topup_record(*, mint: MintRequest, amount_cents: int, reference: str, user) -> MintRequest:
    """Operations record the top-up a mint in `topup_due` was waiting for; the mint then goes on chain."""
    _positive_cents(amount_cents)
    with transaction.atomic():
        mint = lock(mint)
        assert_not_the_approver(mint, actor=f"user:{user.pk}")
        shortfall = mint_shortfall_cents(mint)
        if mint.state == "topup_due" and amount_cents < shortfall:
            raise RequestError(f"{amount_cents} cents is less than the {shortfall} still due",
                               code="insufficient_funding", details={"shortfall_cents": shortfall})
        transition(mint, "receive_topup", actor=f"user:{user.pk}", refs={"bank_reference": reference},
                   amounts={"topup_cents": amount_cents, "shortfall_cents": shortfall},
                   postings=accounts.cash_received(mint.participant_id, amount_cents),
                   update_fields={"cash_received_cents": mint.cash_received_cents + amount_cents})
    return mint


def mint_shortfall_cents(mint: MintRequest) -> int:
    if mint.in_kind or mint.cost_cents is None:
        return 0
    return cash_split(cash_received_cents=mint.cash_received_cents, cost_cents=mint.cost_cents,
                      fee_cents=mint.fee_cents).shortfall_cents


def mint_cancel(*, mint: MintRequest, actor: str, reason: str) -> MintRequest:
    """Cancel before the order is claimed (requested, accepted, funded); refunds the cash received."""
    with transaction.atomic():
        mint = lock(mint)
        postings = accounts.cash_paid_out(mint.participant_id, mint.cash_received_cents) \
            if mint.state == "funded" else []
        compliance_services.notional_usage_release(reference=mint.stream)
        transition(mint, "cancel", actor=actor, reason=reason or "cancelled", postings=postings)
    return mint


def mint_fail(*, mint: MintRequest, actor: str, reason: str) -> MintRequest:
    """Stop a mint that cannot complete (the module's docstring says what happens to its cash and shares)."""
    with transaction.atomic():
        mint = lock(mint)
        _fail(mint, actor=actor, reason=reason)
    return mint


def _fail(mint: MintRequest, *, actor: str, reason: str) -> None:
    if mint.state == "order_placed":
        order = BrokerOrder.objects.get(pk=mint.broker_order_id)
        if order.status not in BrokerOrder.TERMINAL or order.filled_quantity_nano:
            raise RequestError(f"the broker order is {order.status}; cancel it at the broker first, its fills "
                               "are then recorded", code="order_in_flight", http_status=409)
    postings: list = []
    data: dict = {}
    bought = mint.cost_cents is not None
    if mint.state in HOLDS_CASH and not mint.in_kind:
        fee = mint.fee_cents if bought else 0
        split = cash_split(cash_received_cents=mint.cash_received_cents, cost_cents=mint.cost_cents or 0,
                           fee_cents=fee)
        postings += accounts.cash_paid_out(mint.participant_id, split.refund_cents)
        data["refund_cents"] = split.refund_cents
        if split.shortfall_cents:
            data["participant_owes_cents"] = split.shortfall_cents
    if bought or (mint.in_kind and mint.state in ("shares_received", "minting")):
        data["shares_owed_nano"] = mint.quantity_nano  # the shares stay in custody, owed to the participant
    if mint.state == "minting":
        chain.assert_not_in_flight(mint)
        postings.append(PendingVoid(f"tokens-{mint.stream}"))
        chain.chain_operation_abandon(mint, reason=reason)
    transition(mint, "fail", actor=actor, reason=reason, postings=postings, amounts=data)


def mint_shares_receive(*, mint: MintRequest, custodian_confirmation: str, user) -> MintRequest:
    """An in-kind mint's shares arrived at the custodian (operations record the confirmation)."""
    with transaction.atomic():
        mint = lock(mint)
        assert_not_the_approver(mint, actor=f"user:{user.pk}")
        terms = ProductTerms.objects.select_related("custodian").get(product=mint.product)
        events = transition(mint, "receive_shares", actor=f"user:{user.pk}",
                            refs={"custodian_confirmation": custodian_confirmation}, append_events=False)
        custody_services.shares_receive_in_kind(
            custodian=terms.custodian, security=mint.product.security, quantity_nano=mint.quantity_nano,
            from_account=accounts.participant_shares(mint.participant_id), reference=mint.stream,
            custodian_confirmation=custodian_confirmation, actor=f"user:{user.pk}", extra_events=events)
    return mint


def mint_advance(*, mint: MintRequest, actor: str, now=None) -> MintRequest:
    """Take every automatic step that is due now; safe to call any number of times, from any process."""
    now = now or timezone.now()
    state = MintRequest.objects.values_list("state", flat=True).get(pk=mint.pk)
    if state == "funded":
        order = _claim_order(mint, actor=actor, now=now)
        if order is not None:
            custody_services.order_submit(order=order, actor=actor)
    mint = MintRequest.objects.get(pk=mint.pk)
    if mint.state == "order_placed":
        trading.on_order_done(mint, actor=actor, then=lambda locked, outcome: _record_purchase(
            locked, outcome, actor=actor))
    if MintRequest.objects.values_list("state", flat=True).get(pk=mint.pk) == "settling":
        with transaction.atomic():
            mint = lock(mint)
            if mint.state == "settling" and trading.fills_settled(order_ids=[mint.broker_order_id]):
                transition(mint, "settle", actor=actor)
    if MintRequest.objects.values_list("state", flat=True).get(pk=mint.pk) in ("settled", "shares_received"):
        mint_start_minting(mint=mint, actor=actor)
    return MintRequest.objects.get(pk=mint.pk)


def _claim_order(mint: MintRequest, *, actor: str, now) -> BrokerOrder | None:
    """Claim the buy order under the mint's row lock; None if it is not due (or no longer funded)."""
    with transaction.atomic():
        mint = lock(mint)
        if mint.state != "funded":
            return None
        terms = ProductTerms.objects.select_related("broker").get(product=mint.product)
        if not trading.may_place_order(mint, terms, now):
            return None
        return trading.order_claim(mint, terms=terms, side="buy", quantity_nano=mint.quantity_nano,
                                   client_order_id=mint.stream, actor=actor)


def _record_purchase(mint: MintRequest, outcome: trading.OrderOutcome, *, actor: str) -> None:
    if outcome.quantity_nano == 0:
        _fail(mint, actor=actor, reason=f"broker order {outcome.order.status} with nothing bought: "
                                        f"{outcome.order.reject_reason}".rstrip(": "))
        return
    bought = outcome.quantity_nano
    decimals = ChainDeployment.objects.values_list("decimals", flat=True).get(product=mint.product, chain=mint.chain)
    # Floor: a remainder below one base unit stays in custody as surplus (never a token without a share).
    base_units = math.floor(base_units_of(bought, multiplier=mint.product.multiplier, decimals=decimals))
    cost = outcome.gross_cents + outcome.broker_fee_cents
    fee = fee_for_bought(quoted_fee_cents=mint.fee_cents, bought_nano=bought, ordered_nano=mint.quantity_nano) \
        if not mint.in_kind else 0
    transition(mint, "fill", actor=actor, refs={"order_id": outcome.order.pk, "order_status": outcome.order.status},
               amounts={"ordered_nano": mint.quantity_nano, "bought_nano": bought, "token_base_units": base_units},
               postings=[*accounts.cash_paid_out(mint.participant_id, cost),
                         *accounts.fee_charged(mint.participant_id, fee)],
               update_fields={"cost_cents": cost, "fee_cents": fee, "quantity_nano": bought,
                              "token_base_units": base_units})
    if base_units == 0:
        _fail(mint, actor=actor, reason="the shares bought are less than one token base unit")
        return
    transition(mint, "start_settling", actor=actor, refs={"settlement_date": outcome.settlement_date})


def mint_start_minting(*, mint: MintRequest, actor: str) -> MintRequest:
    """Gate again (status, sanctions, wallet), check coverage, reserve the tokens, refund the unspent
    cash and write the chain operation, atomically; or ask for a top-up first."""
    try:
        with transaction.atomic():
            mint = lock(mint)
            if mint.state not in ("settled", "shares_received"):
                return mint
            if mint.needs_approval and mint.approved_by_id is None:
                return mint  # an in-kind mint above the threshold waits for a second person, as cash ones do
            split = None
            if not mint.in_kind:
                split = cash_split(cash_received_cents=mint.cash_received_cents, cost_cents=mint.cost_cents or 0,
                                   fee_cents=mint.fee_cents)
                if split.shortfall_cents:
                    transition(mint, "request_topup", actor=actor, amounts={"shortfall_cents": split.shortfall_cents})
                    return mint
            gates.assert_may_continue(participant=mint.participant, wallet=mint.wallet)
            assert_mint_covered(product=mint.product, chain=mint.chain, quantity_base_units=int(mint.token_base_units))
            chain.chain_operation_create(kind=ChainOperation.Kind.MINT, request=mint, address=mint.wallet.address)
            refund = split.refund_cents if split else 0
            transition(mint, "start_minting", actor=actor, refs={"compliance": "passed"},
                       amounts={"refund_cents": refund}, postings=[
                           PendingOpen(f"tokens-{mint.stream}", debit=accounts.issuance_account(
                               mint.chain, mint.product.symbol), credit=mint.product.tokens_account(mint.chain),
                               asset=mint.product.token_asset(mint.chain), amount=int(mint.token_base_units)),
                           *accounts.cash_paid_out(mint.participant_id, refund)])
    except gates.ComplianceRefusal as refusal:
        # A participant or wallet blocked since the request was accepted: stop (cash and shares as stated).
        mint_fail(mint=mint, actor=actor, reason=f"compliance: {refusal.code}")
    return mint


def mints_confirm_on_chain(*, tx_hashes: dict[int, str], actor: str) -> list[int]:
    """`mint_confirm_on_chain` for every mint of one or more batch transactions (`tx_hashes`: mint id ->
    the transaction that minted it), in one database transaction: the rows locked in id order, each
    checked as alone, the rows written in one statement each (one per transaction for the operations)
    and every event in one ledger append. All or nothing: a mint that refuses raises (RequestError) and
    the caller confirms them one by one instead. Returns the ids confirmed."""
    mint_ids = list(tx_hashes)
    with transaction.atomic():
        mints = list(MintRequest.objects.select_for_update(of=("self",)).select_related("product", "wallet")
                     .filter(pk__in=mint_ids).order_by("pk"))
        if len(mints) != len(set(mint_ids)):
            raise RequestError("unknown mint in the batch", code="confirmation_refused", http_status=409)
        operations = {op.request_reference: op for op in ChainOperation.objects.select_for_update().filter(
            request_reference__in=[m.stream for m in mints])}
        endpoints = selectors.active_webhook_endpoint_ids_by_participant(
            participant_ids={m.participant_id for m in mints})
        events, expected, now = [], {}, timezone.now()
        for mint in mints:
            tx_hash = tx_hashes[mint.pk]
            confirmed = chain.confirmation_accept(mint, tx_hash=tx_hash, state="minting", save=False,
                                                  operation=operations.get(mint.stream) or chain.chain_operation_for(mint))
            operations[mint.stream] = confirmed
            expected[mint.stream] = mint.version
            events += transition(mint, "confirm_mint", actor=actor, refs={"tx_hash": tx_hash}, append_events=False,
                                 save=False, endpoint_ids=endpoints.get(mint.participant_id, []),
                                 postings=[PendingPost(f"tokens-{mint.stream}")])
        # Every row of the batch changes alike (minting -> minted, one event each; its operations confirmed
        # with their transaction), so one UPDATE each (bulk_update's CASE per row cost more than the rest).
        MintRequest.objects.filter(pk__in=[m.pk for m in mints]).update(
            state=mints[0].state, version=F("version") + 1, updated_at=now)
        by_hashes: dict[tuple, list[int]] = {}
        for operation in operations.values():
            by_hashes.setdefault((operation.tx_hash, tuple(operation.other_tx_hashes)), []).append(operation.pk)
        for (confirmed_hash, others), operation_ids in by_hashes.items():
            ChainOperation.objects.filter(pk__in=operation_ids).update(
                status=ChainOperation.Status.CONFIRMED, tx_hash=confirmed_hash, other_tx_hashes=list(others),
                updated_at=now)
        transactions.last(lambda: append(events=events, expected=expected, actor=actor,
                                         correlation_id=current_correlation_id(), savepoint=False))
    return [m.pk for m in mints]


def mint_confirm_on_chain(*, mint: MintRequest, tx_hash: str, actor: str) -> MintRequest:
    """The chain executor saw the mint's broadcast transaction confirmed at depth: tokens are outstanding."""
    with transaction.atomic():
        mint = lock(mint)
        chain.confirmation_accept(mint, tx_hash=tx_hash, state="minting")
        transition(mint, "confirm_mint", actor=actor, refs={"tx_hash": tx_hash},
                   postings=[PendingPost(f"tokens-{mint.stream}")])
    return mint
