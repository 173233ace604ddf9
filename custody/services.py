"""Every state change of the custody app. Each service validates, writes its rows, and appends its
ledger events as the last write of its transaction.

Ledger accounts (shares in nano-shares, asset shares:<TICKER>):
    market/<broker>/<TICKER>       the other side of broker trades
    in_transit/<broker>/<TICKER>   bought, not yet settled (pending transfer fill-<id> from market)
    custody/<custodian>/<TICKER>   settled at the custodian (non-negative)
A buy fill opens the pending transfer market -> in_transit; at settlement it is posted and the
shares move in_transit -> custody. A sell fill opens custody -> market (reserving the shares, so
they no longer count as available backing) and settlement posts it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_EVEN, Decimal

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from config.api import DomainError
from config.logging import current_correlation_id
from custody import calendar
from custody.brokers import BrokerError, FillReport, OrderSnapshot, get_adapter
from custody.ledger_reads import balances_as_of_by_prefix
from custody.models import (
    Broker,
    BrokerOrder,
    ChainDeployment,
    Custodian,
    CustodyAccount,
    Fill,
    InKindTransfer,
    ReconciliationBreak,
    ReconciliationRun,
    Security,
    Statement,
    StatementHolding,
    TokenProduct,
)
from custody.statements import ParsedStatement, StatementError, parse
from custody.supply import supply_break_resolve, supply_observation_record  # noqa: F401 - services of custody
from ledger.accounts import is_valid_path
from ledger.postings import Line, PendingOpen, PendingPost
from ledger.selectors import position_at
from ledger.services import NewEvent, append
from ledger.units import NANO

logger = logging.getLogger(__name__)
SETTLE_BATCH = 200
# Key of the transaction-level advisory lock that serialises reconciliation runs.
_RECONCILIATION_LOCK = 0x637573746F6479


class CustodyError(DomainError):
    code = "custody_error"


def share_asset(ticker: str) -> str:
    return f"shares:{ticker}"


def custody_account(custodian_code: str, ticker: str) -> str:
    return f"custody/{custodian_code}/{ticker}"


def in_transit_account(broker_code: str, ticker: str) -> str:
    return f"in_transit/{broker_code}/{ticker}"


def market_account(broker_code: str, ticker: str) -> str:
    return f"market/{broker_code}/{ticker}"


def _append(events: Sequence[NewEvent], *, actor: str, idempotency_key: str | None = None):
    return append(events=events, actor=actor, correlation_id=current_correlation_id(), idempotency_key=idempotency_key)


# ---------------------------------------------------------------- products


def product_register(*, symbol: str, security: Security, actor: str, multiplier: Decimal = Decimal(1),
                     break_tolerance_nano: int = 0) -> TokenProduct:
    """Create a token product backed by `security` (one product per security) and record it."""
    product = TokenProduct(symbol=symbol, security=security, multiplier=multiplier,
                           break_tolerance_nano=break_tolerance_nano)
    _validate(product)
    with transaction.atomic():
        product.save()
        _append([NewEvent(stream=f"product-{product.symbol}", type="custody.product_registered", data={
            "product": product.symbol, "ticker": security.ticker, "isin": security.isin,
            "multiplier": str(Decimal(multiplier).normalize())})], actor=actor)
    return product


def deployment_register(*, product: TokenProduct, chain: str, decimals: int, address: str, actor: str
                        ) -> ChainDeployment:
    """Record the product's token contract (EVM) or mint (Solana) on a chain. A deployment's decimals
    never change once registered: base units already on the ledger would silently change meaning."""
    deployment = ChainDeployment(product=product, chain=chain, decimals=decimals, address=address)
    _validate(deployment)
    with transaction.atomic():
        deployment.save()
        _append([NewEvent(stream=f"product-{product.symbol}", type="custody.deployment_registered", data={
            "product": product.symbol, "chain": chain, "decimals": decimals, "address": address})], actor=actor)
    return deployment


def _validate(instance) -> None:
    from django.core.exceptions import ValidationError

    try:
        instance.full_clean()
    except ValidationError as exc:
        raise CustodyError(f"invalid {type(instance).__name__}: {exc.message_dict}", code="invalid_reference_data",
                           details=exc.message_dict) from None


def product_status_set(*, product: TokenProduct, status: str, reason: str, actor: str) -> TokenProduct:
    if status not in TokenProduct.Status.values:
        raise CustodyError(f"unknown product status {status!r}", code="invalid_status")
    if not reason.strip():
        raise CustodyError("a reason is required", code="reason_required")
    with transaction.atomic():
        product = TokenProduct.objects.select_for_update().get(pk=product.pk)
        if product.status == status:
            return product
        product.status = status
        product.save(update_fields=["status"])
        _append([NewEvent(stream=f"product-{product.symbol}", type="custody.product_status_changed",
                          data={"product": product.symbol, "status": status, "reason": reason.strip()})], actor=actor)
    return product


def product_multiplier_set(*, product: TokenProduct, multiplier: Decimal, reason: str, actor: str) -> TokenProduct:
    """Change shares per token after a corporate action (a 2:1 split doubles it). Exact: at most 18
    decimals, positive. The new multiplier applies to every outstanding token at once, so the shares
    held must already reflect the action (reconcile first) or coverage will show it."""
    if not isinstance(multiplier, Decimal) or not multiplier.is_finite() or multiplier <= 0:
        raise CustodyError("multiplier must be a positive Decimal", code="invalid_multiplier")
    if multiplier.as_tuple().exponent < -18 or multiplier.adjusted() >= 20:
        raise CustodyError("multiplier must have at most 18 decimals and 20 integer digits", code="invalid_multiplier")
    if not reason.strip():
        raise CustodyError("a reason is required", code="reason_required")
    with transaction.atomic():
        product = TokenProduct.objects.select_for_update().get(pk=product.pk)
        previous = product.multiplier
        if previous == multiplier:
            return product
        product.multiplier = multiplier
        product.save(update_fields=["multiplier"])
        _append([NewEvent(stream=f"product-{product.symbol}", type="custody.product_multiplier_changed",
                          data={"product": product.symbol, "previous": str(previous.normalize()),
                                "multiplier": str(multiplier.normalize()), "reason": reason.strip()})], actor=actor)
    return product


def deployment_address_set(*, deployment: ChainDeployment, address: str, actor: str,
                           deployed_block: int | None = None) -> ChainDeployment:
    """Record where a product's token lives on a chain, once: set from empty (after the deployment
    transaction is confirmed), never changed after, since every mint, burn and supply reading refers to
    it (the database refuses a change too: custody 0007). `deployed_block`, the block (slot) it was
    deployed in, is where watchers start. Recorded on the product's stream."""
    address = address.strip()
    if not address:
        raise CustodyError("an address is required", code="invalid_address")
    if deployed_block is not None and (isinstance(deployed_block, bool) or not isinstance(deployed_block, int)
                                       or deployed_block < 0):
        raise CustodyError("deployed_block must be a non-negative integer", code="invalid_address")
    with transaction.atomic():
        deployment = ChainDeployment.objects.select_for_update().select_related("product").get(pk=deployment.pk)
        if deployment.address == address:
            return deployment
        if deployment.address:
            raise CustodyError(f"{deployment} is already at {deployment.address}; a token address never changes",
                               code="address_fixed", http_status=409)
        deployment.address, deployment.deployed_block = address, deployed_block
        deployment.save(update_fields=["address", "deployed_block"])
        data = {"product": deployment.product.symbol, "chain": deployment.chain, "address": address}
        if deployed_block is not None:
            data["deployed_block"] = deployed_block
        _append([NewEvent(stream=f"product-{deployment.product.symbol}", type="custody.deployment_address_set",
                          data=data)], actor=actor)
    return deployment


