"""Quantities read as people read them, exactly, whatever the value: one nano-share, an 18-decimal
uint256 supply, negative cents, numbers far past a float's or a 28-digit Decimal context's precision."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from django.template import Context, Template

from config import quantities as q

UINT256_MAX = 2**256 - 1


@pytest.mark.parametrize(("nano", "text"), [
    (0, "0 shares"), (1, "0.000000001 shares"), (1_000_000_000, "1 share"), (-1_000_000_000, "-1 share"),
    (2_500_000_000, "2.5 shares"), (-1, "-0.000000001 shares"), (999_999_999, "0.999999999 shares"),
    (1_234_567_000_000_000, "1,234,567 shares"), (9_223_372_036_854_775_807, "9,223,372,036.854775807 shares"),
])
def test_shares(nano, text):
    assert q.shares(nano) == text


@pytest.mark.parametrize(("units", "decimals", "text"), [
    (2_500_000_000_000_000_000, 18, "2.5 AAPLx"), (1, 18, "0.000000000000000001 AAPLx"),
    (Decimal(10**18), 18, "1 AAPLx"), (0, 9, "0 AAPLx"), (123, 0, "123 AAPLx"), (-5, 2, "-0.05 AAPLx"),
    (UINT256_MAX, 18,
     "115,792,089,237,316,195,423,570,985,008,687,907,853,269,984,665,640,564,039,457.584007913129639935 AAPLx"),
])
def test_tokens(units, decimals, text):
    assert q.tokens(units, decimals, "AAPLx") == text


@pytest.mark.parametrize(("cents", "text"), [
    (57038, "$570.38"), (0, "$0.00"), (1, "$0.01"), (-1, "-$0.01"), (-570, "-$5.70"), (100, "$1.00"),
    (123_456_789_012, "$1,234,567,890.12"), (10**40, "$100,000,000,000,000,000,000,000,000,000,000,000,000.00"),
])
def test_usd(cents, text):
    assert q.usd(cents) == text


def test_exact_units_are_the_stored_integer_grouped():
    assert q.exact(2_500_000_000, "nano-shares") == "2,500,000,000 nano-shares"
    assert q.exact(Decimal(-57038), "cents") == "-57,038 cents"
    assert q.exact(UINT256_MAX, "base units").replace(",", "").split()[0] == str(UINT256_MAX)


@pytest.mark.parametrize("bad", [2.5, Decimal("2.5"), Decimal("NaN"), Decimal("Infinity"), True, "25", None])
def test_anything_but_a_whole_number_is_refused_not_rounded(bad):
    with pytest.raises(TypeError):
        q.shares(bad)
    with pytest.raises(TypeError):
        q.usd(bad)


def test_readable_figures_round_trip_to_the_exact_units():
    # Every digit survives: parse the readable text back and compare with the stored integer.
    for nano in (1, 7, 10**9 + 1, 2**63 - 1, -(2**63)):
        assert Decimal(q.scaled(nano, 9).replace(",", "")) * 10**9 == nano
    with localcontext() as ctx:
        ctx.prec = 100  # the test's own arithmetic must not round either
        for units in (1, UINT256_MAX, 10**77 + 3):
            assert Decimal(q.scaled(units, 18).replace(",", "")).scaleb(18) == units


def test_html_forms_escape_and_pair_the_figures():
    html = q.tokens_html(10**18, 18, "<b>X</b>")
    assert "&lt;b&gt;X&lt;/b&gt;" in html and "<b>" not in html
    assert str(q.usd_html(57038)) == ('<span class="qty">$570.38</span> '
                                      '<span class="qty-exact">57,038 cents</span>')


def test_template_filters():
    rendered = Template("{% load quantities %}{{ n|shares }}|{{ c|usd_plain }}|{% tokens u 18 'SPYx' %}").render(
        Context({"n": 1, "c": -570, "u": Decimal(25 * 10**17)}))
    assert rendered == ('<span class="qty">0.000000001 shares</span> <span class="qty-exact">1 nano-shares</span>'
                        '|-$5.70|<span class="qty">2.5 SPYx</span> <span class="qty-exact">'
                        '2,500,000,000,000,000,000 base units</span>')
