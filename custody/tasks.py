"""Periodic custody work: record fills of open orders, settle what is due, reconcile."""

from __future__ import annotations

import logging

from celery import shared_task
from django.utils import timezone

from config.api import DomainError
from custody import calendar, services
from custody.attestations import attestation_issue
from custody.selectors import orders_open
from ledger.errors import StreamVersionConflict

logger = logging.getLogger(__name__)


@shared_task(name="custody.sync_open_orders")
def sync_open_orders() -> int:
    recorded = 0
    for order in orders_open():
        try:
            recorded += len(services.order_sync(order=order, actor="task:custody.sync_open_orders"))
        except DomainError as exc:
            logger.warning("order sync failed", extra={"order_id": order.id, "code": exc.code})
    return recorded


@shared_task(name="custody.settle_due_fills")
def settle_due_fills() -> int:
    # Settlement dates are New York business dates.
    today = calendar.trade_date_of(timezone.now())
    return services.fills_settle_due(today=today, actor="task:custody.settle_due_fills")


@shared_task(name="custody.reconcile")
def reconcile() -> int:
    run = services.reconciliation_run(actor="task:custody.reconcile")
    return run.id


@shared_task(name="custody.issue_attestation")
def issue_attestation() -> str | None:
    """Every ATTESTATION_INTERVAL_MINUTES: attest the ledger's head, unless nothing changed since the last."""
    try:
        row = attestation_issue(actor="task:custody.issue_attestation", only_if_changed=True)
    except StreamVersionConflict:
        return None  # another issuer attested at the same moment
    return None if row is None else row.attestation_id
