"""Idempotent POSTs: `@idempotent` on a DRF view method.

    class MintList(APIView):
        @idempotent
        def post(self, request): ...

The client sends `Idempotency-Key` (1-255 printable ASCII characters). Keys are scoped per participant
(per user for staff) and kept at least IDEMPOTENCY_RETENTION.

The claim on a key is part of the request's own transaction: the key's record is inserted first, the view
runs, and its response is written into the record, all in one transaction that commits whole or not at
all (config.transactions.all_or_nothing). Nobody else ever sees a key "in flight", so nothing has to be
released or taken over:
- a crash (the web server killed, PostgreSQL restarted, a connection lost) rolls the claim back with the
  effect, and a retry with the same key runs the request afresh at once;
- a concurrent duplicate waits for the first (on a transaction-level advisory lock on the key, at most
  IDEMPOTENCY_WAIT, then 409 `idempotency_request_in_flight`, retryable) and then gets its stored answer,
  or, if the first stored none, runs the request itself;
- same key, same method/path/body: the stored response is replayed (`Idempotent-Replayed: true`);
- same key, different request: 409 `idempotency_key_reused`.
Only final answers are stored (`config.api.is_final`): 2xx, and refusals that follow from the request
itself (`retryable: false`). A refusal that depends on the moment, and any 5xx, rolls everything back,
claim included, so the same key may be sent again and succeed later.
The view may read `request.idempotency_key` (scoped, e.g. to pass to ledger append).
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import re
from datetime import timedelta

from django.db import DatabaseError, OperationalError, connection
from django.utils import timezone
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from compliance.models import ApiKey, IdempotencyRecord
from config import api
from config.api import DomainError
from config.transactions import all_or_nothing

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
IDEMPOTENCY_RETENTION = timedelta(days=7)
# How long a duplicate waits for the request holding its key before it is told to come back. It holds a
# web server thread and a database connection while it waits, so the wait is bounded.
IDEMPOTENCY_WAIT = timedelta(seconds=10)
_VALID_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
# First key of the two-key advisory locks taken on idempotency keys: a lock space apart from the one-key
# locks the ledger and custody take.
_LOCK_CLASS = 0x1DE7

# The hot path's one statement for the claim. The advisory lock is taken without waiting, so the claim
# never blocks: if the lock is free nobody is running this key (every claimer takes it, and holds it to
# its commit or rollback), so the INSERT cannot meet an uncommitted row either; if it is taken, `held`
# comes back false and the duplicate waits in `_wait_for_key`.
_CLAIM_SQL = f"""
    WITH lock AS (SELECT pg_try_advisory_xact_lock({_LOCK_CLASS}, %(lock)s::int4) AS held),
    claimed AS (
        INSERT INTO compliance_idempotencyrecord (scope, key, method, path, request_hash, created_at)
        SELECT %(scope)s, %(key)s, %(method)s, %(path)s, %(hash)s, %(now)s FROM lock WHERE held
        ON CONFLICT (scope, key) DO NOTHING
        RETURNING id
    )
    SELECT (SELECT held FROM lock), (SELECT id FROM claimed)"""  # noqa: S608 (a constant)
_STORED_SQL = ("SELECT request_hash, response_status, response_body::text FROM compliance_idempotencyrecord "
               "WHERE scope = %s AND key = %s")
_COMPLETE_SQL = ("UPDATE compliance_idempotencyrecord SET response_status = %s, response_body = %s::jsonb "
                 "WHERE id = %s")
# A final refusal is stored after its transaction was rolled back (the view may have written before it
# refused), in a statement of its own. If another request holds the key meanwhile, it is running the same
# request and stores its own answer, which a final refusal is by definition; so skip rather than wait.
_STORE_ALONE_SQL = f"""
    INSERT INTO compliance_idempotencyrecord (scope, key, method, path, request_hash, created_at, response_status,
                                              response_body)
    SELECT %(scope)s, %(key)s, %(method)s, %(path)s, %(hash)s, %(now)s, %(status)s, %(body)s::jsonb
    WHERE pg_try_advisory_xact_lock({_LOCK_CLASS}, %(lock)s::int4)
    ON CONFLICT (scope, key) DO NOTHING"""  # noqa: S608 (a constant)
_LOCK_NOT_AVAILABLE = "55P03"


def scope_of(request) -> str:
    auth = getattr(request, "auth", None)
    if isinstance(auth, ApiKey) and auth.participant_id is not None:
        return f"participant:{auth.participant_id}"
    if request.user is not None and request.user.is_authenticated:
        return f"user:{request.user.id}"
    raise DomainError("idempotent requests need an authenticated caller", code="not_authenticated",
                      http_status=401, retryable=False)


def _request_hash(request) -> str:
    digest = hashlib.sha256()
    for part in (request.method.upper(), request.get_full_path()):
        digest.update(part.encode())
        digest.update(b"\x00")
    digest.update(request.body)
    return digest.hexdigest()


class _Claim:
    """One request's hold on its key."""

    def __init__(self, *, scope: str, key: str, request):
        self.scope, self.key = scope, key
        self.params = {
            "scope": scope, "key": key, "method": request.method.upper(), "path": request.get_full_path()[:500],
            "hash": _request_hash(request), "now": timezone.now(),
            # Two keys that share a lock only queue behind each other; neither reads the other's record.
            "lock": int.from_bytes(hashlib.sha256(f"{scope}\x00{key}".encode()).digest()[:4], "big", signed=True),
        }
        self.record_id: int | None = None

    def take(self) -> tuple | None:
        """In the request's transaction: claim the key (None) or return its stored (hash, status, body)."""
        with connection.cursor() as cursor:
            # Twice at most: once the lock is ours nobody else can insert the key's record, so if the
            # record we conflicted with was pruned before we could read it, the second INSERT claims it.
            for _attempt in range(2):
                cursor.execute(_CLAIM_SQL, self.params)
                held, record_id = cursor.fetchone()
                if not held:
                    self._wait_for_key(cursor)
                    cursor.execute(_CLAIM_SQL, self.params)  # the lock is ours now: this cannot wait
                    held, record_id = cursor.fetchone()
                    assert held, "an advisory lock this transaction holds was refused to it"
                if record_id is not None:
                    self.record_id = record_id
                    return None
                # Stored by a request that committed before us (a new statement sees it), unless it was
                # pruned in between, in which case the key is free again.
                cursor.execute(_STORED_SQL, [self.scope, self.key])
                stored = cursor.fetchone()
                if stored is not None:
                    return stored
        raise AssertionError(f"the record of {self.scope} {self.key} vanished twice while its lock was held")

    def _wait_for_key(self, cursor) -> None:
        """Queue behind the request that holds the key, for at most IDEMPOTENCY_WAIT (the slow path: only
        a duplicate sent while the first is still running comes here)."""
        cursor.execute("SELECT current_setting('lock_timeout')")
        previous = cursor.fetchone()[0]
        cursor.execute("SELECT set_config('lock_timeout', %s, true)",
                       [f"{int(IDEMPOTENCY_WAIT.total_seconds() * 1000)}ms"])
        try:
            cursor.execute(f"SELECT pg_advisory_xact_lock({_LOCK_CLASS}, %s::int4)", [self.params["lock"]])
        except OperationalError as exc:
            if getattr(exc.__cause__, "sqlstate", None) != _LOCK_NOT_AVAILABLE:
                raise
            raise DomainError("a request with this Idempotency-Key is still being processed; send it again "
                              "later with the same key", code="idempotency_request_in_flight", http_status=409,
                              retryable=True) from None
        cursor.execute("SELECT set_config('lock_timeout', %s, true)", [previous])

    def complete(self, response: Response) -> None:
        """In the request's transaction: write the final answer into our record."""
        with connection.cursor() as cursor:
            cursor.execute(_COMPLETE_SQL, [response.status_code, _render(response), self.record_id])
            assert cursor.rowcount == 1, f"idempotency record {self.record_id} vanished inside its own transaction"

    def store_alone(self, response: Response) -> None:
        """After a rollback: keep a final refusal (one autocommitted statement). Keeping it only saves the
        work of refusing the same body again, so if the database fails here the refusal is still the answer."""
        try:
            with connection.cursor() as cursor:
                cursor.execute(_STORE_ALONE_SQL, {**self.params, "status": response.status_code,
                                                  "body": _render(response)})
        except DatabaseError:
            logger.warning("a final refusal was not stored under its Idempotency-Key", exc_info=True)

    def replay(self, stored: tuple) -> Response:
        request_hash, response_status, response_body = stored
        if request_hash != self.params["hash"]:
            raise DomainError("this Idempotency-Key was used for a different request", code="idempotency_key_reused",
                              http_status=409, retryable=False)
        response = Response(None if response_body is None else json.loads(response_body), status=response_status)
        response["Idempotent-Replayed"] = "true"
        return response


