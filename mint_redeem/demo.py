"""Demo data for `make run`, assembled from each app's own idempotent seed."""

from __future__ import annotations

import json
import os
from pathlib import Path

from django.conf import settings
from django.db import transaction

from compliance import demo as compliance_demo
from config.profiles import refuse_in_production
from custody import demo as custody_demo
from custody.models import Broker, Custodian, SimulatedPrice, TokenProduct
from mint_redeem.models import ProductTerms


def credentials_file() -> Path:
    return Path(getattr(settings, "DEMO_CREDENTIALS_FILE", Path(settings.BASE_DIR) / ".data" / "demo-credentials.json"))

# Where market makers send tokens to redeem them. EVM: shown only (the token's redeem() moves them to the
# vault it knows). Solana: the owner of the redemption token account the watcher reads, the vault key.
def redemption_addresses() -> dict[str, str]:
    from chains.signers import solana_signer_for

    return {"ethereum": "0x000000000000000000000000000000000000dEaD",
            "solana": str(solana_signer_for("vault").pubkey())}


def seed_demo() -> list[str]:
    """Seed every app in import order; return human-readable lines describing what exists. Never in
    production (its market makers' credentials are derived from SECRET_KEY, its lists are samples)."""
    refuse_in_production("seed_demo (demo data)")
    custody = custody_demo.seed_demo()
    compliance = compliance_demo.seed_demo()
    with transaction.atomic():
        broker = Broker.objects.get(code=custody["broker"])
        custodian = Custodian.objects.get(code=custody["custodian"])
        for product in TokenProduct.objects.filter(symbol__in=custody["products"]).select_related("security"):
            price = SimulatedPrice.objects.get(broker=broker, security=product.security).price
            # The simulated broker fills at any hour, so the demo does not wait for the US open.
            ProductTerms.objects.get_or_create(product=product, defaults={
                "broker": broker, "custodian": custodian, "reference_price": price, "market_hours_only": False,
                "redemption_addresses": redemption_addresses()})
    _write_credentials(compliance["market_makers"])
    deployed = deploy_demo_tokens()
    return [
        *deployed,
        f"demo products: {', '.join(custody['products'])} on {', '.join(custody['chains'])}",
        f"demo market makers: {', '.join(mm['legal_name'] for mm in compliance['market_makers'])}",
        f"their API keys and signing secrets: {credentials_file()} (readable by you only)",
        "demo staff users (set a password with `manage.py changepassword`): demo-operations, demo-approver, "
        "demo-compliance, demo-auditor",
    ]


def deploy_demo_tokens() -> list[str]:
    """Deploy the token of every demo product on every configured EVM chain where it has no address yet
    (the embedded anvils), and its Token-2022 mint on Solana (the local RPC), and record the address
    (custody.deployment_address_set). Idempotent: a deployment with an address is left alone."""
    from chains.config import evm_chain_names, solana_chain_names
    from chains.evm import evm_chain
    from chains.services import solana_mint_deploy, token_deploy_receipt
    from chains.solana import solana_chain
    from custody.models import ChainDeployment
    from custody.services import deployment_address_set

    lines = []
    for deployment in ChainDeployment.objects.filter(chain__in=evm_chain_names(), address="").select_related(
            "product__security"):
        evm = evm_chain(deployment.chain)
        receipt = token_deploy_receipt(chain=evm, name=f"{deployment.product.security.name} tokenized share",
                                       symbol=deployment.product.symbol, decimals=deployment.decimals)
        address = receipt.contract_address
        deployment_address_set(deployment=deployment, address=address, deployed_block=receipt.block_number,
                               actor="system:seed_demo")
        lines.append(f"deployed {deployment.product.symbol} on {deployment.chain} at {address}")
    for deployment in ChainDeployment.objects.filter(chain__in=solana_chain_names(), address="").select_related(
            "product__security"):
        address = solana_mint_deploy(chain=solana_chain(deployment.chain), decimals=deployment.decimals,
                                     name=f"{deployment.product.security.name} tokenized share",
                                     symbol=deployment.product.symbol, multiplier=deployment.product.multiplier)
        deployment_address_set(deployment=deployment, address=address, actor="system:seed_demo")
        lines.append(f"created the {deployment.product.symbol} mint on {deployment.chain} at {address}")
    return lines


def _write_credentials(market_makers: list[dict]) -> None:
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump({"market_makers": market_makers}, out, indent=2)
