"""Event types: registered by name and schema version, validated with pydantic on every append.

Apps declare their events next to their services:

    @event_type("mint.requested", version=1)
    class MintRequested(EventData):
        mint_id: int
        quantity_nano: BaseUnits

Schemas are strict (no coercion, no unknown fields, no floats). Quantities that may exceed 2**53
use `BaseUnits`, an int that is stored as a decimal string so canonical JSON stays exact.
An older schema version stays registered and gets an upcaster to the next one, so code reading
the log always sees the current shape.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, PlainSerializer, ValidationError

from ledger.canonical import MAX_SAFE_INTEGER
from ledger.errors import InvalidEventData, UnknownEventType


def _parse_base_units(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a quantity must be an integer of base units, not a boolean")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    raise ValueError("a quantity must be an integer of base units (int or decimal string)")


BaseUnits = Annotated[int, BeforeValidator(_parse_base_units), PlainSerializer(str, return_type=str)]


class EventData(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


@dataclass(frozen=True)
class EventType:
    name: str
    version: int
    schema: type[EventData]


_REGISTRY: dict[tuple[str, int], EventType] = {}
_LATEST: dict[str, int] = {}
_UPCASTERS: dict[tuple[str, int], Callable[[dict], dict]] = {}


def event_type(name: str, *, version: int = 1):
    def register(schema: type[EventData]) -> type[EventData]:
        key = (name, version)
        if key in _REGISTRY and _REGISTRY[key].schema is not schema:
            raise ValueError(f"event type {name} v{version} is registered twice")
        _REGISTRY[key] = EventType(name=name, version=version, schema=schema)
        _LATEST[name] = max(_LATEST.get(name, 0), version)
        schema.event_name = name  # type: ignore[attr-defined]
        schema.event_version = version  # type: ignore[attr-defined]
        return schema

    return register


def upcaster(name: str, *, from_version: int):
    """Register a function turning `name` data of `from_version` into `from_version + 1`."""

    def register(fn: Callable[[dict], dict]) -> Callable[[dict], dict]:
        _UPCASTERS[(name, from_version)] = fn
        return fn

    return register


def latest_version(name: str) -> int:
    try:
        return _LATEST[name]
    except KeyError:
        raise UnknownEventType(f"event type {name!r} is not registered") from None


def registered_types() -> list[EventType]:
    return sorted(_REGISTRY.values(), key=lambda t: (t.name, t.version))


def validate(name: str, data: dict | EventData) -> tuple[int, dict]:
    """Validate `data` against the latest schema of `name`; return (version, JSON-ready data)."""
    version = latest_version(name)
    schema = _REGISTRY[(name, version)].schema
    if isinstance(data, EventData):
        if not isinstance(data, schema):
            raise InvalidEventData(f"{type(data).__name__} is not the schema of {name} v{version}")
        model = data
    else:
        try:
            model = schema.model_validate(data)
        except ValidationError as exc:
            raise InvalidEventData(f"{name}: {exc.errors(include_url=False)}") from None
    dumped = model.model_dump(mode="json")
    _check_json_safe(dumped, name)
    return version, dumped


def _check_json_safe(value: Any, name: str) -> None:
    if isinstance(value, float):
        raise InvalidEventData(f"{name}: floats are not allowed in event data; use integers or decimal strings")
    if isinstance(value, bool) or value is None:
        return
    if isinstance(value, int) and abs(value) > MAX_SAFE_INTEGER:
        raise InvalidEventData(f"{name}: integer {value} exceeds 2**53; declare the field as BaseUnits")
    if isinstance(value, str) and "\x00" in value:
        raise InvalidEventData(f"{name}: NUL characters are not allowed in event data")
    if isinstance(value, dict):
        for item in value.values():
            _check_json_safe(item, name)
    elif isinstance(value, list):
        for item in value:
            _check_json_safe(item, name)


def upcast(name: str, version: int, data: dict) -> dict:
    """Bring stored data of (name, version) up to the latest registered version."""
    latest = _LATEST.get(name, version)
    while version < latest:
        data = _UPCASTERS[(name, version)](data)
        version += 1
    return data


def decode(name: str, version: int, data: dict) -> EventData:
    latest = latest_version(name)
    return _REGISTRY[(name, latest)].schema.model_validate(upcast(name, version, data))
