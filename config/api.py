"""API-wide conventions: every error is JSON with a stable machine-readable `code`, and says whether the
same request may succeed if sent again (`retryable`).

    {"error": {"code": "concurrent_update", "message": "...", "retryable": true, "details": {...}?}}

`retryable: false` is a final answer to that request: the request itself is wrong (a malformed body, a
quantity with ten decimals, an Idempotency-Key reused for another body), so sending it again can only get
the same answer, and an idempotent endpoint stores it under the request's Idempotency-Key. `retryable:
true` depends on the moment (a product paused, a daily cap, a compliance hold, a row another request
changed first, the database restarting): nothing was done and nothing was stored, and the same request
with the same key may succeed later. 2xx answers are final too. compliance.idempotency stores exactly the
final answers; the README's API section states the rule for market makers.
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from ledger import errors as ledger_errors

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """An expected refusal from a service; views turn it into a 4xx with this code.

    `retryable` says whether the refusal depends on the moment (see the module docstring). Left as None it
    is decided where it is raised (`retryable=False` for a refusal that follows from the body alone);
    anything not marked final is retryable."""

    code = "domain_error"
    http_status = status.HTTP_400_BAD_REQUEST
    retryable: bool | None = None

    def __init__(self, message: str, *, code: str | None = None, http_status: int | None = None, details=None,
                 retryable: bool | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        if retryable is not None:
            self.retryable = retryable
        self.details = details


def is_retryable(exc: DomainError) -> bool:
    if exc.retryable is not None:
        return exc.retryable
    return True  # unless its raise site says it is final (it follows from the request body alone)


# What each ledger refusal means to an API caller. A stale stream version is another request having
# changed the same thing first: sent again, the request reads the new state and either succeeds or gets
# a precise refusal. The rest are refusals of a command a service built (a balance the command would
# take below zero, a pending transfer resolved twice); they are logged, since they can reveal a bug, and
# none is stored, so a retry after a fix runs afresh.
LEDGER_REFUSALS: dict[type[ledger_errors.LedgerError], tuple[int, str, bool]] = {
    ledger_errors.StreamVersionConflict: (status.HTTP_409_CONFLICT, "concurrent_update", True),
    ledger_errors.PendingTransferNotOpen: (status.HTTP_409_CONFLICT, "pending_transfer_not_open", True),
    ledger_errors.PendingTransferExists: (status.HTTP_409_CONFLICT, "pending_transfer_exists", True),
    ledger_errors.BalanceConstraintViolation: (status.HTTP_422_UNPROCESSABLE_ENTITY, "insufficient_balance", True),
    ledger_errors.UnbalancedPostings: (status.HTTP_422_UNPROCESSABLE_ENTITY, "unbalanced_postings", True),
    ledger_errors.InvalidEventData: (status.HTTP_422_UNPROCESSABLE_ENTITY, "invalid_event_data", True),
    ledger_errors.UnknownEventType: (status.HTTP_422_UNPROCESSABLE_ENTITY, "unknown_event_type", True),
    ledger_errors.LogImmutable: (status.HTTP_422_UNPROCESSABLE_ENTITY, "ledger_append_only", True),
    # A position read inside the transaction that journalled it (known a few ms after the commit): the
    # command did not commit, and the same request sent again finds the sealer free or the seal done.
    ledger_errors.NotYetSealed: (status.HTTP_409_CONFLICT, "ledger_not_yet_sealed", True),
}
# Any LedgerError a newer ledger adds before it gets its own line above.
_LEDGER_FALLBACK = (status.HTTP_422_UNPROCESSABLE_ENTITY, "ledger_refused", True)


def ledger_refusal(exc: ledger_errors.LedgerError) -> tuple[int, str, bool]:
    """(HTTP status, code, retryable) of a ledger refusal."""
    for cls in type(exc).__mro__:
        if cls in LEDGER_REFUSALS:
            return LEDGER_REFUSALS[cls]
    return _LEDGER_FALLBACK


# PostgreSQL conditions a request meets through no fault of its own and that pass if it is sent again:
# another transaction won a race (serialization failure, deadlock, a lock wait that timed out), or the
# server is going away or unreachable (restart, failover, a lost connection).
_CONFLICT_SQLSTATES = frozenset({"40001", "40P01", "55P03"})


def _database_refusal(exc: DatabaseError) -> tuple[int, str, str] | None:
    sqlstate = getattr(exc.__cause__, "sqlstate", None)
    if sqlstate in _CONFLICT_SQLSTATES:
        return status.HTTP_409_CONFLICT, "concurrent_update", "another request changed the same data; send it again"
    if isinstance(exc, OperationalError | InterfaceError):
        return (status.HTTP_503_SERVICE_UNAVAILABLE, "database_unavailable",
                "the database is unavailable for a moment; send the request again")
    return None


def _envelope(http_status: int, code: str, message: str, *, retryable: bool, details=None) -> Response:
    body = {"error": {"code": code, "message": message, "retryable": retryable}}
    if details is not None:
        body["error"]["details"] = details
    return Response(body, status=http_status)


# DRF refusals that depend on the moment; every other one (validation, parse errors, authentication,
# permissions, not found, method not allowed) is final for that request.
_RETRYABLE_DRF = (exceptions.Throttled,)


def exception_handler(exc, context):
    if isinstance(exc, DomainError):
        return _envelope(exc.http_status, exc.code, exc.message, retryable=is_retryable(exc), details=exc.details)
    if isinstance(exc, ledger_errors.LedgerError):
        http_status, code, retryable = ledger_refusal(exc)
        if http_status != status.HTTP_409_CONFLICT:
            logger.error("ledger refused a command: %s", exc, exc_info=exc)
        return _envelope(http_status, code, str(exc) or code, retryable=retryable)
    if isinstance(exc, DatabaseError):
        refusal = _database_refusal(exc)
        if refusal is None:
            return None  # a bug (an integrity or data error): Django's 500, logged with its traceback
        http_status, code, message = refusal
        logger.warning("request refused as retryable: %s", exc, exc_info=exc)
        response = _envelope(http_status, code, message, retryable=True)
        if http_status == status.HTTP_503_SERVICE_UNAVAILABLE:
            response["Retry-After"] = "1"
        return response
    # As DRF's handler does, so that the code is theirs too: a view's `raise Http404` is `not_found`.
    if isinstance(exc, Http404):
        exc = exceptions.NotFound(*exc.args)
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(*exc.args)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "default_code", "error")
    if hasattr(exc, "get_codes") and isinstance(exc.get_codes(), str):
        code = exc.get_codes()
    detail = response.data
    message = detail.get("detail") if isinstance(detail, dict) and "detail" in detail else "invalid request"
    retryable = isinstance(exc, _RETRYABLE_DRF) or response.status_code >= 500
    body = {"error": {"code": code, "message": str(message), "retryable": retryable}}
    if not (isinstance(detail, dict) and set(detail) == {"detail"}):
        body["error"]["details"] = detail
    response.data = body
    return response


def is_final(response) -> bool:
    """Whether `response` is a final answer to its request: a 2xx, or a 4xx refusal that says it is not
    retryable. Final answers are what an idempotent endpoint stores and replays."""
    if 200 <= response.status_code < 300:
        return True
    if not 400 <= response.status_code < 500:
        return False
    error = response.data.get("error") if isinstance(response.data, dict) else None
    return isinstance(error, dict) and error.get("retryable") is False


class StrictCharField(serializers.CharField):
    """A text field that takes only JSON strings. DRF's CharField turns a number into its text, so a JSON
    1e3 or 2.5 would pass as "1000.0" or "2.5"; for quantities that is a float by another name."""

    default_error_messages = {"not_a_string": "must be a JSON string, e.g. \"12.5\""}

    def __init__(self, **kwargs):
        kwargs.setdefault("trim_whitespace", False)  # " 1" is not what a person writes on an order ticket
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


def validated(serializer_class, data) -> dict:
    """`serializer_class(data=data)` validated, as `validated_data`; refusals raise its ValidationError.

    DRF builds and deep-copies a serializer's fields for every instance, which on the mint path cost
    more than the database work. A body that plainly satisfies the declared fields (strings already
    trimmed and within their lengths, plain integers, one of the choices) is taken as it is, which is
    exactly what DRF would return for it; anything else, including every body DRF would refuse, goes
    through DRF, so refusals read the same as ever."""
    fast = _plainly_valid(serializer_class, data)
    if fast is not None:
        return fast
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _plainly_valid(serializer_class, data) -> dict | None:
    from rest_framework import fields, serializers

    if not isinstance(data, dict) or serializer_class.validate is not serializers.Serializer.validate:
        return None
    out = {}
    for name, field in serializer_class._declared_fields.items():
        if getattr(serializer_class, f"validate_{name}", None) is not None or field.read_only:
            return None
        value = data.get(field.source if field.source not in (None, "*") else name, fields.empty)
        if value is fields.empty:
            return None  # defaults and required-field errors are DRF's to apply
        kind = type(field)
        if kind is fields.CharField or kind is StrictCharField:
            if (not isinstance(value, str) or not value.isascii() or "\x00" in value
                    or (field.trim_whitespace and value != value.strip())
                    or (not value and not field.allow_blank)
                    or (field.max_length is not None and len(value) > field.max_length)
                    or (field.min_length is not None and len(value) < field.min_length)):
                return None
        elif kind is fields.IntegerField:
            if (type(value) is not int or (field.max_value is not None and value > field.max_value)
                    or (field.min_value is not None and value < field.min_value)):
                return None
        elif kind is fields.ChoiceField:
            if not isinstance(value, str) or value not in field.choice_strings_to_values:
                return None
            value = field.choice_strings_to_values[value]
        else:
            return None
        out[name] = value
    return out
