from __future__ import annotations

from decimal import Decimal

import pytest

from custody.models import (
    Broker,
    ChainDeployment,
    Custodian,
    CustodyAccount,
    Security,
    SimulatedPrice,
    TokenProduct,
)


@pytest.fixture
def custodian(db):
    return Custodian.objects.create(code="bny", name="Custody Bank", bic="IRVTUS3NXXX")


@pytest.fixture
def account(custodian):
    return CustodyAccount.objects.create(custodian=custodian, account_number="SAFE-0001")


@pytest.fixture
def aapl(db):
    return Security.objects.create(ticker="AAPL", isin="US0378331005", cusip="037833100", exchange_mic="XNAS",
                                   name="Apple Inc.")


@pytest.fixture
def msft(db):
    return Security.objects.create(ticker="MSFT", isin="US5949181045", cusip="594918104", exchange_mic="XNAS",
                                   name="Microsoft Corporation")


@pytest.fixture
def broker(custodian, aapl, msft):
    broker = Broker.objects.create(code="sim", name="Simulated", kind=Broker.Kind.SIMULATED, custodian=custodian,
                                   settlement_days=1, sim_fee_bps=Decimal("10"), sim_min_fee_cents=50)
    SimulatedPrice.objects.create(broker=broker, security=aapl, price=Decimal("200.125"))
    SimulatedPrice.objects.create(broker=broker, security=msft, price=Decimal("400"))
    return broker


@pytest.fixture
def product(aapl):
    product = TokenProduct.objects.create(symbol="AAPLx", security=aapl)
    ChainDeployment.objects.create(product=product, chain="ethereum", decimals=18, address="0x" + "ab" * 20)
    ChainDeployment.objects.create(product=product, chain="solana", decimals=9, address="So1ana" + "1" * 38)
    return product