# ---------------------------------------------------------------- orders and fills


def order_place(*, broker: Broker, security: Security, side: str, quantity_nano: int, client_order_id: str,
                actor: str) -> BrokerOrder:
    """Place a market order at `broker`: `order_create`, committed, then `order_submit`. Idempotent per
    client_order_id: a repeat returns the same order (and re-submits it if an earlier attempt never
    reached the broker)."""
    with transaction.atomic():
        order = order_create(broker=broker, security=security, side=side, quantity_nano=quantity_nano,
                             client_order_id=client_order_id, actor=actor)
    return order_submit(order=order, actor=actor)


def order_create(*, broker: Broker, security: Security, side: str, quantity_nano: int, client_order_id: str,
                 actor: str) -> BrokerOrder:
    """Write the order row and its `custody.order_placed` event, without calling the broker, in the
    caller's transaction (a lifecycle claims its order in the same transaction that moves the request).
    Once committed, `order_submit` (or `order_sync`) sends it; brokers deduplicate on client_order_id,
    so a crash between the two and a retry place exactly one order."""
    if side not in ("buy", "sell"):
        raise CustodyError(f"side must be buy or sell, got {side!r}", code="invalid_order")
    if isinstance(quantity_nano, bool) or not isinstance(quantity_nano, int) or quantity_nano <= 0:
        raise CustodyError("quantity_nano must be a positive integer", code="invalid_order")
    if not client_order_id or len(client_order_id) > 64:
        raise CustodyError("client_order_id must be 1..64 characters", code="invalid_order")

    with transaction.atomic():
        order = BrokerOrder.objects.select_for_update().filter(client_order_id=client_order_id).first()
        if order is None:
            try:
                with transaction.atomic():
                    order = BrokerOrder.objects.create(broker=broker, security=security, side=side,
                                                       quantity_nano=quantity_nano, client_order_id=client_order_id,
                                                       created_by=actor)
            except IntegrityError:
                order = BrokerOrder.objects.select_for_update().get(client_order_id=client_order_id)
            else:
                _append([NewEvent(stream=order.stream, type="custody.order_placed", data={
                    "order_id": order.id, "broker": broker.code, "ticker": security.ticker, "side": side,
                    "quantity_nano": quantity_nano, "client_order_id": client_order_id})], actor=actor)
        if (order.broker_id, order.security_id, order.side, order.quantity_nano) != (
                broker.id, security.id, side, quantity_nano):
            raise CustodyError(f"client_order_id {client_order_id} was used for a different order",
                               code="client_order_id_reused", http_status=409)
    return order


