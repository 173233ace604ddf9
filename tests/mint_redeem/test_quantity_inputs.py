"""Quantities are plain decimal strings only: exponents, JSON numbers, NaN, Infinity, negative zero and
huge digit strings each get a 400 with a stable code and change nothing, never a 500."""

from __future__ import annotations

import json

import pytest

from ledger import selectors
from mint_redeem.models import MintRequest

from .test_gates_and_refusals import post_mint

STRING_CASES = {
    "1E+999999": "invalid_quantity",
    "1." + "9" * 38: "invalid_quantity",
    "1e3": "invalid_quantity",
    "-0": "invalid_quantity",
    "0": "invalid_quantity",
    "+1": "invalid_quantity",
    " 1": "invalid_quantity",
    "1.": "invalid_quantity",
    ".5": "invalid_quantity",
    "1.0000000001": "invalid_quantity",
    "1_000": "invalid_quantity",
    "١٢": "invalid_quantity",  # Arabic-Indic digits: Decimal would take them
    "NaN": "invalid_quantity",
    "Infinity": "invalid_quantity",
    "9" * 10_000: "invalid",  # over the field's 40 characters
}


def test_quantities_convert_exactly():
    from mint_redeem.services import parse_quantity

    assert parse_quantity("1.5") == 1_500_000_000
    assert parse_quantity("0.000000001") == 1
    assert parse_quantity("1.500000000000") == 1_500_000_000  # trailing zeros are exact
    assert parse_quantity("000012") == 12_000_000_000


@pytest.mark.parametrize("quantity", list(STRING_CASES), ids=lambda q: q[:12])
def test_a_quantity_string_that_is_not_plain_is_refused(market, mm, api, quantity):
    head = selectors.head()
    response = post_mint(api, mm, quantity=quantity)
    assert response.status_code == 400, response.content
    code = response.json()["error"]["code"]
    assert code in (STRING_CASES[quantity], "invalid_quantity", "invalid")
    assert MintRequest.objects.count() == 0 and selectors.head() == head


@pytest.mark.parametrize("raw", ["1e3", "2.5", "10", "-0.0", "NaN", "Infinity", "-Infinity", "1E+999999",
                                 "1" + "0" * 10_000])
def test_a_quantity_that_is_a_json_number_is_refused(market, mm, api, raw):
    """Raw JSON, as an attacker would send it (the client signs whatever body it is given)."""
    head = selectors.head()
    wallet = mm.wallets["ethereum"].pk
    body = f'{{"product": "AAPLx", "chain": "ethereum", "quantity": {raw}, "wallet": {wallet}, "funding": "cash"}}'
    response = api.post_raw("/api/v1/mints", body.encode())
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert error["code"] in ("invalid", "parse_error", "not_a_string"), error
    assert MintRequest.objects.count() == 0 and selectors.head() == head
    json.dumps(response.json())  # the answer itself is valid JSON
