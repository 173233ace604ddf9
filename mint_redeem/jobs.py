"""How domain code asks for background work: by task name, once the transaction commits.

Services never import Celery tasks (the tasks import the services), so there is no
services -> tasks -> services cycle; and work queued on commit is never run for a transaction that
rolled back. If the process dies between commit and enqueue, the beat's sweeps (`advance_due`,
`retry_webhooks`) pick the work up.
"""

from __future__ import annotations

import logging

from django.db import transaction
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

ADVANCE_REQUEST = "mint_redeem.advance_request"
DELIVER_WEBHOOK = "mint_redeem.deliver_webhook"
EXECUTE_CHAIN = "chains.execute_pending"  # (chain name): the chain executor (chains.tasks)


def enqueue_on_commit(task_name: str, *args) -> None:
    def send() -> None:
        from config.celery import app

        try:
            app.send_task(task_name, args=list(args))
        except (OperationalError, OSError) as exc:
            # The broker is down (restarting, failing over) after our transaction committed: the request
            # succeeded and must say so, not answer a 500 that invites a retry of work already done. The
            # sweeps queue this work again once the broker is back.
            logger.warning("could not queue %s (broker unavailable); the sweeps will", task_name,
                           extra={"error": type(exc).__name__})

    transaction.on_commit(send)
