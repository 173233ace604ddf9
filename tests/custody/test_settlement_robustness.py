import threading

from django.db import connection

from custody import services
from custody.models import BrokerOrder, Fill
from ledger.postings import PendingPost
from ledger.selectors import balance, read_stream
from ledger.services import NewEvent, append
from ledger.units import NANO


def test_one_fill_that_cannot_settle_does_not_hold_back_the_others(broker, aapl, msft):
    a = services.order_place(broker=broker, security=aapl, side="buy", quantity_nano=NANO // 2,
                             client_order_id="a", actor="user:1")
    b = services.order_place(broker=broker, security=msft, side="buy", quantity_nano=NANO // 4,
                             client_order_id="b", actor="user:1")
    (fill_a,) = services.order_sync(order=a, actor="task:sync")
    (fill_b,) = services.order_sync(order=b, actor="task:sync")
    # Someone posted fill a's pending transfer behind custody's back: its settlement must be refused.
    append(events=[NewEvent(stream="rogue", type="custody.product_status_changed",
                            data={"product": "X", "status": "active", "reason": "rogue"},
                            postings=[PendingPost(pending_id=fill_a.pending_id)])], actor="system")
    day = max(fill_a.settlement_date, fill_b.settlement_date)
    assert services.fills_settle_due(today=day, actor="task:settle") == 1
    fill_a.refresh_from_db()
    fill_b.refresh_from_db()
    assert (fill_a.status, fill_b.status) == ("pending", "settled")
    assert balance(account="custody/bny/MSFT", asset="shares:MSFT").posted == NANO // 4
    assert balance(account="custody/bny/AAPL", asset="shares:AAPL").posted == 0


def test_concurrent_syncs_record_each_fill_once(committed, broker, aapl):
    order = services.order_place(broker=broker, security=aapl, side="buy", quantity_nano=3 * NANO,
                                 client_order_id="race", actor="user:1")
    barrier = threading.Barrier(4)
    recorded: list[int] = []

    def sync() -> None:
        try:
            barrier.wait()
            recorded.append(len(services.order_sync(order=BrokerOrder.objects.get(pk=order.pk), actor="task:sync")))
        finally:
            connection.close()

    threads = [threading.Thread(target=sync) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(recorded) == [0, 0, 0, 2]
    assert Fill.objects.filter(order=order).count() == 2
    assert [e.type for e in read_stream(stream=order.stream)].count("custody.fill_recorded") == 2
    assert balance(account="in_transit/sim/AAPL", asset="shares:AAPL").pending_in == 3 * NANO