def order_submit(*, order: BrokerOrder, actor: str) -> BrokerOrder:
    """Send a committed `new` order to its broker (a no-op for an order already sent)."""
    if order.status != BrokerOrder.Status.NEW:
        return order
    broker, security, client_order_id = order.broker, order.security, order.client_order_id
    try:
        snapshot = get_adapter(broker).place_order(client_order_id=client_order_id, ticker=security.ticker,
                                                   side=order.side, quantity_nano=order.quantity_nano)
    except BrokerError as exc:
        if exc.code in ("no_reference_price", "invalid_order"):
            snapshot = OrderSnapshot(broker_order_id="", client_order_id=client_order_id, status="rejected",
                                     filled_quantity_nano=0, reason=str(exc))
        else:
            raise CustodyError(f"broker {broker.code}: {exc}", code=exc.code, http_status=502) from exc
    # Fills are recorded by order_sync only, so its caller sees every fill exactly once.
    snapshot = OrderSnapshot(broker_order_id=snapshot.broker_order_id, client_order_id=snapshot.client_order_id,
                             status="accepted" if snapshot.status in ("partially_filled", "filled") else snapshot.status,
                             filled_quantity_nano=0, reason=snapshot.reason)
    with transaction.atomic():
        order = BrokerOrder.objects.select_for_update().select_related("broker__custodian", "security").get(pk=order.pk)
        if order.status != BrokerOrder.Status.NEW:
            return order  # a concurrent submit recorded the broker's answer first
        _apply_snapshot(order, snapshot, actor=actor)
    return order


def order_sync(*, order: BrokerOrder, actor: str) -> list[Fill]:
    """Fetch the order's state and fills from the broker; record each fill not yet recorded (once,
    whatever the number of calls) with its pending transfer, and the order's new status.
    Returns the fills recorded by this call."""
    if order.status == BrokerOrder.Status.NEW:
        # Never reached the broker: submit it now (order_submit is idempotent).
        order = order_submit(order=order, actor=actor)
        if order.status == BrokerOrder.Status.NEW:
            return []
    if order.status == BrokerOrder.Status.REJECTED or (order.status in BrokerOrder.TERMINAL
                                                        and not order.broker_order_id):
        return []
    try:
        snapshot = get_adapter(order.broker).get_order(client_order_id=order.client_order_id,
                                                       broker_order_id=order.broker_order_id)
    except BrokerError as exc:
        raise CustodyError(f"broker {order.broker.code}: {exc}", code=exc.code, http_status=502) from exc
    with transaction.atomic():
        order = BrokerOrder.objects.select_for_update().select_related("broker__custodian", "security").get(pk=order.pk)
        return _apply_snapshot(order, snapshot, actor=actor)


def order_cancel(*, order: BrokerOrder, actor: str) -> BrokerOrder:
    if order.status in BrokerOrder.TERMINAL:
        raise CustodyError(f"order {order.id} is already {order.status}", code="order_not_cancellable", http_status=409)
    try:
        snapshot = get_adapter(order.broker).cancel_order(client_order_id=order.client_order_id,
                                                          broker_order_id=order.broker_order_id)
    except BrokerError as exc:
        raise CustodyError(f"broker {order.broker.code}: {exc}", code=exc.code, http_status=502) from exc
    with transaction.atomic():
        order = BrokerOrder.objects.select_for_update().select_related("broker__custodian", "security").get(pk=order.pk)
        _apply_snapshot(order, snapshot, actor=actor)
    return order


def _gross_cents(quantity_nano: int, price: Decimal) -> int:
    # Cash is in cents; a fill's notional is rounded to the cent the way brokers confirm it.
    return int((Decimal(quantity_nano) * price * 100 / NANO).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))


def _distinct_fills(reports: list[FillReport]) -> list[FillReport]:
    """A broker may list one fill twice in one answer (a paginated read whose pages shift under it, an activity
    replayed): the same id with the same content is one fill; the same id with different content is an answer
    we cannot use, refused whole."""
    distinct: dict[str, FillReport] = {}
    for report in reports:
        first = distinct.setdefault(report.broker_fill_id, report)
        if first != report:
            raise CustodyError(f"broker reports fill {report.broker_fill_id} twice, differently",
                               code="broker_bad_response", http_status=502)
    return list(distinct.values())


