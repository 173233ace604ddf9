"""What only the development and test profiles may do (see ISSUER_ENV in config/settings.py)."""

from __future__ import annotations

from django.conf import settings

from config.api import DomainError


class NotInProduction(DomainError):
    code = "not_in_production"
    http_status = 403


def refuse_in_production(what: str) -> None:
    """Demo data and simulated custodians fabricate records (known credentials, statements no custodian
    sent): in production they would be taken for real ones."""
    if settings.ISSUER_ENV == "production":
        raise NotInProduction(f"{what} refuses to run under the production profile (ISSUER_ENV=production): it "
                              "is for development and test only")
