"""Per-API-key request rate limits on the market-maker API: a token bucket per key, in Redis.

Each API key has a bucket of API_RATE_LIMIT_BURST tokens that refills at API_RATE_LIMIT_PER_S tokens a
second; a request takes one token, or is refused with 429 `rate_limited` and `Retry-After` (whole
seconds until a token is back). The bucket lives in Redis (RATE_LIMIT_REDIS_URL, by default the
broker's Redis, database 1), so every process and host shares one limit per key. Taking a token is one
Lua script: Redis runs it atomically, so concurrent requests cannot all take the last token, and it
reads Redis's clock, so servers whose clocks disagree still share one notion of time.

MarketMakerAuthentication asks right after the key and its secret check out and before the signature
is verified, so a refused request costs no signature verification, spends no nonce (the same signed
request can be sent again after Retry-After) and writes nothing. If Redis cannot be reached the request
goes on (logged): the limit protects capacity, and losing Redis must not take the API down with it.
"""

from __future__ import annotations

import logging
import threading

import redis
from django.conf import settings
from rest_framework import exceptions

logger = logging.getLogger(__name__)

# Returns {1, 0} when a token was taken, else {0, milliseconds until one is back}.
_BUCKET_SCRIPT = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'at')
local tokens = tonumber(state[1])
local at = tonumber(state[2])
if tokens == nil or at == nil then
  tokens = burst
  at = now
end
tokens = math.min(burst, tokens + math.max(0, now - at) * rate)
local taken = 0
if tokens >= 1 then
  tokens = tokens - 1
  taken = 1
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'at', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens) / rate * 1000) + 1000)
if taken == 1 then
  return {1, 0}
end
return {0, math.ceil((1 - tokens) / rate * 1000)}
"""

_clients: dict[str, tuple[redis.Redis, object]] = {}
_clients_lock = threading.Lock()


class RateLimited(exceptions.Throttled):
    """429 with Retry-After: DRF's exception handler sets the header from `wait` (whole seconds, rounded
    up) and adds "Expected available in N seconds." to the message."""

    default_code = "rate_limited"

    def __init__(self, wait_s: float, detail: str | None = None):
        super().__init__(wait=wait_s, code="rate_limited", detail=detail or "too many requests for this API key.")


def _connection() -> tuple[redis.Redis, object]:
    url = settings.RATE_LIMIT_REDIS_URL
    cached = _clients.get(url)
    if cached is None:
        with _clients_lock:
            cached = _clients.get(url)
            if cached is None:
                # Short timeouts: a Redis that hangs must not hold API requests.
                client = redis.Redis.from_url(url, socket_timeout=0.5, socket_connect_timeout=0.5)
                cached = _clients[url] = (client, client.register_script(_BUCKET_SCRIPT))
    return cached


def bucket_key(api_key_id: int) -> str:
    return f"{settings.RATE_LIMIT_KEY_PREFIX}apikey:{api_key_id}"


def take(api_key_id: int) -> None:
    """Take one request token from the key's bucket, or raise RateLimited."""
    _take(bucket_key(api_key_id), float(settings.API_RATE_LIMIT_PER_S), int(settings.API_RATE_LIMIT_BURST))


def take_public(client_address: str) -> None:
    """The same bucket for unauthenticated public endpoints (attestations, reserves), per client address."""
    _take(f"{settings.RATE_LIMIT_KEY_PREFIX}public:{client_address}", float(settings.PUBLIC_RATE_LIMIT_PER_S),
          int(settings.PUBLIC_RATE_LIMIT_BURST), detail="too many requests from this address.")


def _take(key: str, rate: float, burst: int, *, detail: str | None = None) -> None:
    try:
        taken, wait_ms = _connection()[1](keys=[key], args=[repr(rate), burst])
    except redis.RedisError as exc:
        logger.warning("rate limit not applied: redis unavailable", extra={"error": type(exc).__name__})
        return
    if not taken:
        raise RateLimited(wait_ms / 1000, detail=detail)


def reset(api_key_id: int) -> None:
    """Refill the key's bucket (operations, after lifting a runaway client's cause; tests)."""
    _connection()[0].delete(bucket_key(api_key_id))
