from django.db import migrations

# Issue 16: a journalled append no longer waits for the sealing lock after its commit (a second commit
# per command, in lockstep with the other writers); it looks once, seals what waits if the lock is free,
# and otherwise leaves it to the holder, who looks again after its own commit. The text below is the
# last function of ledger/sql/seal.sql as this migration shipped.

SEAL_WAITING_SQL = """
CREATE FUNCTION ledger_seal_waiting()
RETURNS TABLE(out_status text, out_position bigint, out_hash bytea)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public, pg_temp AS $fn$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM ledger_journal j ORDER BY j.seq LIMIT 1) THEN
        out_status := 'empty';
    ELSIF NOT pg_try_advisory_xact_lock(7295316) THEN
        out_status := 'busy';
    ELSE
        PERFORM ledger_seal_locked(NULL);
        out_status := 'sealed';
        SELECT h.position, h.hash INTO out_position, out_hash FROM ledger_head h WHERE h.id = 1;
    END IF;
    RETURN NEXT;
END;
$fn$;
REVOKE ALL ON FUNCTION ledger_seal_waiting() FROM PUBLIC;
"""


class Migration(migrations.Migration):
    dependencies = [("ledger", "0007_seal_in_commit_order")]

    operations = [
        migrations.RunSQL(SEAL_WAITING_SQL, "DROP FUNCTION ledger_seal_waiting();"),
    ]
