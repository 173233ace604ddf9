"""Every admin action declares the permissions it needs, and the auditor (read-only everywhere) can run
none of them: bulk actions on every registered ModelAdmin, and the lifecycle buttons of requests."""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.test import RequestFactory

from compliance import roles
from mint_redeem.admin import MINT_ACTIONS, REDEMPTION_ACTIONS
from mint_redeem.lifecycle import MintLifecycle, RedemptionLifecycle, states
from mint_redeem.models import MintRequest, Redemption
from tests.compliance.factories import make_staff


def _actions(model_admin):
    yield from admin.site.actions  # site-wide: (name, function), "delete selected"
    for action in model_admin.actions or []:
        func = getattr(model_admin, action) if isinstance(action, str) else action
        yield getattr(func, "__name__", str(action)), func


def test_every_bulk_action_declares_its_permissions():
    undeclared = [f"{type(model_admin).__name__}.{name}" for model_admin in admin.site._registry.values()
                  for name, func in _actions(model_admin) if not getattr(func, "allowed_permissions", None)]
    assert undeclared == []


def test_every_lifecycle_button_declares_its_permission():
    for actions in (MINT_ACTIONS, REDEMPTION_ACTIONS):
        for name, (_label, _form, permission, _call) in actions.items():
            assert permission in ("change", "approve"), name


@pytest.fixture
def auditor_request(db):
    request = RequestFactory().get("/admin/")
    request.user = make_staff(roles.AUDITOR)
    return request


def test_the_auditor_can_run_no_bulk_action(auditor_request):
    offered = {type(model_admin).__name__: list(model_admin.get_actions(auditor_request))
               for model_admin in admin.site._registry.values()}
    assert {name: actions for name, actions in offered.items() if actions} == {}
    # ...while seeing every list (read-only everywhere).
    assert all(model_admin.has_view_permission(auditor_request) for model_admin in admin.site._registry.values())


@pytest.mark.parametrize(("model", "machine"), [(MintRequest, MintLifecycle), (Redemption, RedemptionLifecycle)])
def test_the_auditor_is_offered_no_lifecycle_button_in_any_state(auditor_request, model, machine):
    model_admin = admin.site._registry[model]
    for state in states(machine):
        for in_kind in (False, True):
            obj = model(state=state, needs_approval=True,
                        **({"funding": "in_kind" if in_kind else "cash"} if model is MintRequest
                           else {"payout": "in_kind" if in_kind else "cash"}))
            assert model_admin.available_actions(auditor_request, obj) == [], (state, in_kind)
