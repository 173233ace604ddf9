"""The rate limiter itself: the token bucket in Redis, auditor keys limited like market makers', and
what happens when Redis cannot be reached."""

from __future__ import annotations

import logging
import time

import pytest

from compliance import rate_limits
from tests.compliance import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def limit(settings):
    settings.API_RATE_LIMIT_PER_S = 0.01
    settings.API_RATE_LIMIT_BURST = 2
    return settings


def test_an_auditor_key_on_the_staff_api_is_limited_too(client, limit):
    _user, api_key, credentials = f.make_auditor_api_key()
    rate_limits.reset(api_key.pk)
    path = "/api/v1/compliance/participants"
    statuses = [client.get(path, headers=f.sign_request(credentials, "GET", path)).status_code for _ in range(3)]
    assert statuses == [200, 200, 429]


def test_a_bucket_refills_at_its_rate(limit):
    mm = f.make_market_maker(chains=())
    rate_limits.reset(mm.api_key.pk)
    rate_limits.take(mm.api_key.pk)
    rate_limits.take(mm.api_key.pk)
    with pytest.raises(rate_limits.RateLimited) as refused:
        rate_limits.take(mm.api_key.pk)
    assert 99 <= refused.value.wait <= 100  # one token every 100 s
    limit.API_RATE_LIMIT_PER_S = 1000  # a few milliseconds later the bucket holds a token again
    time.sleep(0.01)
    rate_limits.take(mm.api_key.pk)


def test_without_redis_requests_go_on_and_the_miss_is_logged(client, limit, caplog):
    limit.RATE_LIMIT_REDIS_URL = "unix:///nonexistent/redis.sock?db=1"
    mm = f.make_market_maker(chains=())
    with caplog.at_level(logging.WARNING, logger="compliance.rate_limits"):
        for _ in range(3):
            response = client.get("/api/v1/participant", headers=f.sign_request(mm.credentials, "GET",
                                                                                 "/api/v1/participant"))
            assert response.status_code == 200
    assert any("rate limit not applied" in record.getMessage() for record in caplog.records)


def test_the_redis_url_is_derived_from_the_broker_url():
    from config.settings import redis_client_url

    assert redis_client_url("redis+socket:///srv/redis.sock?virtual_host=0", 1) == "unix:///srv/redis.sock?db=1"
    assert redis_client_url("redis://:pw@cache:6379/0", 1) == "redis://:pw@cache:6379/1"
    assert redis_client_url("rediss://cache:6380/0?ssl_cert_reqs=required", 1) == \
        "rediss://cache:6380/1?ssl_cert_reqs=required"


def test_the_limit_is_documented_in_the_schema(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    description = schema["components"]["securitySchemes"]["MarketMakerApiKey"]["description"]
    assert "429 `rate_limited`" in description and "Retry-After" in description
