from datetime import timedelta

import pytest
from django.utils import timezone

from custody import reserves, services
from custody.models import ReconciliationBreak
from custody.reserves import CoverageRefusal
from ledger.selectors import read_stream
from ledger.units import NANO
from tests.custody.statement_files import semt002

AAPL_ISIN, MSFT_ISIN = "US0378331005", "US5949181045"


def receive(custodian, security, qty, ref):
    services.shares_receive_in_kind(custodian=custodian, security=security, quantity_nano=qty,
                                    from_account="participant/1/shares", reference=ref,
                                    custodian_confirmation="C-" + ref, actor="user:1")


def statement(stmt_id, holdings, at=None):
    at = at or timezone.now() + timedelta(seconds=1)
    services.statement_import(content=semt002(account="SAFE-0001", statement_id=stmt_id, as_of=at.isoformat(),
                                              holdings=holdings, datetime_=True),
                              format="semt002", actor="user:1")


def recon():
    return services.reconciliation_run(actor="task:reconcile")


def test_matching_statement_has_no_break(account, custodian, aapl, product):
    receive(custodian, aapl, 10 * NANO, "r1")
    statement("S1", [(AAPL_ISIN, "10")])
    run = recon()
    assert (run.pairs_checked, run.breaks_opened) == (1, 0)
    assert not ReconciliationBreak.objects.exists()
    assert read_stream(stream="reconciliation")[-1].data["pairs_checked"] == 1


def test_no_statement_nothing_to_reconcile(account, custodian, aapl, product):
    receive(custodian, aapl, 10 * NANO, "r1")
    assert recon().pairs_checked == 0


def test_break_pauses_minting_until_resolved(account, custodian, aapl, msft, product):
    receive(custodian, aapl, 10 * NANO, "r1")
    statement("S1", [(AAPL_ISIN, "9.5"), (MSFT_ISIN, "1")])
    run = recon()
    assert run.breaks_opened == 2
    aapl_break = ReconciliationBreak.objects.get(security=aapl)
    assert (aapl_break.expected_nano, aapl_break.reported_nano, aapl_break.difference_nano) == (
        10 * NANO, 9_500_000_000, -500_000_000)
    assert aapl_break.blocks_minting and aapl_break.status == "open"
    # MSFT has no product: its break is listed but blocks nothing.
    assert not ReconciliationBreak.objects.get(security=msft).blocks_minting
    assert read_stream(stream=aapl_break.stream)[0].type == "custody.break_opened"

    product.refresh_from_db()
    assert product.minting_paused_by_break and product.minting_paused
    with pytest.raises(CoverageRefusal) as exc:
        reserves.assert_mint_covered(product=product, chain="ethereum", quantity_base_units=10**18)
    assert exc.value.code == "minting_paused"

    # Running again with the same statement opens nothing new.
    assert recon().breaks_opened == 0
    assert ReconciliationBreak.objects.filter(status="open").count() == 2

    with pytest.raises(services.CustodyError) as exc:
        services.break_resolve(break_=aapl_break, reason=" ", actor="user:2")
    assert exc.value.code == "reason_required"
    services.break_resolve(break_=aapl_break, reason="custodian statement omitted a late receipt; confirmed",
                           actor="user:2")
    assert not product.minting_paused_by_break
    reserves.assert_mint_covered(product=product, chain="ethereum", quantity_base_units=10**18)
    # A person resolved it: the same statement and figures do not reopen it.
    assert recon().breaks_opened == 0
    assert not product.minting_paused_by_break
    with pytest.raises(services.CustodyError) as exc:
        services.break_resolve(break_=aapl_break, reason="again and again", actor="user:2")
    assert exc.value.code == "break_not_open"


def test_break_within_tolerance_does_not_pause(account, custodian, aapl, product):
    product.break_tolerance_nano = 1_000
    product.save()
    receive(custodian, aapl, 10 * NANO, "r1")
    statement("S1", [(AAPL_ISIN, "9.999999")])
    recon()
    item = ReconciliationBreak.objects.get()
    assert item.difference_nano == -1_000 and not item.blocks_minting
    assert not product.minting_paused_by_break


def test_break_clears_when_a_later_statement_agrees(account, custodian, aapl, product):
    receive(custodian, aapl, 10 * NANO, "r1")
    statement("S1", [(AAPL_ISIN, "8")])
    recon()
    statement("S2", [(AAPL_ISIN, "10")])
    run = recon()
    assert run.breaks_cleared == 1
    item = ReconciliationBreak.objects.get()
    assert item.status == "cleared" and not product.minting_paused_by_break
    assert read_stream(stream=item.stream)[-1].type == "custody.break_cleared"


def test_break_figures_update_while_open(account, custodian, aapl, product):
    receive(custodian, aapl, 10 * NANO, "r1")
    statement("S1", [(AAPL_ISIN, "8")])
    recon()
    statement("S2", [(AAPL_ISIN, "7")])
    recon()
    item = ReconciliationBreak.objects.get()
    assert (item.status, item.reported_nano, item.difference_nano) == ("open", 7 * NANO, -3 * NANO)
    assert [e.type for e in read_stream(stream=item.stream)] == ["custody.break_opened", "custody.break_updated"]


def test_expected_position_is_taken_as_of_the_statement(account, custodian, aapl, product):
    receive(custodian, aapl, 10 * NANO, "r1")
    as_of = timezone.now()
    receive(custodian, aapl, 5 * NANO, "r2")  # after the statement's instant: not a break
    statement("S1", [(AAPL_ISIN, "10")], at=as_of)
    assert recon().breaks_opened == 0


def test_position_missing_from_statement_is_a_break(account, custodian, aapl, msft, product):
    receive(custodian, aapl, 10 * NANO, "r1")
    statement("S1", [(MSFT_ISIN, "0")])  # a complete statement without AAPL reports zero AAPL
    recon()
    item = ReconciliationBreak.objects.get(security=aapl)
    assert (item.expected_nano, item.reported_nano) == (10 * NANO, 0)
    assert item.blocks_minting


def test_statements_of_several_accounts_are_summed(account, custodian, aapl, product):
    from custody.models import CustodyAccount

    CustodyAccount.objects.create(custodian=custodian, account_number="SAFE-0002")
    receive(custodian, aapl, 10 * NANO, "r1")
    at = timezone.now() + timedelta(seconds=1)
    statement("S1", [(AAPL_ISIN, "6")], at=at)
    services.statement_import(content=semt002(account="SAFE-0002", statement_id="S1", as_of=at.isoformat(),
                                              holdings=[(AAPL_ISIN, "4")], datetime_=True),
                              format="semt002", actor="user:1")
    assert recon().breaks_opened == 0


def test_concurrent_reconciliations_open_each_break_once(committed, account, custodian, aapl, product):
    import threading

    from django.db import connection

    receive(custodian, aapl, 10 * NANO, "r1")
    statement("S1", [(AAPL_ISIN, "9")])
    barrier = threading.Barrier(3)
    errors: list[Exception] = []

    def run() -> None:
        try:
            barrier.wait()
            recon()
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert ReconciliationBreak.objects.count() == 1
