import threading
from decimal import Decimal
from fractions import Fraction

import pytest
from django.db import connection, transaction

from custody import reserves, services
from custody.models import TokenProduct
from custody.reserves import CoverageRefusal
from custody.selectors import products_with_reserves
from ledger.events import EventData, event_type
from ledger.postings import Line, PendingOpen
from ledger.selectors import balance
from ledger.services import NewEvent, append
from ledger.units import NANO

E18 = 10**18


@event_type("test_custody.tokens", version=1)
class TestTokens(EventData):
    note: str = ""


def mint(chain, symbol, amount, *, pending_id=None):
    asset = f"tok:{symbol}:{chain}"
    postings = ([PendingOpen(pending_id=pending_id, debit=f"issuance/{chain}/{symbol}", credit=f"tokens/{chain}/{symbol}",
                             asset=asset, amount=amount)] if pending_id else
                [Line(f"issuance/{chain}/{symbol}", asset, -amount), Line(f"tokens/{chain}/{symbol}", asset, amount)])
    append(events=[NewEvent(stream=f"test-mint-{chain}", type="test_custody.tokens", data={}, postings=postings)],
           actor="system")


def hold(custodian, security, qty, ref="h1"):
    services.shares_receive_in_kind(custodian=custodian, security=security, quantity_nano=qty,
                                    from_account="participant/1/shares", reference=ref,
                                    custodian_confirmation="C", actor="user:1")


def test_figures_and_coverage(custodian, aapl, product):
    hold(custodian, aapl, 10 * NANO)
    mint("ethereum", "AAPLx", 3 * E18 + 1)  # 3.000000000000000001 tokens
    mint("solana", "AAPLx", 2 * NANO, pending_id="mint-1")  # 2 tokens being minted
    figures = reserves.product_reserves(product=product)
    assert figures.shares_held_nano_by_custodian == {"bny": 10 * NANO}
    eth, sol = figures.tokens_by_chain["ethereum"], figures.tokens_by_chain["solana"]
    assert eth.outstanding_tokens == Decimal("3.000000000000000001")
    assert (sol.outstanding_base_units, sol.reserved_base_units, sol.total_tokens) == (0, 2 * NANO, Decimal("2.000000000"))
    assert figures.tokens_outstanding == Decimal("5.000000000000000001")
    assert figures.coverage_ratio == Fraction(10) / (Fraction(5) + Fraction(1, E18))
    assert figures.coverage == Decimal("1.999999999")  # rounded down, never overstated
    assert figures.as_dict()["coverage"] == "1.999999999"


def test_nothing_outstanding_has_no_coverage(custodian, aapl, product):
    hold(custodian, aapl, NANO)
    assert reserves.product_reserves(product=product).coverage is None


def test_mint_allowed_up_to_exact_full_coverage(custodian, aapl, product):
    hold(custodian, aapl, 10 * NANO)
    mint("ethereum", "AAPLx", 4 * E18)
    mint("solana", "AAPLx", NANO, pending_id="mint-1")
    # 4 + 1 (being minted) + 5 = 10 tokens for 10 shares: allowed; one base unit more is not.
    with transaction.atomic():
        reserves.assert_mint_covered(product=product, chain="ethereum", quantity_base_units=5 * E18)
    with pytest.raises(CoverageRefusal) as exc:
        reserves.assert_mint_covered(product=product, chain="ethereum", quantity_base_units=5 * E18 + 1)
    assert exc.value.code == "insufficient_coverage" and exc.value.http_status == 409
    with pytest.raises(CoverageRefusal):
        reserves.assert_mint_covered(product=product, chain="solana", quantity_base_units=5 * NANO + 1)


def test_multiplier_scales_the_shares_needed(custodian, aapl, product):
    product.multiplier = Decimal("0.25")
    product.save()
    hold(custodian, aapl, NANO)
    reserves.assert_mint_covered(product=product, chain="solana", quantity_base_units=4 * NANO)
    with pytest.raises(CoverageRefusal):
        reserves.assert_mint_covered(product=product, chain="solana", quantity_base_units=4 * NANO + 1)
    mint("solana", "AAPLx", 4 * NANO)
    assert reserves.product_reserves(product=product).coverage == Decimal("1.000000000")


