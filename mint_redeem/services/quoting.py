"""Quoting and the money arithmetic of a request: pure functions, no database, no clock.

Cash mints ask for `cash_due = ceil(notional x (1 + buffer + fee))`: the notional at the product's
reference price, a buffer for the price to move before the order fills, and the issuer's fee. Once the
order is done the cash splits, to the cent, into `cost + fee + refund` (or, when the price moved past
the buffer, `cost + fee = cash received + shortfall`, a top-up due before any token is minted).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from fractions import Fraction

from config.api import DomainError
from custody.models import TokenProduct
from ledger.units import NANO

MAX_QUANTITY_NANO = 10**18  # a billion shares: far above any real request, far below bigint
# A quantity is a short plain decimal string; anything longer is refused before it is parsed.
MAX_QUANTITY_CHARS = 40


class RequestError(DomainError):
    code = "invalid_request"


class InvalidQuantity(RequestError):
    """Final: it follows from the request body alone, so an idempotent replay may repeat it."""

    code = "invalid_quantity"
    retryable = False


def parse_quantity(quantity: str) -> int:
    """A plain decimal string of shares ("12.5") -> nano-shares, exactly, or a clear refusal.
    No exponents, signs, NaN or Infinity: what a person would write on an order ticket."""
    if not isinstance(quantity, str):
        raise InvalidQuantity("quantity must be a decimal string of shares, e.g. \"12.5\"")
    if len(quantity) > MAX_QUANTITY_CHARS or not quantity or not _is_plain_decimal(quantity):
        raise InvalidQuantity(f"quantity {quantity[:MAX_QUANTITY_CHARS]!r} is not a plain decimal number of shares")
    # Exact integer arithmetic on the digits: Decimal's 28-digit context would round "1." + 38 nines up
    # to 2 shares.
    whole, _, fraction = quantity.partition(".")
    if len(fraction) > 9 and fraction[9:].strip("0"):
        raise InvalidQuantity("quantity has more than 9 decimal places")
    nano = int(whole) * NANO + int((fraction[:9]).ljust(9, "0"))
    if nano <= 0:
        raise InvalidQuantity("quantity must be a positive number of shares")
    if nano > MAX_QUANTITY_NANO:
        raise InvalidQuantity("quantity is too large")
    return nano


def _is_plain_decimal(text: str) -> bool:
    """ASCII digits, at most one point with digits on both sides: "12", "12.5", never "1e3", "-0", "1."."""
    whole, _, fraction = text.partition(".")
    digits = "0123456789"
    return (bool(whole) and all(c in digits for c in whole) and text.count(".") <= 1
            and (fraction == "" and not text.endswith(".") or bool(fraction) and all(c in digits for c in fraction)))


def base_units_of(quantity_nano: int, *, multiplier: Decimal, decimals: int) -> Fraction:
    """tokens = shares / multiplier; base units = tokens x 10**decimals (exact; may not be whole)."""
    return Fraction(quantity_nano, NANO) / Fraction(multiplier) * 10**decimals


def ceil_div(numerator: int, denominator: int) -> int:
    return -(-numerator // denominator)


def ceil_cents(dollars: Decimal) -> int:
    return int((dollars * 100).to_integral_value(rounding=ROUND_CEILING))


@dataclass(frozen=True)
class CashTerms:
    notional_cents: int
    fee_cents: int
    cash_due_cents: int


def cash_terms(*, quantity_nano: int, reference_price: Decimal, buffer_bps: int, fee_bps: int) -> CashTerms:
    notional = ceil_cents(Decimal(quantity_nano) * reference_price / NANO)
    cash_due = ceil_div(notional * (10_000 + buffer_bps + fee_bps), 10_000)
    return CashTerms(notional_cents=notional, fee_cents=ceil_div(notional * fee_bps, 10_000), cash_due_cents=cash_due)


@dataclass(frozen=True)
class CashSplit:
    """What a cash mint's money became once its order is done: received + shortfall = cost + fee + refund."""

    cost_cents: int
    fee_cents: int
    refund_cents: int
    shortfall_cents: int


def fee_for_bought(*, quoted_fee_cents: int, bought_nano: int, ordered_nano: int) -> int:
    """The fee on what was bought: the quoted fee, pro rata when the order filled only in part."""
    return ceil_div(quoted_fee_cents * bought_nano, ordered_nano)


def cash_split(*, cash_received_cents: int, cost_cents: int, fee_cents: int) -> CashSplit:
    spent = cost_cents + fee_cents
    return CashSplit(cost_cents=cost_cents, fee_cents=fee_cents,
                     refund_cents=max(cash_received_cents - spent, 0),
                     shortfall_cents=max(spent - cash_received_cents, 0))


@dataclass(frozen=True)
class Quote:
    product: object
    deployment: object
    terms: object
    quantity_nano: int
    token_base_units: int
    notional_cents: int
    fee_cents: int
    cash_due_cents: int
    minting_paused: bool


def quote(found, *, product_symbol: str, chain: str, quantity: str) -> Quote:
    """Price a request from its context (`mint_redeem.selectors.request_context`), or refuse it."""
    if found is None:
        raise RequestError(f"unknown product {product_symbol!r}", code="unknown_product", http_status=404)
    product, terms, deployment = found.product, found.terms, found.deployment
    if terms is None:
        raise RequestError(f"{product_symbol} is not open for primary-market requests", code="product_not_offered")
    if deployment is None:
        raise RequestError(f"{product.symbol} is not deployed on {chain!r}", code="unknown_chain")
    quantity_nano = parse_quantity(quantity)
    base_units = base_units_of(quantity_nano, multiplier=product.multiplier, decimals=deployment.decimals)
    if base_units.denominator != 1:
        raise RequestError(f"{quantity} shares is not a whole number of {product.symbol} base units on {chain}",
                           code="quantity_not_representable")
    cash = cash_terms(quantity_nano=quantity_nano, reference_price=terms.reference_price,
                      buffer_bps=terms.cash_buffer_bps, fee_bps=terms.fee_bps)
    return Quote(product=product, deployment=deployment, terms=terms, quantity_nano=quantity_nano,
                 token_base_units=int(base_units), notional_cents=cash.notional_cents, fee_cents=cash.fee_cents,
                 cash_due_cents=cash.cash_due_cents,
                 minting_paused=product.status != TokenProduct.Status.ACTIVE or found.paused_by_break)
