from pathlib import Path

from django.db import migrations

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"


class Migration(migrations.Migration):
    """Re-create ledger_append from ledger/sql/append.sql (balances as one ordered upsert)."""

    dependencies = [("ledger", "0002_append_function_and_triggers")]

    operations = [migrations.RunSQL((SQL_DIR / "append.sql").read_text(), migrations.RunSQL.noop)]
