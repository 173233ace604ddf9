"""OpenAPI description of the market-maker API's conventions (drf-spectacular): the authentication schemes
(market-maker API keys, staff sessions) and what comes with them on every operation that uses them:
refusals of keys and RFC 9421 signatures, rate limits, and the Idempotency-Key of idempotent POSTs.
`AutoSchema` (settings.REST_FRAMEWORK) adds them to config.openapi's."""

from django.conf import settings
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter

from compliance.api_auth import MarketMakerAuthentication
from config import openapi
from config.openapi import Refusal


class VerifiedSessionScheme(SessionScheme):
    """Staff sessions (config.session_auth): the session cookie, as drf-spectacular describes it."""

    target_class = "config.session_auth.VerifiedSessionAuthentication"
    priority = 0


class MarketMakerAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "compliance.api_auth.MarketMakerAuthentication"
    name = "MarketMakerApiKey"

    def get_security_definition(self, auto_schema):
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": (
                "`Authorization: ApiKey <key_id>.<secret>`. Every state-changing request must also carry an "
                "RFC 9421 HTTP message signature (`Signature-Input`, `Signature`) made with the key's HMAC-SHA256 "
                "secret or Ed25519 private key, covering `\"@method\" \"@path\" \"content-digest\"`, with `created` "
                "(at most 5 minutes old), a unique `nonce` and `keyid`; and an RFC 9530 `Content-Digest` "
                "(sha-256) of the body. POSTs need an `Idempotency-Key` header. "
                f"Each key may send {settings.API_RATE_LIMIT_PER_S:g} requests a second on average, in bursts of up "
                f"to {settings.API_RATE_LIMIT_BURST}; past that a request is refused, changing nothing and spending "
                "no nonce, with 429 `rate_limited` and `Retry-After` (seconds)."
            ),
        }


# compliance.api_auth's refusals, as (code, example message, when). Their status is the view's
# (config.openapi.AutoSchema.authentication_failure_status): 401, or 403 where a session comes first.
_KEY_REFUSALS = (
    ("api_key_invalid", "invalid API key", "the key id or secret is wrong, or the key's user is disabled"),
    ("api_key_revoked", "this API key has been revoked", "the key was revoked"),
)
_SIGNATURE_REFUSALS = (
    ("signature_invalid", "signature verification failed: ...",
     "the signature does not verify, or does not cover the required components"),
    ("signature_expired", "the signature is older than 5 minutes or from the future",
     "`created` is more than 5 minutes old, or in the future"),
    ("signature_nonce_missing", "the signature needs a nonce of 16 to 128 characters",
     "the signature has no `nonce` of 16 to 128 characters"),
    ("signature_replayed", "this signature nonce was already used", "the nonce was used before"),
)
SIGNATURE_MISSING = ("signature_missing", "state-changing requests must carry an RFC 9421 signature",
                     "a state-changing request without `Signature` and `Signature-Input`")
RATE_LIMITED = Refusal(429, "rate_limited", True, "too many requests for this API key. Expected available in 1 second.",
                       "past the key's rate limit; nothing was done and no nonce spent", headers=("Retry-After",))

IDEMPOTENCY_KEY_REQUIRED = Refusal(400, "idempotency_key_required", False,
                                   "an Idempotency-Key header (1-255 printable ASCII characters) is required",
                                   "no Idempotency-Key, or not 1-255 printable ASCII characters")
IDEMPOTENCY_KEY_REUSED = Refusal(409, "idempotency_key_reused", False,
                                 "this Idempotency-Key was used for a different request",
                                 "this Idempotency-Key was used for another method, path or body")
IDEMPOTENCY_REQUEST_IN_FLIGHT = Refusal(
    409, "idempotency_request_in_flight", True,
    "a request with this Idempotency-Key is still being processed; send it again later with the same key",
    "the first request with this Idempotency-Key was still running after 10 s")

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=True, pattern=r"^[\x21-\x7e]{1,255}$",
    description="unique per logical request (1-255 printable ASCII characters, kept 7 days); the same key "
                "with the same request replays the first final answer, with another request it is refused")
IDEMPOTENT_REPLAYED = {"schema": {"type": "string", "enum": ["true"]}, "required": False,
                       "description": "present on an answer replayed for a repeated Idempotency-Key"}


def is_idempotent(handler) -> bool:
    """Whether a view method is wrapped by compliance.idempotency.idempotent (its wrapper's code is the
    one the decorator defines)."""
    from compliance.idempotency import idempotent

    code = getattr(getattr(handler, "__func__", handler), "__code__", None)
    return code is not None and code in idempotent.__code__.co_consts


class AutoSchema(openapi.AutoSchema):
    """config.openapi's, plus what API keys, signatures, rate limits and Idempotency-Key add."""

    def uses_api_keys(self) -> bool:
        return any(isinstance(a, MarketMakerAuthentication) for a in self.view.get_authenticators())

    def is_idempotent(self) -> bool:
        return is_idempotent(self.handler)

    def changes_state(self) -> bool:
        # Every POST of the API that changes anything is idempotent; the others (signature-check) only
        # read (the signature's nonce is one INSERT ... ON CONFLICT DO NOTHING, which loses no race).
        return super().changes_state() and self.is_idempotent()

    def refusals(self) -> list[Refusal]:
        found = super().refusals()
        if self.uses_api_keys():
            status = self.authentication_failure_status
            signed = _SIGNATURE_REFUSALS if self.method in openapi.SAFE_METHODS else (SIGNATURE_MISSING,
                                                                                      *_SIGNATURE_REFUSALS)
            found += [Refusal(status, code, False, message, when,
                              headers=("WWW-Authenticate",) if status == 401 else ())
                      for code, message, when in (*_KEY_REFUSALS, *signed)]
            found.append(RATE_LIMITED)
        if self.is_idempotent():
            found += [IDEMPOTENCY_KEY_REQUIRED, IDEMPOTENCY_KEY_REUSED, IDEMPOTENCY_REQUEST_IN_FLIGHT]
        return found

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        return [IDEMPOTENCY_KEY, *parameters] if self.is_idempotent() else parameters

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is not None and self.is_idempotent():
            for status, response in operation["responses"].items():
                if status.startswith("2"):
                    response.setdefault("headers", {}).setdefault("Idempotent-Replayed", IDEMPOTENT_REPLAYED)
        return operation
