"""Staff sign-in records in the admin: django-axes' failed attempts and lockouts (deleting a row lifts
that lockout), its access logs, and django-otp's TOTP devices (registered by django-otp itself, with
secrets hidden: OTP_ADMIN_HIDE_SENSITIVE_DATA). Registered by config.apps once the apps' admin modules
have been, with the one axes action given the permission it needs, as every admin action must declare."""

from __future__ import annotations

from axes import admin as axes_admin
from axes.models import AccessAttempt, AccessFailureLog, AccessLog
from django.contrib import admin


class AccessAttemptAdmin(axes_admin.AccessAttemptAdmin):
    @admin.action(description="Clean up expired attempts", permissions=["delete"])
    def cleanup_expired_attempts(self, request, queryset):
        return super().cleanup_expired_attempts(request, queryset)


def register(site: admin.AdminSite) -> None:
    site.register(AccessAttempt, AccessAttemptAdmin)
    site.register(AccessLog, axes_admin.AccessLogAdmin)
    site.register(AccessFailureLog, axes_admin.AccessFailureLogAdmin)
