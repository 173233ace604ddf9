"""GET /api/v1/mints/{id}/backing: the broker fills and custodian statement lines behind a mint, for the
mint's owner only (another market maker's mint is a 404, as if it did not exist)."""

from __future__ import annotations

from datetime import UTC, date, datetime, time

from custody import services as custody_services
from custody.models import Fill
from mint_redeem import services
from mint_redeem.models import MintRequest
from tests.custody.statement_files import csv_statement
from tests.mint_redeem.conftest import SignedClient


def _settled_cash_mint(api, mm, operations) -> int:
    response = api.post("/api/v1/mints", {"product": "AAPLx", "chain": "ethereum", "quantity": "10",
                                          "wallet": mm.wallets["ethereum"].pk, "funding": "cash"})
    assert response.status_code == 201, response.content
    mint = response.json()
    services.mint_cash_record(mint=MintRequest.objects.get(pk=mint["id"]), amount_cents=mint["cash_due_cents"],
                              reference="WIRE-B1", user=operations)
    for _ in range(4):  # what the worker does: place the order, record the fill, start settling
        services.mint_advance(mint=MintRequest.objects.get(pk=mint["id"]), actor="task:test")
    for day in sorted({f.settlement_date for f in Fill.objects.filter(status=Fill.Status.PENDING)}):
        custody_services.fills_settle_due(today=day, actor="task:test")
    return mint["id"]


def test_the_owner_sees_fills_and_the_statement_line_behind_the_mint(market, mm, api, operations, other_mm):
    mint_id = _settled_cash_mint(api, mm, operations)
    backing = api.get(f"/api/v1/mints/{mint_id}/backing").json()
    fills = backing["fills"]
    assert sum(int(f["quantity_nano"]) for f in fills) == 10 * 10**9  # the simulated broker may split the order
    assert {(f["broker"], f["ticker"], f["side"], f["status"]) for f in fills} == {("sim", "AAPL", "buy", "settled")}
    assert all(f["statement_line"] is None for f in fills)  # no statement from the custodian yet
    # The custodian's statement for the day the fills settled: after the US market's trade date plus its
    # settlement cycle, which is ahead of today's UTC date for most of the day (a statement dated "now"
    # matched only when New York's date was still yesterday's).
    settled_on = max(date.fromisoformat(f["settlement_date"]) for f in fills)
    as_of = datetime.combine(settled_on, time(21, 0), tzinfo=UTC).isoformat()
    custody_services.statement_import(content=csv_statement(account="SAFE-0001", statement_id="S-B1", as_of=as_of,
                                                            holdings=[("US0378331005", "10")]),
                                      format="csv", actor="user:1")
    lines = [f["statement_line"] for f in api.get(f"/api/v1/mints/{mint_id}/backing").json()["fills"]]
    assert {(line["custodian"], line["statement_ref"], line["quantity_nano"]) for line in lines} == {
        ("bny", "S-B1", str(10 * 10**9))}

    # Tenant isolation: the other market maker cannot see it, and cannot tell it exists.
    other = SignedClient(other_mm).get(f"/api/v1/mints/{mint_id}/backing")
    missing = SignedClient(other_mm).get("/api/v1/mints/999999999/backing")
    assert other.status_code == missing.status_code == 404
    assert other.json() == missing.json()
