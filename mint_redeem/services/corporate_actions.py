"""Corporate actions on chain: a product's multiplier (shares per token, changed by splits and
dividends) shown to wallets by the token itself, through the chain-operation outbox, exactly once.

custody owns the multiplier (custody.services.product_multiplier_set, a ledger event); this service
changes it and writes, in the same transaction, one `multiplier` operation per chain where the
product's token is deployed (Solana's ScaledUiAmount extension, IssuerToken's `multiplier()`). The
executor signs each from the product's multiplier at signing time, so the last to land carries the
latest value: EVM nonces land them in order; on Solana it never signs one while another of the same
product is in flight.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction

from custody import services as custody_services
from custody.models import ChainDeployment, TokenProduct
from mint_redeem import jobs
from mint_redeem.models import ChainOperation


def multiplier_chains() -> list[str]:
    """Chains whose tokens carry the multiplier: Solana's ScaledUiAmount, IssuerToken's setMultiplier."""
    from chains.config import chain_names

    return chain_names()


def product_multiplier_change(*, product: TokenProduct, multiplier: Decimal, reason: str, actor: str) -> TokenProduct:
    with transaction.atomic():
        previous = TokenProduct.objects.select_for_update().get(pk=product.pk).multiplier
        product = custody_services.product_multiplier_set(product=product, multiplier=multiplier, reason=reason,
                                                          actor=actor)
        if previous == product.multiplier:
            return product
        for deployment in ChainDeployment.objects.filter(product=product, chain__in=multiplier_chains()).exclude(
                address=""):
            # The product row is locked: the count cannot race.
            n = ChainOperation.objects.filter(kind=ChainOperation.Kind.MULTIPLIER, product=product,
                                              chain=deployment.chain).count() + 1
            ChainOperation.objects.create(kind=ChainOperation.Kind.MULTIPLIER, chain=deployment.chain, product=product,
                                          address=deployment.address, amount_base_units=0,
                                          request_reference=f"multiplier-{product.pk}-{deployment.chain}-{n}")
            jobs.enqueue_on_commit(jobs.EXECUTE_CHAIN, deployment.chain)
    return product
