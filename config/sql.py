"""Hand-written reads for the request hot path.

The ORM spends more CPU composing a query than PostgreSQL spends answering it; on the paths every API
request takes (authentication, quoting, gating, creating the request) that cost set the API's
throughput. These helpers keep hand-written SQL there while still handing out normal model instances:
`load_one` reads a row, `partial` builds an instance from some columns of a joined row (the rest load
on access), `insert` writes a new instance. SQL text is built once per model.
"""

from __future__ import annotations

from functools import cache
from typing import TypeVar

from django.db import connection
from django.db.models import JSONField, Model

M = TypeVar("M", bound=Model)


@cache
def _select(model: type[Model]) -> tuple[tuple[str, ...], str]:
    fields = model._meta.concrete_fields
    attnames = tuple(f.attname for f in fields)
    columns = ", ".join(f'"{f.column}"' for f in fields)
    return attnames, f'SELECT {columns} FROM "{model._meta.db_table}" WHERE '  # noqa: S608 (names from the model)


def load_one(model: type[M], where: str, params: list) -> M | None:
    """The row of `model` matching `where` (SQL over its own columns), or None.

    Values are converted as the ORM converts them (`from_db_value`)."""
    attnames, select = _select(model)
    with connection.cursor() as cursor:
        cursor.execute(select + where, params)
        row = cursor.fetchone()
    return None if row is None else partial(model, attnames, row)


@cache
def _insert(model: type[Model]) -> tuple[tuple[str, ...], str]:
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(f'"{f.column}"' for f in fields)
    placeholders = ", ".join(["%s"] * len(fields))
    return (tuple(f.attname for f in fields),
            f'INSERT INTO "{model._meta.db_table}" ({columns}) VALUES ({placeholders}) RETURNING "id"')  # noqa: S608


def insert(instance: Model) -> Model:
    """INSERT a new instance as it stands (every field set by the caller, auto_now ones included), set its
    id and return it: `save(force_insert=True)` without the ORM's per-call query building."""
    model = type(instance)
    attnames, sql = _insert(model)
    prepared = _prepared_on_save(model)
    values = [prepared[name].get_db_prep_save(getattr(instance, name), connection) if name in prepared
              else getattr(instance, name) for name in attnames]
    with connection.cursor() as cursor:
        cursor.execute(sql, values)
        instance.pk = cursor.fetchone()[0]
    instance._state.adding = False
    instance._state.db = connection.alias
    return instance


def partial(model: type[M], names: tuple[str, ...], values) -> M:
    """An instance from some of its columns, given in any order (`from_db` wants model order); the
    other fields are deferred and load from the database if read."""
    by_name = dict(zip(names, values, strict=True))
    present = tuple(f.attname for f in model._meta.concrete_fields if f.attname in by_name)
    converters = _converters(model)
    return model.from_db(connection.alias, present, [
        converters[name](by_name[name], None, connection) if name in converters and by_name[name] is not None
        else by_name[name] for name in present])


@cache
def _prepared_on_save(model: type[Model]) -> dict:
    """Fields whose values the driver cannot take as they are (JSON must be wrapped); psycopg adapts the
    rest (int, str, bool, Decimal, date, aware datetime, None) exactly as the ORM would send them."""
    return {f.attname: f for f in model._meta.concrete_fields if isinstance(f, JSONField)}


@cache
def _converters(model: type[Model]) -> dict:
    """Fields whose values the ORM converts after reading (JSON arrives as text, for one)."""
    return {f.attname: f.from_db_value for f in model._meta.concrete_fields if hasattr(f, "from_db_value")}
