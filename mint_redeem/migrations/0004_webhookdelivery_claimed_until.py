"""The claim that keeps a delivery from being sent by two workers while no transaction or row lock is
held during the HTTP call."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('mint_redeem', '0003_webhook_secret_encrypted'),
    ]

    operations = [
        migrations.AddField(
            model_name='webhookdelivery',
            name='claimed_until',
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]
