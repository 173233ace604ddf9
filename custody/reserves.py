"""Reserves: what backs each product's tokens, and the guard every mint goes through.

Per product: shares held per custodian (settled, from the ledger's custody/<custodian>/<TICKER>),
shares committed to leave custody (sold or being delivered, pending_out), shares in transit (bought,
not yet settled), and tokens outstanding per chain (tokens/<chain>/<SYMBOL>, asset
tok:<SYMBOL>:<chain>, in the chain's base units; tokens reserved by a mint in progress are pending_in
there and count as outstanding). Coverage = available shares / (tokens x multiplier), where
available = held - committed; shares in transit do not count until they settle.

All arithmetic is exact (integers and Fractions); coverage is reported as a Decimal rounded down
so that it never overstates.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal, localcontext
from fractions import Fraction

from django.db import transaction

from config.api import DomainError
from custody.ledger_reads import balances_as_of_by_prefix
from custody.models import ChainDeployment, TokenProduct
from ledger.selectors import BalanceFigures, balances_by_prefix
from ledger.units import NANO

COVERAGE_PLACES = Decimal("0.000000001")
# Enough digits for sums of uint256 amounts with 36 decimals: Decimal arithmetic stays exact.
_EXACT_PRECISION = 200


class CoverageRefusal(DomainError):
    """A mint that would leave tokens without shares behind them (or while minting is paused)."""

    code = "insufficient_coverage"
    http_status = 409


@dataclass(frozen=True)
class ChainOutstanding:
    chain: str
    decimals: int
    outstanding_base_units: int  # minted (posted)
    reserved_base_units: int  # being minted (pending_in), counted as outstanding for coverage
    burning_base_units: int  # being burned (pending_out), still outstanding until posted

    @property
    def total_base_units(self) -> int:
        return self.outstanding_base_units + self.reserved_base_units

    @property
    def outstanding_tokens(self) -> Decimal:
        return base_units_to_tokens(self.outstanding_base_units, self.decimals)

    @property
    def total_tokens(self) -> Decimal:
        return base_units_to_tokens(self.total_base_units, self.decimals)


@dataclass(frozen=True)
class ReserveFigures:
    symbol: str
    ticker: str
    multiplier: Decimal
    shares_held_nano_by_custodian: dict[str, int]
    shares_committed_out_nano: int
    shares_in_transit_nano: int
    tokens_by_chain: dict[str, ChainOutstanding] = field(default_factory=dict)

    @property
    def shares_held_nano(self) -> int:
        return sum(self.shares_held_nano_by_custodian.values())

    @property
    def shares_available_nano(self) -> int:
        return self.shares_held_nano - self.shares_committed_out_nano

    @property
    def tokens_outstanding(self) -> Decimal:
        """Tokens outstanding on all chains, including mints in progress, exactly."""
        with localcontext() as ctx:
            ctx.prec = _EXACT_PRECISION
            return sum((c.total_tokens for c in self.tokens_by_chain.values()), Decimal(0))

    @property
    def shares_required(self) -> Fraction:
        """Shares (not nano) needed to back every outstanding token."""
        return _tokens_fraction(self.tokens_by_chain.values()) * Fraction(self.multiplier)

    @property
    def coverage_ratio(self) -> Fraction | None:
        required = self.shares_required
        if required == 0:
            return None
        return Fraction(self.shares_available_nano, NANO) / required

    @property
    def coverage(self) -> Decimal | None:
        """Coverage rounded down to 9 decimals, or None when nothing is outstanding."""
        ratio = self.coverage_ratio
        if ratio is None:
            return None
        with localcontext() as ctx:
            ctx.prec = _EXACT_PRECISION
            value = Decimal(ratio.numerator) / Decimal(ratio.denominator)
            return value.quantize(COVERAGE_PLACES, rounding=ROUND_FLOOR)

    def as_dict(self) -> dict:
        coverage = self.coverage
        return {
            "symbol": self.symbol, "ticker": self.ticker, "multiplier": str(self.multiplier),
            "shares_held_nano_by_custodian": {k: str(v) for k, v in sorted(self.shares_held_nano_by_custodian.items())},
            "shares_held_nano": str(self.shares_held_nano),
            "shares_committed_out_nano": str(self.shares_committed_out_nano),
            "shares_in_transit_nano": str(self.shares_in_transit_nano),
            "tokens_by_chain": {
                chain: {"decimals": c.decimals, "outstanding_base_units": str(c.outstanding_base_units),
                        "reserved_base_units": str(c.reserved_base_units),
                        "burning_base_units": str(c.burning_base_units),
                        "outstanding_tokens": str(c.outstanding_tokens), "total_tokens": str(c.total_tokens)}
                for chain, c in sorted(self.tokens_by_chain.items())},
            "tokens_outstanding": str(self.tokens_outstanding),
            "coverage": None if coverage is None else str(coverage),
        }


def base_units_to_tokens(base_units: int, decimals: int) -> Decimal:
    """Exact: a Decimal with exactly `decimals` fractional digits, built from its digits so the
    context's precision (28 digits) never rounds an 18-decimal uint256 amount."""
    digits = tuple(int(d) for d in str(abs(base_units)))
    return Decimal((1 if base_units < 0 else 0, digits, -decimals))


def _tokens_fraction(chains) -> Fraction:
    return sum((Fraction(c.total_base_units, 10**c.decimals) for c in chains), Fraction(0))


@dataclass(frozen=True)
class _Balances:
    custody: dict[tuple[str, str], BalanceFigures]
    in_transit: dict[tuple[str, str], BalanceFigures]
    tokens: dict[tuple[str, str], BalanceFigures]


