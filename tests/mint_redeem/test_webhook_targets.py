"""Webhooks cannot be aimed inside: where a URL may point is checked when it is registered and again,
on what its name resolves to then, at every delivery; the connection goes to the address checked."""

from __future__ import annotations

import ipaddress

import pytest

from compliance import crypto
from mint_redeem import webhook_transport, webhooks
from mint_redeem.models import WebhookDelivery, WebhookEndpoint
from tests.tls import self_signed

from .receivers import FakeDns, Receiver

PUBLIC = "93.184.215.14"


@pytest.fixture
def dns(monkeypatch):
    fake = FakeDns({})
    monkeypatch.setattr(webhook_transport, "_getaddrinfo", fake)
    return fake


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def _delivery_to(endpoint: WebhookEndpoint) -> WebhookDelivery:
    return WebhookDelivery.objects.create(endpoint=endpoint, event_id="evt-1", event_type="mint.accepted",
                                          payload={"type": "mint.accepted"})


@pytest.mark.parametrize("address,reason", [
    ("127.0.0.1", "a loopback address"),
    ("::1", "a loopback address"),
    ("10.1.2.3", "a private address"),
    ("172.16.0.1", "a private address"),
    ("192.168.1.10", "a private address"),
    ("fc00::1", "a private address"),
    ("fd12:3456::1", "a private address"),
    ("169.254.10.1", "a link-local address"),
    ("fe80::1", "a link-local address"),
    ("169.254.169.254", "a cloud metadata address"),
    ("fd00:ec2::254", "a cloud metadata address"),
    ("0.0.0.0", "the unspecified address"),
    ("::", "the unspecified address"),
    ("224.0.0.1", "a multicast address"),
    ("ff02::1", "a multicast address"),
    ("240.0.0.1", "a reserved address"),
    ("100.64.0.1", "not a public address"),  # carrier-grade NAT
    ("::ffff:127.0.0.1", "a loopback address"),  # IPv4-mapped
    ("64:ff9b::a00:1", "a private address"),  # NAT64 of 10.0.0.1
    ("2002:a00:1::1", "a 6to4 address of a refused IPv4 address"),
])
def test_addresses_inside_are_refused(address, reason, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = []
    assert webhook_transport.address_refusal(ipaddress.ip_address(address)) == reason


@pytest.mark.parametrize("address", [PUBLIC, "8.8.8.8", "2606:4700:4700::1111", "::ffff:8.8.8.8",
                                     "64:ff9b::808:808"])
def test_public_addresses_are_allowed(address, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = []
    assert webhook_transport.address_refusal(ipaddress.ip_address(address)) is None


def test_admitted_networks_are_allowed_but_never_metadata_unspecified_or_multicast(settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32", "169.254.0.0/16", "0.0.0.0/0"]
    allowed = webhook_transport.address_refusal
    assert allowed(ipaddress.ip_address("127.0.0.1")) is None
    assert allowed(ipaddress.ip_address("10.0.0.1")) is None  # in 0.0.0.0/0: the setting is taken at its word
    assert allowed(ipaddress.ip_address("169.254.169.254")) == "a cloud metadata address"
    assert allowed(ipaddress.ip_address("0.0.0.0")) == "the unspecified address"
    assert allowed(ipaddress.ip_address("224.0.0.1")) == "a multicast address"
    assert allowed(ipaddress.ip_address("127.0.0.2")) is None  # in 0.0.0.0/0 too
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    assert allowed(ipaddress.ip_address("127.0.0.2")) == "a loopback address"


def test_the_test_profile_admits_no_private_network_by_default():
    from django.conf import settings

    assert settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS == []


@pytest.mark.parametrize("url,message", [
    ("http://127.0.0.1:8000/hooks", "127.0.0.1 is a loopback address"),
    ("http://localhost/hooks", "localhost resolves to 127.0.0.1, a loopback address"),
    ("https://[::1]/hooks", "::1 is a loopback address"),
    ("https://169.254.169.254/latest/meta-data", "169.254.169.254 is a cloud metadata address"),
    ("https://internal.example/hooks", "internal.example resolves to 10.0.0.7, a private address"),
    ("https://mixed.example/hooks", "mixed.example resolves to 192.168.0.9, a private address"),
    ("https://nowhere.example/hooks", "nowhere.example does not resolve"),
    ("https://user:pw@public.example/hooks", "a webhook URL must not carry credentials"),
    ("ftp://public.example/hooks", "webhook URLs must use https"),
    ("https://public.example/" + "a" * 500, "a webhook URL is an https URL of at most 500 characters"),
])
def test_registration_refuses_urls_that_point_inside(db, mm, dns, url, message):
    dns.answers.update({"localhost": ["127.0.0.1"], "internal.example": ["10.0.0.7"],
                        "mixed.example": [PUBLIC, "192.168.0.9"], "public.example": [PUBLIC]})
    with pytest.raises(webhook_transport.UrlRefused) as refused:
        webhooks.endpoint_register(participant=mm.participant, url=url)
    assert refused.value.code == "invalid_webhook_url"
    assert refused.value.message == message
    assert not WebhookEndpoint.objects.exists()


def test_the_api_refuses_a_loopback_url_with_the_default_settings(db, mm, api, receiver):
    refused = api.post("/api/v1/webhooks", {"url": receiver.url})
    assert refused.status_code == 400, refused.content
    # What a name resolves to can change, so the refusal is not kept under the Idempotency-Key.
    assert refused.json()["error"] == {"code": "invalid_webhook_url",
                                       "message": "127.0.0.1 is a loopback address", "retryable": True}
    assert not WebhookEndpoint.objects.exists()


def test_plain_http_only_where_the_profile_allows_it(db, mm, dns, settings):
    dns.answers["public.example"] = [PUBLIC]
    settings.WEBHOOK_ALLOW_HTTP = False  # as in production
    with pytest.raises(webhook_transport.UrlRefused) as refused:
        webhooks.endpoint_register(participant=mm.participant, url="http://public.example/hooks")
    assert refused.value.message == "webhook URLs must use https"
    endpoint, _secret = webhooks.endpoint_register(participant=mm.participant, url="https://public.example/hooks")
    # An http endpoint registered while http was allowed is refused at delivery once it is not.
    endpoint.url = "http://public.example/hooks"
    endpoint.save()
    attempted = webhooks.delivery_attempt(delivery_id=_delivery_to(endpoint).pk)
    assert attempted.last_error == "refused: webhook URLs must use https"
    assert dns.lookups == {"public.example": 1}  # registration only: nothing was resolved to send it


def test_a_name_that_resolves_inside_by_delivery_time_is_refused_then(db, mm, dns, receiver):
    # Public at registration; by the time of the delivery the name points at the issuer's own loopback
    # (where a receiver listens), as a DNS rebinding attack would have it.
    dns.answers["rebind.example"] = [[PUBLIC], ["127.0.0.1"]]
    endpoint, _secret = webhooks.endpoint_register(participant=mm.participant, url=receiver.url_for("rebind.example"))
    attempted = webhooks.delivery_attempt(delivery_id=_delivery_to(endpoint).pk)
    assert attempted.status == "pending" and attempted.last_status_code is None
    assert attempted.last_error == "refused: rebind.example resolves to 127.0.0.1, a loopback address"
    assert receiver.received == []


def test_every_address_a_name_resolves_to_is_checked_at_delivery(db, mm, dns, receiver, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    dns.answers["two.example"] = [["127.0.0.1"], ["127.0.0.1", "10.0.0.5"]]
    endpoint, _secret = webhooks.endpoint_register(participant=mm.participant, url=receiver.url_for("two.example"))
    attempted = webhooks.delivery_attempt(delivery_id=_delivery_to(endpoint).pk)
    assert attempted.last_error == "refused: two.example resolves to 10.0.0.5, a private address"
    assert receiver.received == []


def test_the_connection_goes_to_the_address_checked_with_the_name_as_host(db, mm, dns, receiver, settings):
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    # A second lookup would answer a metadata address: the delivery must not make one.
    dns.answers["hooks.example"] = [["127.0.0.1"], ["127.0.0.1"], ["169.254.169.254"]]
    endpoint, _secret = webhooks.endpoint_register(participant=mm.participant, url=receiver.url_for("hooks.example"))
    attempted = webhooks.delivery_attempt(delivery_id=_delivery_to(endpoint).pk)
    assert attempted.status == "delivered", attempted.last_error
    assert dns.lookups["hooks.example"] == 2  # once at registration, once for this delivery
    headers, _body = receiver.received[0]
    assert headers["Host"] == f"hooks.example:{receiver.port}"


def test_https_is_verified_against_the_name_and_sends_it_as_sni(db, mm, dns, settings, monkeypatch, tmp_path):
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    server_tls, client_tls = self_signed(tmp_path, "hooks.example")
    monkeypatch.setattr(webhook_transport, "tls_context", lambda: client_tls)  # trust the test's own CA
    receiver = Receiver(tls=server_tls)
    try:
        dns.answers.update({"hooks.example": ["127.0.0.1"], "other.example": ["127.0.0.1"]})
        endpoint, _secret = webhooks.endpoint_register(participant=mm.participant,
                                                       url=receiver.url_for("hooks.example"))
        attempted = webhooks.delivery_attempt(delivery_id=_delivery_to(endpoint).pk)
        assert attempted.status == "delivered", attempted.last_error
        assert receiver.server_names == ["hooks.example"]
        assert receiver.received[0][0]["Host"] == f"hooks.example:{receiver.port}"
        # The same server under a name its certificate does not carry: refused by TLS, nothing sent.
        other, _secret = webhooks.endpoint_register(participant=mm.participant, url=receiver.url_for("other.example"))
        refused = webhooks.delivery_attempt(delivery_id=_delivery_to(other).pk)
        assert refused.status == "pending" and refused.last_error == "SSLCertVerificationError"
        assert len(receiver.received) == 1
    finally:
        receiver.close()


def test_a_participant_has_at_most_the_configured_number_of_endpoints(db, mm, api, dns, settings):
    dns.answers["public.example"] = [PUBLIC]
    settings.WEBHOOK_MAX_ENDPOINTS_PER_PARTICIPANT = 3
    for n in range(3):
        created = api.post("/api/v1/webhooks", {"url": f"https://public.example/hooks/{n}"})
        assert created.status_code == 201, created.content
    refused = api.post("/api/v1/webhooks", {"url": "https://public.example/hooks/4"})
    assert refused.status_code == 409, refused.content
    assert refused.json()["error"]["code"] == "too_many_webhook_endpoints"
    assert WebhookEndpoint.objects.filter(participant=mm.participant).count() == 3
    # An endpoint switched off no longer counts.
    WebhookEndpoint.objects.filter(pk=WebhookEndpoint.objects.order_by("id").first().pk).update(active=False)
    assert api.post("/api/v1/webhooks", {"url": "https://public.example/hooks/5"}).status_code == 201


def test_the_default_limit_is_five(db):
    from django.conf import settings

    assert settings.WEBHOOK_MAX_ENDPOINTS_PER_PARTICIPANT == 5


def test_a_stored_secret_is_what_the_delivery_signs_with(db, mm, dns, settings, receiver):
    settings.WEBHOOK_ALLOWED_PRIVATE_NETWORKS = ["127.0.0.1/32"]
    endpoint, secret = webhooks.endpoint_register(participant=mm.participant, url=receiver.url)
    assert crypto.decrypt(endpoint.secret_encrypted).decode() == secret
    webhooks.delivery_attempt(delivery_id=_delivery_to(endpoint).pk)
    headers, body = receiver.received[0]
    from .test_webhooks import verify_signature

    assert verify_signature(secret, headers, body)


def test_two_registrations_at_once_cannot_both_take_the_last_place(committed, mm, settings):
    import threading

    from django.db import connection, transaction

    settings.WEBHOOK_MAX_ENDPOINTS_PER_PARTICIPANT = 1
    outcome = {}

    def second():
        try:
            webhooks.endpoint_register(participant=mm.participant, url="https://93.184.215.14/second")
            outcome["second"] = "registered"
        except Exception as exc:  # noqa: BLE001 - the test reports whatever happened
            outcome["second"] = getattr(exc, "code", repr(exc))
        finally:
            connection.close()

    with transaction.atomic():
        webhooks.endpoint_register(participant=mm.participant, url="https://93.184.215.14/first")
        racer = threading.Thread(target=second)
        racer.start()
        racer.join(timeout=1.0)
        assert racer.is_alive()  # waiting for the first registration to commit or roll back
    racer.join(timeout=10)
    assert outcome == {"second": "too_many_webhook_endpoints"}
    assert list(WebhookEndpoint.objects.values_list("url", flat=True)) == ["https://93.184.215.14/first"]
