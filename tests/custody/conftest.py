from __future__ import annotations

from decimal import Decimal

import pytest

from custody import services
from custody.models import (
    Broker,
    ChainDeployment,
    Custodian,
    CustodyAccount,
    Security,
    SimulatedPrice,
    TokenProduct,
)
from ledger.events import EventData, event_type
from ledger.postings import Line, PendingOpen
from ledger.services import NewEvent, append
from ledger.units import NANO


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


# --- attestations: a registered product (its events are what attestations read) with shares and tokens

E18 = 10**18


@event_type("test_attest.tokens", version=1)
class AttestTokens(EventData):
    note: str = ""


def mint(chain, symbol, amount, *, pending_id=None):
    asset = f"tok:{symbol}:{chain}"
    postings = ([PendingOpen(pending_id=pending_id, debit=f"issuance/{chain}/{symbol}",
                             credit=f"tokens/{chain}/{symbol}", asset=asset, amount=amount)] if pending_id else
                [Line(f"issuance/{chain}/{symbol}", asset, -amount), Line(f"tokens/{chain}/{symbol}", asset, amount)])
    append(events=[NewEvent(stream=f"test-mint-{chain}", type="test_attest.tokens", data={}, postings=postings)],
           actor="system")


@pytest.fixture
def registered(custodian, aapl):
    product = services.product_register(symbol="AAPLx", security=aapl, actor="user:1")
    services.deployment_register(product=product, chain="ethereum", decimals=18, address="0x" + "ab" * 20,
                                 actor="user:1")
    services.deployment_register(product=product, chain="solana", decimals=9, address="So1ana" + "1" * 38,
                                 actor="user:1")
    services.shares_receive_in_kind(custodian=custodian, security=aapl, quantity_nano=10 * NANO,
                                    from_account="participant/1/shares", reference="r1",
                                    custodian_confirmation="C1", actor="user:1")
    mint("ethereum", "AAPLx", 3 * E18 + 1)
    mint("solana", "AAPLx", 2 * NANO, pending_id="mint-att-1")
    return product


