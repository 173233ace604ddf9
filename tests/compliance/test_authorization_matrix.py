"""Every role against every compliance endpoint and admin action."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from compliance import roles, services
from compliance.models import ApiScope, Chain, ComplianceCase, KycStatus, Participant, Wallet
from tests.compliance import factories as f

pytestmark = pytest.mark.django_db


@pytest.fixture
def world(client):
    a = f.make_market_maker(chains=(Chain.ETHEREUM,))
    b = f.make_market_maker(chains=(Chain.ETHEREUM,))
    # A pending wallet of B, so challenge/verify have something real to act on.
    b_pending = services.wallet_register(participant=b.participant, chain=Chain.SOLANA,
                                         address=f.wallet_address(Chain.SOLANA, f.new_wallet_key(Chain.SOLANA)),
                                         actor="system")
    _, _, a_read = f.make_api_key(participant=a.participant, scope=ApiScope.READ)
    _, _, auditor_key = f.make_auditor_api_key()
    staff = {role: f.make_staff(role) for role in (roles.OPERATIONS, roles.APPROVER, roles.COMPLIANCE_OFFICER,
                                                   roles.AUDITOR)}
    return {"a": a, "b": b, "b_pending": b_pending, "a_read": a_read, "auditor_key": auditor_key, "staff": staff}


def call(client, principal, method, path, payload=None):
    """principal: ("key", Credentials) | ("session", user) | ("anon", None)."""
    kind, who = principal
    body = json.dumps(payload).encode() if payload is not None else b""
    headers = {}
    if kind == "key":
        headers = f.sign_request(who, method, path, body)
    elif kind == "session":
        client.force_login(who)
    if method == "GET":
        response = client.get(path, headers=headers)
    else:
        if kind != "key":
            headers = {"Idempotency-Key": "matrix"}
        response = client.post(path, data=body, content_type="application/json", headers=headers)
    client.logout()
    return response


def principals(world):
    return {
        "mm_a_trade": ("key", world["a"].credentials),
        "mm_a_read": ("key", world["a_read"]),
        "mm_b_trade": ("key", world["b"].credentials),
        "auditor_key": ("key", world["auditor_key"]),
        "anonymous": ("anon", None),
        **{f"{role}_session": ("session", user) for role, user in world["staff"].items()},
    }


STAFF_SESSIONS = ["operations_session", "approver_session", "compliance_officer_session", "auditor_session"]


def test_market_maker_endpoints(client, world):
    a_wallet = world["a"].wallets[Chain.ETHEREUM]
    new_address = f.wallet_address(Chain.ETHEREUM, f.new_wallet_key(Chain.ETHEREUM))
    endpoints = {
        "GET participant": ("GET", "/api/v1/participant", None),
        "GET wallets": ("GET", "/api/v1/wallets", None),
        "GET wallet": ("GET", f"/api/v1/wallets/{a_wallet.id}", None),
        "POST wallets": ("POST", "/api/v1/wallets", {"chain": "ethereum", "address": new_address}),
        "POST challenge": ("POST", f"/api/v1/wallets/{a_wallet.id}/challenge", None),
        "POST verify": ("POST", f"/api/v1/wallets/{a_wallet.id}/verify", {"signature": "0x00"}),
    }
    expected = {
        # owner, trade scope: challenge/verify of an already verified wallet is a 409 domain answer
        "mm_a_trade": {"GET participant": 200, "GET wallets": 200, "GET wallet": 200, "POST wallets": 201,
                       "POST challenge": 409, "POST verify": 409},
        "mm_a_read": {"GET participant": 200, "GET wallets": 200, "GET wallet": 200, "POST wallets": 403,
                      "POST challenge": 403, "POST verify": 403},
        # B on A's resources: the wallet does not exist for B
        "mm_b_trade": {"GET participant": 200, "GET wallets": 200, "GET wallet": 404, "POST wallets": 409,
                       "POST challenge": 404, "POST verify": 404},
        "auditor_key": dict.fromkeys(endpoints, 403),
        "anonymous": dict.fromkeys(endpoints, 401),
        **{s: dict.fromkeys(endpoints, 401) for s in STAFF_SESSIONS},
    }
    got = {}
    for name, principal in principals(world).items():
        got[name] = {label: call(client, principal, *spec).status_code for label, spec in endpoints.items()}
    assert got == expected


def test_b_sees_nothing_of_a(client, world):
    a, b = world["a"], world["b"]
    a_wallet = a.wallets[Chain.ETHEREUM]
    own = call(client, ("key", b.credentials), "GET", "/api/v1/participant").json()
    assert own["id"] == b.participant.id and a.participant.legal_name not in json.dumps(own)
    listed = call(client, ("key", b.credentials), "GET", "/api/v1/wallets").json()
    assert a_wallet.address not in json.dumps(listed)
    missing = call(client, ("key", b.credentials), "GET", "/api/v1/wallets/999999999")
    theirs = call(client, ("key", b.credentials), "GET", f"/api/v1/wallets/{a_wallet.id}")
    assert missing.status_code == theirs.status_code == 404
    assert missing.json() == theirs.json()  # indistinguishable from a wallet that does not exist
    assert a_wallet.address not in theirs.content.decode()
    # Acting on A's resources changes nothing.
    before = a_wallet.challenges.count()
    call(client, ("key", b.credentials), "POST", f"/api/v1/wallets/{a_wallet.id}/challenge")
    assert a_wallet.challenges.count() == before
    # And A cannot act on B's pending wallet either.
    pending = world["b_pending"]
    assert call(client, ("key", a.credentials), "POST", f"/api/v1/wallets/{pending.id}/challenge").status_code == 404
    assert not pending.challenges.exists()


def test_staff_read_endpoints(client, world):
    endpoints = {"participants": "/api/v1/compliance/participants", "cases": "/api/v1/compliance/cases"}
    for name, principal in principals(world).items():
        for label, path in endpoints.items():
            status = call(client, principal, "GET", path).status_code
            if name in STAFF_SESSIONS or name == "auditor_key":
                assert status == 200, (name, label)
            elif name == "anonymous":
                assert status in (401, 403), (name, label)
            else:
                assert status == 403, (name, label)
            # Nobody writes through them; an auditor's write is a 403.
            write = call(client, principal, "POST", path, {"x": 1}).status_code
            assert write in (401, 403), (name, label)
    assert call(client, principals(world)["auditor_session"], "POST", endpoints["participants"], {}).status_code == 403
    assert call(client, principals(world)["auditor_key"], "POST", endpoints["participants"], {}).status_code == 403


# --- Admin ------------------------------------------------------------------------------------------

ADMIN_MODELS = ["participant", "wallet", "compliancecase", "screeningresult", "sanctionslist", "sanctionsentry",
                "apikey", "compliancealert", "marketmakeruser", "notionalusage"]


def test_every_staff_role_reads_every_admin_page_and_market_makers_none(client, world):
    for role, user in world["staff"].items():
        client.force_login(user)
        for model in ADMIN_MODELS:
            assert client.get(f"/admin/compliance/{model}/").status_code == 200, (role, model)
        assert client.get(f"/admin/compliance/participant/{world['a'].participant.id}/change/").status_code == 200
        client.logout()
    client.force_login(world["a"].user)
    assert client.get("/admin/compliance/participant/").status_code == 302  # to the login page
    client.logout()


def test_only_operations_and_compliance_add_participants_and_nobody_deletes(client, world):
    for role, user in world["staff"].items():
        client.force_login(user)
        status = client.get("/admin/compliance/participant/add/").status_code
        assert status == (200 if role in (roles.OPERATIONS, roles.COMPLIANCE_OFFICER) else 403), role
        delete = client.get(f"/admin/compliance/participant/{world['a'].participant.id}/delete/").status_code
        assert delete == 403, role
        client.logout()


def test_operations_onboards_a_participant_through_the_admin(client, world):
    ops = world["staff"][roles.OPERATIONS]
    client.force_login(ops)
    lei = f.make_lei()
    response = client.post("/admin/compliance/participant/add/", {
        "legal_name": "Admin Onboarded Markets LLC", "lei": lei, "jurisdiction": "us", "contact_name": "",
        "contact_email": "", "contact_phone": "", "aml_risk": "low"})
    assert response.status_code == 302, response.content[:2000]
    created = Participant.objects.get(lei=lei)
    assert created.kyc_status == KycStatus.PENDING and created.kyc_submitted_by == ops
    bad = client.post("/admin/compliance/participant/add/", {
        "legal_name": "Bad LEI", "lei": lei[:-2] + "00", "jurisdiction": "US", "aml_risk": "low"})
    assert bad.status_code == 200 and b"check digits" in bad.content


def run_action(client, user, model, action, pks, data=None):
    client.force_login(user)
    payload = {"action": action, "_selected_action": [str(pk) for pk in pks], "apply": "1", **(data or {})}
    response = client.post(f"/admin/compliance/{model}/", payload)
    client.logout()
    return response


def test_kyc_approval_action_by_role_with_four_eyes(client, world):
    staff = world["staff"]
    officer = staff[roles.COMPLIANCE_OFFICER]
    pending = services.participant_create(legal_name="Pending Markets Ltd", lei=f.make_lei(), jurisdiction="GB",
                                          created_by=officer)
    data = {"reason": "documents verified", "expires_on": str(timezone.localdate() + timedelta(days=300))}
    for role in (roles.OPERATIONS, roles.APPROVER, roles.AUDITOR):
        run_action(client, staff[role], "participant", "approve_kyc", [pending.id], data)
        pending.refresh_from_db()
        assert pending.kyc_status == KycStatus.PENDING, role
    # The officer who onboarded it is the initiator: their own approval is refused.
    response = run_action(client, officer, "participant", "approve_kyc", [pending.id], data)
    pending.refresh_from_db()
    assert pending.kyc_status == KycStatus.PENDING
    assert response.status_code == 302
    second = f.make_staff(roles.COMPLIANCE_OFFICER)
    run_action(client, second, "participant", "approve_kyc", [pending.id], data)
    pending.refresh_from_db()
    assert pending.kyc_status == KycStatus.APPROVED and pending.kyc_expires_on is not None


def test_freeze_action_by_role(client, world):
    wallet = world["a"].wallets[Chain.ETHEREUM]
    for role in (roles.OPERATIONS, roles.APPROVER, roles.AUDITOR):
        run_action(client, world["staff"][role], "wallet", "freeze", [wallet.id], {"reason": "x"})
        assert not Wallet.objects.get(pk=wallet.pk).frozen, role
    # The form is shown first (asks for the reason); nothing happens without one.
    officer = world["staff"][roles.COMPLIANCE_OFFICER]
    client.force_login(officer)
    form = client.post("/admin/compliance/wallet/", {"action": "freeze", "_selected_action": [str(wallet.id)]})
    assert form.status_code == 200 and b"reason" in form.content
    client.logout()
    run_action(client, officer, "wallet", "freeze", [wallet.id], {"reason": ""})
    assert not Wallet.objects.get(pk=wallet.pk).frozen
    run_action(client, officer, "wallet", "freeze", [wallet.id], {"reason": "exchange reported compromise"})
    frozen = Wallet.objects.get(pk=wallet.pk)
    assert frozen.frozen and frozen.frozen_reason == "exchange reported compromise"


def test_case_decision_action_by_role(client, world):
    officer = world["staff"][roles.COMPLIANCE_OFFICER]
    services.sanctions_list_import(source="test", content=f.sdn_xml([{"uid": 7, "last_name": "PENDING MARKETS"}]),
                                   imported_by=officer)
    hit = services.participant_create(legal_name="Pending Markets", lei=f.make_lei(), jurisdiction="GB",
                                      created_by=world["staff"][roles.OPERATIONS])
    case = ComplianceCase.objects.get(participant=hit)
    for role in (roles.OPERATIONS, roles.APPROVER, roles.AUDITOR):
        run_action(client, world["staff"][role], "compliancecase", "clear", [case.id], {"reason": "x"})
        assert ComplianceCase.objects.get(pk=case.pk).status == "open", role
    run_action(client, officer, "compliancecase", "clear", [case.id], {"reason": "different entity"})
    assert ComplianceCase.objects.get(pk=case.pk).status == "cleared"
    client.force_login(world["staff"][roles.AUDITOR])
    page = client.get(f"/admin/compliance/compliancecase/{case.id}/change/")
    assert page.status_code == 200 and b"different entity" in page.content and b"screening_hit" in page.content
    client.logout()


def test_api_key_revoke_action_by_role(client, world):
    key = world["b"].api_key
    for role in (roles.APPROVER, roles.AUDITOR):
        run_action(client, world["staff"][role], "apikey", "revoke", [key.id], {"reason": "x"})
        key.refresh_from_db()
        assert key.revoked_at is None, role
    run_action(client, world["staff"][roles.OPERATIONS], "apikey", "revoke", [key.id], {"reason": "offboarding"})
    key.refresh_from_db()
    assert key.revoked_at is not None and key.revoked_reason == "offboarding"


def test_four_eyes_helper():
    from config.api import DomainError

    roles.assert_four_eyes(initiator_id=1, approver_id=2)
    with pytest.raises(DomainError) as err:
        roles.assert_four_eyes(initiator_id=5, approver_id=5)
    assert err.value.code == "four_eyes_violation"


def test_role_groups_exist_with_derived_permissions():
    from django.contrib.auth.models import Group

    groups = {g.name: set(g.permissions.values_list("codename", flat=True)) for g in Group.objects.all()}
    assert set(roles.ALL_ROLES) <= set(groups)
    assert groups[roles.AUDITOR] and all(p.startswith("view_") for p in groups[roles.AUDITOR])
    assert "view_event" in groups[roles.AUDITOR]  # read-only everywhere, the ledger included
    assert groups[roles.MARKET_MAKER] == set()
    assert {"decide_case", "decide_kyc", "freeze_wallet"} <= groups[roles.COMPLIANCE_OFFICER]
    assert not {"decide_case", "decide_kyc", "freeze_wallet"} & groups[roles.OPERATIONS]


def test_sanctions_upload_in_the_admin_is_for_compliance_officers_only(client, world):
    from django.core.files.uploadedfile import SimpleUploadedFile

    from compliance.models import SanctionsList

    content = f.sdn_xml([{"uid": 11, "last_name": "SOMEONE LISTED"}])
    for role in (roles.OPERATIONS, roles.APPROVER, roles.AUDITOR):
        client.force_login(world["staff"][role])
        response = client.post("/admin/compliance/sanctionslist/import/",
                               {"file": SimpleUploadedFile("sdn.xml", content)})
        assert response.status_code == 403, role
        client.logout()
    assert not SanctionsList.objects.exists()
    client.force_login(world["staff"][roles.COMPLIANCE_OFFICER])
    assert b"Import SDN list" in client.get("/admin/compliance/sanctionslist/").content
    bad = client.post("/admin/compliance/sanctionslist/import/", {"file": SimpleUploadedFile("x.xml", b"<html/>")})
    assert bad.status_code == 200 and b"invalid_sanctions_file" in bad.content
    ok = client.post("/admin/compliance/sanctionslist/import/", {"file": SimpleUploadedFile("sdn.xml", content)})
    assert ok.status_code == 302
    current = SanctionsList.objects.get(is_current=True)
    assert current.imported_by == world["staff"][roles.COMPLIANCE_OFFICER] and current.entry_count == 1


def test_approving_a_held_sanctions_list_by_role_with_four_eyes(client, world):
    from compliance.models import SanctionsList

    staff = world["staff"]
    importer = staff[roles.COMPLIANCE_OFFICER]
    entries = [{"uid": 200 + n, "last_name": f"LISTED ENTITY {n}"} for n in range(10)]
    current = services.sanctions_list_import(source="test://ten", content=f.sdn_xml(entries), imported_by=importer)
    with pytest.raises(services.SanctionsListHeldForApproval):
        services.sanctions_list_import(source="test://five", content=f.sdn_xml(entries[:5]), imported_by=importer)
    held = SanctionsList.objects.get(held=True)
    for user in (staff[roles.OPERATIONS], staff[roles.APPROVER], staff[roles.AUDITOR], importer):
        run_action(client, user, "sanctionslist", "approve_shrink", [held.id], {"reason": "delisting"})
        assert SanctionsList.objects.get(is_current=True) == current, user
    second = f.make_staff(roles.COMPLIANCE_OFFICER)
    run_action(client, second, "sanctionslist", "approve_shrink", [held.id], {"reason": "five delisted today"})
    approved = SanctionsList.objects.get(is_current=True)
    assert (approved, approved.shrink_approved_by, approved.imported_by) == (held, second, importer)
