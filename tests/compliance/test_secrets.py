"""Secrets the server must use again (API keys' HMAC keys, webhook signing secrets) are encrypted at
rest under FIELD_ENCRYPTION_KEYS, newest first; keys rotate without a secret becoming unreadable, and
`secrets_reencrypt` moves everything to the newest key."""

from __future__ import annotations

import logging

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client

from compliance import crypto
from compliance.models import ApiKey
from mint_redeem import webhooks
from mint_redeem.models import WebhookEndpoint
from tests.compliance import factories as f

pytestmark = pytest.mark.django_db

KEY_A = "field-encryption-key-A-0123456789abcdefghijkl"
KEY_B = "field-encryption-key-B-0123456789abcdefghijkl"
PUBLIC_URL = "https://93.184.215.14/hooks"  # an address literal: nothing to resolve


def _signature_check(mm) -> int:
    headers = f.sign_request(mm.credentials, "POST", "/api/v1/signature-check", b"{}")
    return Client().post("/api/v1/signature-check", data=b"{}", content_type="application/json",
                         headers=headers).status_code


def _stored(model, column: str) -> list[str]:
    return list(model.objects.exclude(**{column: ""}).order_by("pk").values_list(column, flat=True))


def _only_key_decrypts(material: str, token: str) -> bool:
    try:
        crypto._fernet_for(material).decrypt(token.encode())
    except crypto.InvalidToken:
        return False
    return True


def test_keys_rotate_old_secrets_still_work_and_reencrypt_moves_everything_to_the_newest(settings, capsys):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    old_mm = f.make_market_maker(chains=())
    endpoint, webhook_secret = webhooks.endpoint_register(participant=old_mm.participant, url=PUBLIC_URL)
    assert all(_only_key_decrypts(KEY_A, t) for t in _stored(ApiKey, "hmac_key_encrypted")
               + _stored(WebhookEndpoint, "secret_encrypted"))

    # B goes in front: what A encrypted still reads, and new secrets are written under B.
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    assert _signature_check(old_mm) == 200
    assert crypto.decrypt(WebhookEndpoint.objects.get(pk=endpoint.pk).secret_encrypted).decode() == webhook_secret
    new_mm = f.make_market_maker(chains=())
    assert _only_key_decrypts(KEY_B, ApiKey.objects.get(pk=new_mm.api_key.pk).hmac_key_encrypted)

    call_command("secrets_reencrypt")
    assert capsys.readouterr().out.strip() == "re-encrypted 2 secret(s) with the newest key; 1 already were"
    tokens = _stored(ApiKey, "hmac_key_encrypted") + _stored(WebhookEndpoint, "secret_encrypted")
    assert len(tokens) == 3 and all(_only_key_decrypts(KEY_B, t) and not _only_key_decrypts(KEY_A, t)
                                    for t in tokens)
    call_command("secrets_reencrypt")  # idempotent
    assert capsys.readouterr().out.strip() == "re-encrypted 0 secret(s) with the newest key; 3 already were"

    # A removed: everything still works.
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]
    assert _signature_check(old_mm) == 200 and _signature_check(new_mm) == 200
    assert crypto.decrypt(WebhookEndpoint.objects.get(pk=endpoint.pk).secret_encrypted).decode() == webhook_secret


def test_a_key_removed_before_reencrypting_is_reported_not_silently_skipped(settings):
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A]
    mm = f.make_market_maker(chains=())
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B]
    with pytest.raises(CommandError) as refused:
        call_command("secrets_reencrypt")
    assert str(refused.value) == (f"1 secret(s) no configured key decrypts (was a key removed too early?): "
                                  f"compliance.ApiKey {mm.api_key.pk}.hmac_key_encrypted")
    assert _signature_check(mm) == 401


def test_every_encrypted_column_is_found():
    assert {(model._meta.label, column.name) for model, column in crypto.encrypted_columns()} == {
        ("compliance.ApiKey", "hmac_key_encrypted"), ("mint_redeem.WebhookEndpoint", "secret_encrypted")}


def test_the_development_and_test_default_key_reads_what_was_stored_before_the_setting(settings):
    """Before FIELD_ENCRYPTION_KEYS, the key was derived from SECRET_KEY; the default keeps it readable."""
    assert settings.FIELD_ENCRYPTION_KEYS == [settings.SECRET_KEY]
    stored_before = crypto._fernet_for(settings.SECRET_KEY).encrypt(b"hmac key of an older API key").decode()
    assert crypto.decrypt(stored_before) == b"hmac key of an older API key"


def test_secrets_never_reach_the_logs_or_a_plain_column(settings, caplog):
    caplog.set_level(logging.DEBUG)
    settings.FIELD_ENCRYPTION_KEYS = [KEY_B, KEY_A]
    mm = f.make_market_maker(chains=())
    endpoint, webhook_secret = webhooks.endpoint_register(participant=mm.participant, url=PUBLIC_URL)
    settings.FIELD_ENCRYPTION_KEYS = [KEY_A, KEY_B]
    call_command("secrets_reencrypt")
    assert _signature_check(mm) == 200
    plaintexts = [webhook_secret, mm.credentials.secret, mm.credentials.hmac_key.hex(),
                  f.base64.urlsafe_b64encode(mm.credentials.hmac_key).decode().rstrip("="), KEY_A, KEY_B]
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert caplog.records  # the run did log
    assert not [p for p in plaintexts if p in logged]
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT t::text FROM {WebhookEndpoint._meta.db_table} t UNION ALL "  # noqa: S608
                       f"SELECT t::text FROM {ApiKey._meta.db_table} t")
        rows = "\n".join(row[0] for row in cursor.fetchall())
    assert endpoint.url in rows and mm.api_key.key_id in rows
    assert not [p for p in plaintexts if p in rows]
