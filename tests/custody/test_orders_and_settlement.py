from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from custody import calendar, services
from custody.models import BrokerOrder, Fill, InKindTransfer
from ledger.errors import BalanceConstraintViolation
from ledger.selectors import balance, read_stream
from ledger.units import NANO


def place(broker, security, *, qty=2_500_000_000, side="buy", cid="c-1"):
    return services.order_place(broker=broker, security=security, side=side, quantity_nano=qty,
                                client_order_id=cid, actor="user:1")


def test_buy_order_fill_and_settlement(broker, aapl):
    order = place(broker, aapl)
    assert order.status == BrokerOrder.Status.ACCEPTED and order.broker_order_id
    assert [e.type for e in read_stream(stream=order.stream)] == ["custody.order_placed", "custody.order_status_changed"]

    fills = services.order_sync(order=order, actor="task:sync")
    assert sorted(f.quantity_nano for f in fills) == [1_250_000_000, 1_250_000_000]
    order.refresh_from_db()
    assert order.status == "filled" and order.filled_quantity_nano == 2_500_000_000
    fill = fills[0]
    # 1.25 shares at 200.125 = 250.15625 USD -> 25016 cents (half-even); fee 10 bps rounded up, min 50 on the first.
    assert fill.gross_cents == 25016
    assert sorted(f.fee_cents for f in fills) == [26, 50]
    trade_date = calendar.trade_date_of(fill.executed_at)
    assert fill.trade_date == trade_date
    assert fill.settlement_date == calendar.settlement_date(trade_date, 1)

    in_transit = balance(account="in_transit/sim/AAPL", asset="shares:AAPL")
    assert (in_transit.posted, in_transit.pending_in) == (0, 2_500_000_000)
    assert balance(account="market/sim/AAPL", asset="shares:AAPL").pending_out == 2_500_000_000

    # A second sync records nothing twice.
    assert services.order_sync(order=order, actor="task:sync") == []
    assert Fill.objects.filter(order=order).count() == 2
    assert len(read_stream(stream=order.stream)) == 5

    # Not due before the settlement date; settles on it, once.
    assert services.fills_settle_due(today=fill.settlement_date - timedelta(days=1), actor="task:settle") == 0
    assert services.fills_settle_due(today=fill.settlement_date, actor="task:settle") == 2
    assert services.fills_settle_due(today=fill.settlement_date, actor="task:settle") == 0
    held = balance(account="custody/bny/AAPL", asset="shares:AAPL")
    assert (held.posted, held.pending_in) == (2_500_000_000, 0)
    assert balance(account="in_transit/sim/AAPL", asset="shares:AAPL") == balance(account="nothing/x", asset="shares:AAPL")
    assert balance(account="market/sim/AAPL", asset="shares:AAPL").posted == -2_500_000_000
    assert set(Fill.objects.values_list("status", flat=True)) == {"settled"}


def test_order_place_is_idempotent_per_client_order_id(broker, aapl, msft):
    first = place(broker, aapl)
    again = place(broker, aapl)
    assert again.pk == first.pk
    assert len(read_stream(stream=first.stream)) == 2
    with pytest.raises(services.CustodyError) as exc:
        place(broker, msft)
    assert exc.value.code == "client_order_id_reused"


@pytest.mark.parametrize("qty", [0, -5, True, 1.5])
def test_order_quantity_validated(broker, aapl, qty):
    with pytest.raises(services.CustodyError) as exc:
        place(broker, aapl, qty=qty)
    assert exc.value.code == "invalid_order"
    assert not BrokerOrder.objects.exists()


def test_order_without_reference_price_is_rejected(broker, aapl, db):
    from custody.models import Security

    tsla = Security.objects.create(ticker="TSLA", isin="US88160R1014", cusip="88160R101", exchange_mic="XNAS",
                                   name="Tesla")
    order = place(broker, tsla)
    assert order.status == "rejected" and "reference price" in order.reject_reason
    assert services.order_sync(order=order, actor="task:sync") == []


