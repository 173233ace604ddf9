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
from collections.abc import Callable, Iterator

from django.db import connection, transaction

_all_or_nothing: contextvars.ContextVar[bool] = contextvars.ContextVar("all_or_nothing", default=False)
_last: contextvars.ContextVar[list | None] = contextvars.ContextVar("last_statements", default=None)


@contextlib.contextmanager
def all_or_nothing() -> Iterator[None]:
    """A transaction that is only ever committed or rolled back whole (any error propagates out of it).
    What was handed to `last()` inside it runs at its end, after everything else (the stored response
    included), right before the commit."""
    with transaction.atomic():
        token = _all_or_nothing.set(True)
        queue: list = []
        last_token = _last.set(queue)
        try:
            yield
            while queue:
                queue.pop(0)()
        finally:
            _last.reset(last_token)
            _all_or_nothing.reset(token)


def last(fn: Callable[[], object]) -> None:
    """Run `fn` as the last statements of the all-or-nothing request transaction; elsewhere, now.

    The ledger append takes the ledger's global lock and holds it to the commit, so on a request path it
    comes after every other statement (webhook rows, the idempotency store, reads): the lock is then held
    for the append and the commit only. A refusal it raises still rolls the whole request back."""
    queue = _last.get()
    if queue is None or not connection.in_atomic_block:
        fn()
    else:
        queue.append(fn)


def step() -> transaction.Atomic:
    return transaction.atomic(savepoint=not (_all_or_nothing.get() and connection.in_atomic_block))
