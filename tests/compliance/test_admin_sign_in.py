"""Signing in to the admin: lockout after repeated failures (django-axes), and the second factor (TOTP,
django-otp) that production requires of every staff member, on the real sign-in form."""

from __future__ import annotations

import time

import pytest
from django.test import Client
from django_otp.oath import totp
from django_otp.plugins.otp_totp.models import TOTPDevice

from compliance import roles, services
from config.api import DomainError
from tests.compliance.factories import make_staff
from tests.subprocesses import command_env, describe, manage

pytestmark = pytest.mark.django_db
PASSWORD = "correct-horse-battery-42"
LOGIN = "/admin/login/?next=/admin/"


def staff_with_password(role: str = roles.OPERATIONS):
    user = make_staff(role)
    user.set_password(PASSWORD)
    user.save()
    return user


def sign_in(client: Client, username: str, password: str, **extra):
    return client.post(LOGIN, {"username": username, "password": password, **extra})


def signed_in(client: Client) -> bool:
    return client.get("/admin/").status_code == 200


def current_token(device: TOTPDevice) -> str:
    return f"{totp(device.bin_key, step=device.step, t0=device.t0, digits=device.digits):0{device.digits}d}"


# --- Lockout ---------------------------------------------------------------------------------------

def test_after_five_wrong_passwords_the_right_one_is_refused(settings):
    assert settings.AXES_FAILURE_LIMIT == 5
    user = staff_with_password()
    client = Client()
    statuses = [sign_in(client, user.username, "wrong-password-123").status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]  # the form again with its error, then locked at the fifth
    refused = sign_in(client, user.username, PASSWORD)
    assert refused.status_code == 429
    assert b"Sign-in locked" in refused.content
    assert not signed_in(client)


def test_another_user_from_the_same_address_is_unaffected():
    locked = staff_with_password()
    other = staff_with_password()
    client = Client()
    for _ in range(5):
        sign_in(client, locked.username, "wrong-password-123")
    assert sign_in(client, locked.username, PASSWORD).status_code == 429

    other_client = Client()
    assert sign_in(other_client, other.username, PASSWORD).status_code == 302
    assert signed_in(other_client)


def test_the_lockout_is_per_address_and_ends_after_the_cool_off(settings):
    user = staff_with_password()
    for _ in range(5):
        sign_in(Client(REMOTE_ADDR="198.51.100.7"), user.username, "wrong-password-123")
    assert sign_in(Client(REMOTE_ADDR="198.51.100.7"), user.username, PASSWORD).status_code == 429
    # The same username from another address is not locked (username + address is what locks).
    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    assert sign_in(elsewhere, user.username, PASSWORD).status_code == 302 and signed_in(elsewhere)

    from axes.models import AccessAttempt

    # 15 minutes without an attempt later, the address may try again.
    assert settings.AXES_COOLOFF_TIME.total_seconds() == 15 * 60
    AccessAttempt.objects.filter(username=user.username).update(
        attempt_time=AccessAttempt.objects.get(username=user.username).attempt_time - settings.AXES_COOLOFF_TIME)
    later = Client(REMOTE_ADDR="198.51.100.7")
    assert sign_in(later, user.username, PASSWORD).status_code == 302 and signed_in(later)


def test_four_failures_then_a_success_start_the_count_again():
    user = staff_with_password()
    client = Client()
    for _ in range(4):
        sign_in(client, user.username, "wrong-password-123")
    assert sign_in(client, user.username, PASSWORD).status_code == 302
    client.post("/admin/logout/")
    for _ in range(4):
        sign_in(client, user.username, "wrong-password-123")
    assert sign_in(client, user.username, PASSWORD).status_code == 302


# --- Second factor --------------------------------------------------------------------------------

@pytest.fixture
def otp_required(settings):
    settings.ADMIN_REQUIRE_OTP = True
    return settings


