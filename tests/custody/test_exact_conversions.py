from decimal import Decimal
from fractions import Fraction

from hypothesis import given
from hypothesis import strategies as st

from custody.reserves import ChainOutstanding, ReserveFigures, base_units_to_tokens
from custody.statements import StatementError, shares_to_nano

UINT256 = st.integers(min_value=0, max_value=2**256 - 1)


@given(UINT256, st.integers(min_value=0, max_value=36))
def test_base_units_to_tokens_is_exact(base_units, decimals):
    tokens = base_units_to_tokens(base_units, decimals)
    assert Fraction(tokens) == Fraction(base_units, 10**decimals)
    assert tokens.as_tuple().exponent == -decimals


@given(UINT256, UINT256)
def test_tokens_outstanding_sums_exactly(eth, sol):
    figures = ReserveFigures(symbol="X", ticker="X", multiplier=Decimal(1), shares_held_nano_by_custodian={},
                             shares_committed_out_nano=0, shares_in_transit_nano=0, tokens_by_chain={
                                 "ethereum": ChainOutstanding("ethereum", 18, eth, 0, 0),
                                 "solana": ChainOutstanding("solana", 9, 0, sol, 0)})
    assert Fraction(figures.tokens_outstanding) == Fraction(eth, 10**18) + Fraction(sol, 10**9)


@given(st.integers(min_value=0, max_value=10**20), st.integers(min_value=1, max_value=10**30),
       st.decimals(min_value=Decimal("0.000000001"), max_value=Decimal(1000), places=9))
def test_coverage_is_never_overstated(held_nano, tokens_base_units, multiplier):
    figures = ReserveFigures(symbol="X", ticker="X", multiplier=multiplier, shares_held_nano_by_custodian={"c": held_nano},
                             shares_committed_out_nano=0, shares_in_transit_nano=0,
                             tokens_by_chain={"ethereum": ChainOutstanding("ethereum", 18, tokens_base_units, 0, 0)})
    exact = Fraction(held_nano, 10**9) / (Fraction(tokens_base_units, 10**18) * Fraction(multiplier))
    assert figures.coverage_ratio == exact
    assert Fraction(figures.coverage) <= exact < Fraction(figures.coverage) + Fraction(1, 10**9)


@given(st.integers(min_value=0, max_value=2**62))
def test_statement_quantities_round_trip(nano):
    whole, frac = divmod(nano, 10**9)
    assert shares_to_nano(f"{whole}.{frac:09d}", where="t") == nano


def test_statement_quantities_finer_than_a_nano_share_are_refused():
    for text in ("0.0000000001", "1e3", "NaN", "Infinity", "+1", " ", "1.2.3", "１"):
        try:
            shares_to_nano(text, where="t")
        except StatementError:
            continue
        raise AssertionError(f"{text!r} accepted")
