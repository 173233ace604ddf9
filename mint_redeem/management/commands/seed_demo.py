"""manage.py seed_demo: the demo data `make run` starts with. Idempotent: safe to run every start."""

from django.core.management.base import BaseCommand, CommandError

from config.profiles import NotInProduction
from mint_redeem import demo


class Command(BaseCommand):
    help = "Create (or keep) the demo dataset: products, custody, market makers and their API credentials."

    def handle(self, *args, **options):
        try:
            lines = demo.seed_demo()
        except NotInProduction as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        for line in lines:
            self.stdout.write(line)