def _apply_snapshot(order: BrokerOrder, snapshot: OrderSnapshot, *, actor: str) -> list[Fill]:
    """Record what the broker reports (the caller holds the order's row lock)."""
    broker, security = order.broker, order.security
    known = set(order.fills.values_list("broker_fill_id", flat=True))
    new_reports = [report for report in _distinct_fills(snapshot.fills) if report.broker_fill_id not in known]
    already = sum(order.fills.values_list("quantity_nano", flat=True))
    if already + sum(r.quantity_nano for r in new_reports) > order.quantity_nano:
        raise CustodyError(f"broker reports more fills than order {order.id}'s quantity", code="broker_overfill",
                           http_status=502)

    events: list[NewEvent] = []
    fills: list[Fill] = []
    for report in new_reports:
        if (report.quantity_nano <= 0 or not report.price.is_finite() or report.price <= 0
                or report.price.as_tuple().exponent < -10 or report.price.adjusted() >= 14):
            raise CustodyError(f"broker fill {report.broker_fill_id} has a non-positive quantity or price",
                               code="broker_bad_response", http_status=502)
        trade_date = calendar.trade_date_of(report.executed_at)
        fill = Fill.objects.create(
            order=order, broker_fill_id=report.broker_fill_id, quantity_nano=report.quantity_nano,
            price=report.price, gross_cents=_gross_cents(report.quantity_nano, report.price),
            fee_cents=report.fee_cents, executed_at=report.executed_at, trade_date=trade_date,
            settlement_date=calendar.settlement_date(trade_date, broker.settlement_days),
        )
        fills.append(fill)
        if order.side == "buy":
            transfer = PendingOpen(pending_id=fill.pending_id, debit=market_account(broker.code, security.ticker),
                                   credit=in_transit_account(broker.code, security.ticker),
                                   asset=share_asset(security.ticker), amount=fill.quantity_nano)
        else:
            transfer = PendingOpen(pending_id=fill.pending_id,
                                   debit=custody_account(broker.custodian.code, security.ticker),
                                   credit=market_account(broker.code, security.ticker),
                                   asset=share_asset(security.ticker), amount=fill.quantity_nano)
        events.append(NewEvent(stream=order.stream, type="custody.fill_recorded", postings=[transfer], data={
            "fill_id": fill.id, "order_id": order.id, "broker": broker.code, "broker_fill_id": fill.broker_fill_id,
            "ticker": security.ticker, "side": order.side, "quantity_nano": fill.quantity_nano,
            "price": str(fill.price), "gross_cents": fill.gross_cents, "fee_cents": fill.fee_cents,
            "executed_at": fill.executed_at.isoformat(), "trade_date": trade_date.isoformat(),
            "settlement_date": fill.settlement_date.isoformat()}))

    filled = already + sum(f.quantity_nano for f in fills)
    status = snapshot.status
    if status in ("accepted", "partially_filled", "filled"):
        status = ("filled" if filled == order.quantity_nano else "partially_filled" if filled else "accepted")
    changed = (status != order.status or filled != order.filled_quantity_nano
               or (snapshot.broker_order_id and snapshot.broker_order_id != order.broker_order_id))
    if changed:
        order.status = status
        order.filled_quantity_nano = filled
        order.broker_order_id = snapshot.broker_order_id or order.broker_order_id
        order.reject_reason = snapshot.reason[:500] if status == "rejected" else order.reject_reason
        order.save(update_fields=["status", "filled_quantity_nano", "broker_order_id", "reject_reason", "updated_at"])
        events.append(NewEvent(stream=order.stream, type="custody.order_status_changed", data={
            "order_id": order.id, "status": status, "broker_order_id": order.broker_order_id,
            "filled_quantity_nano": filled, "reason": snapshot.reason[:500]}))
    if events:
        _append(events, actor=actor)
    return fills


def fills_settle_due(*, today: date, actor: str) -> int:
    """Settle every pending fill whose settlement date is on or before `today`; returns how many.
    Buys: post market -> in_transit and move the shares in_transit -> custody/<custodian>/<TICKER>.
    Sells: post custody -> market. Batches commit separately; a fill that cannot settle (its event
    refused by the ledger) is logged and left pending without blocking the others."""
    settled = 0
    failed: set[int] = set()
    while True:
        with transaction.atomic():
            batch = list(Fill.objects.select_for_update(skip_locked=True, of=("self",))
                         .select_related("order__broker__custodian", "order__security")
                         .filter(status=Fill.Status.PENDING, settlement_date__lte=today)
                         .exclude(pk__in=failed).order_by("settlement_date", "id")[:SETTLE_BATCH])
            if not batch:
                return settled
            try:
                with transaction.atomic():
                    _settle(batch, actor=actor)
                settled += len(batch)
                continue
            except Exception:
                if len(batch) == 1:
                    logger.exception("fill %s could not settle", batch[0].id)
                    failed.add(batch[0].id)
                    continue
        # A batch failed: settle its fills one by one so one bad fill does not hold the rest back.
        for fill in batch:
            try:
                with transaction.atomic():
                    locked = (Fill.objects.select_for_update(of=("self",))
                              .select_related("order__broker__custodian", "order__security")
                              .get(pk=fill.pk, status=Fill.Status.PENDING))
                    _settle([locked], actor=actor)
                settled += 1
            except Fill.DoesNotExist:
                continue
            except Exception:
                logger.exception("fill %s could not settle", fill.id)
                failed.add(fill.id)


