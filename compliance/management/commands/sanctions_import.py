"""manage.py sanctions_import <path-or-URL>: load an OFAC SDN XML file and re-screen everyone."""

from __future__ import annotations

from pathlib import Path

import requests
from django.core.management.base import BaseCommand, CommandError

from compliance import services
from compliance.models import SanctionsList
from config.api import DomainError

OFAC_SDN_XML_URL = "https://sanctionslistservice.ofac.treas.gov/api/PublicationPreview/exports/SDN.XML"


class Command(BaseCommand):
    help = "Import the OFAC SDN list (XML) from a file path or URL and re-screen all participants and wallets."

    def add_arguments(self, parser):
        parser.add_argument("source", nargs="?", default=OFAC_SDN_XML_URL, help="file path or http(s) URL")
        parser.add_argument("--if-changed", action="store_true", help="skip if identical to the current list")

    def handle(self, *args, source: str, if_changed: bool, **options):
        if source.startswith(("http://", "https://")):
            try:
                response = requests.get(source, timeout=120)
                response.raise_for_status()
            except requests.RequestException as exc:
                raise CommandError(f"download failed: {exc}") from None
            content = response.content
        else:
            path = Path(source)
            if not path.is_file():
                raise CommandError(f"no such file: {source}")
            content = path.read_bytes()
        if if_changed:
            import hashlib

            current = SanctionsList.objects.filter(is_current=True).first()
            if current is not None and current.sha256 == hashlib.sha256(content).hexdigest():
                self.stdout.write("unchanged; nothing imported")
                return
        try:
            imported = services.sanctions_list_import(source=source, content=content)
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        hits = imported.screenings.filter(hit=True).count()
        self.stdout.write(f"imported list {imported.id}: {imported.entry_count} entries, published "
                          f"{imported.publish_date}; re-screened everyone, {hits} hit(s)")
