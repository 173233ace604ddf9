"""manage.py staff_totp_enroll <username> [--replace]

Gives a staff member the TOTP device the admin asks a code of (ADMIN_REQUIRE_OTP, always on in
production) and prints its otpauth:// URI once, for them to load into an authenticator app (as a QR
code, or by typing the secret). --replace revokes the old device first (a lost or replaced phone)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from compliance import services
from config.api import DomainError


class Command(BaseCommand):
    help = "Enroll a staff member's authenticator app for the admin's second factor; prints its URI once."

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--replace", action="store_true", help="revoke the staff member's current device")

    def handle(self, *args, username, replace, **options):
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user {username!r}")
        try:
            device = services.staff_totp_enroll(user=user, replace=replace)
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        self.stdout.write(device.config_url)
