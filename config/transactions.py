"""All-or-nothing request transactions.

The idempotent API wrapper (compliance.idempotency) runs a request's claim on its Idempotency-Key, its
effect and its stored response in one transaction, and rolls the whole of it back on any error or any
answer it does not keep. Inside such a transaction the savepoint a
nested `transaction.atomic()` opens (two round trips) buys nothing, so the services on the API's hot
paths open their transaction with `step()`: a savepoint everywhere else (a caller may catch a refusal
and go on), none inside an all-or-nothing request.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator

from django.db import connection, transaction

_all_or_nothing: contextvars.ContextVar[bool] = contextvars.ContextVar("all_or_nothing", default=False)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """A transaction that is only ever committed or rolled back whole (any error propagates out of it)."""
    with transaction.atomic():
        token = _all_or_nothing.set(True)
        try:
            yield
        finally:
            _all_or_nothing.reset(token)


def step() -> transaction.Atomic:
    return transaction.atomic(savepoint=not (_all_or_nothing.get() and connection.in_atomic_block))
