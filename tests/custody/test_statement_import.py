from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from custody import services
from custody.models import CustodyAccount, Statement, StatementHolding
from custody.statements import StatementError
from ledger.models import Event
from ledger.selectors import read_stream
from tests.custody.statement_files import csv_statement, semt002

FIXTURES = Path(__file__).parent / "fixtures"
AAPL, MSFT = "US0378331005", "US5949181045"


def imp(content, fmt="semt002", **kw):
    return services.statement_import(content=content, format=fmt, actor="user:1", **kw)


def test_official_semt002_sample(account, aapl, msft):
    result = imp((FIXTURES / "semt002_statement.xml").read_bytes(), file_name="semt002_statement.xml")
    statement = result.statement
    assert result.created and statement.statement_ref == "STMT-20251114-0001" and statement.account == account
    # A date-only statement is the end of that day in New York.
    assert statement.as_of == datetime(2025, 11, 15, 4, 59, 59, tzinfo=UTC)
    holdings = {h.security.ticker: h.quantity_nano for h in statement.holdings.all()}
    assert holdings == {"AAPL": 1_250_500_000_000, "MSFT": 1}
    (event,) = read_stream(stream=f"custody-account-{account.id}")
    assert event.type == "custody.statement_imported"
    assert event.data["holdings"] == {"AAPL": "1250500000000", "MSFT": "1"}
    assert statement.ledger_position == event.position


def test_same_statement_twice_changes_nothing(account, aapl):
    content = semt002(account="SAFE-0001", statement_id="S1", as_of="2025-11-14", holdings=[(AAPL, "10")])
    first = imp(content)
    events = Event.objects.count()
    second = imp(content)
    assert not second.created and second.statement.pk == first.statement.pk
    assert Event.objects.count() == events and Statement.objects.count() == 1


def test_same_id_different_content_is_refused(account, aapl):
    imp(semt002(account="SAFE-0001", statement_id="S1", as_of="2025-11-14", holdings=[(AAPL, "10")]))
    with pytest.raises(StatementError) as exc:
        imp(semt002(account="SAFE-0001", statement_id="S1", as_of="2025-11-14", holdings=[(AAPL, "11")]))
    assert exc.value.code == "statement_conflict"


def test_csv_statement_and_its_duplicate(account, aapl, msft):
    content = csv_statement(account="SAFE-0001", statement_id="C1", as_of="2025-11-14T21:00:00+00:00",
                            holdings=[(AAPL, "3.123456789"), (MSFT, "7")])
    statement = imp(content, "csv").statement
    assert statement.as_of == datetime(2025, 11, 14, 21, tzinfo=UTC)
    assert {h.security.ticker: h.quantity_nano for h in statement.holdings.all()} == {
        "AAPL": 3_123_456_789, "MSFT": 7_000_000_000}
    assert not imp(content, "csv").created


