"""OpenAPI description of the API's authentication: market-maker API keys, staff sessions (drf-spectacular
extensions)."""

from django.conf import settings
from drf_spectacular.authentication import SessionScheme
from drf_spectacular.extensions import OpenApiAuthenticationExtension


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
