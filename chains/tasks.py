"""Celery tasks of the chains app: thin, they call the executor and the watcher."""

from __future__ import annotations

import logging
from dataclasses import asdict

from celery import shared_task

from chains import executor, observers
from chains.config import evm_chain_names

logger = logging.getLogger(__name__)

IN_FLIGHT_POLL_S = 1.0


@shared_task(name="chains.execute_pending", acks_late=True)
def execute_pending(chain: str) -> dict:
    """Sign, record, broadcast and follow the operations of one EVM chain (see chains.executor). The run
    that did the work queues the next while anything is left or in flight; a run turned away by the
    chain's lock does nothing (the running one does it), and the beat's sweep covers a lost message."""
    result = executor.execute_pending(chain_name=chain)
    if result.more:
        execute_pending.apply_async((chain,))
    elif result.in_flight:
        execute_pending.apply_async((chain,), countdown=IN_FLIGHT_POLL_S)
    return asdict(result)


@shared_task(name="chains.execute_all")
def execute_all() -> list[str]:
    """Beat: one executor run per configured EVM chain (the safety net for work whose message was lost)."""
    names = evm_chain_names()
    for name in names:
        execute_pending.delay(name)
    return names


@shared_task(name="chains.watch_redemptions", acks_late=True)
def watch_redemptions(chain: str) -> dict:
    """Scan the chain's tokens for Redeemed events and hand each confirmed one on, once."""
    return observers.redemptions_watch(chain_name=chain)


@shared_task(name="chains.watch_all")
def watch_all() -> list[str]:
    """Beat: watch every configured EVM chain's redemptions."""
    names = evm_chain_names()
    for name in names:
        watch_redemptions.delay(name)
    return names


@shared_task(name="chains.observe_supply", acks_late=True)
def observe_supply(chain: str) -> int:
    """Read and record every deployed token's total supply on one chain (chains.observers.supply_observe)."""
    return len(observers.supply_observe(chain_name=chain))


@shared_task(name="chains.observe_supply_all")
def observe_supply_all() -> list[str]:
    """Beat: observe the supply on every configured EVM chain."""
    names = evm_chain_names()
    for name in names:
        observe_supply.delay(name)
    return names
