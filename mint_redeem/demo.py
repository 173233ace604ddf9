"""Demo data for `make run`, assembled from each app's own idempotent seed, step by step with progress
printed as it goes. The living part (requests run end to end on the local chains through the worker)
is mint_redeem.demo_activity, run once the worker is up."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
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


def _redemption_addresses() -> dict[str, str]:
    """Where market makers send tokens to redeem them, per demo chain: the EVM vault the watcher reads
    (tokens arrive there through the contract's `redeem`, with the request's reference), and on Solana
    the vault key that owns the redemption token account."""
    from chains.signers import redemption_vault, solana_signer_for

    addresses = {chain: redemption_vault(chain) for chain in settings.DEMO_CHAINS
                 if custody_demo.chain_kind(chain) == "evm"}
    if "solana" in settings.DEMO_CHAINS:
        # The owner of the redemption token account the Solana watcher reads: the vault key.
        addresses["solana"] = str(solana_signer_for("vault").pubkey())
    return addresses


def _say(progress: Callable[[str], None] | None, line: str) -> None:
    if progress is not None:
        progress(line)


def seed_demo(*, progress: Callable[[str], None] | None = None) -> list[str]:
    """Seed every app in import order; return human-readable lines describing what exists, and hand
    each step's line to `progress` as it finishes. Never in production (its market makers'
    credentials are derived from SECRET_KEY, its lists are samples)."""
    refuse_in_production("seed_demo (demo data)")
    custody = custody_demo.seed_demo()
    _say(progress, f"demo: products {', '.join(custody['products'])} registered on {', '.join(custody['chains'])}")
    compliance = compliance_demo.seed_demo()
    _say(progress, f"demo: market makers {', '.join(mm['legal_name'] for mm in compliance['market_makers'])} "
                   "onboarded, wallets verified")
    _say(progress, f"demo: applicant {compliance['flagged_applicant']} screened against the sample SDN list "
                   "(its hit is an open compliance case)")
    addresses = _redemption_addresses()
    with transaction.atomic():
        broker = Broker.objects.get(code=custody["broker"])
        custodian = Custodian.objects.get(code=custody["custodian"])
        for product in TokenProduct.objects.filter(symbol__in=custody["products"]).select_related("security"):
            price = SimulatedPrice.objects.get(broker=broker, security=product.security).price
            # The simulated broker fills at any hour, so the demo does not wait for the US open.
            terms, created = ProductTerms.objects.get_or_create(product=product, defaults={
                "broker": broker, "custodian": custodian, "reference_price": price, "market_hours_only": False,
                "redemption_addresses": addresses})
            if not created and any(terms.redemption_addresses.get(c) != a for c, a in addresses.items()):
                # A database seeded before the vaults: point each demo chain at its vault.
                terms.redemption_addresses = {**terms.redemption_addresses, **addresses}
                terms.save(update_fields=["redemption_addresses"])
    _write_credentials(compliance["market_makers"])
    _say(progress, f"demo: API credentials written to {credentials_file()} (mode 0600)")
    deployed = deploy_demo_tokens(progress=progress)
    return [
        *deployed,
        f"demo products: {', '.join(custody['products'])} on {', '.join(custody['chains'])}",
        f"demo market makers: {', '.join(mm['legal_name'] for mm in compliance['market_makers'])}",
        f"their API keys and signing secrets: {credentials_file()} (readable by you only)",
        "demo staff users (set a password with `manage.py changepassword`): demo-operations, demo-approver, "
        "demo-compliance, demo-auditor",
    ]


def _deploy_evm(deployment) -> tuple[str, int | None]:
    from chains.evm import evm_chain
    from chains.services import token_deploy_receipt

    receipt = token_deploy_receipt(chain=evm_chain(deployment.chain), symbol=deployment.product.symbol,
                                   name=f"{deployment.product.security.name} tokenized share",
                                   decimals=deployment.decimals)
    return receipt.contract_address, receipt.block_number


def _deploy_solana(deployment) -> tuple[str, int | None]:
    from chains.services import solana_mint_deploy
    from chains.solana import solana_chain

    return solana_mint_deploy(chain=solana_chain(deployment.chain), decimals=deployment.decimals,
                              name=f"{deployment.product.security.name} tokenized share",
                              symbol=deployment.product.symbol, multiplier=deployment.product.multiplier), None


# One deployer per kind of chain: deployment -> the token's address on its chain and the block it was
# deployed in (where watchers start; None where the watcher does not scan blocks). Every product is
# deployed on every chain in settings.DEMO_CHAINS.
DEPLOYERS: dict[str, Callable] = {"evm": _deploy_evm, "solana": _deploy_solana}


def deploy_demo_tokens(*, progress: Callable[[str], None] | None = None) -> list[str]:
    """Deploy the token of every demo product on every demo chain (settings.DEMO_CHAINS) where it has no
    address yet, and record the address (custody.deployment_address_set). Idempotent: a deployment with
    an address is left alone, so an interrupted run deploys only what is missing."""
    from custody.models import ChainDeployment
    from custody.services import deployment_address_set

    lines = []
    for deployment in (ChainDeployment.objects.filter(chain__in=settings.DEMO_CHAINS, address="")
                       .select_related("product__security").order_by("product__symbol", "chain")):
        address, deployed_block = DEPLOYERS[custody_demo.chain_kind(deployment.chain)](deployment)
        deployment_address_set(deployment=deployment, address=address, deployed_block=deployed_block,
                               actor="system:seed_demo")
        lines.append(f"deployed {deployment.product.symbol} on {deployment.chain} at {address}")
        _say(progress, f"demo: {lines[-1]}")
    return lines


def _write_credentials(market_makers: list[dict]) -> None:
    path = credentials_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump({"market_makers": market_makers}, out, indent=2)
