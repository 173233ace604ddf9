from django.db import migrations

# A token's address is recorded once, after its deployment is confirmed (custody.services.
# deployment_address_set), and never changes: every mint, burn, redemption watch and supply reading
# refers to it, so pointing a product at another contract would make the ledger describe tokens it
# never issued. The service refuses a change; this trigger refuses it too for the ORM's save() and
# update() and raw SQL. Empty -> an address is allowed (the deployment confirmed), as is NULL -> a
# block for the deployment block (recorded once, like the address).
# SQL written out here, never read from elsewhere: see ledger 0002.

ADDRESS_FIXED_SQL = """CREATE OR REPLACE FUNCTION custody_refuse_deployment_address_change() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
    IF OLD.address <> '' AND NEW.address IS DISTINCT FROM OLD.address THEN
        RAISE EXCEPTION 'custody_chaindeployment.address cannot change once created and set (% to %): every '
            'mint, burn and supply reading refers to it', OLD.address, NEW.address USING ERRCODE = 'CU001';
    END IF;
    IF OLD.deployed_block IS NOT NULL AND NEW.deployed_block IS DISTINCT FROM OLD.deployed_block THEN
        RAISE EXCEPTION 'custody_chaindeployment.deployed_block cannot change once created and set (% to %)',
            OLD.deployed_block, NEW.deployed_block USING ERRCODE = 'CU001';
    END IF;
    RETURN NEW;
END;
$fn$;

CREATE TRIGGER custody_chaindeployment_address_fixed BEFORE UPDATE OF address, deployed_block
    ON custody_chaindeployment
    FOR EACH ROW EXECUTE FUNCTION custody_refuse_deployment_address_change();
"""

DROP_ADDRESS_FIXED_SQL = """DROP TRIGGER custody_chaindeployment_address_fixed ON custody_chaindeployment;
DROP FUNCTION custody_refuse_deployment_address_change();
"""


class Migration(migrations.Migration):
    dependencies = [("custody", "0006_supply_observation")]

    operations = [migrations.RunSQL(ADDRESS_FIXED_SQL, DROP_ADDRESS_FIXED_SQL)]
