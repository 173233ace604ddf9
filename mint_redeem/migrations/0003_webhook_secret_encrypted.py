"""Webhook signing secrets encrypted at rest under FIELD_ENCRYPTION_KEYS (they were stored as given)."""

from django.db import migrations

import compliance.crypto


def encrypt_secrets(apps, schema_editor):
    from compliance import crypto

    endpoint_model = apps.get_model("mint_redeem", "WebhookEndpoint")
    for endpoint in endpoint_model.objects.all().iterator():
        endpoint.secret_encrypted = crypto.encrypt(endpoint.secret.encode())
        endpoint.save(update_fields=["secret_encrypted"])


def decrypt_secrets(apps, schema_editor):
    from compliance import crypto

    endpoint_model = apps.get_model("mint_redeem", "WebhookEndpoint")
    for endpoint in endpoint_model.objects.all().iterator():
        endpoint.secret = crypto.decrypt(endpoint.secret_encrypted).decode()
        endpoint.save(update_fields=["secret"])


class Migration(migrations.Migration):

    dependencies = [
        ('compliance', '0004_apikey_hmac_key_encrypted_field'),
        ('mint_redeem', '0002_money_and_sale_retries'),
    ]

    operations = [
        migrations.AddField(
            model_name='webhookendpoint',
            name='secret_encrypted',
            field=compliance.crypto.EncryptedTextField(default=''),
            preserve_default=False,
        ),
        migrations.RunPython(encrypt_secrets, decrypt_secrets),
        migrations.RemoveField(
            model_name='webhookendpoint',
            name='secret',
        ),
    ]
