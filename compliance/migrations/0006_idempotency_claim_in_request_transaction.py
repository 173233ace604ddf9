"""Idempotency claims move into the request's own transaction: a record others can see is always
complete, so the in-flight state and the lock token that let a retry take over a dead claim go. Claims
left in flight by the old code were never answered: deleting them frees their keys."""

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('compliance', '0005_sanctions_list_held_for_second_officer'),
    ]

    operations = [
        migrations.RunSQL(
            "DELETE FROM compliance_idempotencyrecord WHERE state = 'in_flight'",
            reverse_sql=migrations.RunSQL.noop,
        ),
        migrations.RemoveField(
            model_name='idempotencyrecord',
            name='lock_token',
        ),
        migrations.RemoveField(
            model_name='idempotencyrecord',
            name='locked_at',
        ),
        migrations.RemoveField(
            model_name='idempotencyrecord',
            name='state',
        ),
    ]
