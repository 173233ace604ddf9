"""manage.py ledger verify | rebuild [--check] | export [--output FILE] | seal"""



from django.core.management.base import BaseCommand, CommandError

from ledger import integrity, roles, services


class Command(BaseCommand):
    help = "Verify the ledger's hash chain and invariants, rebuild its projections, or export the log."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        verify = sub.add_parser("verify", help="recompute the hash chain and check every invariant")
        verify.add_argument("--skip-projections", action="store_true", help="skip replaying app read models")
        rebuild = sub.add_parser("rebuild", help="replay the log into fresh projections (as the owner role)")
        rebuild.add_argument("--check", action="store_true", help="compare with the stored projections; change nothing")
        sub.add_parser("seal", help="seal journalled events now (a writer died between commit and seal)")
        export = sub.add_parser("export", help="write the log as JSON Lines")
        export.add_argument("--output", "-o", default="-", help="file to write (default: stdout)")

    def handle(self, *args, action, **options):
        if action == "verify":
            problems = integrity.verify(check_projections=not options["skip_projections"])
            if problems:
                self.stderr.write(f"ledger verify FAILED: {len(problems)} problem(s); first: {problems[0]}")
                for problem in problems[1:20]:
                    self.stderr.write(f"  {problem}")
                raise CommandError(f"first bad: {problems[0]}", returncode=1)
            self.stdout.write("ledger verify OK")
        elif action == "rebuild":
            # Installing projections writes the ledger's tables, which only the owner role may do;
            # --check only reads, as the application role.
            result = integrity.rebuild(check=options["check"],
                                       using="default" if options["check"] else roles.owner_database())
            if result.problems:
                for problem in result.problems[:20]:
                    self.stderr.write(f"  {problem}")
                raise CommandError(f"rebuild found {len(result.problems)} difference(s); first: {result.problems[0]}",
                                   returncode=1)
            verb = "matched" if options["check"] else "rebuilt"
            self.stdout.write(f"ledger rebuild {verb}: {result.events} events in {result.seconds:.2f} s")
        elif action == "seal":
            self.stdout.write(f"ledger sealed: head at position {services.seal_journal()}")
        elif action == "export":
            if options["output"] == "-":
                count = integrity.export_jsonl(self.stdout)
            else:
                with open(options["output"], "w", encoding="utf-8") as out:
                    count = integrity.export_jsonl(out)
            self.stderr.write(f"exported {count} events")
