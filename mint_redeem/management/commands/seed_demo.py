"""manage.py seed_demo: the demo data `make run` starts with. Idempotent: safe to run every start."""

from django.core.management.base import BaseCommand

from mint_redeem import demo


class Command(BaseCommand):
    help = "Create (or keep) the demo dataset: products, custody, market makers and their API credentials."

    def handle(self, *args, **options):
        for line in demo.seed_demo():
            self.stdout.write(line)
