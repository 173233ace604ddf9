"""The projection registry: read models that other apps keep in step with the log.

A projection's `apply` is called for every appended event whose type it declares, inside the
append's transaction and before the global append lock is taken, so a read never sees a command
half-applied and projections never lengthen the serialised section. `ledger rebuild` calls the
same `apply` on a replay of the log after `reset`, so a projection must depend only on what the
envelope carries (never on the clock or on other mutable state).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Envelope:
    event_id: str
    stream: str
    type: str
    data: dict
    metadata: dict


@dataclass
class Projection:
    name: str
    event_types: frozenset[str]
    apply: Callable[[Envelope], None]
    reset: Callable[[], None]
    # Rows that `rebuild --check` compares: returns a sorted, comparable snapshot of the read model.
    snapshot: Callable[[], list]
    tables: tuple[str, ...] = field(default_factory=tuple)


_PROJECTIONS: dict[str, Projection] = {}


def register_projection(projection: Projection) -> None:
    _PROJECTIONS[projection.name] = projection


def projections() -> list[Projection]:
    return list(_PROJECTIONS.values())


def handles(event_types: set[str]) -> bool:
    """Whether any registered projection reads one of these event types."""
    return any(projection.event_types & event_types for projection in _PROJECTIONS.values())


def dispatch(envelopes: Iterable[Envelope]) -> None:
    registered = _PROJECTIONS.values()
    if not registered:
        return
    for envelope in envelopes:
        for projection in registered:
            if envelope.type in projection.event_types:
                projection.apply(envelope)
