"""Periodic ledger work (scheduled in CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from ledger import services


@shared_task(name="ledger.seal")
def seal() -> int:
    """The safety net for journalled appends whose writer died between its commit and its seal."""
    return services.seal_journal()
