"""Demo data for `make run`: a few real securities and their token products on the demo chains
(settings.DEMO_CHAINS), a simulated broker with reference prices, a custodian with an account. Idempotent."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import transaction

from config.profiles import refuse_in_production
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

SECURITIES = [
    # ticker, ISIN, CUSIP, MIC, name, demo reference price
    ("TSLA", "US88160R1014", "88160R101", "XNAS", "Tesla, Inc.", Decimal("342.030000")),
    ("AAPL", "US0378331005", "037833100", "XNAS", "Apple Inc.", Decimal("228.150000")),
    ("NVDA", "US67066G1040", "67066G104", "XNAS", "NVIDIA Corporation", Decimal("135.580000")),
    ("AMZN", "US0231351067", "023135106", "XNAS", "Amazon.com, Inc.", Decimal("226.650000")),
    ("SPY", "US78462F1030", "78462F103", "ARCX", "SPDR S&P 500 ETF Trust", Decimal("590.120000")),
    ("CRCL", "US1725731079", "172573107", "XNYS", "Circle Internet Group, Inc.", Decimal("82.410000")),
]
# Token decimals by kind of chain: 18 on EVM chains (as ERC-20s mostly are), 9 on Solana (nano-shares).
DECIMALS_BY_KIND = {"evm": 18, "solana": 9}
DEMO_CUSTODIAN = "demo_custodian"
DEMO_ACCOUNT = "DEMO-SAFE-0001"
DEMO_BROKER = "sim"


def demo_chains() -> list[str]:
    """The chains the demo deploys every product on: settings.DEMO_CHAINS (env DEMO_CHAINS)."""
    return list(settings.DEMO_CHAINS)


def chain_kind(chain: str) -> str:
    return "evm" if chain in settings.EVM_CHAINS else chain


@transaction.atomic
def seed_demo() -> dict:
    """Returns a summary of what exists (for the top-level seed command to print)."""
    refuse_in_production("custody demo seeding")
    custodian, _ = Custodian.objects.get_or_create(
        code=DEMO_CUSTODIAN, defaults={"name": "Demo Custody Bank N.A.", "bic": "DEMOUS33XXX"})
    CustodyAccount.objects.get_or_create(account_number=DEMO_ACCOUNT,
                                         defaults={"custodian": custodian, "name": "Issuer safekeeping account"})
    broker, _ = Broker.objects.get_or_create(code=DEMO_BROKER, defaults={
        "name": "Simulated broker", "kind": Broker.Kind.SIMULATED, "settlement_days": 1, "custodian": custodian,
        "sim_fee_bps": Decimal("1.5"), "sim_min_fee_cents": 100, "sim_latency_ms": 2000})
    for ticker, isin, cusip, mic, name, price in SECURITIES:
        security, _ = Security.objects.get_or_create(
            ticker=ticker, defaults={"isin": isin, "cusip": cusip, "exchange_mic": mic, "name": name})
        SimulatedPrice.objects.get_or_create(broker=broker, security=security, defaults={"price": price})
        product = TokenProduct.objects.filter(symbol=f"{ticker}x").first()
        if product is None:
            product = services.product_register(symbol=f"{ticker}x", security=security, actor="system")
        for chain in demo_chains():
            if not ChainDeployment.objects.filter(product=product, chain=chain).exists():
                services.deployment_register(product=product, chain=chain, decimals=DECIMALS_BY_KIND[chain_kind(chain)],
                                             address="", actor="system")
    return {"securities": [t for t, *_ in SECURITIES], "products": [f"{t}x" for t, *_ in SECURITIES],
            "chains": demo_chains(), "broker": DEMO_BROKER, "custodian": DEMO_CUSTODIAN,
            "custody_account": DEMO_ACCOUNT}
