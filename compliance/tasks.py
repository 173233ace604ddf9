"""Periodic compliance work (scheduled in CELERY_BEAT_SCHEDULE)."""

from __future__ import annotations

from celery import shared_task

from compliance import api_auth, idempotency, services


@shared_task(name="compliance.expire_kyc")
def expire_kyc() -> list[int]:
    return services.kyc_expire_due()


@shared_task(name="compliance.prune_request_state")
def prune_request_state() -> dict[str, int]:
    return {"nonces": api_auth.prune_nonces(), "idempotency_records": idempotency.prune()}
