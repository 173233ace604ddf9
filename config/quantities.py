"""Quantities as people read them, beside the exact units they are kept in.

The one place the admin, its dashboard and the templates turn stored integers into words: nano-shares
into "2.5 shares", token base units into "2.5 AAPLx", cents into "$570.38". Every conversion is string
arithmetic on the integer's digits, so nothing is ever rounded: a 78-digit uint256 amount with 18
decimals, one nano-share and a negative cent all read exactly (a float or a 28-digit Decimal context
would silently round the first). The `*_html` helpers return the readable figure with the exact units
beside it, for admin columns and templates (`config/templatetags/quantities.py`).
"""

from __future__ import annotations

from decimal import Decimal

from django.utils.html import format_html
from django.utils.safestring import SafeString

NANO_DECIMALS = 9
CENT_DECIMALS = 2


def _as_int(value) -> int:
    """Stored quantities arrive as int or as Decimal with no fractional part (numeric(78,0)); anything
    else (a float, a fractional Decimal, a bool) is a bug upstream and is refused, not rounded."""
    if isinstance(value, bool):
        raise TypeError("a quantity is not a bool")
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal) and value.is_finite() and value == value.to_integral_value():
        return int(value)
    raise TypeError(f"not an integer quantity: {value!r}")


def group(digits: str) -> str:
    """'1234567' -> '1,234,567' (digits only, no sign)."""
    head = len(digits) % 3 or 3
    return ",".join([digits[:head], *(digits[i:i + 3] for i in range(head, len(digits), 3))])


def scaled(value, decimals: int, *, min_places: int = 0) -> str:
    """The integer `value` divided by 10**decimals, exactly, with thousands grouped and trailing zeros
    dropped (but at least `min_places` fractional digits): scaled(2_500_000_000, 9) == '2.5'."""
    number = _as_int(value)
    if decimals < 0:
        raise ValueError("decimals must be >= 0")
    digits = str(abs(number)).rjust(decimals + 1, "0")
    whole, fraction = digits[:len(digits) - decimals], digits[len(digits) - decimals:]
    fraction = fraction.rstrip("0").ljust(min_places, "0")
    text = group(whole) + (f".{fraction}" if fraction else "")
    return f"-{text}" if number < 0 else text


def shares(nano) -> str:
    """2_500_000_000 -> '2.5 shares'; 1_000_000_000 -> '1 share'."""
    text = scaled(nano, NANO_DECIMALS)
    return f"{text} {'share' if text in ('1', '-1') else 'shares'}"


def tokens(base_units, decimals: int, symbol: str) -> str:
    """(2_500_000_000_000_000_000, 18, 'AAPLx') -> '2.5 AAPLx'."""
    return f"{scaled(base_units, decimals)} {symbol}"


def usd(cents) -> str:
    """57038 -> '$570.38'; -570 -> '-$5.70'."""
    number = _as_int(cents)
    text = "$" + scaled(abs(number), CENT_DECIMALS, min_places=CENT_DECIMALS)
    return f"-{text}" if number < 0 else text


def exact(value, unit: str) -> str:
    """The stored integer with its unit: '2,500,000,000 nano-shares'."""
    number = _as_int(value)
    return f"{'-' if number < 0 else ''}{group(str(abs(number)))} {unit}"


def _pair(readable: str, units: str) -> SafeString:
    # Two spans so the stylesheet can set the exact units apart (config/static/config/admin.css).
    return format_html('<span class="qty">{}</span> <span class="qty-exact">{}</span>', readable, units)


def shares_html(nano) -> SafeString:
    return _pair(shares(nano), exact(nano, "nano-shares"))


def tokens_html(base_units, decimals: int, symbol: str) -> SafeString:
    return _pair(tokens(base_units, decimals, symbol), exact(base_units, "base units"))


def usd_html(cents) -> SafeString:
    return _pair(usd(cents), exact(cents, "cents"))
