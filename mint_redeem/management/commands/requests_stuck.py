"""manage.py requests_stuck: list requests that nothing will move on; exit code 1 if there are any."""

from datetime import timedelta

from django.core.management.base import BaseCommand, CommandError

from mint_redeem.selectors import stuck_requests


class Command(BaseCommand):
    help = ("List mints and redemptions that nothing will move on (exit code 1 if any): a state outside the "
            "lifecycle, a chain state without a live chain operation, or a task-moved state unchanged for "
            "longer than --older-than-hours.")

    def add_arguments(self, parser):
        parser.add_argument("--older-than-hours", type=int, default=24 * 7,
                            help="how long a task-moved state may sit unchanged (default: a week, longer "
                                 "than any settlement cycle with holidays)")

    def handle(self, *args, older_than_hours: int, **options):
        if older_than_hours < 1:
            raise CommandError("--older-than-hours must be at least 1")
        stuck = stuck_requests(older_than=timedelta(hours=older_than_hours))
        for request in stuck:
            self.stdout.write(f"{request.kind}-{request.id}\t{request.state}\t{request.why}")
        if stuck:
            raise CommandError(f"{len(stuck)} request(s) with nothing scheduled to move them", returncode=1)
        self.stdout.write("no stuck requests")
