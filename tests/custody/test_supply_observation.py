"""Observed supply against the ledger's tokens outstanding (custody.supply): recorded as a ledger event
with its projection, a difference nothing explains pauses minting until it clears or a person
resolves it, operations in flight are not a break, and the figures in force at any past ledger
position can be read back. The chain side (reading anvil) is in tests/mint_redeem/test_chain_supply.py."""

from __future__ import annotations

from datetime import datetime

import pytest
from django.urls import reverse
from django.utils import timezone

from custody import reserves, selectors, services
from custody.models import SupplyBreak, SupplyObservation
from custody.supply import SupplyError
from ledger import integrity
from ledger.selectors import head, read_stream
from tests.custody.test_reserves import mint

BIG = 2**70 + 12345  # above 2**63: NUMERIC and string-encoded base units all the way


def issue(product, amount: int, chain: str = "ethereum") -> int:
    """Tokens outstanding on the ledger, as a confirmed mint leaves them; the position after it."""
    mint(chain, product.symbol, amount)
    return head().position


def observe(product, supply: int, block: int, *, in_flight: int = 0, position: int | None = None, chain="ethereum"):
    return services.supply_observation_record(
        product=product, chain=chain, supply_base_units=supply, block=block, block_hash=f"0x{block:064x}",
        observed_at=timezone.now(), actor="task:test", ledger_position=position, in_flight_base_units=in_flight)


def test_an_agreeing_supply_is_recorded_on_its_stream_without_a_break(product):
    issue(product, BIG)
    observation = observe(product, BIG, 10)
    assert (int(observation.ledger_outstanding_base_units), observation.difference_base_units) == (BIG, 0)
    (event,) = read_stream(stream="supply-AAPLx-ethereum")
    assert event.type == "custody.supply_observed" and event.data["supply_base_units"] == str(BIG)
    assert event.data["ledger_position"] == observation.ledger_position == head().position - 1
    assert event.data["block"] == 10 and event.data["block_hash"] == f"0x{10:064x}"
    assert not SupplyBreak.objects.exists() and not product.minting_paused_by_break
    assert integrity.verify() == []


def test_an_unexplained_difference_pauses_minting_until_resolved(product):
    issue(product, 10**18)
    observe(product, 3 * 10**18, 10)
    item = SupplyBreak.objects.get()
    assert (item.status, int(item.unexplained_base_units)) == ("open", 2 * 10**18)
    assert product.minting_paused_by_break
    with pytest.raises(reserves.CoverageRefusal) as refused:
        reserves.assert_mint_covered(product=product, chain="solana", quantity_base_units=1)
    assert refused.value.code == "minting_paused"  # every chain of the product, not only the one that broke
    (row,) = selectors.products_with_reserves()
    assert row.minting_paused and row.minting_paused_by_break
    assert read_stream(stream=item.stream)[0].type == "custody.supply_break_opened"

    services.supply_break_resolve(break_=item, reason="operations' test mint, burn scheduled", actor="user:7")
    assert not product.minting_paused_by_break
    assert read_stream(stream=item.stream)[-1].data == {"break_id": item.id,
                                                        "reason": "operations' test mint, burn scheduled"}
    observe(product, 3 * 10**18, 11)  # the difference a person looked at: not reopened
    assert not product.minting_paused_by_break
    observe(product, 4 * 10**18, 12)  # another difference: a new break
    assert SupplyBreak.objects.filter(status="open").count() == 1 and product.minting_paused_by_break


def test_a_later_agreeing_observation_clears_the_break(product):
    issue(product, 5)
    observe(product, 7, 10)
    observe(product, 8, 11)  # the figures moved: the break follows them
    item = SupplyBreak.objects.get()
    assert int(item.unexplained_base_units) == 3
    observe(product, 5, 12)
    item.refresh_from_db()
    assert item.status == "cleared" and not product.minting_paused_by_break
    assert [e.type for e in read_stream(stream=item.stream)] == [
        "custody.supply_break_opened", "custody.supply_break_updated", "custody.supply_break_cleared"]


def test_operations_landed_but_not_recorded_are_in_flight_not_a_break(product):
    issue(product, 100)
    observation = observe(product, 130, 10, in_flight=30)  # a mint of 30 on chain, its confirmation not yet recorded
    assert (observation.difference_base_units, observation.in_flight_base_units) == (30, 30)
    assert observation.unexplained_base_units == 0 and not SupplyBreak.objects.exists()
    observe(product, 70, 11, in_flight=-30)  # a burn of 30 likewise
    assert not SupplyBreak.objects.exists()
    observe(product, 131, 12, in_flight=30)  # one base unit more than anything explains
    assert int(SupplyBreak.objects.get().unexplained_base_units) == 1


