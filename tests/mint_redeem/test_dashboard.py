"""The admin's home page is the operations dashboard: every figure it shows is the selectors' answer
on real data, it costs the same number of queries whatever the data, and it renders in a browser
under the Content-Security-Policy."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from compliance import roles
from compliance.models import CaseStatus, ComplianceCase
from config import quantities
from config.browser import CHROMEDRIVER, CHROMIUM
from custody import selectors as custody_selectors
from custody.attestations import attestation_issue
from custody.models import ChainDeployment, ReconciliationBreak, Security, TokenProduct
from ledger import selectors as ledger_selectors
from mint_redeem import dashboard as dash
from mint_redeem import services
from mint_redeem.models import ChainOperation, MintRequest, ProductTerms
from mint_redeem.selectors import stuck_requests
from tests.compliance import factories as f

from .test_gates_and_refusals import post_mint


def _busy_market(market, mm, api, operations, *, mints: int = 2):
    """Real requests in several states: accepted (one above the four-eyes threshold), funded; a failed
    chain operation and one pending for an hour."""
    ids = [post_mint(api, mm, quantity="10").json()["id"] for _ in range(mints)]
    big = MintRequest.objects.get(pk=post_mint(api, mm, quantity="300").json()["id"])  # 60,000 USD: four eyes
    services.mint_cash_record(mint=MintRequest.objects.get(pk=ids[0]), amount_cents=10_000_00, reference="WIRE-1",
                              user=operations)
    assert big.needs_approval
    for n, status in enumerate((ChainOperation.Status.FAILED, ChainOperation.Status.BROADCAST)):
        op = ChainOperation.objects.create(kind="mint", chain="ethereum", product=market.product,
                                           address="0x" + "ab" * 20, amount_base_units=25 * 10**17 + n,
                                           request_reference=f"mint-test-{n}-{ChainOperation.objects.count()}",
                                           status=status, last_error="reverted" if n == 0 else "")
        ChainOperation.objects.filter(pk=op.pk).update(created_at=timezone.now() - timedelta(hours=1))


def _open_break(market, *, blocks_minting: bool = True):
    now = timezone.now()
    ReconciliationBreak.objects.create(
        custodian=market.custodian, security=market.security, status=ReconciliationBreak.Status.OPEN,
        statement_as_of=now, expected_nano=10**9, reported_nano=1, difference_nano=1 - 10**9,
        blocks_minting=blocks_minting, detected_at=now, last_seen_at=now)


def _open_case():
    from pathlib import Path

    from compliance import services as compliance_services

    sample = Path(__file__).resolve().parents[2] / "compliance" / "fixtures" / "sdn_sample.xml"
    compliance_services.sanctions_list_import(source=str(sample), content=sample.read_bytes(),
                                              imported_by=f.make_staff(roles.COMPLIANCE_OFFICER))
    f.make_market_maker(chains=("ethereum",), legal_name="Garantex Europe OÜ")


def test_every_figure_is_the_selectors_answer(market, mm, api, operations):
    _busy_market(market, mm, api, operations)
    _open_break(market)
    _open_case()
    board = dash.dashboard()

    # Requests waiting: the counts per state and mode are the requests' own.
    assert {row.kind for row in board.waiting} == {"mint"}
    for row in board.waiting:
        mode = MintRequest.Funding.IN_KIND if row.in_kind else MintRequest.Funding.CASH
        assert row.count == MintRequest.objects.filter(state=row.state, funding=mode).count()
        assert row.awaiting_approval == MintRequest.objects.filter(
            state=row.state, funding=mode, needs_approval=True, approved_by__isnull=True).count()
    states = {row.state: row for row in board.waiting if row.kind == "mint"}
    assert states["accepted"].count == 2 and states["accepted"].mover == "operator"
    assert states["accepted"].action == "record cash received" and states["accepted"].awaiting_approval == 1
    assert states["funded"].count == 1 and states["funded"].mover == "automatic"
    assert board.approvals_waiting == 1 and board.operator_actions_waiting == 2

    assert [(s.kind, s.id, s.why) for s in board.stuck_requests] == [
        (s.kind, s.id, s.why) for s in stuck_requests(older_than=dash.REQUEST_STUCK_AFTER)]
    assert {op.status for op in board.stuck_chain_operations} == {"failed", "broadcast"}
    assert all(op.decimals == 18 for op in board.stuck_chain_operations)
    assert [b.pk for b in board.open_breaks] == [b.pk for b in custody_selectors.open_breaks()]
    assert [c.pk for c in board.open_compliance_cases] == list(
        ComplianceCase.objects.filter(status=CaseStatus.OPEN).order_by("opened_at").values_list("pk", flat=True))
    assert len(board.open_compliance_cases) >= 1
    expected = {p.product.symbol: p.reserves.as_dict() for p in custody_selectors.products_with_reserves()}
    assert {p.product.symbol: p.reserves.as_dict() for p in board.products} == expected
    assert board.products[0].minting_paused_by_break  # the break blocks AAPLx
    assert board.attestation is None  # none issued yet: the panel is not shown

    # The attestation panel is the latest signed document's own figures.
    issued = attestation_issue(actor="test:dashboard")
    panel = dash.dashboard().attestation
    payload = json.loads(issued.document)["payload"]
    assert panel.attestation_id == issued.attestation_id and panel.issued_at == issued.issued_at
    assert panel.head_position == issued.head_position == payload["ledger_head"]["position"] > 0
    [attested] = ledger_selectors.read_log(after_position=issued.head_position - 1, limit=1)
    assert panel.head_hash_hex == payload["ledger_head"]["hash"] == attested.hash.hex()  # the event attested
    assert panel.minimum_coverage == payload["totals"]["minimum_coverage"]
    assert panel.undercovered == payload["totals"]["undercovered"]
    assert panel.fully_covered == (payload["totals"]["undercovered"] == [])
    assert panel.document_url == f"/api/v1/attestations/{issued.attestation_id}"
    assert panel.transparency_url == "/transparency/"
    newer = attestation_issue(actor="test:dashboard")  # the newest one is shown
    assert dash.dashboard().attestation.attestation_id == newer.attestation_id


def _another_product(market, ticker: str, isin: str, cusip: str):
    security = Security.objects.create(ticker=ticker, isin=isin, cusip=cusip, exchange_mic="XNAS", name=f"{ticker} Inc.")
    product = TokenProduct.objects.create(symbol=f"{ticker}x", security=security, multiplier=Decimal(1))
    ChainDeployment.objects.create(product=product, chain="ethereum", decimals=18, address="0x" + ticker.lower()[:2] * 20)
    ProductTerms.objects.create(product=product, broker=market.broker, custodian=market.custodian,
                                reference_price=Decimal("100.00"), approval_threshold_cents=50_000_00)


def _tile(html: str, name: str) -> str:
    return re.search(rf'id="tile-{name}">([^<]*)<', html).group(1)


def test_the_page_shows_those_figures_readably(market, mm, api, operations):
    _busy_market(market, mm, api, operations)
    _open_break(market)
    _open_case()
    board = dash.dashboard()
    client = Client()
    client.force_login(operations)
    html = client.get(reverse("admin:index")).content.decode()
    assert _tile(html, "operator") == str(board.operator_actions_waiting)
    assert _tile(html, "approvals") == str(board.approvals_waiting)
    assert _tile(html, "breaks") == str(len(board.open_breaks))
    assert _tile(html, "cases") == str(len(board.open_compliance_cases))
    assert _tile(html, "stuck") == f"{len(board.stuck_requests)} / {len(board.stuck_chain_operations)}"
    for row in board.waiting:
        assert re.search(rf'data-kind="{row.kind}" data-state="{row.state}"[^>]*>.*?class="dash-count">{row.count}<',
                         html, re.S)
    # Quantities read as people read them, beside the exact units.
    assert "2.5 AAPLx" in html and "2,500,000,000,000,000,000 base units" in html  # the failed chain operation
    assert quantities.shares(1 - 10**9) in html  # the break's difference: -0.999999999 shares
    assert "paused (break)" in html and "Garantex Europe" in html
    assert 'id="dash-attestation"' not in html  # none issued yet

    issued = attestation_issue(actor="test:dashboard")
    html = client.get(reverse("admin:index")).content.decode()
    panel = re.search(r'id="dash-attestation">(.*?)</div>', html, re.S).group(1)
    assert issued.attestation_id in panel and f'id="attestation-head">{issued.head_position}<' in panel
    coverage = json.loads(issued.document)["payload"]["totals"]["minimum_coverage"]
    assert re.search(r'id="attestation-coverage">([^<]*)<', panel).group(1).startswith(
        "nothing outstanding" if coverage is None else coverage)
    assert 'href="/transparency/"' in panel and f'href="/api/v1/attestations/{issued.attestation_id}"' in panel
    admin_url = reverse("admin:custody_attestation_change", args=[issued.pk])
    assert f'href="{admin_url}"' in panel
    assert client.get(admin_url).status_code == 200


def test_the_dashboard_costs_the_same_queries_however_much_there_is(market, mm, api, operations):
    client = Client()
    client.force_login(operations)
    _busy_market(market, mm, api, operations, mints=1)
    _open_break(market, blocks_minting=False)
    _open_case()
    attestation_issue(actor="test:dashboard")
    with CaptureQueriesContext(connection) as few:
        assert client.get(reverse("admin:index")).status_code == 200
    _busy_market(market, mm, api, operations, mints=6)
    _another_product(market, "TSLA", "US88160R1014", "88160R101")
    _another_product(market, "NVDA", "US67066G1040", "67066G104")
    attestation_issue(actor="test:dashboard")  # a newer, larger document: still one query for the panel
    with CaptureQueriesContext(connection) as many:
        assert client.get(reverse("admin:index")).status_code == 200
    assert len(many) == len(few), [q["sql"][:120] for q in many.captured_queries]


def test_market_makers_and_anonymous_users_get_no_dashboard(market, mm, client):
    assert client.get(reverse("admin:index")).status_code == 302  # to the sign-in page
    staff = Client()
    staff.force_login(f.make_staff(roles.AUDITOR))
    assert 'id="dashboard"' in staff.get(reverse("admin:index")).content.decode()  # read-only, but may see


def test_list_and_detail_views_show_readable_quantities(market, mm, api, operations):
    _busy_market(market, mm, api, operations, mints=1)
    client = Client()
    client.force_login(operations)
    mint = MintRequest.objects.order_by("id").first()
    listing = client.get(reverse("admin:mint_redeem_mintrequest_changelist")).content.decode()
    assert "10 shares" in listing and "10,000,000,000 nano-shares" in listing and "10 AAPLx" in listing
    detail = client.get(reverse("admin:mint_redeem_mintrequest_change", args=[mint.pk])).content.decode()
    assert quantities.usd(mint.cash_due_cents) in detail and f"{mint.cash_due_cents:,} cents" in detail
    operations_page = client.get(reverse("admin:mint_redeem_chainoperation_changelist")).content.decode()
    assert "2.500000000000000001 AAPLx" in operations_page


def test_list_views_cost_the_same_queries_however_many_rows(market, mm, api, operations):
    client = Client()
    client.force_login(operations)
    _busy_market(market, mm, api, operations, mints=1)
    urls = [reverse("admin:mint_redeem_mintrequest_changelist"), reverse("admin:mint_redeem_chainoperation_changelist")]
    counts = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            for url in urls:
                assert client.get(url).status_code == 200
        counts.append(len(queries))
        _busy_market(market, mm, api, operations, mints=5)
    assert counts[0] == counts[1]


@pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="Debian's chromium and chromium-driver are not installed")
def test_the_dashboard_renders_in_chromium_under_the_policy(committed, market, mm, api, operations, live_server):
    from config.browser import headless_browser, sign_in  # selenium: a dev dependency

    _busy_market(market, mm, api, operations)
    _open_break(market)
    operations.set_password("a-long-test-password-1")
    operations.save()
    with headless_browser() as browser:
        sign_in(browser, live_server.url, operations.username, "a-long-test-password-1")
        browser.get(live_server.url + reverse("admin:index"))
        tiles = {el.get_attribute("id"): el.text for el in browser.find_elements("css selector", ".dash-figure")}
        board = dash.dashboard()
        assert tiles["tile-approvals"] == str(board.approvals_waiting)
        assert tiles["tile-operator"] == str(board.operator_actions_waiting)
        coverage = browser.find_element("css selector", "#dash-coverage").text
        assert "AAPLx" in coverage and "paused (break)" in coverage
        # The stylesheet applied (a CSP refusal would leave the tiles unstyled, as a block of text).
        tile = browser.find_element("css selector", ".dash-tile")
        assert tile.value_of_css_property("display") == "flex"
        errors = [e for e in browser.get_log("browser") if "Content Security Policy" in e["message"]]
        assert errors == []
