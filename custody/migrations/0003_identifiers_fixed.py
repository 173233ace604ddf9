from django.db import migrations

# The ledger names accounts and assets after these columns (custody/<custodian>/<TICKER>,
# in_transit/<broker>/<TICKER>, market/<broker>/<TICKER>, shares:<TICKER>, tokens/<chain>/<SYMBOL>,
# issuance/<chain>/<SYMBOL>, tok:<SYMBOL>:<chain>), and a deployment's decimals give meaning to the token
# base units already posted. Changing one would leave every posting under the old name or scale meaning
# something else, so once a row exists they never change: not through the admin, not through the ORM's
# save() or update(), not through raw SQL. Display names and the rest stay editable.
# SQL written out here, never read from elsewhere: see ledger 0002.

IDENTIFIERS_FIXED_SQL = """CREATE OR REPLACE FUNCTION custody_refuse_identifier_change() RETURNS trigger LANGUAGE plpgsql AS $fn$
DECLARE
    column_name text;
BEGIN
    -- TG_ARGV names the fixed columns; UPDATE OF fires the trigger only when one is assigned.
    FOREACH column_name IN ARRAY TG_ARGV LOOP
        IF (to_jsonb(OLD) -> column_name) IS DISTINCT FROM (to_jsonb(NEW) -> column_name) THEN
            RAISE EXCEPTION '%.% cannot change once created (% to %): the ledger keys accounts on it',
                TG_TABLE_NAME, column_name, to_jsonb(OLD) ->> column_name, to_jsonb(NEW) ->> column_name
                USING ERRCODE = 'CU001';
        END IF;
    END LOOP;
    RETURN NEW;
END;
$fn$;

CREATE TRIGGER custody_security_identifiers_fixed BEFORE UPDATE OF ticker ON custody_security
    FOR EACH ROW EXECUTE FUNCTION custody_refuse_identifier_change('ticker');
CREATE TRIGGER custody_tokenproduct_identifiers_fixed BEFORE UPDATE OF symbol ON custody_tokenproduct
    FOR EACH ROW EXECUTE FUNCTION custody_refuse_identifier_change('symbol');
CREATE TRIGGER custody_custodian_identifiers_fixed BEFORE UPDATE OF code ON custody_custodian
    FOR EACH ROW EXECUTE FUNCTION custody_refuse_identifier_change('code');
CREATE TRIGGER custody_broker_identifiers_fixed BEFORE UPDATE OF code ON custody_broker
    FOR EACH ROW EXECUTE FUNCTION custody_refuse_identifier_change('code');
CREATE TRIGGER custody_chaindeployment_identifiers_fixed BEFORE UPDATE OF product_id, chain, decimals
    ON custody_chaindeployment
    FOR EACH ROW EXECUTE FUNCTION custody_refuse_identifier_change('product_id', 'chain', 'decimals');
"""

DROP_IDENTIFIERS_FIXED_SQL = """DROP TRIGGER custody_chaindeployment_identifiers_fixed ON custody_chaindeployment;
DROP TRIGGER custody_broker_identifiers_fixed ON custody_broker;
DROP TRIGGER custody_custodian_identifiers_fixed ON custody_custodian;
DROP TRIGGER custody_tokenproduct_identifiers_fixed ON custody_tokenproduct;
DROP TRIGGER custody_security_identifiers_fixed ON custody_security;
DROP FUNCTION custody_refuse_identifier_change();
"""


class Migration(migrations.Migration):
    dependencies = [("custody", "0002_fill_price_precision")]

    operations = [migrations.RunSQL(IDENTIFIERS_FIXED_SQL, DROP_IDENTIFIERS_FIXED_SQL)]