def test_the_ledger_is_read_as_of_the_position_the_observer_took(product):
    before = issue(product, 100)
    issue(product, 50)  # confirmed after the observer's snapshot
    observation = observe(product, 100, 10, position=before)
    assert int(observation.ledger_outstanding_base_units) == 100 and not SupplyBreak.objects.exists()


def test_the_same_reading_twice_is_recorded_once_and_an_older_one_not_at_all(product):
    issue(product, 100)
    position = head().position
    first = observe(product, 100, 10, position=position)
    assert observe(product, 100, 10, position=position) == first
    later = observe(product, 100, 12)
    assert observe(product, 100, 11) == later  # a slower observer's older block
    assert SupplyObservation.objects.count() == 2 and len(read_stream(stream="supply-AAPLx-ethereum")) == 2


@pytest.mark.parametrize(("changes", "code"), [
    ({"supply_base_units": -1}, "invalid_supply_observation"),
    ({"supply_base_units": True}, "invalid_supply_observation"),
    ({"supply_base_units": "100"}, "invalid_supply_observation"),
    ({"block": -5}, "invalid_supply_observation"),
    ({"in_flight_base_units": 1.5}, "invalid_supply_observation"),
    ({"observed_at": datetime(2026, 1, 1)}, "invalid_supply_observation"),  # noqa: DTZ001 - naive on purpose
    ({"chain": "base"}, "unknown_chain"),
])
def test_bad_readings_are_refused_and_change_nothing(product, changes, code):
    issue(product, 100)
    before = head().position
    args = {"product": product, "chain": "ethereum", "supply_base_units": 100, "block": 1, "block_hash": "0x01",
            "observed_at": timezone.now(), "actor": "task:test", **changes}
    with pytest.raises(SupplyError) as refused:
        services.supply_observation_record(**args)
    assert refused.value.code == code
    assert head().position == before and not SupplyObservation.objects.exists()


def test_latest_and_as_of_a_ledger_position_per_chain(product):
    issue(product, 100)
    issue(product, 9, chain="solana")
    first = observe(product, 100, 10)
    at_first = head().position
    solana = observe(product, 9, 500, chain="solana")
    second = observe(product, 101, 11)
    assert selectors.supply_observed_latest(product=product) == {"ethereum": second, "solana": solana}
    assert selectors.supply_observed_as_of(product=product, position=at_first) == {"ethereum": first}
    assert selectors.supply_observed_as_of(product=product, position=head().position) == {
        "ethereum": second, "solana": solana}
    assert selectors.supply_observed_as_of(product=product, position=at_first - 1) == {}


def test_resolving_needs_a_reason_and_an_open_break(product):
    issue(product, 1)
    observe(product, 2, 10)
    item = SupplyBreak.objects.get()
    with pytest.raises(SupplyError) as refused:
        services.supply_break_resolve(break_=item, reason="  ", actor="user:1")
    assert refused.value.code == "reason_required"
    services.supply_break_resolve(break_=item, reason="checked by hand", actor="user:1")
    with pytest.raises(SupplyError) as again:
        services.supply_break_resolve(break_=item, reason="checked by hand", actor="user:1")
    assert again.value.code == "break_not_open"


def test_admin_resolves_with_permission_and_refuses_without(admin_client, client, django_user_model, product):
    issue(product, 1)
    observe(product, 2, 10)
    item = SupplyBreak.objects.get()
    viewer = django_user_model.objects.create_user(username="viewer", password="pw", is_staff=True)
    client.force_login(viewer)
    url = reverse("admin:custody_supply_break_resolve", args=[item.pk])
    assert client.post(url, {"reason": "because I can"}).status_code == 403
    item.refresh_from_db()
    assert item.status == "open"

    for page in ("admin:custody_supplybreak_changelist", "admin:custody_supplyobservation_changelist"):
        assert admin_client.get(reverse(page)).status_code == 200
    assert admin_client.get(url).status_code == 200
    response = admin_client.post(url, {"reason": "rogue mint burned in tx 0xabc"})
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == "resolved" and item.resolved_by.startswith("user:")
    assert not product.minting_paused_by_break