def _settle(fills: list[Fill], *, actor: str) -> None:
    now = timezone.now()
    events = []
    for fill in fills:
        order = fill.order
        broker, ticker, custodian = order.broker, order.security.ticker, order.broker.custodian
        postings: list = [PendingPost(pending_id=fill.pending_id)]
        if order.side == "buy":
            postings += [Line(in_transit_account(broker.code, ticker), share_asset(ticker), -fill.quantity_nano),
                         Line(custody_account(custodian.code, ticker), share_asset(ticker), fill.quantity_nano)]
        events.append(NewEvent(stream=order.stream, type="custody.fill_settled", postings=postings, data={
            "fill_id": fill.id, "order_id": order.id, "custodian": custodian.code, "ticker": ticker,
            "side": order.side, "quantity_nano": fill.quantity_nano,
            "settlement_date": fill.settlement_date.isoformat()}))
    Fill.objects.filter(pk__in=[f.pk for f in fills]).update(status=Fill.Status.SETTLED, settled_at=now)
    _append(events, actor=actor)


# ---------------------------------------------------------------- in-kind transfers


def shares_receive_in_kind(*, custodian: Custodian, security: Security, quantity_nano: int, from_account: str,
                           reference: str, custodian_confirmation: str, actor: str,
                           extra_events: Sequence[NewEvent] = ()) -> InKindTransfer:
    """Record shares received into custody by a custodian-confirmed free-of-payment transfer (in-kind
    mint): `from_account` (a ledger account such as participant/<id>/shares) -> custody/<custodian>/<TICKER>.
    Idempotent per `reference`: a repeat with the same figures returns the first transfer.
    `extra_events` (the caller's own events) are appended in the same ledger call and transaction."""
    return _in_kind(direction=InKindTransfer.Direction.RECEIVE, custodian=custodian, security=security,
                    quantity_nano=quantity_nano, counterparty_account=from_account, reference=reference,
                    custodian_confirmation=custodian_confirmation, actor=actor, extra_events=extra_events)


def shares_deliver_in_kind(*, custodian: Custodian, security: Security, quantity_nano: int, to_account: str,
                           reference: str, custodian_confirmation: str, actor: str,
                           extra_events: Sequence[NewEvent] = ()) -> InKindTransfer:
    """Record shares delivered out of custody (in-kind redemption): custody/<custodian>/<TICKER> ->
    `to_account`. Refused (ledger BalanceConstraintViolation, nothing recorded) if the custodian does
    not hold that many available shares. Idempotent per `reference`."""
    return _in_kind(direction=InKindTransfer.Direction.DELIVER, custodian=custodian, security=security,
                    quantity_nano=quantity_nano, counterparty_account=to_account, reference=reference,
                    custodian_confirmation=custodian_confirmation, actor=actor, extra_events=extra_events)


def _in_kind(*, direction: str, custodian: Custodian, security: Security, quantity_nano: int,
             counterparty_account: str, reference: str, custodian_confirmation: str, actor: str,
             extra_events: Sequence[NewEvent]) -> InKindTransfer:
    if isinstance(quantity_nano, bool) or not isinstance(quantity_nano, int) or quantity_nano <= 0:
        raise CustodyError("quantity_nano must be a positive integer", code="invalid_quantity")
    if not is_valid_path(counterparty_account) or counterparty_account.startswith(("custody/", "in_transit/")):
        raise CustodyError(f"invalid counterparty account {counterparty_account!r}", code="invalid_account")
    if not reference or not custodian_confirmation:
        raise CustodyError("reference and custodian_confirmation are required", code="confirmation_required")
    with transaction.atomic():
        existing = InKindTransfer.objects.select_for_update().filter(reference=reference).first()
        if existing is not None:
            if (existing.direction, existing.custodian_id, existing.security_id, existing.quantity_nano,
                    existing.counterparty_account) != (direction, custodian.id, security.id, quantity_nano,
                                                       counterparty_account):
                raise CustodyError(f"reference {reference} was used for a different transfer",
                                   code="reference_reused", http_status=409)
            return existing
        transfer = InKindTransfer.objects.create(
            direction=direction, custodian=custodian, security=security, quantity_nano=quantity_nano,
            counterparty_account=counterparty_account, reference=reference,
            custodian_confirmation=custodian_confirmation, actor=actor)
        sign = 1 if direction == InKindTransfer.Direction.RECEIVE else -1
        asset = share_asset(security.ticker)
        event = NewEvent(
            stream=f"custodian-{custodian.code}", type="custody.in_kind_transfer_confirmed",
            postings=[Line(custody_account(custodian.code, security.ticker), asset, sign * quantity_nano),
                      Line(counterparty_account, asset, -sign * quantity_nano)],
            data={"transfer_id": transfer.id, "direction": direction, "custodian": custodian.code,
                  "ticker": security.ticker, "quantity_nano": quantity_nano,
                  "counterparty_account": counterparty_account, "reference": reference,
                  "custodian_confirmation": custodian_confirmation})
        _append([event, *extra_events], actor=actor)
    return transfer


# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class StatementImportResult:
    statement: Statement
    created: bool


def statement_import(*, content: bytes, format: str, actor: str, file_name: str = "",  # noqa: A002
                     account: CustodyAccount | None = None) -> StatementImportResult:
    """Import a custodian statement of holdings (semt002 XML or CSV). Idempotent: the same file again
    returns the statement already recorded and changes nothing. Validated before anything is
    written: unknown securities, an account other than `account` (when given) or unknown, a reused
    statement id with different content, or malformed/hostile XML raise StatementError."""
    digest = hashlib.sha256(content).hexdigest()
    existing = Statement.objects.filter(sha256=digest).first()
    if existing is not None:
        return StatementImportResult(statement=existing, created=False)
    parsed = parse(content, format=format)
    statement_account = _statement_account(parsed, account)
    holdings = _match_securities(parsed)

    with transaction.atomic():
        # Serialise imports per account so two uploads of one statement cannot both pass the checks.
        CustodyAccount.objects.select_for_update().get(pk=statement_account.pk)
        existing = Statement.objects.filter(sha256=digest).first()
        if existing is not None:
            return StatementImportResult(statement=existing, created=False)
        if Statement.objects.filter(account=statement_account, statement_ref=parsed.statement_ref).exists():
            raise StatementError(f"statement {parsed.statement_ref} of account {statement_account.account_number} "
                                 "was already imported with different content", code="statement_conflict")
        statement = Statement.objects.create(account=statement_account, statement_ref=parsed.statement_ref,
                                             as_of=parsed.as_of, format=format, sha256=digest,
                                             file_name=file_name[:255], imported_by=actor)
        StatementHolding.objects.bulk_create([
            StatementHolding(statement=statement, security=security, quantity_nano=quantity)
            for security, quantity in holdings.items()])
        result = _append([NewEvent(
            stream=f"custody-account-{statement_account.id}", type="custody.statement_imported",
            data={"statement_id": statement.id, "custodian": statement_account.custodian.code,
                  "account_number": statement_account.account_number, "statement_ref": parsed.statement_ref,
                  "as_of": parsed.as_of.isoformat(), "format": format, "sha256": digest,
                  "holdings": {security.ticker: quantity for security, quantity in sorted(
                      holdings.items(), key=lambda item: item[0].ticker)}})], actor=actor)
    ledger_position_note(Statement, statement, result)
    return StatementImportResult(statement=statement, created=True)


def _statement_account(parsed: ParsedStatement, account: CustodyAccount | None) -> CustodyAccount:
    if account is not None:
        if parsed.account_number != account.account_number:
            raise StatementError(f"statement is for account {parsed.account_number}, not {account.account_number}",
                                 code="wrong_account")
        return account
    found = CustodyAccount.objects.select_related("custodian").filter(account_number=parsed.account_number).first()
    if found is None:
        raise StatementError(f"unknown custody account {parsed.account_number}", code="unknown_account")
    return found


def _match_securities(parsed: ParsedStatement) -> dict[Security, int]:
    isins = {h.isin for h in parsed.holdings if h.isin}
    tickers = {h.ticker for h in parsed.holdings if h.ticker}
    by_isin = {s.isin: s for s in Security.objects.filter(isin__in=isins)}
    by_ticker = {s.ticker: s for s in Security.objects.filter(ticker__in=tickers)}
    holdings: dict[Security, int] = {}
    unknown = []
    for holding in parsed.holdings:
        security = by_isin.get(holding.isin) if holding.isin else by_ticker.get(holding.ticker)
        if security is None:
            unknown.append(holding.isin or holding.ticker)
            continue
        if holding.isin and holding.ticker and security.ticker != holding.ticker:
            raise StatementError(f"ISIN {holding.isin} is {security.ticker}, statement says {holding.ticker}",
                                 code="security_mismatch")
        if security in holdings:
            raise StatementError(f"{security.ticker} appears twice in the statement", code="malformed_statement")
        holdings[security] = holding.quantity_nano
    if unknown:
        raise StatementError(f"unknown securities: {', '.join(sorted(unknown))}", code="unknown_security")
    return holdings


