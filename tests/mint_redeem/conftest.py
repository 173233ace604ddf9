"""A small but complete primary market: one product (AAPLx on ethereum and solana), a simulated
broker that fills at once, a custodian, product terms, and an approved market maker with verified
wallets and an API key, plus a client that signs requests the way market makers must."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal

import pytest
from django.test import Client

from custody.models import (
    Broker,
    ChainDeployment,
    Custodian,
    CustodyAccount,
    Security,
    SimulatedPrice,
    TokenProduct,
)
from mint_redeem.models import ProductTerms
from tests.compliance.factories import make_market_maker, sign_request

EVM_ADDRESS = "0x" + "ab" * 20


@dataclass
class Market:
    product: TokenProduct
    security: Security
    broker: Broker
    custodian: Custodian
    terms: ProductTerms


@pytest.fixture
def market(db) -> Market:
    security = Security.objects.create(ticker="AAPL", isin="US0378331005", cusip="037833100", exchange_mic="XNAS",
                                       name="Apple Inc.")
    custodian = Custodian.objects.create(code="bny", name="Custody Bank", bic="IRVTUS3NXXX")
    CustodyAccount.objects.create(custodian=custodian, account_number="SAFE-0001")
    broker = Broker.objects.create(code="sim", name="Simulated broker", custodian=custodian, settlement_days=1,
                                   sim_fee_bps=Decimal("5"), sim_min_fee_cents=100)
    SimulatedPrice.objects.create(broker=broker, security=security, price=Decimal("200.00"))
    product = TokenProduct.objects.create(symbol="AAPLx", security=security, multiplier=Decimal(1))
    ChainDeployment.objects.create(product=product, chain="ethereum", decimals=18, address=EVM_ADDRESS)
    ChainDeployment.objects.create(product=product, chain="solana", decimals=9,
                                   address="So11111111111111111111111111111111111111112")
    terms = ProductTerms.objects.create(
        product=product, broker=broker, custodian=custodian, reference_price=Decimal("200.00"),
        approval_threshold_cents=50_000_00, market_hours_only=False,
        redemption_addresses={"ethereum": "0x" + "cd" * 20, "solana": "Redeem1111111111111111111111111111111111111"})
    return Market(product=product, security=security, broker=broker, custodian=custodian, terms=terms)


@pytest.fixture
def mm(db):
    return make_market_maker(chains=("ethereum", "solana"))


@pytest.fixture
def other_mm(db):
    return make_market_maker(chains=("ethereum",))


class SignedClient:
    """Talks to the API exactly as a market maker must: API key, RFC 9421 signature, Idempotency-Key."""

    def __init__(self, mm):
        self.mm = mm
        self.client = Client()

    def _headers(self, method, path, body=b"", **kwargs):
        headers = sign_request(self.mm.credentials, method, path, body, **kwargs)
        return {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}

    def get(self, path):
        return self.client.get(path, **self._headers("GET", path))

    def post(self, path, payload: dict, *, idempotency_key=None):
        return self.post_raw(path, json.dumps(payload).encode(), idempotency_key=idempotency_key)

    def post_raw(self, path, body: bytes, *, idempotency_key=None):
        """POST these exact bytes, signed: what a hand-crafted (or hostile) client sends."""
        headers = self._headers("POST", path, body, idempotency_key=idempotency_key)
        return self.client.post(path, data=body, content_type="application/json", **headers)


@pytest.fixture
def api(mm):
    return SignedClient(mm)


def wait_for(fetch, predicate, timeout_s=60, interval_s=0.2):
    """Poll `fetch()` until `predicate(result)`; return the last result (the caller asserts on it)."""
    deadline = time.monotonic() + timeout_s
    result = fetch()
    while not predicate(result) and time.monotonic() < deadline:
        time.sleep(interval_s)
        result = fetch()
    return result


def broadcast(request, tx_hash: str):
    """What the chain executor records before a confirmation can be accepted: the operation signed
    (transaction and hash kept) and then broadcast."""
    from mint_redeem import services
    from mint_redeem.models import ChainOperation

    operation = ChainOperation.objects.get(request_reference=request.stream)
    operation = services.chain_operation_record_signed(operation=operation, signed_tx=f"signed:{tx_hash}",
                                                       tx_hash=tx_hash)
    return services.chain_operation_record_broadcast(operation=operation)


@pytest.fixture
def evm_market(market):
    """The market with AAPLx deployed on the test anvil, its redemption address the chain's vault."""
    from chains.evm import evm_chain
    from chains.services import token_deploy
    from chains.signers import redemption_vault

    evm = evm_chain("ethereum")
    token = token_deploy(chain=evm, name="Apple tokenized share", symbol="AAPLx", decimals=18)
    # A deployment's address never changes once set (custody 0007): the market's placeholder row goes, the
    # real token's comes, before anything refers to it.
    ChainDeployment.objects.filter(product=market.product, chain="ethereum").delete()
    ChainDeployment.objects.create(product=market.product, chain="ethereum", decimals=18, address=token,
                                   deployed_block=evm.head())
    market.terms.redemption_addresses = {**market.terms.redemption_addresses, "ethereum": redemption_vault("ethereum")}
    market.terms.save(update_fields=["redemption_addresses"])
    market.token = token
    return market


def holder_of(mm):
    """The market maker's own wallet key, with gas money (anvil_setBalance): it signs `redeem` itself."""
    from chains.evm import evm_chain
    from chains.signers import LocalKeySigner

    key = mm.wallet_keys["ethereum"]
    evm = evm_chain("ethereum")
    evm.w3.provider.make_request("anvil_setBalance", [key.address, hex(10**20)])
    return LocalKeySigner(key.key)


@pytest.fixture
def solana_market(market):
    """The market with AAPLx's Token-2022 mint on the local RPC, its redemption address the vault key."""
    from chains.services import solana_mint_deploy
    from chains.signers import solana_signer_for
    from chains.solana import solana_chain

    chain = solana_chain()
    mint = solana_mint_deploy(chain=chain, name="Apple tokenized share", symbol="AAPLx", decimals=9)
    # A deployment's address never changes once set (custody 0007): the placeholder row goes first.
    ChainDeployment.objects.filter(product=market.product, chain="solana").delete()
    ChainDeployment.objects.create(product=market.product, chain="solana", decimals=9, address=mint,
                                   deployed_block=chain.slot())
    market.terms.redemption_addresses = {**market.terms.redemption_addresses,
                                         "solana": str(solana_signer_for("vault").pubkey())}
    market.terms.save(update_fields=["redemption_addresses"])
    market.mint = mint
    return market