def _load_balances(*, asset: str | None = None, position: int | None = None) -> _Balances:
    if position is None:
        return _Balances(custody=balances_by_prefix(prefix="custody/", asset=asset),
                         in_transit=balances_by_prefix(prefix="in_transit/", asset=asset),
                         tokens=balances_by_prefix(prefix="tokens/"))
    return _Balances(custody=balances_as_of_by_prefix(prefix="custody/", asset=asset, position=position),
                     in_transit=balances_as_of_by_prefix(prefix="in_transit/", asset=asset, position=position),
                     tokens=balances_as_of_by_prefix(prefix="tokens/", position=position))


def _figures(product: TokenProduct, deployments: list[ChainDeployment], balances: _Balances) -> ReserveFigures:
    ticker = product.security.ticker
    asset = f"shares:{ticker}"
    held: dict[str, int] = {}
    committed = 0
    for (path, path_asset), figures in balances.custody.items():
        parts = path.split("/")
        if path_asset == asset and len(parts) == 3 and parts[2] == ticker:
            held[parts[1]] = figures.posted
            committed += figures.pending_out
    in_transit = sum(figures.pending_in + figures.posted for (path, path_asset), figures in balances.in_transit.items()
                     if path_asset == asset and path.split("/")[-1] == ticker)
    chains = {}
    for deployment in deployments:
        figures = balances.tokens.get((product.tokens_account(deployment.chain), product.token_asset(deployment.chain)),
                                      BalanceFigures())
        chains[deployment.chain] = ChainOutstanding(
            chain=deployment.chain, decimals=deployment.decimals, outstanding_base_units=figures.posted,
            reserved_base_units=figures.pending_in, burning_base_units=figures.pending_out)
    return ReserveFigures(symbol=product.symbol, ticker=ticker, multiplier=product.multiplier,
                          shares_held_nano_by_custodian=held, shares_committed_out_nano=committed,
                          shares_in_transit_nano=in_transit, tokens_by_chain=chains)


def product_reserves(*, product: TokenProduct, position: int | None = None) -> ReserveFigures:
    """The product's reserves now, or after the ledger event at `position` (for attestations and audits;
    chain deployments and the multiplier are taken as they are now)."""
    deployments = list(ChainDeployment.objects.filter(product=product))
    return _figures(product, deployments, _load_balances(asset=f"shares:{product.security.ticker}", position=position))


def all_reserves(products: list[TokenProduct], *, position: int | None = None) -> dict[int, ReserveFigures]:
    """Reserves of many products from three balance queries."""
    balances = _load_balances(position=position)
    deployments: dict[int, list[ChainDeployment]] = {}
    for deployment in ChainDeployment.objects.filter(product__in=products):
        deployments.setdefault(deployment.product_id, []).append(deployment)
    return {p.id: _figures(p, deployments.get(p.id, []), balances) for p in products}


def assert_mint_covered(*, product: TokenProduct, chain: str, quantity_base_units: int) -> None:
    """Refuse (CoverageRefusal) a mint of `quantity_base_units` of `product` on `chain` unless minting
    is allowed and, counting tokens already being minted as outstanding, coverage after the mint
    stays >= 1. Locks the product row (SELECT ... FOR UPDATE) until the caller's transaction ends:
    call it inside the transaction that reserves the tokens (opens the pending mint on
    tokens/<chain>/<SYMBOL>), so two concurrent mints cannot both pass on the same shares."""
    if isinstance(quantity_base_units, bool) or not isinstance(quantity_base_units, int) or quantity_base_units <= 0:
        raise CoverageRefusal("quantity_base_units must be a positive integer", code="invalid_quantity",
                              http_status=400)
    with transaction.atomic():
        # FOR NO KEY UPDATE of the product row only: it serialises mints of the product, yet never blocks
        # the foreign-key checks (FOR KEY SHARE) other transactions run at COMMIT, after taking the ledger's
        # global lock; a full FOR UPDATE here (or of the joined security) deadlocked with them.
        locked = TokenProduct.objects.select_for_update(no_key=True, of=("self",)).select_related("security").get(
            pk=product.pk)
        if locked.status != TokenProduct.Status.ACTIVE:
            raise CoverageRefusal(f"minting of {locked.symbol} is paused", code="minting_paused")
        if locked.minting_paused_by_break:
            raise CoverageRefusal(f"minting of {locked.symbol} is paused by an unresolved reconciliation or supply break",
                                  code="minting_paused")
        deployments = list(ChainDeployment.objects.filter(product=locked))
        if chain not in {d.chain for d in deployments}:
            raise CoverageRefusal(f"{locked.symbol} is not deployed on {chain}", code="unknown_chain",
                                  http_status=400)
        figures = product_reserves(product=locked)
        deployment = next(d for d in deployments if d.chain == chain)
        tokens_after = _tokens_fraction(figures.tokens_by_chain.values()) + Fraction(quantity_base_units,
                                                                                    10**deployment.decimals)
        required_nano = tokens_after * Fraction(locked.multiplier) * NANO
        if figures.shares_available_nano < required_nano:
            raise CoverageRefusal(
                f"minting {base_units_to_tokens(quantity_base_units, deployment.decimals)} {locked.symbol} on {chain} "
                f"needs {_ceil(required_nano)} nano-shares of {figures.ticker}; "
                f"{figures.shares_available_nano} are available",
                code="insufficient_coverage",
                details={"required_nano": str(_ceil(required_nano)), "available_nano": str(figures.shares_available_nano)},
            )


def _ceil(value: Fraction) -> int:
    return -((-value.numerator) // value.denominator)
