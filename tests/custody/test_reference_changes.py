"""Reference data changes through a proposal, with a reason, a ledger event and a second person. Each
rule is attacked: the proposer applying their own change (a superuser too), people without the
permission, stale proposals, identifiers, a broker base URL off the allowlist, and the admin forms."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from compliance import roles
from compliance.models import ReferenceChange
from compliance.reference_changes import (
    ReferenceChangeRefused,
    reference_change_approve,
    reference_change_propose,
    reference_change_reject,
)
from compliance.roles import FourEyesViolation
from config.api import DomainError
from custody.models import Broker, TokenProduct
from ledger import selectors
from tests.compliance.factories import make_staff


def refused(fn, exc=DomainError, code=None):
    head = selectors.head()
    with pytest.raises(exc) as caught:
        fn()
    assert selectors.head() == head
    if code:
        assert caught.value.code == code
    return caught.value


def test_a_change_is_applied_by_a_second_person_and_recorded(broker, operations, approver):
    from django.contrib.auth.models import Group

    operations.groups.add(Group.objects.get(name=roles.APPROVER))  # holds both roles: still not alone
    operations = get_user_model().objects.get(pk=operations.pk)
    change = reference_change_propose(target=broker, changes={"settlement_days": 2},
                                      reason="T+2 for this broker's market", user=operations)
    assert Broker.objects.get(pk=broker.pk).settlement_days == 1  # nothing changes yet
    refused(lambda: reference_change_approve(change=change, user=operations), FourEyesViolation)
    reference_change_approve(change=change, user=approver)
    assert Broker.objects.get(pk=broker.pk).settlement_days == 2
    (event,) = [e for e in selectors.read_stream(stream=change.stream) if e.type == "reference.changed"]
    assert event.data["changes"] == {"settlement_days": "2"} and event.data["before"] == {"settlement_days": "1"}
    assert (event.data["proposed_by"], event.data["approved_by"]) == (operations.pk, approver.pk)
    assert event.data["reason"] == "T+2 for this broker's market"
    refused(lambda: reference_change_approve(change=change, user=approver), code="change_not_pending")


def test_a_superuser_cannot_apply_their_own_change(broker):
    boss = get_user_model().objects.create_superuser("boss", "", "pw-not-used-1")
    change = reference_change_propose(target=broker, changes={"name": "Renamed"}, reason="the broker renamed",
                                      user=boss)
    refused(lambda: reference_change_approve(change=change, user=boss), FourEyesViolation)
    assert Broker.objects.get(pk=broker.pk).name != "Renamed"


def test_people_without_the_permissions_can_neither_propose_nor_apply(broker, operations, db):
    auditor = make_staff(roles.AUDITOR)
    refused(lambda: reference_change_propose(target=broker, changes={"name": "x"}, reason="because I can",
                                             user=auditor), code="permission_denied")
    other_operator = make_staff(roles.OPERATIONS)
    change = reference_change_propose(target=broker, changes={"name": "New name"}, reason="rename the broker",
                                      user=operations)
    refused(lambda: reference_change_approve(change=change, user=other_operator), code="permission_denied")
    refused(lambda: reference_change_approve(change=change, user=auditor), code="permission_denied")
    refused(lambda: reference_change_reject(change=change, user=auditor, reason="no"), code="permission_denied")


def test_identifiers_and_unknown_fields_cannot_be_proposed(broker, aapl, operations):
    refused(lambda: reference_change_propose(target=broker, changes={"code": "other"}, reason="rename the code",
                                             user=operations), ReferenceChangeRefused, "field_not_changeable")
    refused(lambda: reference_change_propose(target=aapl, changes={"ticker": "AAPL2"}, reason="rename ticker",
                                             user=operations), ReferenceChangeRefused, "field_not_changeable")
    refused(lambda: reference_change_propose(target=broker, changes={"name": "x"}, reason="", user=operations),
            ReferenceChangeRefused, "reason_required")
    refused(lambda: reference_change_propose(target=broker, changes={"name": broker.name}, reason="no change here",
                                             user=operations), ReferenceChangeRefused, "no_change")


def test_a_broker_base_url_must_be_on_the_allowlist(broker, operations, approver, settings):
    settings.BROKER_API_BASE_URLS = ["https://paper-api.alpaca.markets"]
    refused(lambda: reference_change_propose(target=broker, changes={"api_base_url": "https://attacker.example"},
                                             reason="point the broker elsewhere", user=operations),
            ReferenceChangeRefused, "invalid_reference_change")
    change = reference_change_propose(target=broker, changes={"api_base_url": "https://paper-api.alpaca.markets"},
                                      reason="use the paper endpoint", user=operations)
    # The allowlist shrinks before the change is applied: it is checked again.
    settings.BROKER_API_BASE_URLS = []
    refused(lambda: reference_change_approve(change=change, user=approver), ReferenceChangeRefused)
    assert Broker.objects.get(pk=broker.pk).api_base_url == ""


def test_a_stale_proposal_is_not_applied(broker, operations, approver):
    first = reference_change_propose(target=broker, changes={"name": "First"}, reason="first rename",
                                     user=operations)
    second = reference_change_propose(target=broker, changes={"name": "Second"}, reason="second rename",
                                      user=operations)
    reference_change_approve(change=second, user=approver)
    stale = reference_change_approve(change=first, user=approver)
    assert stale.status == ReferenceChange.Status.STALE
    assert Broker.objects.get(pk=broker.pk).name == "Second"


def test_a_multiplier_change_is_the_corporate_action_service(product, operations, approver):
    change = reference_change_propose(target=product, changes={"multiplier": "2"}, reason="2:1 split effective today",
                                      user=operations)
    reference_change_approve(change=change, user=approver)
    product = TokenProduct.objects.get(pk=product.pk)
    assert product.multiplier == Decimal(2)
    types = [e.type for e in selectors.read_log(after_position=0, limit=10_000)]
    assert "custody.product_multiplier_changed" in types


def test_resuming_minting_takes_a_second_person(product, admin_client, approver):
    TokenProduct.objects.filter(pk=product.pk).update(status="paused")
    response = admin_client.post(reverse("admin:custody_tokenproduct_changelist"),
                                 {"action": "resume_minting", "_selected_action": [product.pk]})
    assert response.status_code == 302
    assert TokenProduct.objects.get(pk=product.pk).status == "paused"
    change = ReferenceChange.objects.get(object_id=product.pk, status="pending")
    reference_change_approve(change=change, user=approver)
    assert TokenProduct.objects.get(pk=product.pk).status == "active"


def test_the_admin_change_form_of_reference_data_changes_nothing(broker, admin_client):
    url = reverse("admin:custody_broker_change", args=[broker.pk])
    shown = admin_client.get(url)
    assert "settlement_days" not in shown.context["adminform"].form.fields
    assert "Propose a change" in shown.content.decode()
