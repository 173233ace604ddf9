"""manage.py sanctions_import --user <username> [path|https URL]: load an OFAC SDN XML file and re-screen
everyone. The importer (a compliance officer) is recorded on the list and its ledger event. A list much
smaller than the current one is held for a second compliance officer (sanctions_approve_shrink)."""

from __future__ import annotations

import hashlib

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from compliance import sanctions_source, services
from compliance.models import SanctionsList
from config.api import DomainError


class Command(BaseCommand):
    help = ("Import the OFAC SDN list (XML) from a file path or https URL (no redirects) and re-screen all "
            "participants and wallets.")

    def add_arguments(self, parser):
        parser.add_argument("source", nargs="?", default=sanctions_source.OFAC_SDN_XML_URL,
                            help="file path or https URL")
        parser.add_argument("--user", required=True, help="username of the compliance officer importing it")
        parser.add_argument("--if-changed", action="store_true", help="skip if identical to the current list")

    def handle(self, *args, source: str, user: str, if_changed: bool, **options):
        importer = get_user_model().objects.filter(username=user).first()
        if importer is None:
            raise CommandError(f"unknown_user: no user {user!r}")
        try:
            content = sanctions_source.read(source)
            if if_changed:
                current = SanctionsList.objects.filter(is_current=True).first()
                if current is not None and current.sha256 == hashlib.sha256(content).hexdigest():
                    self.stdout.write("unchanged; nothing imported")
                    return
            imported = services.sanctions_list_import(source=source, content=content, imported_by=importer)
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        hits = imported.screenings.filter(hit=True).count()
        self.stdout.write(f"imported list {imported.id}: {imported.entry_count} entries, published "
                          f"{imported.publish_date}; re-screened everyone, {hits} hit(s)")
