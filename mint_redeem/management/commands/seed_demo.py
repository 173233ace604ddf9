"""manage.py seed_demo: the demo data `make run` starts with. Idempotent: safe to run every start."""

from django.core.management.base import BaseCommand, CommandError

from config.profiles import NotInProduction
from mint_redeem import demo


class Command(BaseCommand):
    help = "Create (or keep) the demo dataset: products, custody, market makers and their API credentials."

    def add_arguments(self, parser):
        parser.add_argument("--activity", action="store_true",
                            help="run the demo's mints and redemptions end to end (needs the Celery worker and "
                                 "beat running, as `make run` starts them); idempotent, resumes where it stopped")
        parser.add_argument("--timeout", type=float, default=180,
                            help="with --activity: seconds to wait for each request to reach its end state")

    def handle(self, *args, activity: bool, timeout: float, **options):
        def progress(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        try:
            if activity:
                from mint_redeem import demo_activity

                try:
                    demo_activity.run(progress=progress, timeout_s=timeout)
                except demo_activity.DemoStalled as exc:
                    raise CommandError(f"demo activity stalled: {exc}") from None
                except KeyboardInterrupt:
                    # Ctrl-C reaches every process of the terminal; each step is keyed, so nothing is lost.
                    raise CommandError("demo activity interrupted: the next start carries on where it stopped",
                                       returncode=130) from None
                return
            lines = demo.seed_demo(progress=progress)
        except NotInProduction as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        for line in lines:
            if not line.startswith("deployed "):  # already printed as it happened
                self.stdout.write(line)
