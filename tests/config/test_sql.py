"""The hand-written SQL helpers hand out the same model instances the ORM would."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.utils import timezone

from config import sql
from custody.models import Broker, Custodian, Security, TokenProduct
from mint_redeem.models import ProductTerms


@pytest.fixture
def terms(db) -> ProductTerms:
    security = Security.objects.create(ticker="MSFT", isin="US5949181045", cusip="594918104", exchange_mic="XNAS",
                                       name="Microsoft")
    custodian = Custodian.objects.create(code="c1", name="Custodian")
    broker = Broker.objects.create(code="b1", name="Broker", custodian=custodian)
    product = TokenProduct.objects.create(symbol="MSFTx", security=security, multiplier=Decimal("0.5"))
    return ProductTerms.objects.create(product=product, broker=broker, custodian=custodian,
                                       reference_price=Decimal("412.345678"),
                                       redemption_addresses={"ethereum": "0x" + "cd" * 20})


def test_load_one_reads_like_the_orm(terms):
    loaded = sql.load_one(ProductTerms, "id = %s", [terms.pk])
    assert loaded == ProductTerms.objects.get(pk=terms.pk)
    for field in ProductTerms._meta.concrete_fields:
        assert getattr(loaded, field.attname) == getattr(terms, field.attname), field.name
    assert loaded.redemption_addresses == {"ethereum": "0x" + "cd" * 20}  # JSON arrives as text: converted
    assert loaded.reference_price == Decimal("412.345678")
    assert sql.load_one(ProductTerms, "id = %s", [terms.pk + 1000]) is None


def test_partial_takes_columns_in_any_order_and_loads_the_rest_on_access(terms):
    product = sql.partial(TokenProduct, ("symbol", "id"), ("MSFTx", terms.product_id))
    assert product.pk == terms.product_id and product.symbol == "MSFTx"
    assert product.get_deferred_fields() >= {"multiplier", "status"}
    assert product.multiplier == Decimal("0.5")  # read from the database now
    with pytest.raises(ValueError):
        sql.partial(TokenProduct, ("id", "symbol"), (1,))  # a name without a value is a bug, not a None


def test_insert_writes_what_save_would(terms):
    now = timezone.now()
    security = Security.objects.create(ticker="NVDA", isin="US67066G1040", cusip="67066G104", exchange_mic="XNAS",
                                       name="NVIDIA")
    product = sql.insert(TokenProduct(symbol="NVDAx", security=security, multiplier=Decimal("0.25"),
                                      created_at=now))
    assert product.pk is not None and not product._state.adding
    stored = TokenProduct.objects.get(pk=product.pk)
    assert (stored.symbol, stored.multiplier, stored.status, stored.created_at) == ("NVDAx", Decimal("0.25"),
                                                                                   "active", now)
    copy = sql.insert(ProductTerms(product=product, broker=terms.broker, custodian=terms.custodian,
                                   reference_price=Decimal("1.5"), redemption_addresses={"solana": "abc"}))
    assert ProductTerms.objects.get(pk=copy.pk).redemption_addresses == {"solana": "abc"}  # JSON written as JSON