def test_shares_in_transit_or_sold_do_not_back_tokens(broker, custodian, aapl, product):
    order = services.order_place(broker=broker, security=aapl, side="buy", quantity_nano=2 * NANO,
                                 client_order_id="b1", actor="user:1")
    services.order_sync(order=order, actor="task:sync")
    figures = reserves.product_reserves(product=product)
    assert (figures.shares_in_transit_nano, figures.shares_held_nano) == (2 * NANO, 0)
    with pytest.raises(CoverageRefusal):
        reserves.assert_mint_covered(product=product, chain="ethereum", quantity_base_units=1)

    hold(custodian, aapl, 3 * NANO)
    sell = services.order_place(broker=broker, security=aapl, side="sell", quantity_nano=2 * NANO,
                                client_order_id="s1", actor="user:1")
    services.order_sync(order=sell, actor="task:sync")
    figures = reserves.product_reserves(product=product)
    assert (figures.shares_held_nano, figures.shares_committed_out_nano, figures.shares_available_nano) == (
        3 * NANO, 2 * NANO, NANO)
    reserves.assert_mint_covered(product=product, chain="ethereum", quantity_base_units=E18)
    with pytest.raises(CoverageRefusal):
        reserves.assert_mint_covered(product=product, chain="ethereum", quantity_base_units=E18 + 1)


def test_paused_product_and_unknown_chain(custodian, aapl, product):
    hold(custodian, aapl, 10 * NANO)
    services.product_status_set(product=product, status="paused", reason="corporate action", actor="user:1")
    with pytest.raises(CoverageRefusal) as exc:
        reserves.assert_mint_covered(product=product, chain="ethereum", quantity_base_units=1)
    assert exc.value.code == "minting_paused"
    services.product_status_set(product=product, status="active", reason="done", actor="user:1")
    with pytest.raises(CoverageRefusal) as exc:
        reserves.assert_mint_covered(product=product, chain="base", quantity_base_units=1)
    assert exc.value.code == "unknown_chain"
    with pytest.raises(CoverageRefusal) as exc:
        reserves.assert_mint_covered(product=product, chain="ethereum", quantity_base_units=0)
    assert exc.value.code == "invalid_quantity"


def test_products_with_reserves_selector(custodian, aapl, product):
    hold(custodian, aapl, 2 * NANO)
    mint("ethereum", "AAPLx", E18)
    (row,) = products_with_reserves()
    assert row.product == product and row.reserves.coverage == Decimal("2.000000000") and not row.minting_paused


def test_concurrent_mints_cannot_share_the_same_shares(committed, custodian, aapl, product):
    """Two mints of 6 tokens against 10 shares, at the same moment: exactly one passes."""
    hold(custodian, aapl, 10 * NANO)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def attempt(n: int) -> None:
        try:
            barrier.wait()
            with transaction.atomic():
                reserves.assert_mint_covered(product=TokenProduct.objects.get(pk=product.pk), chain="ethereum",
                                             quantity_base_units=6 * E18)
                mint("ethereum", "AAPLx", 6 * E18, pending_id=f"mint-{n}")
            outcomes.append("minted")
        except CoverageRefusal as exc:
            outcomes.append(exc.code)
        finally:
            connection.close()

    threads = [threading.Thread(target=attempt, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["insufficient_coverage", "minted"]
    assert balance(account="tokens/ethereum/AAPLx", asset="tok:AAPLx:ethereum").pending_in == 6 * E18


def test_reserves_as_of_a_past_position(custodian, aapl, product):
    from ledger.selectors import head

    hold(custodian, aapl, 10 * NANO)
    mint("ethereum", "AAPLx", 4 * E18)
    before = head().position
    hold(custodian, aapl, 5 * NANO, ref="h2")
    mint("ethereum", "AAPLx", E18)
    then = reserves.product_reserves(product=product, position=before)
    now = reserves.product_reserves(product=product)
    assert (then.shares_held_nano, then.tokens_outstanding, then.coverage) == (10 * NANO, Decimal(4), Decimal("2.5"))
    assert (now.shares_held_nano, now.tokens_outstanding, now.coverage) == (15 * NANO, Decimal(5), Decimal(3))
    assert reserves.product_reserves(product=product, position=0).shares_held_nano == 0


def test_multiplier_change_after_a_split(custodian, aapl, product):
    hold(custodian, aapl, 10 * NANO)
    mint("ethereum", "AAPLx", 10 * E18)
    assert reserves.product_reserves(product=product).coverage == Decimal(1)
    hold(custodian, aapl, 10 * NANO, ref="split-2-for-1")  # the custodian credits the split shares
    services.product_multiplier_set(product=product, multiplier=Decimal(2), reason="2:1 split", actor="user:1")
    product.refresh_from_db()
    assert product.multiplier == 2 and reserves.product_reserves(product=product).coverage == Decimal(1)
    with pytest.raises(CoverageRefusal):
        reserves.assert_mint_covered(product=product, chain="ethereum", quantity_base_units=1)
    for bad in (Decimal(0), Decimal("-1"), Decimal("NaN"), Decimal("1e-19")):
        with pytest.raises(services.CustodyError):
            services.product_multiplier_set(product=product, multiplier=bad, reason="x", actor="user:1")
