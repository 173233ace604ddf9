"""Session authentication for the API (the staff endpoints, the schema) that honours the admin's
second factor."""

from __future__ import annotations

from django.conf import settings
from rest_framework.authentication import SessionAuthentication


class VerifiedSessionAuthentication(SessionAuthentication):
    """A staff member's admin session. Where the admin requires a second factor (ADMIN_REQUIRE_OTP), a
    session no TOTP code verified does not count, so the API is no way around it."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is not None and settings.ADMIN_REQUIRE_OTP and not result[0].is_verified():
            return None
        return result
