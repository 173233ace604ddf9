"""Run a reconciliation of ledger custody positions against the latest custodian statements."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from custody import services
from custody.selectors import open_breaks


class Command(BaseCommand):
    help = "Reconcile ledger custody positions against the latest statement of every custody account."

    def add_arguments(self, parser):
        parser.add_argument("--actor", default="system")

    def handle(self, *args, **options):
        run = services.reconciliation_run(actor=options["actor"])
        self.stdout.write(f"reconciliation {run.id}: {run.pairs_checked} positions checked, "
                          f"{run.breaks_opened} new break(s), {run.breaks_cleared} cleared")
        for item in open_breaks():
            flag = " PAUSES MINTING" if item.blocks_minting else ""
            self.stdout.write(f"  open break {item.id}: {item.custodian.code} {item.security.ticker} expected "
                              f"{item.expected_nano} reported {item.reported_nano} ({item.difference_nano:+d}){flag}")