def test_csv_by_ticker(account, aapl):
    content = b"statement_id,account,as_of,ticker,quantity\nT1,SAFE-0001,2025-11-14,AAPL,2\n"
    statement = imp(content, "csv").statement
    assert statement.holdings.get().quantity_nano == 2_000_000_000


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:semt.002.001.11"><SctiesBalCtdyRpt><StmtGnlDtls>
<StmtId>&lol4;</StmtId></StmtGnlDtls></SctiesBalCtdyRpt></Document>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<Document xmlns="urn:iso:std:iso:20022:tech:xsd:semt.002.001.11"><SctiesBalCtdyRpt><StmtGnlDtls>
<StmtId>&xxe;</StmtId></StmtGnlDtls></SctiesBalCtdyRpt></Document>"""


@pytest.mark.parametrize(("content", "code"), [
    (BILLION_LAUGHS, "hostile_statement"),
    (XXE, "hostile_statement"),
    (b"<Document><unclosed>", "malformed_statement"),
    (b"<Document xmlns='urn:iso:std:iso:20022:tech:xsd:camt.053.001.08'/>", "malformed_statement"),
    (semt002(account="SAFE-0001", statement_id="X", as_of="2025-11-14", holdings=[(AAPL, "1.0000000001")]),
     "invalid_statement"),
    (semt002(account="SAFE-0001", statement_id="X", as_of="2025-11-14", holdings=[(AAPL, "-1")]),
     "invalid_statement"),
    (semt002(account="SAFE-0001", statement_id="X", as_of="2025-11-14", holdings=[(AAPL, "abc")]),
     "invalid_statement"),
    (semt002(account="SAFE-0001", statement_id="X", as_of="14/11/2025", holdings=[(AAPL, "1")]),
     "malformed_statement"),
    (semt002(account="SAFE-0001", statement_id="X", as_of="2025-11-14", holdings=[(AAPL, "1")], basis="TRAD"),
     "unsupported_statement"),
    (semt002(account="SAFE-0001", statement_id="X", as_of="2025-11-14", holdings=[(AAPL, "1")], update="DELT"),
     "unsupported_statement"),
    (semt002(account="SAFE-0001", statement_id="X", as_of="2025-11-14", holdings=[("US88160R1014", "1")]),
     "unknown_security"),
    (semt002(account="NOPE-1", statement_id="X", as_of="2025-11-14", holdings=[(AAPL, "1")]), "unknown_account"),
    (semt002(account="SAFE-0001", statement_id="X", as_of="2025-11-14", holdings=[(AAPL, "1"), (AAPL, "2")]),
     "malformed_statement"),
])
@pytest.mark.reliability
def test_bad_xml_is_refused_and_records_nothing(account, aapl, content, code):
    events = Event.objects.count()
    with pytest.raises(StatementError) as exc:
        imp(content)
    assert exc.value.code == code, exc.value.message
    assert Event.objects.count() == events
    assert not Statement.objects.exists() and not StatementHolding.objects.exists()


@pytest.mark.parametrize(("content", "code"), [
    (b"", "malformed_statement"),
    (b"statement_id,account,as_of,isin,quantity\n", "malformed_statement"),
    (b"statement_id,account,isin,quantity\nA,SAFE-0001,US0378331005,1\n", "malformed_statement"),
    (b"statement_id,account,as_of,isin,quantity\nA,SAFE-0001,2025-11-14,US0378331005,1,extra\n", "malformed_statement"),
    (b"statement_id,account,as_of,isin,quantity\nA,SAFE-0001,2025-11-14,US0378331005,1\n"
     b"B,SAFE-0001,2025-11-14,US5949181045,1\n", "malformed_statement"),
    (b"statement_id,account,as_of,isin,quantity\nA,SAFE-0001,2025-11-14T10:00:00,US0378331005,1\n",
     "malformed_statement"),
    (b"statement_id,account,as_of,isin,quantity\nA,SAFE-0001,2025-11-14,US0378331005,1e400000000\n",
     "invalid_statement"),
    (b"\xff\xfe", "malformed_statement"),
])
@pytest.mark.reliability
def test_bad_csv_is_refused_and_records_nothing(account, aapl, msft, content, code):
    with pytest.raises(StatementError) as exc:
        imp(content, "csv")
    assert exc.value.code == code, exc.value.message
    assert not Statement.objects.exists()


def test_statement_for_another_account_is_refused(account, aapl, custodian):
    other = CustodyAccount.objects.create(custodian=custodian, account_number="SAFE-0002")
    content = semt002(account="SAFE-0001", statement_id="S1", as_of="2025-11-14", holdings=[(AAPL, "1")])
    with pytest.raises(StatementError) as exc:
        imp(content, account=other)
    assert exc.value.code == "wrong_account"
    assert not Statement.objects.exists()


def test_management_command(account, aapl, tmp_path, capsys):
    path = tmp_path / "stmt.xml"
    path.write_bytes(semt002(account="SAFE-0001", statement_id="S9", as_of="2025-11-14", holdings=[(AAPL, "4")]))
    call_command("custody_import_statement", str(path))
    assert "imported" in capsys.readouterr().out
    call_command("custody_import_statement", str(path))
    assert "already imported" in capsys.readouterr().out
    bad = tmp_path / "bad.xml"
    bad.write_bytes(BILLION_LAUGHS)
    with pytest.raises(CommandError, match="hostile_statement"):
        call_command("custody_import_statement", str(bad))
    assert Statement.objects.count() == 1


def test_simulated_custodian_statement_round_trips(account, custodian, aapl, msft, tmp_path):
    from custody.statements.generate import simulated_statement

    for ref, security, qty in (("a", aapl, 1_500_000_001), ("m", msft, 7 * 10**9)):
        services.shares_receive_in_kind(custodian=custodian, security=security, quantity_nano=qty,
                                        from_account="participant/1/shares", reference=ref,
                                        custodian_confirmation="c", actor="user:1")
    for fmt in ("semt002", "csv"):
        statement = imp(simulated_statement(account=account, format=fmt), fmt).statement
        assert {h.security.ticker: h.quantity_nano for h in statement.holdings.all()} == {
            "AAPL": 1_500_000_001, "MSFT": 7 * 10**9}
    out = tmp_path / "s.xml"
    call_command("custody_simulated_statement", "SAFE-0001", str(out))
    assert b"SctiesBalCtdyRpt" in out.read_bytes()


def test_no_simulated_custodian_statement_under_the_production_profile(account, settings, tmp_path):
    from config.profiles import NotInProduction
    from custody.statements.generate import simulated_statement

    settings.ISSUER_ENV = "production"
    with pytest.raises(NotInProduction) as refused:
        simulated_statement(account=account)
    assert refused.value.message == ("a simulated custodian statement refuses to run under the production profile "
                                     "(ISSUER_ENV=production): it is for development and test only")
    out = tmp_path / "s.xml"
    with pytest.raises(CommandError, match="^not_in_production: a simulated custodian statement refuses"):
        call_command("custody_simulated_statement", "SAFE-0001", str(out))
    assert not out.exists()
