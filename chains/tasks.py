"""Celery tasks of the chains app: thin, they call the executor."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task

from chains import executor


@shared_task(name="chains.execute_pending")
def execute_pending(chain: str) -> dict:
    """Sign, record and broadcast the pending mint operations of one EVM chain (see chains.executor)."""
    return asdict(executor.execute_pending(chain_name=chain))