# ---------------------------------------------------------------- reconciliation


@dataclass(frozen=True)
class _Comparison:
    custodian: Custodian
    security_id: int
    as_of: datetime
    expected_nano: int
    reported_nano: int


def reconciliation_run(*, actor: str, custodians: Sequence[Custodian] | None = None) -> ReconciliationRun:
    """Compare, per custodian and security, the settled position the ledger expects at the custodian's
    latest statement instant (as of that instant, so later movements do not show as breaks) with the
    sum of the latest statement of each of its accounts. A difference opens (or updates) a break;
    one above the product's tolerance pauses minting of the product until resolved. An open break
    whose figures agree again is cleared."""
    now = timezone.now()
    custodian_list = list(custodians) if custodians is not None else list(Custodian.objects.all())
    with transaction.atomic():
        # One reconciliation at a time: two runs would race to open the same break.
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_RECONCILIATION_LOCK])
        comparisons = _compare(custodian_list)
        tolerance = dict(TokenProduct.objects.values_list("security_id", "break_tolerance_nano"))
        tickers = dict(Security.objects.values_list("id", "ticker"))
        run = ReconciliationRun.objects.create(actor=actor)
        open_breaks = {(b.custodian_id, b.security_id): b for b in ReconciliationBreak.objects.select_for_update()
                       .filter(status=ReconciliationBreak.Status.OPEN, custodian__in=custodian_list)}
        resolved = set(ReconciliationBreak.objects.filter(
            status=ReconciliationBreak.Status.RESOLVED, custodian__in=custodian_list,
        ).values_list("custodian_id", "security_id", "statement_as_of", "expected_nano", "reported_nano"))
        to_create, to_update, cleared, events, seen = [], [], [], [], []
        for c in comparisons:
            key = (c.custodian.id, c.security_id)
            difference = c.reported_nano - c.expected_nano
            current = open_breaks.pop(key, None)
            if difference == 0:
                if current is not None:
                    cleared.append((current, c))
                continue
            blocks = key[1] in tolerance and abs(difference) > tolerance[key[1]]
            if current is None:
                if (c.custodian.id, c.security_id, c.as_of, c.expected_nano, c.reported_nano) in resolved:
                    continue  # already looked at and resolved by a person, same statement and figures
                to_create.append(ReconciliationBreak(
                    custodian=c.custodian, security_id=c.security_id, statement_as_of=c.as_of,
                    expected_nano=c.expected_nano, reported_nano=c.reported_nano, difference_nano=difference,
                    blocks_minting=blocks, detected_at=now, last_seen_at=now))
            else:
                figures = (c.as_of, c.expected_nano, c.reported_nano, blocks)
                if figures != (current.statement_as_of, current.expected_nano, current.reported_nano,
                               current.blocks_minting):
                    current.statement_as_of, current.expected_nano, current.reported_nano = c.as_of, c.expected_nano, c.reported_nano
                    current.difference_nano, current.blocks_minting = difference, blocks
                    to_update.append(current)
                seen.append(current.pk)

        ReconciliationBreak.objects.filter(pk__in=seen).update(last_seen_at=now)
        created = ReconciliationBreak.objects.bulk_create(to_create)
        for item in created:
            events.append(NewEvent(stream=item.stream, type="custody.break_opened", data={
                "break_id": item.id, "custodian": item.custodian.code, "ticker": tickers[item.security_id],
                "statement_as_of": item.statement_as_of.isoformat(), "expected_nano": item.expected_nano,
                "reported_nano": item.reported_nano, "difference_nano": item.difference_nano,
                "blocks_minting": item.blocks_minting}))
        if to_update:
            ReconciliationBreak.objects.bulk_update(to_update, ["statement_as_of", "expected_nano", "reported_nano",
                                                                "difference_nano", "blocks_minting"])
        for item in to_update:
            events.append(NewEvent(stream=item.stream, type="custody.break_updated", data={
                "break_id": item.id, "statement_as_of": item.statement_as_of.isoformat(),
                "expected_nano": item.expected_nano, "reported_nano": item.reported_nano,
                "difference_nano": item.difference_nano, "blocks_minting": item.blocks_minting}))
        for item, c in cleared:
            item.status, item.resolved_at, item.resolved_by = ReconciliationBreak.Status.CLEARED, now, actor
            item.resolution_reason = "figures agree on a later reconciliation"
            item.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_reason"])
            events.append(NewEvent(stream=item.stream, type="custody.break_cleared", data={
                "break_id": item.id, "statement_as_of": c.as_of.isoformat()}))

        run.pairs_checked = len(comparisons)
        run.breaks_opened = len(created)
        run.breaks_cleared = len(cleared)
        open_count = ReconciliationBreak.objects.filter(status=ReconciliationBreak.Status.OPEN).count()
        events.append(NewEvent(stream="reconciliation", type="custody.reconciliation_completed", data={
            "run_id": run.id, "pairs_checked": run.pairs_checked, "breaks_opened": run.breaks_opened,
            "breaks_cleared": run.breaks_cleared, "open_breaks": open_count}))
        run.save(update_fields=["pairs_checked", "breaks_opened", "breaks_cleared"])
        result = _append(events, actor=actor)
    ledger_position_note(ReconciliationRun, run, result)
    return run


