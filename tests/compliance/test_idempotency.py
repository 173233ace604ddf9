import json
import threading
from datetime import timedelta

import pytest
import requests
from django.utils import timezone

from compliance.models import Chain, IdempotencyRecord, Wallet
from ledger.models import Event
from tests.api_server import busy_sessions, wait_until
from tests.compliance import factories as f
from tests.conftest import database_url_for_tests

PATH = "/api/v1/wallets"


def wallet_body():
    key = f.new_wallet_key(Chain.SOLANA)
    return json.dumps({"chain": "solana", "address": f.wallet_address(Chain.SOLANA, key)}).encode()


def send(client, mm, body, key, path=PATH):
    headers = f.sign_request(mm.credentials, "POST", path, body, idempotency_key=key)
    return client.post(path, data=body, content_type="application/json", headers=headers)


@pytest.mark.django_db
def test_same_key_and_body_replays_the_original_response(client):
    mm = f.make_market_maker(chains=())
    body = wallet_body()
    first = send(client, mm, body, "key-1")
    second = send(client, mm, body, "key-1")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Wallet.objects.filter(participant=mm.participant).count() == 1


@pytest.mark.django_db
def test_same_key_with_a_different_body_is_a_conflict(client):
    mm = f.make_market_maker(chains=())
    assert send(client, mm, wallet_body(), "key-2").status_code == 201
    response = send(client, mm, wallet_body(), "key-2")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert Wallet.objects.filter(participant=mm.participant).count() == 1


@pytest.mark.django_db
def test_a_refusal_is_remembered_too(client):
    mm = f.make_market_maker(chains=())
    bad = json.dumps({"chain": "ethereum", "address": "0x" + "ab" * 20}).encode()
    first = send(client, mm, bad, "key-3")
    again = send(client, mm, bad, "key-3")
    assert first.status_code == again.status_code == 400
    assert first.json() == again.json()
    assert again["Idempotent-Replayed"] == "true"


@pytest.mark.django_db
def test_keys_are_scoped_per_participant(client):
    a = f.make_market_maker(chains=())
    b = f.make_market_maker(chains=())
    assert send(client, a, wallet_body(), "shared-key").status_code == 201
    other = send(client, b, wallet_body(), "shared-key")
    assert other.status_code == 201
    assert "Idempotent-Replayed" not in other
    assert Wallet.objects.filter(participant=b.participant).count() == 1


@pytest.mark.django_db
def test_a_post_without_a_key_is_refused_and_changes_nothing(client):
    mm = f.make_market_maker(chains=())
    body = wallet_body()
    headers = f.sign_request(mm.credentials, "POST", PATH, body)
    del headers["Idempotency-Key"]
    response = client.post(PATH, data=body, content_type="application/json", headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "idempotency_key_required"
    assert not Wallet.objects.filter(participant=mm.participant).exists()


@pytest.mark.django_db
def test_a_refusal_of_the_moment_leaves_the_key_unused(client):
    mm = f.make_market_maker(chains=())
    body = wallet_body()
    assert send(client, mm, body, "key-4").status_code == 201
    # The same address again, under another key: refused because of what exists now, so not kept.
    refused = send(client, mm, body, "key-5")
    assert refused.status_code == 409
    assert refused.json()["error"]["code"] == "wallet_already_registered"
    assert refused.json()["error"]["retryable"] is True
    assert not IdempotencyRecord.objects.filter(key="key-5").exists()
    assert IdempotencyRecord.objects.get(key="key-4").response_status == 201


@pytest.mark.django_db
def test_old_records_are_pruned_after_retention():
    from compliance import idempotency

    mm = f.make_market_maker(chains=())
    IdempotencyRecord.objects.create(scope=f"participant:{mm.participant.id}", key="old", method="POST", path="/",
                                     request_hash="0" * 64, response_status=201, response_body={})
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(days=6))
    assert idempotency.prune() == 0  # kept at least 7 days
    IdempotencyRecord.objects.filter(key="old").update(created_at=timezone.now() - timedelta(days=8))
    assert idempotency.prune() == 1


def test_fifty_concurrent_identical_posts_make_exactly_one_effect_and_all_get_its_answer(committed, live_server,
                                                                                         monkeypatch):
    from compliance import idempotency

    # Duplicates queue behind the key one after another; the bound on that wait has a test of its own,
    # and here a loaded machine must not turn the tail of the burst away.
    monkeypatch.setattr(idempotency, "IDEMPOTENCY_WAIT", timedelta(seconds=120))
    mm = f.make_market_maker(chains=())
    body = wallet_body()
    url = live_server.url + PATH
    host = live_server.url.split("://", 1)[1]
    barrier = threading.Barrier(50)
    results: list[tuple[int, dict]] = []
    lock = threading.Lock()

    def worker():
        barrier.wait()
        # The test server's listen backlog is small, so a connection may be reset under this burst; a
        # client retries with the same Idempotency-Key and a fresh signature, as a real client would.
        for _attempt in range(20):
            headers = f.sign_request(mm.credentials, "POST", PATH, body, host=host, idempotency_key="burst-1")
            try:
                response = requests.post(url, data=body, headers={**headers, "Content-Type": "application/json"},
                                         timeout=60)
            except requests.ConnectionError:
                continue
            with lock:
                results.append((response.status_code, response.json()))
            return

    threads = [threading.Thread(target=worker) for _ in range(50)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(results) == 50
    # A request whose connection was reset is still served (a retry waits for it): let those finish too.
    database_url = database_url_for_tests()
    wait_until(lambda: not busy_sessions(database_url), timeout_s=30, what="the server's requests to finish")
    assert Wallet.objects.filter(participant=mm.participant).count() == 1
    wallet = Wallet.objects.get(participant=mm.participant)
    assert Event.objects.filter(stream_id=f"wallet-{wallet.id}", event_type="compliance.wallet_registered").count() == 1
    # Duplicates wait for the first and receive its answer; none is turned away while it runs.
    assert {status for status, _ in results} == {201}
    assert all(b == results[0][1] for _status, b in results)
    assert results[0][1]["id"] == wallet.id
