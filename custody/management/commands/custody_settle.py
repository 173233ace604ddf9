"""Settle every pending broker fill whose settlement date has come."""

from __future__ import annotations

from datetime import date

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from custody import calendar, services


class Command(BaseCommand):
    help = "Settle pending fills due on or before a date (default: today in New York)."

    def add_arguments(self, parser):
        parser.add_argument("--date", help="YYYY-MM-DD")
        parser.add_argument("--actor", default="system")

    def handle(self, *args, **options):
        try:
            today = date.fromisoformat(options["date"]) if options["date"] else calendar.trade_date_of(timezone.now())
        except ValueError:
            raise CommandError("--date must be YYYY-MM-DD") from None
        count = services.fills_settle_due(today=today, actor=options["actor"])
        self.stdout.write(f"{count} fill(s) settled as of {today.isoformat()}")