def test_cancel_before_fill(broker, aapl):
    broker.sim_latency_ms = 3_600_000
    broker.save()
    order = place(broker, aapl)
    assert services.order_sync(order=order, actor="task:sync") == []
    order = services.order_cancel(order=order, actor="user:1")
    assert order.status == "cancelled"
    assert services.order_sync(order=order, actor="task:sync") == []
    with pytest.raises(services.CustodyError) as exc:
        services.order_cancel(order=order, actor="user:1")
    assert exc.value.code == "order_not_cancellable"


def _hold(custodian, security, qty, ref="dep-1"):
    return services.shares_receive_in_kind(custodian=custodian, security=security, quantity_nano=qty,
                                           from_account="participant/7/shares", reference=ref,
                                           custodian_confirmation="CONF-" + ref, actor="user:1")


def test_sell_reserves_custody_shares_then_settles(broker, aapl, custodian):
    _hold(custodian, aapl, 3 * NANO)
    order = place(broker, aapl, side="sell", qty=2 * NANO, cid="s-1")
    fills = services.order_sync(order=order, actor="task:sync")
    assert sum(f.quantity_nano for f in fills) == 2 * NANO
    held = balance(account="custody/bny/AAPL", asset="shares:AAPL")
    assert (held.posted, held.pending_out, held.available) == (3 * NANO, 2 * NANO, NANO)
    assert services.fills_settle_due(today=fills[0].settlement_date, actor="task:settle") == 2
    held = balance(account="custody/bny/AAPL", asset="shares:AAPL")
    assert (held.posted, held.pending_out) == (NANO, 0)


def test_selling_shares_not_held_is_refused_and_records_nothing(broker, aapl, custodian):
    _hold(custodian, aapl, NANO)
    order = place(broker, aapl, side="sell", qty=2 * NANO, cid="s-2")
    with pytest.raises(BalanceConstraintViolation):
        services.order_sync(order=order, actor="task:sync")
    assert not Fill.objects.filter(order=order).exists()
    assert balance(account="custody/bny/AAPL", asset="shares:AAPL").pending_out == 0


def test_in_kind_receive_and_deliver(custodian, aapl):
    transfer = _hold(custodian, aapl, 5 * NANO)
    assert _hold(custodian, aapl, 5 * NANO).pk == transfer.pk  # same reference: same transfer, once
    assert balance(account="custody/bny/AAPL", asset="shares:AAPL").posted == 5 * NANO
    with pytest.raises(services.CustodyError) as exc:
        _hold(custodian, aapl, 6 * NANO)
    assert exc.value.code == "reference_reused"

    services.shares_deliver_in_kind(custodian=custodian, security=aapl, quantity_nano=2 * NANO,
                                    to_account="participant/7/shares", reference="red-1",
                                    custodian_confirmation="CONF-red-1", actor="user:1")
    assert balance(account="custody/bny/AAPL", asset="shares:AAPL").posted == 3 * NANO
    assert balance(account="participant/7/shares", asset="shares:AAPL").posted == -3 * NANO
    with pytest.raises(BalanceConstraintViolation):
        services.shares_deliver_in_kind(custodian=custodian, security=aapl, quantity_nano=4 * NANO,
                                        to_account="participant/7/shares", reference="red-2",
                                        custodian_confirmation="CONF-red-2", actor="user:1")
    assert not InKindTransfer.objects.filter(reference="red-2").exists()
    assert balance(account="custody/bny/AAPL", asset="shares:AAPL").posted == 3 * NANO


def test_in_kind_refuses_custody_counterparty(custodian, aapl):
    with pytest.raises(services.CustodyError):
        services.shares_receive_in_kind(custodian=custodian, security=aapl, quantity_nano=1,
                                        from_account="custody/other/AAPL", reference="x",
                                        custodian_confirmation="c", actor="user:1")


def test_fill_settlement_uses_broker_settlement_days(broker, aapl):
    broker.settlement_days = 2
    broker.save()
    order = place(broker, aapl, qty=NANO // 2)
    (fill,) = services.order_sync(order=order, actor="task:sync")
    assert fill.settlement_date == calendar.settlement_date(fill.trade_date, 2)
    assert fill.price == Decimal("200.125")
    assert fill.executed_at <= timezone.now()
