"""API keys + RFC 9421 signatures on the real endpoints."""

import base64
import json
from datetime import UTC, datetime, timedelta

import pytest

from compliance import services
from compliance.models import ApiKey, Chain, SignatureAlgorithm
from tests.compliance import factories as f

pytestmark = pytest.mark.django_db
PATH = "/api/v1/wallets"


def new_wallet_body():
    key = f.new_wallet_key(Chain.ETHEREUM)
    return json.dumps({"chain": "ethereum", "address": f.wallet_address(Chain.ETHEREUM, key)}).encode()


def send(client, headers, body, path=PATH):
    return client.post(path, data=body, content_type="application/json", headers=headers)


def error_code(response):
    return response.json()["error"]["code"]


@pytest.mark.parametrize("alg", [SignatureAlgorithm.HMAC_SHA256, SignatureAlgorithm.ED25519])
def test_a_correctly_signed_request_is_accepted(client, alg):
    mm = f.make_market_maker(chains=(), signature_alg=alg)
    body = new_wallet_body()
    response = send(client, f.sign_request(mm.credentials, "POST", PATH, body), body)
    assert response.status_code == 201, response.content
    assert ApiKey.objects.get(pk=mm.api_key.pk).last_used_at is not None


def test_signed_with_the_wrong_key_is_refused(client):
    mm = f.make_market_maker(chains=())
    other = f.make_market_maker(chains=())
    body = new_wallet_body()
    wrong = f.Credentials(key_id=mm.key_id, secret=mm.secret, signature_alg=SignatureAlgorithm.HMAC_SHA256,
                          hmac_key=other.credentials.hmac_key)
    response = send(client, f.sign_request(wrong, "POST", PATH, body), body)
    assert response.status_code == 401
    assert error_code(response) == "signature_invalid"


def test_ed25519_signature_by_another_private_key_is_refused(client):
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    mm = f.make_market_maker(chains=(), signature_alg=SignatureAlgorithm.ED25519)
    body = new_wallet_body()
    forged = f.Credentials(key_id=mm.key_id, secret=mm.secret, signature_alg=SignatureAlgorithm.ED25519,
                           ed25519_private_key=Ed25519PrivateKey.generate())
    response = send(client, f.sign_request(forged, "POST", PATH, body), body)
    assert response.status_code == 401
    assert error_code(response) == "signature_invalid"


def test_a_body_altered_after_signing_is_refused(client):
    mm = f.make_market_maker(chains=())
    body = new_wallet_body()
    headers = f.sign_request(mm.credentials, "POST", PATH, body)
    altered = new_wallet_body()
    response = send(client, headers, altered)
    assert response.status_code == 401
    assert error_code(response) == "signature_invalid"
    assert mm.participant.wallets.count() == 0


def test_a_digest_recomputed_for_the_altered_body_still_fails_the_signature(client):
    from http_message_signatures import ContentDigest

    mm = f.make_market_maker(chains=())
    body = new_wallet_body()
    headers = f.sign_request(mm.credentials, "POST", PATH, body)
    altered = new_wallet_body()
    headers["Content-Digest"] = ContentDigest.create(altered)
    response = send(client, headers, altered)
    assert response.status_code == 401
    assert error_code(response) == "signature_invalid"


def test_a_signature_for_another_path_or_method_is_refused(client):
    mm = f.make_market_maker(chains=(Chain.ETHEREUM,))
    wallet = mm.wallets[Chain.ETHEREUM]
    headers = f.sign_request(mm.credentials, "POST", f"/api/v1/wallets/{wallet.id}/challenge", b"")
    response = send(client, headers, b"", path=f"/api/v1/wallets/{wallet.id}/verify")
    assert response.status_code == 401
    assert error_code(response) == "signature_invalid"


def test_a_stale_timestamp_is_refused(client):
    mm = f.make_market_maker(chains=())
    body = new_wallet_body()
    stale = datetime.now(tz=UTC) - timedelta(minutes=5, seconds=30)
    response = send(client, f.sign_request(mm.credentials, "POST", PATH, body, created=stale), body)
    assert response.status_code == 401
    assert error_code(response) == "signature_expired"
    future = datetime.now(tz=UTC) + timedelta(minutes=2)
    response = send(client, f.sign_request(mm.credentials, "POST", PATH, body, created=future), body)
    assert response.status_code == 401


def test_a_replayed_nonce_is_refused_even_with_a_fresh_signature(client):
    mm = f.make_market_maker(chains=())
    body = new_wallet_body()
    headers = f.sign_request(mm.credentials, "POST", PATH, body, nonce="n-" + "a" * 30)
    assert send(client, headers, body).status_code == 201
    # The exact same request again (a captured replay): refused before idempotency is even consulted.
    replay = send(client, headers, body)
    assert replay.status_code == 401
    assert error_code(replay) == "signature_replayed"
    # A new signature reusing the nonce is refused too.
    body2 = new_wallet_body()
    again = send(client, f.sign_request(mm.credentials, "POST", PATH, body2, nonce="n-" + "a" * 30), body2)
    assert error_code(again) == "signature_replayed"


def test_state_changing_requests_must_be_signed(client):
    mm = f.make_market_maker(chains=())
    body = new_wallet_body()
    headers = {"Authorization": f"ApiKey {mm.credentials.token}", "Idempotency-Key": "k1"}
    response = send(client, headers, body)
    assert response.status_code == 401
    assert error_code(response) == "signature_missing"