def ledger_position_note(model, obj, result) -> None:
    """Record where the command's events landed in the log. Noted after the append's transaction, so the
    append stays its last write (it may hold the sealing lock); when the append was journalled inside a
    caller's transaction too, its position exists only once that commits and it is sealed (on commit)."""
    def note() -> None:
        obj.ledger_position = result.last_position
        model.objects.filter(pk=obj.pk).update(ledger_position=obj.ledger_position)

    if result.sealed:
        note()
    else:
        transaction.on_commit(note)


def _compare(custodians: list[Custodian]) -> list[_Comparison]:
    latest = list(Statement.objects.filter(account__custodian__in=custodians, account__is_active=True)
                  .order_by("account_id", "-as_of", "-id").distinct("account_id")
                  .values_list("id", "account__custodian_id", "as_of"))
    statements_by_custodian: dict[int, list[int]] = defaultdict(list)
    as_of_by_custodian: dict[int, datetime] = {}
    for statement_id, custodian_id, as_of in latest:
        statements_by_custodian[custodian_id].append(statement_id)
        as_of_by_custodian[custodian_id] = max(as_of, as_of_by_custodian.get(custodian_id, as_of))
    reported: dict[tuple[int, int], int] = defaultdict(int)
    for custodian_id, security_id, quantity in StatementHolding.objects.filter(
            statement_id__in=[s for ids in statements_by_custodian.values() for s in ids]
    ).values_list("statement__account__custodian_id", "security_id", "quantity_nano"):
        reported[(custodian_id, security_id)] += quantity

    security_by_ticker = dict(Security.objects.values_list("ticker", "id"))
    open_pairs = set(ReconciliationBreak.objects.filter(status=ReconciliationBreak.Status.OPEN)
                     .values_list("custodian_id", "security_id"))
    comparisons = []
    for custodian in custodians:
        as_of = as_of_by_custodian.get(custodian.id)
        if as_of is None:
            continue  # no statement yet: nothing to reconcile against
        expected = _expected_positions(custodian.code, position_at(instant=as_of))
        expected_by_security = {security_by_ticker[t]: q for t, q in expected.items() if t in security_by_ticker}
        securities = ({s for (c, s) in reported if c == custodian.id} | set(expected_by_security)
                      | {s for (c, s) in open_pairs if c == custodian.id})
        for security_id in sorted(securities):
            comparisons.append(_Comparison(custodian=custodian, security_id=security_id, as_of=as_of,
                                           expected_nano=expected_by_security.get(security_id, 0),
                                           reported_nano=reported.get((custodian.id, security_id), 0)))
    return comparisons


def _expected_positions(custodian_code: str, position: int) -> dict[str, int]:
    """Posted (settled) balance of every custody/<custodian>/<TICKER> account as of a log position."""
    prefix = f"custody/{custodian_code}/"
    positions = {}
    for (path, asset), figures in balances_as_of_by_prefix(prefix=prefix, position=position).items():
        ticker = path[len(prefix):]
        if asset == share_asset(ticker) and figures.posted:
            positions[ticker] = figures.posted
    return positions


def break_resolve(*, break_: ReconciliationBreak, reason: str, actor: str) -> ReconciliationBreak:
    """Close an open break with the reason a person gives (e.g. "custodian corrected its statement",
    "late settlement, confirmed by phone"). Minting of the product resumes if no other blocking break."""
    reason = (reason or "").strip()
    if len(reason) < 5:
        raise CustodyError("a reason (at least 5 characters) is required to resolve a break", code="reason_required")
    with transaction.atomic():
        item = ReconciliationBreak.objects.select_for_update().get(pk=break_.pk)
        if item.status != ReconciliationBreak.Status.OPEN:
            raise CustodyError(f"break {item.id} is already {item.status}", code="break_not_open", http_status=409)
        item.status, item.resolved_at, item.resolved_by, item.resolution_reason = (
            ReconciliationBreak.Status.RESOLVED, timezone.now(), actor, reason)
        item.save(update_fields=["status", "resolved_at", "resolved_by", "resolution_reason"])
        _append([NewEvent(stream=item.stream, type="custody.break_resolved",
                          data={"break_id": item.id, "reason": reason})], actor=actor)
    return item
