"""manage.py secrets_reencrypt: every stored secret (API keys' HMAC keys, webhook signing secrets)
re-encrypted with the newest of FIELD_ENCRYPTION_KEYS. Safe to run again: what is already under the
newest key is left alone. Run it after putting a new key first; once it reports nothing unreadable,
the older keys can be removed."""

from __future__ import annotations

import logging

from django.core.management.base import BaseCommand, CommandError

from compliance import crypto

logger = logging.getLogger(__name__)


class Command(BaseCommand):
    help = "Re-encrypt every stored secret with the newest FIELD_ENCRYPTION_KEYS key (idempotent)."

    def handle(self, *args, **options):
        report = crypto.reencrypt_stored()
        logger.info("secrets re-encrypted", extra={"reencrypted": report.reencrypted,
                                                   "already_current": report.already_current,
                                                   "unreadable": len(report.unreadable)})
        self.stdout.write(f"re-encrypted {report.reencrypted} secret(s) with the newest key; "
                          f"{report.already_current} already were")
        if report.unreadable:
            raise CommandError(f"{len(report.unreadable)} secret(s) no configured key decrypts (was a key "
                               f"removed too early?): {', '.join(report.unreadable)}")
