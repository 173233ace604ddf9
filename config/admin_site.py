"""The operations admin: a second factor (TOTP, django-otp) for staff where ADMIN_REQUIRE_OTP is set
(always in production), and sign-in lockout after repeated failures (django-axes, in settings).

With the setting on, the sign-in form asks for the username, the password and the 6-digit code of the
person's authenticator app (django-otp's admin form), and a session that no code verified (one signed
in before the setting was on, say) is treated as signed out: every admin page sends it back to that
form. Read when each request is handled, so a test can switch it."""

from __future__ import annotations

from django.conf import settings
from django.contrib import admin
from django_otp import devices_for_user
from django_otp.admin import OTPAdminAuthenticationForm, OTPAdminSite


class SignInForm(OTPAdminAuthenticationForm):
    """django-otp's admin sign-in form, but a staff member with one device (manage.py staff_totp_enroll
    gives each exactly one) signs in in one step: username, password and code, no device to pick."""

    def _chosen_device(self, user):
        device = super()._chosen_device(user)
        if device is None:
            # Inside clean_otp's transaction; for_verify locks the row, so two sign-ins cannot both use
            # the same code.
            devices = list(devices_for_user(user, for_verify=True))
            if len(devices) == 1:
                device = devices[0]
        return device


class IssuerAdminSite(admin.AdminSite):
    site_header = "Issuer operations"
    site_title = "Issuer operations"
    index_template = "admin/issuer_index.html"

    def index(self, request, extra_context=None):
        """The home page is the operations dashboard (mint_redeem.dashboard) above the list of models,
        for staff who may see the requests (every role but market makers, who never reach the admin)."""
        extra_context = dict(extra_context or {})
        if request.user.has_perm("mint_redeem.view_mintrequest"):
            # config wires the apps; it never imports them when it loads.
            from mint_redeem.dashboard import dashboard

            extra_context["dashboard"] = dashboard()
        return super().index(request, extra_context)

    @property
    def login_form(self):
        return SignInForm if settings.ADMIN_REQUIRE_OTP else None

    @property
    def login_template(self):
        return OTPAdminSite.login_template if settings.ADMIN_REQUIRE_OTP else None

    def has_permission(self, request) -> bool:
        if not super().has_permission(request):
            return False
        return not settings.ADMIN_REQUIRE_OTP or request.user.is_verified()
