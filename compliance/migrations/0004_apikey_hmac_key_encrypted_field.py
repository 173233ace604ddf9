"""The HMAC key column is an EncryptedTextField (the same text column), so `secrets_reencrypt` finds it."""

from django.db import migrations

import compliance.crypto


class Migration(migrations.Migration):

    dependencies = [
        ('compliance', '0003_referencechange'),
    ]

    operations = [
        migrations.AlterField(
            model_name='apikey',
            name='hmac_key_encrypted',
            field=compliance.crypto.EncryptedTextField(blank=True),
        ),
    ]
