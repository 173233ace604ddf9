"""manage.py sanctions_approve_shrink <list id> --user <username> --reason "...": a second compliance
officer (not the importer) makes a held sanctions list, one much smaller than the current list, current,
and everyone is re-screened against it."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from compliance import services
from compliance.models import SanctionsList
from config.api import DomainError


class Command(BaseCommand):
    help = "Approve a held (much smaller) sanctions list as a second compliance officer; it becomes current."

    def add_arguments(self, parser):
        parser.add_argument("list_id", type=int)
        parser.add_argument("--user", required=True, help="username of the approving compliance officer")
        parser.add_argument("--reason", required=True, help="why the smaller list is right")

    def handle(self, *args, list_id: int, user: str, reason: str, **options):
        approver = get_user_model().objects.filter(username=user).first()
        if approver is None:
            raise CommandError(f"unknown_user: no user {user!r}")
        held = SanctionsList.objects.filter(pk=list_id).first()
        if held is None:
            raise CommandError(f"unknown_sanctions_list: no sanctions list {list_id}")
        try:
            current = services.sanctions_list_approve_shrink(sanctions_list=held, approved_by=approver, reason=reason)
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        hits = current.screenings.filter(hit=True).count()
        self.stdout.write(f"list {current.id} is current: {current.entry_count} entries, imported by "
                          f"{current.imported_by.username}, approved by {approver.username}; re-screened "
                          f"everyone, {hits} hit(s)")
