"""Write the statement a simulated custodian would send for an account (for demos and drills)."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from config.profiles import NotInProduction
from custody.models import CustodyAccount
from custody.statements.generate import simulated_statement


class Command(BaseCommand):
    help = "Write a semt.002 (or CSV) statement of an account's settled positions as the ledger holds them."

    def add_arguments(self, parser):
        parser.add_argument("account")
        parser.add_argument("output")
        parser.add_argument("--format", choices=["semt002", "csv"], default="semt002")

    def handle(self, *args, **options):
        account = CustodyAccount.objects.select_related("custodian").filter(account_number=options["account"]).first()
        if account is None:
            raise CommandError(f"unknown_account: no custody account {options['account']}")
        try:
            statement = simulated_statement(account=account, format=options["format"])
        except NotInProduction as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        Path(options["output"]).write_bytes(statement)
        self.stdout.write(f"wrote {options['output']}")
