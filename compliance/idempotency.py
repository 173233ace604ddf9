"""Idempotent POSTs: `@idempotent` on a DRF view method.

    class MintList(APIView):
        @idempotent
        def post(self, request): ...

The client sends `Idempotency-Key` (1-255 printable ASCII characters). Keys are scoped per participant
(per user for staff) and kept at least IDEMPOTENCY_RETENTION. The first request claims the key (a
committed in-flight marker), then the view runs in a transaction that also stores its response, so
the effect and the stored response commit together or not at all:
- same key, same method/path/body: the stored response is replayed (`Idempotent-Replayed: true`);
- same key, different request: 409 `idempotency_key_reused`;
- same key while the first is still running: 409 `idempotency_request_in_flight`.
A 5xx or exception releases the key so the client can retry. A claim whose process died is taken over
after IDEMPOTENCY_STALE_AFTER; a lock token makes sure only one execution's effect ever commits.
The view may read `request.idempotency_key` (scoped, e.g. to pass to ledger append).
"""

from __future__ import annotations

import functools
import hashlib
import re
import uuid
from datetime import timedelta

from django.db import connection
from django.utils import timezone
from rest_framework.exceptions import APIException
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from compliance.models import ApiKey, IdempotencyRecord, IdempotencyState
from config.api import DomainError
from config.transactions import all_or_nothing

HEADER = "Idempotency-Key"
IDEMPOTENCY_RETENTION = timedelta(days=7)
IDEMPOTENCY_STALE_AFTER = timedelta(minutes=5)
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")


class _LostClaim(Exception):
    pass


def scope_of(request) -> str:
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey) and auth.participant_id is not None:
        return f"participant:{auth.participant_id}"
    if request.user is not None and request.user.is_authenticated:
        return f"user:{request.user.id}"
    raise DomainError("idempotent requests need an authenticated caller", code="not_authenticated",
                      http_status=401)


def _request_hash(request) -> str:
    digest = hashlib.sha256()
    for part in (request.method.upper(), request.get_full_path()):
        digest.update(part.encode())
        digest.update(b"\x00")
    digest.update(request.body)
    return digest.hexdigest()


def _claim(*, scope: str, key: str, request) -> tuple[str, IdempotencyRecord | None]:
    """Return (lock_token, None) if we own the key now, or ("", existing record) otherwise."""
    request_hash = _request_hash(request)
    token = uuid.uuid4().hex
    now = timezone.now()
    # One statement (committed on its own outside a transaction), so the claim is visible to a
    # concurrent duplicate at once, at the cost of a single round trip on the hot path.
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO compliance_idempotencyrecord (scope, key, method, path, request_hash, state, "
            "lock_token, locked_at, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (scope, key) DO NOTHING RETURNING id",
            [scope, key, request.method.upper(), request.get_full_path()[:500], request_hash,
             IdempotencyState.IN_FLIGHT, token, now, now])
        if cursor.fetchone() is not None:
            return token, None
    record = IdempotencyRecord.objects.get(scope=scope, key=key)
    if record.request_hash != request_hash:
        raise DomainError("this Idempotency-Key was used for a different request", code="idempotency_key_reused",
                          http_status=409)
    if record.state == IdempotencyState.IN_FLIGHT:
        taken = IdempotencyRecord.objects.filter(
            pk=record.pk, state=IdempotencyState.IN_FLIGHT, lock_token=record.lock_token,
            locked_at__lt=now - IDEMPOTENCY_STALE_AFTER).update(lock_token=token, locked_at=now)
        if taken:
            return token, None
        raise DomainError("a request with this Idempotency-Key is still being processed",
                          code="idempotency_request_in_flight", http_status=409)
    return "", record


def idempotent(view_method):
    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER, "")
        if not _VALID_KEY.match(key):
            raise DomainError(f"an {HEADER} header (1-255 printable ASCII characters) is required",
                              code="idempotency_key_required", http_status=400)
        scope = scope_of(request)
        token, existing = _claim(scope=scope, key=key, request=request)
        if existing is not None:
            response = Response(existing.response_body, status=existing.response_status)
            response["Idempotent-Replayed"] = "true"
            return response
        request.idempotency_key = f"{scope}:{key}"
        try:
            with all_or_nothing():
                response = view_method(self, request, *args, **kwargs)
                if response.status_code >= 500:
                    raise _LostClaim  # roll back whatever the view did, release below
                if _store(scope=scope, key=key, token=token, response=response) != 1:
                    raise _LostClaim
        except _LostClaim:
            IdempotencyRecord.objects.filter(scope=scope, key=key, lock_token=token,
                                              state=IdempotencyState.IN_FLIGHT).delete()
            if response.status_code >= 500:
                return response
            raise DomainError("a request with this Idempotency-Key was taken over by a retry",
                              code="idempotency_request_in_flight", http_status=409) from None
        except (DomainError, APIException) as exc:
            # An expected refusal is an answer: remember it like any other 4xx response.
            from config.api import exception_handler

            response = exception_handler(exc, {"request": request, "view": self})
            if response.status_code >= 500:
                IdempotencyRecord.objects.filter(scope=scope, key=key, lock_token=token,
                                                  state=IdempotencyState.IN_FLIGHT).delete()
                return response
            _store(scope=scope, key=key, token=token, response=response)
            return response
        except BaseException:
            IdempotencyRecord.objects.filter(scope=scope, key=key, lock_token=token,
                                              state=IdempotencyState.IN_FLIGHT).delete()
            raise
        return response

    return wrapper


def _store(*, scope: str, key: str, token: str, response: Response) -> int:
    """Complete our claim with the response (the JSON text as rendered, stored as jsonb). Returns 1, or
    0 if the claim is no longer ours."""
    body = JSONRenderer().render(response.data).decode() if response.data is not None else None
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE compliance_idempotencyrecord SET state = %s, response_status = %s, response_body = %s::jsonb "
            "WHERE scope = %s AND key = %s AND lock_token = %s AND state = %s",
            [IdempotencyState.COMPLETED, response.status_code, body, scope, key, token, IdempotencyState.IN_FLIGHT])
        return cursor.rowcount


def prune(*, older_than: timedelta = IDEMPOTENCY_RETENTION) -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