def test_a_signature_without_nonce_or_digest_coverage_is_refused(client):
    from http_message_signatures import HTTPMessageSigner, MappingKeyResolver, algorithms

    mm = f.make_market_maker(chains=())
    body = new_wallet_body()
    for covered, nonce, code in [(("@method", "@path", "content-digest"), None, "signature_nonce_missing"),
                                 (("@method", "@path"), "x" * 20, "signature_invalid")]:
        headers = {"Authorization": f"ApiKey {mm.credentials.token}", "Idempotency-Key": "k-" + code}
        message = f._Message("POST", f"http://testserver{PATH}", headers)
        signer = HTTPMessageSigner(signature_algorithm=algorithms.HMAC_SHA256, key_resolver=MappingKeyResolver(
            public_keys={}, private_keys={mm.key_id: mm.credentials.hmac_key}))
        signer.sign(message, key_id=mm.key_id, nonce=nonce, covered_component_ids=covered,
                    created=datetime.now(tz=UTC), body=body if "content-digest" in covered else None)
        response = send(client, message.headers, body)
        assert response.status_code == 401, code
        assert error_code(response) == code


def test_bad_or_revoked_keys_are_refused(client):
    mm = f.make_market_maker(chains=())
    headers = {"Authorization": f"ApiKey {mm.key_id}.not-the-secret"}
    assert client.get("/api/v1/participant", headers=headers).status_code == 401
    ok = client.get("/api/v1/participant", headers=f.sign_request(mm.credentials, "GET", "/api/v1/participant"))
    assert ok.status_code == 200 and ok.json()["id"] == mm.participant.id
    services.api_key_revoke(api_key=mm.api_key, revoked_by=None, reason="rotated")
    revoked = client.get("/api/v1/participant", headers=f.sign_request(mm.credentials, "GET", "/api/v1/participant"))
    assert revoked.status_code == 401
    assert error_code(revoked) == "api_key_revoked"
    assert client.get("/api/v1/participant").status_code in (401, 403)


@pytest.mark.parametrize("token", ["a\x00b.secret", "\x00.\x00", ".", "no-dot", "ApiKey"])
def test_a_malformed_key_is_refused_as_invalid_never_a_500(token):
    from django.test import Client

    response = Client(raise_request_exception=False).get("/api/v1/participant",
                                                         headers={"Authorization": f"ApiKey {token}"})
    assert response.status_code == 401
    assert error_code(response) == "api_key_invalid"


def test_a_read_scope_key_cannot_change_state(client):
    mm = f.make_market_maker(chains=(), scope="read")
    body = new_wallet_body()
    response = send(client, f.sign_request(mm.credentials, "POST", PATH, body), body)
    assert response.status_code == 403
    assert client.get(PATH, headers=f.sign_request(mm.credentials, "GET", PATH)).status_code == 200


def test_secrets_are_not_stored_in_clear():
    mm = f.make_market_maker(chains=())
    row = ApiKey.objects.get(pk=mm.api_key.pk)
    stored = " ".join(str(getattr(row, field.attname)) for field in ApiKey._meta.fields)
    assert mm.secret not in stored
    assert base64.urlsafe_b64encode(mm.credentials.hmac_key).decode().rstrip("=") not in stored
    assert mm.credentials.hmac_key.hex() not in stored


def test_a_query_string_must_be_covered_and_cannot_be_swapped(client):
    mm = f.make_market_maker(chains=())
    signed = f.sign_request(mm.credentials, "GET", "/api/v1/wallets?chain=base", sign=True)
    assert client.get("/api/v1/wallets?chain=base", headers=signed).status_code == 200
    signed = f.sign_request(mm.credentials, "GET", "/api/v1/wallets?chain=base", sign=True)
    swapped = client.get("/api/v1/wallets?chain=solana", headers=signed)
    assert swapped.status_code == 401
    unsigned_query = f.sign_request(mm.credentials, "GET", "/api/v1/wallets", sign=True)
    assert client.get("/api/v1/wallets?chain=base", headers=unsigned_query).status_code == 401


def test_the_issue_command_prints_working_credentials_once(client, capsys):
    from django.core.management import call_command

    participant = f.make_participant()
    call_command("api_key_issue", "--participant", str(participant.id), "--scope", "trade")
    issued = json.loads(capsys.readouterr().out)
    creds = f.Credentials(key_id=issued["key_id"], secret=issued["secret"], signature_alg=issued["signature_alg"],
                          hmac_key=base64.urlsafe_b64decode(issued["hmac_key"] + "=" * (-len(issued["hmac_key"]) % 4)))
    body = new_wallet_body()
    assert send(client, f.sign_request(creds, "POST", PATH, body), body).status_code == 201


def test_nonces_outside_the_window_are_pruned():
    from django.utils import timezone

    from compliance.api_auth import prune_nonces
    from compliance.models import SignatureNonce

    mm = f.make_market_maker(chains=())
    SignatureNonce.objects.create(api_key=mm.api_key, nonce="fresh-nonce-000001")
    old = SignatureNonce.objects.create(api_key=mm.api_key, nonce="old-nonce-00000001")
    SignatureNonce.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(minutes=20))
    assert prune_nonces() == 1
    assert list(SignatureNonce.objects.values_list("nonce", flat=True)) == ["fresh-nonce-000001"]
