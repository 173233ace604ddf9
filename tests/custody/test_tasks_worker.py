import time
from datetime import timedelta

import pytest
from django.utils import timezone

from custody import services, tasks
from custody.models import BrokerOrder, ReconciliationBreak, ReconciliationRun
from tests.custody.statement_files import semt002

pytestmark = pytest.mark.celery


def wait_until(predicate, timeout_s=60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.2)
    return False


def test_periodic_tasks_in_a_real_worker(committed, celery_worker_process, account, custodian, broker, aapl, product):
    order = services.order_place(broker=broker, security=aapl, side="buy", quantity_nano=10**9,
                                 client_order_id="w1", actor="user:1")
    tasks.sync_open_orders.delay()
    assert wait_until(lambda: BrokerOrder.objects.get(pk=order.pk).status == "filled")
    assert order.fills.count() == 1

    services.statement_import(content=semt002(account="SAFE-0001", statement_id="W1",
                                              as_of=(timezone.now() + timedelta(seconds=1)).isoformat(),
                                              holdings=[("US0378331005", "3")], datetime_=True),
                              format="semt002", actor="user:1")
    tasks.reconcile.delay()
    assert wait_until(lambda: ReconciliationRun.objects.filter(ledger_position__isnull=False).exists())
    item = ReconciliationBreak.objects.get()
    assert (item.expected_nano, item.reported_nano, item.blocks_minting) == (0, 3 * 10**9, True)
