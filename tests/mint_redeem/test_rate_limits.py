"""Per-API-key rate limits on the market-maker API: past its bucket a key gets 429 `rate_limited` with
Retry-After, the refused request changes nothing, and other keys are unaffected."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from django.test import Client

from compliance import rate_limits
from compliance.models import IdempotencyRecord, SignatureNonce
from mint_redeem.models import MintRequest
from tests.compliance.factories import sign_request
from tests.mint_redeem.conftest import SignedClient

BURST = 3


@pytest.fixture
def low_limit(settings, mm, other_mm):
    settings.API_RATE_LIMIT_PER_S = 0.01  # one token back per 100 s: none comes back during a test
    settings.API_RATE_LIMIT_BURST = BURST
    for maker in (mm, other_mm):
        rate_limits.reset(maker.api_key.pk)  # a bucket left in Redis by an earlier run with the same ids
    return settings


def mint_payload(mm):
    return {"product": "AAPLx", "chain": "ethereum", "quantity": "1", "wallet": mm.wallets["ethereum"].pk,
            "funding": "cash"}


def test_past_its_limit_a_key_gets_429_with_retry_after_and_nothing_changes(market, mm, other_mm, api, low_limit):
    for _ in range(BURST):
        assert api.post("/api/v1/mints", mint_payload(mm)).status_code == 201
    state = (MintRequest.objects.count(), SignatureNonce.objects.count(), IdempotencyRecord.objects.count())

    body = json.dumps(mint_payload(mm)).encode()
    headers = sign_request(mm.credentials, "POST", "/api/v1/mints", body)
    refused = Client().post("/api/v1/mints", data=body, content_type="application/json", headers=headers)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert "Expected available in" in refused.json()["error"]["message"]
    assert 1 <= int(refused["Retry-After"]) <= 100
    # No mint, no nonce spent, no idempotency claim: the refused request left no trace.
    assert (MintRequest.objects.count(), SignatureNonce.objects.count(), IdempotencyRecord.objects.count()) == state

    # Another market maker's key has its own bucket.
    assert SignedClient(other_mm).post("/api/v1/mints", mint_payload(other_mm)).status_code == 201
    # Reads count too.
    assert api.get("/api/v1/mints").status_code == 429

    # Once tokens are back, the very same signed request goes through: its nonce was never spent.
    low_limit.API_RATE_LIMIT_PER_S = 1000
    again = Client().post("/api/v1/mints", data=body, content_type="application/json", headers=headers)
    assert again.status_code == 201, again.content
    assert MintRequest.objects.filter(participant=mm.participant).count() == BURST + 1


def test_concurrent_requests_share_one_bucket(committed, live_server, mm, low_limit):
    """Twenty requests at once from one key: exactly the burst gets through (taking a token is atomic)."""

    def read(_):
        headers = sign_request(mm.credentials, "GET", "/api/v1/participant")
        return requests.get(live_server.url + "/api/v1/participant", headers=headers, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = list(pool.map(read, range(20)))
    assert sorted(statuses) == [200] * BURST + [429] * (20 - BURST)
