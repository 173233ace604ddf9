from pathlib import Path

from django.db import migrations

SQL_DIR = Path(__file__).resolve().parent.parent / "sql"
GENESIS_HASH = "\\x" + "00" * 32


class Migration(migrations.Migration):
    dependencies = [("ledger", "0001_initial")]

    operations = [
        migrations.RunSQL(
            f"INSERT INTO ledger_head(id, position, hash) VALUES (1, 0, '{GENESIS_HASH}'::bytea)",
            "DELETE FROM ledger_head",
        ),
        # As-of queries find the last posting of an account and asset at or before a position.
        migrations.RunSQL(
            "CREATE INDEX ledger_posting_asof_idx ON ledger_posting "
            "(account_id, asset, position DESC, line_no DESC) "
            "INCLUDE (posted_after, pending_in_after, pending_out_after)",
            "DROP INDEX ledger_posting_asof_idx",
        ),
        migrations.RunSQL(
            "CREATE UNIQUE INDEX ledger_posting_pending_release_idx ON ledger_posting (pending_id, account_id) "
            "WHERE pending_id IS NOT NULL AND (pending_in_delta < 0 OR pending_out_delta < 0)",
            "DROP INDEX ledger_posting_pending_release_idx",
        ),
        migrations.RunSQL((SQL_DIR / "append.sql").read_text(), "DROP FUNCTION ledger_append(jsonb)"),
        migrations.RunSQL(
            (SQL_DIR / "immutability.sql").read_text(),
            "DROP TRIGGER ledger_event_no_update_delete ON ledger_event;"
            "DROP TRIGGER ledger_event_no_truncate ON ledger_event;"
            "DROP TRIGGER ledger_posting_no_update_delete ON ledger_posting;"
            "DROP TRIGGER ledger_posting_no_truncate ON ledger_posting;"
            "DROP FUNCTION ledger_refuse_change();",
        ),
    ]
