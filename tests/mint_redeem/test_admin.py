"""The operations admin calls the same services, permission-checked, with four eyes."""

from __future__ import annotations

from django.test import Client
from django.urls import reverse

from mint_redeem.models import MintRequest

from .test_gates_and_refusals import post_mint


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def act(client, mint, action, data=None):
    return client.post(reverse("admin:mint_redeem_mintrequest_act", args=[mint.pk, action]), data or {})


def test_operations_record_cash_and_approvers_approve(market, mm, api, operations, approver):
    mint = MintRequest.objects.get(pk=post_mint(api, mm, quantity="300").json()["id"])
    ops = login(operations)
    page = ops.get(reverse("admin:mint_redeem_mintrequest_change", args=[mint.pk]))
    assert page.status_code == 200 and "Record cash received" in page.content.decode()
    assert "mint.accepted" in page.content.decode()  # the event history is shown
    queue = ops.get(reverse("admin:mint_redeem_mintrequest_changelist") + "?state__exact=accepted")
    assert queue.status_code == 200 and f"{mint.pk}" in queue.content.decode()

    assert act(ops, mint, "fund", {"amount_cents": mint.cash_due_cents, "reference": "WIRE"}).status_code == 302
    mint.refresh_from_db()
    assert mint.state == "funded" and mint.funded_by == operations
    # Operations cannot approve (no permission); the approver can, and is not the funder.
    assert act(ops, mint, "approve").status_code == 403
    assert act(login(approver), mint, "approve").status_code == 302
    mint.refresh_from_db()
    assert mint.approved_by == approver


def test_an_approver_cannot_approve_what_they_initiated(market, mm, api, operations, approver):
    from django.contrib.auth.models import Group

    # One person who is both operations and approver still cannot approve their own funding.
    approver.groups.add(Group.objects.get(name="operations"))
    mint = MintRequest.objects.get(pk=post_mint(api, mm, quantity="300").json()["id"])
    client = login(approver)
    act(client, mint, "fund", {"amount_cents": mint.cash_due_cents, "reference": "WIRE"})
    response = act(client, mint, "approve")
    mint.refresh_from_db()
    assert mint.approved_by is None
    assert "four_eyes_violation" in client.get(response.url).content.decode()


def test_auditors_read_but_cannot_act(market, mm, api):
    from compliance import roles
    from tests.compliance.factories import make_staff

    auditor = login(make_staff(roles.AUDITOR))
    mint = MintRequest.objects.get(pk=post_mint(api, mm).json()["id"])
    assert auditor.get(reverse("admin:mint_redeem_mintrequest_change", args=[mint.pk])).status_code == 200
    assert act(auditor, mint, "fund", {"amount_cents": mint.cash_due_cents, "reference": "X"}).status_code == 403
    assert act(auditor, mint, "cancel", {"reason": "x"}).status_code == 403
    mint.refresh_from_db()
    assert mint.state == "accepted"


def test_illegal_transitions_are_refused_in_the_admin_too(market, mm, api, operations):
    mint = MintRequest.objects.get(pk=post_mint(api, mm).json()["id"])
    ops = login(operations)
    response = act(ops, mint, "receive_shares", {"confirmation": "X"})  # a cash mint receives no shares
    mint.refresh_from_db()
    assert mint.state == "accepted"
    assert "transition_not_allowed" in ops.get(response.url).content.decode()


def test_an_auditor_posting_a_lifecycle_button_is_refused_and_changes_nothing(market, mm, client):
    from compliance import roles
    from ledger import selectors
    from mint_redeem import services
    from mint_redeem.models import MintRequest
    from tests.compliance.factories import make_staff

    mint = services.mint_request_create(participant=mm.participant, product_symbol="AAPLx", chain="ethereum",
                                        quantity="1", wallet_id=mm.wallets["ethereum"].pk, funding="cash",
                                        actor="test")
    auditor = make_staff(roles.AUDITOR)
    client.force_login(auditor)
    head = selectors.head()
    for action, data in (("cancel", {"reason": "x"}), ("fund", {"amount_cents": 10**9, "reference": "W"}),
                         ("approve", {}), ("fail", {"reason": "x"})):
        response = client.post(f"/admin/mint_redeem/mintrequest/{mint.pk}/act/{action}/", data)
        assert response.status_code == 403, action
    assert selectors.head() == head and MintRequest.objects.get(pk=mint.pk).state == "accepted"
