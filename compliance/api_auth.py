"""Market-maker API authentication: an API key plus an RFC 9421 HTTP message signature.

    Authorization: ApiKey <key_id>.<secret>
    Content-Digest: sha-256=:<base64>:                       (RFC 9530, over the raw body)
    Signature-Input: sig=("@method" "@path" "content-digest");created=<unix>;nonce="<random>";keyid="<key_id>";alg="hmac-sha256"
    Signature: sig=:<base64>:

Each key's requests are rate limited (compliance.rate_limits) once the key and secret check out, before
the signature is verified. A signature is required on every state-changing request and checked on any other request that
carries one. It must cover the method, the path (and "@query" when there is a query string) and the
body digest, be created within the last five
minutes, and carry a nonce never seen before for that key (nonces are kept in PostgreSQL).
"""

from __future__ import annotations

import hmac
from datetime import UTC, datetime, timedelta

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from django.db import connection
from django.utils import timezone
from http_message_signatures import (
    HTTPMessageVerifier,
    HTTPSignatureKeyResolver,
    InvalidSignature,
    algorithms,
)
from http_message_signatures.exceptions import HTTPMessageSignaturesException
from rest_framework import authentication, exceptions

from compliance import crypto, rate_limits, selectors
from compliance.models import ApiKey, SignatureAlgorithm, SignatureNonce
from compliance.services import hash_secret

MAX_SIGNATURE_AGE = timedelta(minutes=5)
MAX_FUTURE_SKEW = timedelta(seconds=5)
LAST_USED_RESOLUTION = timedelta(minutes=1)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
REQUIRED_COMPONENTS = ("@method", "@path", "content-digest")
_ALGORITHMS = {SignatureAlgorithm.HMAC_SHA256: algorithms.HMAC_SHA256, SignatureAlgorithm.ED25519: algorithms.ED25519}


class _Failed(exceptions.AuthenticationFailed):
    def __init__(self, message: str, code: str):
        super().__init__(message, code=code)


class _Message:
    """The view of a Django request that http_message_signatures reads."""

    def __init__(self, request):
        self.method = request.method.upper()
        self.url = request.build_absolute_uri()
        self.headers = {name: value for name, value in request.headers.items()}


class _KeyResolver(HTTPSignatureKeyResolver):
    def __init__(self, api_key: ApiKey):
        self.api_key = api_key

    def resolve_public_key(self, key_id: str):
        if key_id != self.api_key.key_id:
            return None
        if self.api_key.signature_alg == SignatureAlgorithm.ED25519:
            return Ed25519PublicKey.from_public_bytes(bytes(self.api_key.ed25519_public_key))
        return crypto.decrypt(self.api_key.hmac_key_encrypted)

    def resolve_private_key(self, key_id: str):
        raise NotImplementedError("the server never signs with a market maker's key")


class MarketMakerAuthentication(authentication.BaseAuthentication):
    keyword = "ApiKey"

    def authenticate_header(self, request) -> str:
        return f'{self.keyword} realm="api"'

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if not header.startswith(self.keyword + " "):
            return None
        token = header[len(self.keyword) + 1:].strip()
        key_id, _, secret = token.partition(".")
        # A key id PostgreSQL cannot hold in text (a NUL) is no key's: refused here, not by the database (a 500).
        known = key_id and secret and "\x00" not in key_id
        api_key = selectors.api_key_for_authentication(key_id=key_id) if known else None
        if api_key is None or not hmac.compare_digest(api_key.secret_hash, hash_secret(secret)):
            raise _Failed("invalid API key", "api_key_invalid")
        if api_key.revoked_at is not None:
            raise _Failed("this API key has been revoked", "api_key_revoked")
        if not api_key.user.is_active:
            raise _Failed("this API user is disabled", "api_key_invalid")
        # The key is known good: count the request against its rate limit before the costly part, so a
        # refused request verifies no signature, spends no nonce and writes nothing.
        rate_limits.take(api_key.pk)

        signed = "Signature" in request.headers or "Signature-Input" in request.headers
        if request.method.upper() not in SAFE_METHODS or signed:
            self._verify_signature(request, api_key)
        now = timezone.now()
        # "Last used" to the minute is all anyone reads; writing it on every request costs a commit.
        if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
            ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        return api_key.user, api_key

    def _verify_signature(self, request, api_key: ApiKey) -> None:
        if "Signature" not in request.headers or "Signature-Input" not in request.headers:
            raise _Failed("state-changing requests must carry an RFC 9421 signature", "signature_missing")
        unsafe = request.method.upper() not in SAFE_METHODS
        body = request.body if unsafe else None
        verifier = HTTPMessageVerifier(signature_algorithm=_ALGORITHMS[api_key.signature_alg],
                                       key_resolver=_KeyResolver(api_key))
        required = REQUIRED_COMPONENTS if unsafe else ("@method", "@path")
        if request.META.get("QUERY_STRING"):
            required = (*required, "@query")  # parameters in the query must not be swappable either
        try:
            results = verifier.verify(_Message(request), max_age=None, body=body, require_components=required)
        except (InvalidSignature, HTTPMessageSignaturesException) as exc:
            raise _Failed(f"signature verification failed: {exc}", "signature_invalid") from None
        params = results[0].parameters
        created = datetime.fromtimestamp(int(params["created"]), tz=UTC)
        now = datetime.now(tz=UTC)
        if created < now - MAX_SIGNATURE_AGE or created > now + MAX_FUTURE_SKEW:
            raise _Failed("the signature is older than 5 minutes or from the future", "signature_expired")
        nonce = params.get("nonce")
        if not isinstance(nonce, str) or not 16 <= len(nonce) <= 128:
            raise _Failed("the signature needs a nonce of 16 to 128 characters", "signature_nonce_missing")
        # One statement, no exception on a duplicate: no savepoint or extra commit on the hot path.
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {SignatureNonce._meta.db_table} (api_key_id, nonce, created_at) "  # noqa: S608
                "VALUES (%s, %s, %s) ON CONFLICT (api_key_id, nonce) DO NOTHING RETURNING id",
                [api_key.pk, nonce, timezone.now()])
            if cursor.fetchone() is None:
                raise _Failed("this signature nonce was already used", "signature_replayed")


def prune_nonces(*, older_than: timedelta = timedelta(minutes=15)) -> int:
    """Nonces outside the acceptance window can never be replayed (the timestamp check refuses them)."""
    deleted, _ = SignatureNonce.objects.filter(created_at__lt=timezone.now() - older_than).delete()
    return deleted
