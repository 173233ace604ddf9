"""`manage.py migrate`, as the owner role: Django's migrate on the "owner" alias (DATABASE_OWNER_URL)
unless --database says otherwise, then the application role's privileges (ledger/roles.py)."""

import contextlib

from django.core.management.commands import migrate
from django.db import DEFAULT_DB_ALIAS, connections

from ledger import roles


@contextlib.contextmanager
def _default_is(alias: str):
    """While migrating, "default" is the migrating connection too, so a data migration or post-migrate
    handler that does not pass `using` still runs as the owner, in the migration's transaction. (As the
    application role it could not write the tables yet, and it would wait forever on the migration's
    locks.)"""
    if alias == DEFAULT_DB_ALIAS:
        yield
        return
    original = connections[DEFAULT_DB_ALIAS]
    setattr(connections._connections, DEFAULT_DB_ALIAS, connections[alias])
    try:
        yield
    finally:
        setattr(connections._connections, DEFAULT_DB_ALIAS, original)


class Command(migrate.Command):
    help = migrate.Command.help + " Runs as the owner role (DATABASE_OWNER_URL) when one is configured."

    def add_arguments(self, parser):
        super().add_arguments(parser)
        parser.set_defaults(database=roles.owner_database())

    def handle(self, *args, **options):
        with _default_is(options["database"]):
            super().handle(*args, **options)
        role = roles.application_role()
        if role and not (options["plan"] or options["check_unapplied"] or options["prune"]):
            roles.grant_application_role(using=options["database"], role=role)
            if options["verbosity"] >= 1:
                self.stdout.write(f"Granted the application role {role} its privileges.")
