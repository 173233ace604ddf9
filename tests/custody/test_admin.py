from datetime import timedelta

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse
from django.utils import timezone

from custody import services
from custody.models import ReconciliationBreak, Statement
from ledger.units import NANO
from tests.custody.statement_files import semt002


def test_product_list_shows_live_reserves(admin_client, custodian, aapl, product):
    services.shares_receive_in_kind(custodian=custodian, security=aapl, quantity_nano=5 * NANO,
                                    from_account="participant/1/shares", reference="r1",
                                    custodian_confirmation="c", actor="user:1")
    response = admin_client.get(reverse("admin:custody_tokenproduct_changelist"))
    assert response.status_code == 200
    body = response.content.decode()
    assert "AAPLx" in body and "open" in body
    assert 'bny: <span class="qty">5 shares</span> <span class="qty-exact">5,000,000,000 nano-shares</span>' in body
    response = admin_client.get(reverse("admin:custody_tokenproduct_change", args=[product.pk]))
    assert response.status_code == 200 and "shares_held_nano_by_custodian" in response.content.decode()


def test_statement_upload_break_and_resolution(admin_client, admin_user, account, custodian, aapl, product):
    services.shares_receive_in_kind(custodian=custodian, security=aapl, quantity_nano=5 * NANO,
                                    from_account="participant/1/shares", reference="r1",
                                    custodian_confirmation="c", actor="user:1")
    at = (timezone.now() + timedelta(seconds=1)).isoformat()
    upload = SimpleUploadedFile("stmt.xml", semt002(account="SAFE-0001", statement_id="S1", as_of=at,
                                                    holdings=[("US0378331005", "4")], datetime_=True))
    response = admin_client.post(reverse("admin:custody_statement_upload"), {"file": upload, "format": ""})
    assert response.status_code == 302
    statement = Statement.objects.get()
    assert statement.imported_by == f"user:{admin_user.pk}"

    hostile = SimpleUploadedFile("evil.xml", b'<!DOCTYPE d [<!ENTITY a "b">]><Document>&a;</Document>')
    response = admin_client.post(reverse("admin:custody_statement_upload"), {"file": hostile, "format": ""})
    assert response.status_code == 200 and "hostile_statement" in response.content.decode()
    assert Statement.objects.count() == 1

    response = admin_client.post(reverse("admin:custody_reconciliation_run"))
    assert response.status_code == 302
    item = ReconciliationBreak.objects.get()
    assert item.blocks_minting
    listing = admin_client.get(reverse("admin:custody_reconciliationbreak_changelist")).content.decode()
    assert "resolve" in listing and "-1" in listing

    url = reverse("admin:custody_break_resolve", args=[item.pk])
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"reason": "no"})
    assert response.status_code == 200  # too short: refused
    response = admin_client.post(url, {"reason": "custodian booked a late delivery; confirmed by email"})
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == "resolved" and item.resolved_by == f"user:{admin_user.pk}"
    assert not product.minting_paused_by_break


def test_order_and_fill_pages(admin_client, broker, aapl):
    order = services.order_place(broker=broker, security=aapl, side="buy", quantity_nano=NANO,
                                 client_order_id="o1", actor="user:1")
    services.order_sync(order=order, actor="user:1")
    assert admin_client.get(reverse("admin:custody_brokerorder_changelist")).status_code == 200
    assert admin_client.get(reverse("admin:custody_brokerorder_change", args=[order.pk])).status_code == 200
    assert admin_client.get(reverse("admin:custody_fill_changelist")).status_code == 200


def test_staff_without_permission_cannot_resolve(client, django_user_model, account, custodian, aapl):
    user = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
    client.force_login(user)
    item = ReconciliationBreak.objects.create(custodian=custodian, security=aapl, statement_as_of=timezone.now(),
                                              expected_nano=1, reported_nano=0, difference_nano=-1,
                                              detected_at=timezone.now(), last_seen_at=timezone.now())
    response = client.post(reverse("admin:custody_break_resolve", args=[item.pk]), {"reason": "because I can"})
    assert response.status_code == 403
    item.refresh_from_db()
    assert item.status == "open"


def test_every_custody_admin_page_renders(admin_client, broker, account, product):
    from custody.demo import seed_demo

    seed_demo()
    for model in ("security", "tokenproduct", "broker", "custodian", "brokerorder", "fill", "statement",
                  "reconciliationbreak", "reconciliationrun", "inkindtransfer"):
        response = admin_client.get(reverse(f"admin:custody_{model}_changelist"))
        assert response.status_code == 200, model
    for model in ("security", "tokenproduct", "broker", "custodian"):
        assert admin_client.get(reverse(f"admin:custody_{model}_add")).status_code == 200, model
    assert admin_client.get(reverse("admin:custody_statement_upload")).status_code == 200


def test_product_and_deployments_registered_through_admin_are_recorded(admin_client, aapl):
    from custody.models import TokenProduct
    from ledger.selectors import read_stream

    data = {"symbol": "AAPLx", "security": aapl.pk, "multiplier": "1", "break_tolerance_nano": "0",
            "deployments-TOTAL_FORMS": "1", "deployments-INITIAL_FORMS": "0", "deployments-MIN_NUM_FORMS": "0",
            "deployments-MAX_NUM_FORMS": "1000", "deployments-0-chain": "ethereum", "deployments-0-decimals": "18",
            "deployments-0-address": "0x" + "cd" * 20}
    response = admin_client.post(reverse("admin:custody_tokenproduct_add"), data)
    assert response.status_code == 302, response.content.decode()[:2000]
    product = TokenProduct.objects.get(symbol="AAPLx")
    assert list(product.deployments.values_list("chain", "decimals")) == [("ethereum", 18)]
    assert [e.type for e in read_stream(stream="product-AAPLx")] == ["custody.product_registered",
                                                                     "custody.deployment_registered"]


def test_register_services_validate(aapl, product):
    from custody import services

    with pytest.raises(services.CustodyError) as exc:
        services.product_register(symbol="AAPLy", security=aapl, actor="user:1")  # one product per security
    assert exc.value.code == "invalid_reference_data"
    with pytest.raises(services.CustodyError):
        services.deployment_register(product=product, chain="ethereum", decimals=6, address="0x", actor="user:1")
    with pytest.raises(services.CustodyError):
        services.deployment_register(product=product, chain="base", decimals=99, address="0x", actor="user:1")
    services.deployment_register(product=product, chain="base", decimals=18, address="0x" + "ef" * 20, actor="user:1")
