"""manage.py api_key_issue --participant <id> [--scope trade] [--alg hmac-sha256|ed25519 --public-key <b64>]

Issues an API key for a market maker (creating its API user if needed) or, with --auditor <username>,
a read-only key for an auditor. The secrets are written to stdout once, for the operator to hand over
through a secure channel; they are not stored in clear and cannot be shown again."""

from __future__ import annotations

import base64
import json

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from compliance import services
from compliance.models import MarketMakerUser, Participant
from config.api import DomainError


class Command(BaseCommand):
    help = "Issue an API key for a market maker or an auditor; prints the secrets once."

    def add_arguments(self, parser):
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--participant", type=int)
        target.add_argument("--auditor", help="username of an auditor")
        parser.add_argument("--username", help="market-maker API user (created if missing)")
        parser.add_argument("--scope", choices=["read", "trade"], default="read")
        parser.add_argument("--alg", choices=["hmac-sha256", "ed25519"], default="hmac-sha256")
        parser.add_argument("--public-key", help="Ed25519 public key, base64 (32 bytes raw)")
        parser.add_argument("--issued-by", help="username of the staff member issuing the key")

    def handle(self, *args, participant, auditor, username, scope, alg, public_key, issued_by, **options):
        users = get_user_model().objects
        issuer = users.filter(username=issued_by).first() if issued_by else None
        if issued_by and issuer is None:
            raise CommandError(f"no user {issued_by!r}")
        public = None
        if alg == "ed25519":
            if not public_key:
                raise CommandError("--public-key is required for ed25519 keys")
            try:
                public = base64.b64decode(public_key, validate=True)
            except ValueError:
                raise CommandError("--public-key must be base64") from None
        try:
            if auditor:
                user = users.filter(username=auditor).first()
                if user is None:
                    raise CommandError(f"no user {auditor!r}")
                _, issued = services.api_key_create(user=user, participant=None, scope="read", signature_alg=alg,
                                                    ed25519_public_key=public, created_by=issuer)
            else:
                p = Participant.objects.filter(pk=participant).first()
                if p is None:
                    raise CommandError(f"no participant {participant}")
                link = MarketMakerUser.objects.filter(participant=p, user__username=username).first() if username \
                    else MarketMakerUser.objects.filter(participant=p).first()
                user = link.user if link else services.participant_user_create(
                    participant=p, username=username or f"mm-{p.id}-api", created_by=issuer)
                _, issued = services.api_key_create(user=user, participant=p, scope=scope, signature_alg=alg,
                                                    ed25519_public_key=public, created_by=issuer)
        except DomainError as exc:
            raise CommandError(f"{exc.code}: {exc.message}") from None
        self.stdout.write(json.dumps({"key_id": issued.key_id, "secret": issued.secret,
                                      "signature_alg": issued.signature_alg, "hmac_key": issued.hmac_key}, indent=2))