class _RolledBack(Exception):  # noqa: N818 - control flow
    """Carries an answer out of the request's transaction, which is rolled back on the way."""

    def __init__(self, response: Response):
        super().__init__(response.status_code)
        self.response = response


def _render(response: Response) -> str | None:
    return JSONRenderer().render(response.data).decode() if response.data is not None else None


def idempotent(view_method):
    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(HEADER, "")
        if not _VALID_KEY.match(key):
            raise DomainError(f"an {HEADER} header (1-255 printable ASCII characters) is required",
                              code="idempotency_key_required", http_status=400, retryable=False)
        claim = _Claim(scope=scope_of(request), key=key, request=request)
        request.idempotency_key = f"{claim.scope}:{key}"
        try:
            with all_or_nothing():
                stored = claim.take()
                if stored is None:
                    response = _answer(view_method, self, request, args, kwargs)
                    if not api.is_final(response):
                        raise _RolledBack(response)
                    claim.complete(response)
        except _RolledBack as rolled_back:
            response = rolled_back.response
            if api.is_final(response):
                claim.store_alone(response)
            return response
        if stored is not None:
            return claim.replay(stored)
        return response

    return wrapper


def _answer(view_method, view, request, args, kwargs) -> Response:
    """The view's response, or the API's answer to what it raised (as the rolled-back `_RolledBack`)."""
    try:
        return view_method(view, request, *args, **kwargs)
    except Exception as exc:
        response = api.exception_handler(exc, {"request": request, "view": view})
        if response is None:
            raise  # not an answer the API gives (a bug): Django's 500, the transaction rolled back
        raise _RolledBack(response) from exc


def prune(*, older_than: timedelta = IDEMPOTENCY_RETENTION) -> int:
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