def test_without_a_device_staff_cannot_open_the_admin(otp_required):
    user = staff_with_password()
    client = Client()
    response = sign_in(client, user.username, PASSWORD)
    assert response.status_code == 200  # the form again: the password alone is not enough
    assert not signed_in(client)
    assert client.get("/admin/").status_code == 302  # sent to the sign-in form

    # A session signed in some other way (before the setting was on) is sent back to the form as well.
    client.force_login(user)
    response = client.get("/admin/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_with_a_device_and_its_current_code_staff_can(otp_required):
    user = staff_with_password()
    device = services.staff_totp_enroll(user=user)
    client = Client()
    wrong = f"{(int(current_token(device)) + 1) % 10**6:06d}"
    assert sign_in(client, user.username, PASSWORD, otp_token=wrong).status_code == 200
    assert not signed_in(client)

    time.sleep(1.1)  # django-otp refuses every code for 1 s after a wrong one (doubling with each failure)
    response = sign_in(client, user.username, PASSWORD, otp_token=current_token(device))
    assert response.status_code == 302, response.content
    assert signed_in(client)


def test_the_sign_in_page_asks_for_the_code_only_where_required(settings):
    settings.ADMIN_REQUIRE_OTP = False
    assert b'name="otp_token"' not in Client().get("/admin/login/").content
    settings.ADMIN_REQUIRE_OTP = True
    assert b'name="otp_token"' in Client().get("/admin/login/").content


def test_an_unverified_session_cannot_use_the_staff_api_either(otp_required):
    user = staff_with_password(roles.AUDITOR)
    client = Client()
    client.force_login(user)
    assert client.get("/api/v1/compliance/participants").status_code in (401, 403)

    device = services.staff_totp_enroll(user=user)
    verified = Client()
    assert sign_in(verified, user.username, PASSWORD, otp_token=current_token(device)).status_code == 302
    assert verified.get("/api/v1/compliance/participants").status_code == 200


def test_enrolling_twice_needs_replace_and_replacing_revokes_the_old_device(django_user_model):
    user = staff_with_password()
    first = services.staff_totp_enroll(user=user)
    with pytest.raises(DomainError) as refused:
        services.staff_totp_enroll(user=user)
    assert refused.value.code == "totp_device_exists"
    second = services.staff_totp_enroll(user=user, replace=True)
    assert list(TOTPDevice.objects.filter(user=user)) == [second] and first.key != second.key
    with pytest.raises(DomainError):
        services.staff_totp_enroll(user=django_user_model.objects.create_user("not-staff"))


def test_the_admin_never_shows_a_secret_after_enrollment(admin_client):
    user = staff_with_password()
    device = services.staff_totp_enroll(user=user)
    page = admin_client.get(f"/admin/otp_totp/totpdevice/{device.pk}/change/")
    assert page.status_code == 200
    assert device.key.encode() not in page.content and b"qrcode" not in page.content.lower()


def test_production_requires_the_second_factor_whatever_the_environment_says():
    env = command_env(ISSUER_ENV="production", SECRET_KEY="x" * 60, FIELD_ENCRYPTION_KEYS="y" * 40,
                      DATABASE_URL="postgresql://issuer@db.invalid/i",
                      CELERY_BROKER_URL="redis://broker.invalid:6379/0", ALLOWED_HOSTS="issuer.example.com",
                      EVM_CHAINS="", ADMIN_REQUIRE_OTP="false")
    result = manage("shell", "-c", "from django.conf import settings; print(settings.ADMIN_REQUIRE_OTP)", env=env)
    assert result.returncode == 0, describe(result)
    assert result.stdout.strip().splitlines()[-1] == "True"


# --- The commands, as the README prints them ---------------------------------------------------------

def test_staff_totp_enroll_prints_a_uri_whose_codes_sign_in(committed, settings):
    settings.ADMIN_REQUIRE_OTP = True
    user = staff_with_password()
    enrolled = manage("staff_totp_enroll", user.username)
    assert enrolled.returncode == 0, describe(enrolled)
    uri = enrolled.stdout.strip()
    assert uri.startswith("otpauth://totp/") and "secret=" in uri and "issuer=Issuer" in uri

    # What an authenticator app does with the URI: the base32 secret, 30-second steps, 6 digits.
    import base64
    from urllib.parse import parse_qs, urlsplit

    secret = parse_qs(urlsplit(uri).query)["secret"][0]
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    code = f"{totp(key, step=30, t0=0, digits=6, drift=0):06d}"
    client = Client()
    assert sign_in(client, user.username, PASSWORD, otp_token=code).status_code == 302
    assert signed_in(client)

    again = manage("staff_totp_enroll", user.username)
    assert again.returncode == 1 and "totp_device_exists" in again.stderr, describe(again)
    replaced = manage("staff_totp_enroll", user.username, "--replace")
    assert replaced.returncode == 0 and replaced.stdout.strip() != uri, describe(replaced)


def test_axes_reset_username_unlocks_a_locked_out_user(committed):
    user = staff_with_password()
    for _ in range(5):
        sign_in(Client(), user.username, "wrong-password-123")
    assert sign_in(Client(), user.username, PASSWORD).status_code == 429
    reset = manage("axes_reset_username", user.username)
    assert reset.returncode == 0, describe(reset)
    assert sign_in(Client(), user.username, PASSWORD).status_code == 302
