"""Issuing an attestation from the admin (operations), and the auditor, who reads every admin page and
changes nothing: every admin URL, POSTed with every action the admin defines, leaves the ledger as it was."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.urls import URLPattern, reverse

from compliance import roles
from custody.attestations import attestation_issue
from custody.models import Attestation
from ledger.selectors import head
from tests.compliance.factories import make_staff


def _client_for(client, role):
    user = make_staff(role)
    client.force_login(user)
    return client


def test_operations_issue_an_attestation_from_the_admin(client, registered):
    ops = _client_for(client, roles.OPERATIONS)
    listing = ops.get(reverse("admin:custody_attestation_changelist")).content.decode()
    assert "Issue an attestation now" in listing
    response = ops.post(reverse("admin:custody_attestation_issue"))
    assert response.status_code == 302
    row = Attestation.objects.get()
    assert row.ledger_position == head().position
    page = ops.get(reverse("admin:custody_attestation_change", args=[row.pk])).content.decode()
    assert row.attestation_id in page and "&quot;signature&quot;" in page


def test_the_auditor_reads_attestations_and_cannot_issue_one(client, registered):
    attestation_issue(actor="user:1")
    auditor = _client_for(client, roles.AUDITOR)
    listing = auditor.get(reverse("admin:custody_attestation_changelist"))
    assert listing.status_code == 200 and "Issue an attestation now" not in listing.content.decode()
    assert auditor.post(reverse("admin:custody_attestation_issue")).status_code == 403
    assert Attestation.objects.count() == 1


def _admin_urls():
    """Every URL of every registered ModelAdmin (custom views included), with the admin's actions."""
    for model, model_admin in admin.site._registry.items():
        names = [name for name, _ in _actions(model_admin)]
        for pattern in model_admin.get_urls():
            if isinstance(pattern, URLPattern) and pattern.name:
                yield model, pattern, names


def _actions(model_admin):
    yield from admin.site.actions
    for action in model_admin.actions or []:
        yield (action if isinstance(action, str) else action.__name__), action


@pytest.mark.django_db
def test_the_auditor_changes_nothing_through_any_admin_post(client, registered):
    attestation_issue(actor="user:1")
    auditor = _client_for(client, roles.AUDITOR)
    before = head()
    tried = 0
    for model, pattern, actions in _admin_urls():
        kwargs = {}
        for key in pattern.pattern.converters:
            row = model._default_manager.order_by("pk").first()
            kwargs[key] = row.pk if row is not None else 1
        try:
            url = reverse(f"admin:{pattern.name}", kwargs=kwargs)
        except Exception:  # noqa: S112 - a pattern needing arguments we cannot name (e.g. a redirect helper)
            continue
        pks = [str(pk) for pk in model._default_manager.values_list("pk", flat=True)[:5]]
        bodies = [{}, {"reason": "an auditor trying", "confirm": "yes", "post": "yes"}]
        if pattern.name.endswith("_changelist"):
            bodies += [{"action": name, "_selected_action": pks, "index": "0"} for name in actions]
        for body in bodies:
            response = auditor.post(url, body)
            tried += 1
            assert response.status_code in (200, 302, 403, 404, 405), (url, body, response.status_code)
    assert tried > 100
    assert head() == before, "an auditor's POST appended to the ledger"
    assert Attestation.objects.count() == 1
