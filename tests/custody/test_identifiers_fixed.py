"""What the ledger names accounts after never changes once a row exists: a security's ticker, a product's
symbol, a custodian's and a broker's code, and a deployment's product, chain and decimals. The database
refuses the change (ORM save, queryset update, raw SQL alike) and the admin does not offer it; display
names and the rest stay editable."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.urls import reverse

from compliance.models import ReferenceChange
from compliance.reference_changes import reference_change_approve
from custody.models import Broker, ChainDeployment, Custodian, Security, TokenProduct


@pytest.fixture
def deployment(product):
    return product.deployments.get(chain="ethereum")


@pytest.fixture
def deployed(product):
    """A deployment whose token is at its address since a known block."""
    return ChainDeployment.objects.create(product=product, chain="base", decimals=18, address="0x" + "ef" * 20,
                                          deployed_block=7)


@pytest.fixture
def other_product(msft):
    return TokenProduct.objects.create(symbol="MSFTx", security=msft)


# (fixture holding the row, fixed field, a new value given the test's request)
FIXED = [
    ("aapl", "ticker", lambda request: "AAPL2"),
    ("product", "symbol", lambda request: "AAPLy"),
    ("custodian", "code", lambda request: "bny_mellon"),
    ("broker", "code", lambda request: "sim2"),
    ("deployment", "chain", lambda request: "base"),
    ("deployment", "decimals", lambda request: 6),
    ("deployment", "product_id", lambda request: request.getfixturevalue("other_product").pk),
    # Set once (after the deployment is confirmed), then fixed: every mint, burn and supply reading uses it.
    ("deployed", "address", lambda request: "0x" + "12" * 20),
    ("deployed", "deployed_block", lambda request: 8),
]
FIXED_IDS = [f"{fixture}.{field}" for fixture, field, _ in FIXED]


def _case(request, fixture, field, new_value):
    row = request.getfixturevalue(fixture)
    return row, type(row), field, new_value(request), getattr(row, field)


def _stored(model, pk, field):
    return model.objects.filter(pk=pk).values_list(field, flat=True).get()


@pytest.mark.parametrize(("fixture", "field", "new_value"), FIXED, ids=FIXED_IDS)
def test_orm_save_cannot_change_an_identifier(request, fixture, field, new_value):
    row, model, field, new, old = _case(request, fixture, field, new_value)
    setattr(row, field, new)
    with pytest.raises(DatabaseError, match=f"{model._meta.db_table}.{field} cannot change once created"), \
            transaction.atomic():
        row.save()
    assert _stored(model, row.pk, field) == old


@pytest.mark.parametrize(("fixture", "field", "new_value"), FIXED, ids=FIXED_IDS)
def test_queryset_update_cannot_change_an_identifier(request, fixture, field, new_value):
    row, model, field, new, old = _case(request, fixture, field, new_value)
    with pytest.raises(DatabaseError, match=f"{field} cannot change once created"), transaction.atomic():
        model.objects.filter(pk=row.pk).update(**{field: new})
    assert _stored(model, row.pk, field) == old


@pytest.mark.parametrize(("fixture", "field", "new_value"), FIXED, ids=FIXED_IDS)
def test_raw_sql_cannot_change_an_identifier(request, fixture, field, new_value):
    row, model, field, new, old = _case(request, fixture, field, new_value)
    with pytest.raises(DatabaseError, match=f"{field} cannot change once created"), transaction.atomic(), \
            connection.cursor() as cursor:
        cursor.execute(f"UPDATE {model._meta.db_table} SET {field} = %s WHERE id = %s", [new, row.pk])  # noqa: S608
    assert _stored(model, row.pk, field) == old


def test_a_change_refused_for_one_identifier_changes_nothing_else_in_the_row(aapl):
    aapl.ticker, aapl.name = "APPL", "Apple Computer"
    with pytest.raises(DatabaseError), transaction.atomic():
        aapl.save()
    assert Security.objects.values_list("ticker", "name").get(pk=aapl.pk) == ("AAPL", "Apple Inc.")


def test_display_names_and_other_fields_stay_editable(aapl, product, custodian, broker, deployment):
    # save() writes every column, identifiers included: unchanged, they pass.
    aapl.name = "Apple Inc. (renamed)"
    aapl.save()
    product.break_tolerance_nano = 5
    product.save()
    custodian.name, custodian.bic = "BNY", "IRVTUS3N"
    custodian.save()
    broker.name, broker.settlement_days = "Simulated (T+2)", 2
    broker.save()
    pending = ChainDeployment.objects.create(product=deployment.product, chain="base", decimals=18)
    pending.address, pending.deployed_block = "0x" + "cd" * 20, 12  # recorded once the deployment is confirmed
    pending.save()
    deployment.save()  # every column written again, unchanged: passes
    Security.objects.filter(pk=aapl.pk).update(name="Apple")
    assert Security.objects.get(pk=aapl.pk).name == "Apple"
    assert TokenProduct.objects.get(pk=product.pk).break_tolerance_nano == 5
    assert Custodian.objects.values_list("name", "bic").get(pk=custodian.pk) == ("BNY", "IRVTUS3N")
    assert Broker.objects.values_list("name", "settlement_days").get(pk=broker.pk) == ("Simulated (T+2)", 2)
    assert ChainDeployment.objects.values_list("address", "deployed_block").get(pk=pending.pk) == ("0x" + "cd" * 20, 12)


# --- the admin -------------------------------------------------------------------------------------

def _post_data(response) -> dict:
    """What the browser posts back for the change form as shown (every form and inline as rendered)."""
    forms = [response.context["adminform"].form]
    for inline in response.context["inline_admin_formsets"]:
        formset = inline.formset
        forms += [formset.management_form, *formset.forms]
    return _post_data_of(forms)


def _post_data_of(forms) -> dict:
    data: dict = {}
    for form in forms:
        for name in form.fields:
            value = form[name].value()
            if isinstance(value, bool):
                if value:
                    data[form[name].html_name] = "on"
                continue
            data[form[name].html_name] = "" if value is None else value
    return data


# (admin URL name, fixture, fixed field, new value, a display field, its new value)
ADMIN_CASES = [
    ("custody_security", "aapl", "ticker", "AAPL2", "name", "Apple Inc. (renamed)"),
    ("custody_tokenproduct", "product", "symbol", "AAPLy", "break_tolerance_nano", 7),
    ("custody_custodian", "custodian", "code", "bny_mellon", "name", "BNY Mellon"),
    ("custody_broker", "broker", "code", "sim2", "name", "Simulated broker (renamed)"),
]


@pytest.mark.parametrize(("url_name", "fixture", "field", "new", "display", "renamed"), ADMIN_CASES,
                         ids=[case[0] for case in ADMIN_CASES])
def test_the_admin_change_form_shows_an_identifier_but_does_not_change_it(
        request, admin_client, url_name, fixture, field, new, display, renamed):
    row = request.getfixturevalue(fixture)
    model = type(row)
    old = getattr(row, field)
    add_form = admin_client.get(reverse(f"admin:{url_name}_add"))
    assert add_form.status_code == 200 and field in add_form.context["adminform"].form.fields  # set when added

    url = reverse(f"admin:{url_name}_change", args=[row.pk])
    shown = admin_client.get(url)
    assert shown.status_code == 200
    assert field not in shown.context["adminform"].form.fields
    assert f'name="{field}"' not in shown.content.decode() and str(old) in shown.content.decode()

    data = _post_data(shown)
    data[field] = new  # what a hand-crafted POST would try
    before = _stored(model, row.pk, display)
    data[display] = renamed
    response = admin_client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors if response.context else response
    assert _stored(model, row.pk, field) == old
    # Reference data is read-only on its form: a name changes by proposal and a second person.
    assert _stored(model, row.pk, display) == before

    propose_url = reverse(f"admin:{url_name}_propose", args=[row.pk])
    page = admin_client.get(propose_url)
    assert field not in page.context["form"].fields
    form_data = {name: value for name, value in _post_data_of([page.context["form"]]).items()}
    proposed = admin_client.post(propose_url, {**form_data, display: renamed, field: new,
                                               "reason": "the issuer renamed it"})
    assert proposed.status_code == 302
    (change,) = ReferenceChange.objects.filter(object_id=row.pk, content_type__model=model._meta.model_name)
    assert set(change.changes) == {display}  # the identifier is not even proposable
    reference_change_approve(change=change, user=get_user_model().objects.create_superuser("second", "", "pw-x-1"))
    assert _stored(model, row.pk, display) == renamed and _stored(model, row.pk, field) == old


def test_the_admin_does_not_offer_to_change_a_registered_deployment(admin_client, product, deployment):
    shown = admin_client.get(reverse("admin:custody_tokenproduct_change", args=[product.pk]))
    (inline,) = shown.context["inline_admin_formsets"]
    registered = next(form for form in inline.formset.forms if form.instance.pk == deployment.pk)
    assert all(registered.fields[name].disabled for name in ("chain", "decimals"))
