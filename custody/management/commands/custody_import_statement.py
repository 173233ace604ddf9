"""Import a custodian statement of holdings (ISO 20022 semt.002 XML or CSV) from a file."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from custody import services
from custody.models import CustodyAccount
from custody.statements import MAX_STATEMENT_BYTES, StatementError, detect_format


class Command(BaseCommand):
    help = "Import a custodian statement (semt.002 XML or CSV). Idempotent: the same file twice changes nothing."

    def add_arguments(self, parser):
        parser.add_argument("path")
        parser.add_argument("--format", choices=["semt002", "csv"], help="default: from the file name/content")
        parser.add_argument("--account", help="refuse the file unless it is for this account number")
        parser.add_argument("--actor", default="system")

    def handle(self, *args, **options):
        path = Path(options["path"])
        if not path.is_file():
            raise CommandError(f"{path}: no such file")
        if path.stat().st_size > MAX_STATEMENT_BYTES:
            raise CommandError(f"{path}: larger than {MAX_STATEMENT_BYTES} bytes")
        content = path.read_bytes()
        account = None
        if options["account"]:
            account = CustodyAccount.objects.filter(account_number=options["account"]).first()
            if account is None:
                raise CommandError(f"unknown_account: no custody account {options['account']}")
        fmt = options["format"] or detect_format(path.name, content)
        try:
            result = services.statement_import(content=content, format=fmt, actor=options["actor"],
                                               file_name=path.name, account=account)
        except StatementError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        statement = result.statement
        verb = "imported" if result.created else "already imported, nothing changed:"
        self.stdout.write(f"{verb} statement {statement.statement_ref} of account {statement.account.account_number} "
                          f"as of {statement.as_of.isoformat()} ({statement.holdings.count()} holdings)")
