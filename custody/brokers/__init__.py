"""Brokers behind one interface: `get_adapter(broker)` returns the adapter for a Broker row."""

from __future__ import annotations

from custody.brokers.base import BrokerAdapter, BrokerError, FillReport, OrderSnapshot

__all__ = ["BrokerAdapter", "BrokerError", "FillReport", "OrderSnapshot", "get_adapter"]


def get_adapter(broker) -> BrokerAdapter:
    from custody.models import Broker

    if broker.kind == Broker.Kind.SIMULATED:
        from custody.brokers.simulated import SimulatedBroker

        return SimulatedBroker(broker)
    if broker.kind == Broker.Kind.ALPACA:
        from custody.brokers.alpaca import AlpacaBroker

        return AlpacaBroker.from_broker(broker)
    raise BrokerError(f"no adapter for broker kind {broker.kind!r}", code="unknown_broker_kind")
