"""ISO 20022 semt.002 SecuritiesBalanceCustodyReport (Statement of Holdings), any 001.xx version.

Parsed with defusedxml: DTDs, entity declarations and external references are refused outright, so
entity-expansion ("billion laughs") and XXE payloads fail before any expansion happens.

Accepted: one complete (UpdTp COMP) settled-basis (StmtBsis SETT) statement on a single page.
Instruments are identified by ISIN (FinInstrmId/ISIN) or, failing that, a ticker in OthrId.
Quantities are AggtBal/Qty/Qty/Qty/Unit, long positions only.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, time
from xml.etree.ElementTree import Element, ParseError  # noqa: S405 - types only; parsing is defusedxml's
from zoneinfo import ZoneInfo

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from custody.statements import ParsedHolding, ParsedStatement, StatementError, shares_to_nano

_NAMESPACE = re.compile(r"^urn:iso:std:iso:20022:tech:xsd:semt\.002\.001\.\d{2}$")
_NEW_YORK = ZoneInfo("America/New_York")


def parse_semt002(content: bytes) -> ParsedStatement:
    try:
        root = fromstring(content, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise StatementError(f"refused XML: {type(exc).__name__} (DTDs and entities are not allowed)",
                             code="hostile_statement") from None
    except ParseError as exc:
        raise StatementError(f"malformed XML: {exc}", code="malformed_statement") from None

    namespace, _, local = root.tag[1:].partition("}") if root.tag.startswith("{") else ("", "", root.tag)
    if local != "Document" or not _NAMESPACE.match(namespace):
        raise StatementError("not an ISO 20022 semt.002 Document (expected namespace "
                             "urn:iso:std:iso:20022:tech:xsd:semt.002.001.xx)", code="malformed_statement")
    ns = {"s": namespace}
    report = root.find("s:SctiesBalCtdyRpt", ns)
    if report is None:
        raise StatementError("missing SctiesBalCtdyRpt", code="malformed_statement")

    def text(parent: Element, path: str, *, required: bool = True) -> str:
        node = parent.find(path, ns)
        value = (node.text or "").strip() if node is not None else ""
        if required and not value:
            raise StatementError(f"missing {path.replace('s:', '')}", code="malformed_statement")
        return value

    last_page = text(report, "s:Pgntn/s:LastPgInd", required=False)
    page = text(report, "s:Pgntn/s:PgNb", required=False)
    if (page and page not in ("1", "00001")) or last_page.lower() == "false":
        raise StatementError("multi-page statements are not supported; send the statement on one page",
                             code="unsupported_statement")

    details = report.find("s:StmtGnlDtls", ns)
    if details is None:
        raise StatementError("missing StmtGnlDtls", code="malformed_statement")
    statement_ref = text(details, "s:StmtId", required=False) or text(details, "s:RptNb/s:Shrt", required=False)
    if not statement_ref:
        raise StatementError("missing StmtGnlDtls/StmtId", code="malformed_statement")
    update_type = text(details, "s:UpdTp/s:Cd", required=False)
    if update_type and update_type != "COMP":
        raise StatementError(f"only complete statements (UpdTp COMP) are accepted, got {update_type}",
                             code="unsupported_statement")
    basis = text(details, "s:StmtBsis/s:Cd", required=False)
    if basis and basis != "SETT":
        raise StatementError(f"only settled-position statements (StmtBsis SETT) are accepted, got {basis}",
                             code="unsupported_statement")
    as_of = _statement_datetime(details, ns)

    account_number = text(report, "s:SfkpgAcct/s:Id")
    holdings: list[ParsedHolding] = []
    for index, balance in enumerate(report.findall("s:BalForAcct", ns), start=1):
        where = f"BalForAcct #{index}"
        isin = text(balance, "s:FinInstrmId/s:ISIN", required=False)
        ticker = ""
        for other in balance.findall("s:FinInstrmId/s:OthrId", ns):
            kind = (text(other, "s:Tp/s:Cd", required=False) or text(other, "s:Tp/s:Prtry", required=False)).upper()
            if kind in ("TICKER", "TS", "TICK"):
                ticker = text(other, "s:Id", required=False)
        if not isin and not ticker:
            raise StatementError(f"{where}: no ISIN or ticker", code="malformed_statement")
        side = text(balance, "s:AggtBal/s:ShrtLngInd", required=False)
        if side and side != "LONG":
            raise StatementError(f"{where}: short position reported ({side})", code="unsupported_statement")
        quantity = text(balance, "s:AggtBal/s:Qty/s:Qty/s:Qty/s:Unit", required=False)
        if not quantity:
            raise StatementError(f"{where}: missing AggtBal/Qty/Qty/Qty/Unit", code="malformed_statement")
        holdings.append(ParsedHolding(isin=isin, ticker=ticker, quantity_nano=shares_to_nano(quantity, where=where),
                                      description=text(balance, "s:FinInstrmId/s:Desc", required=False)))
    return ParsedStatement(statement_ref=statement_ref, account_number=account_number, as_of=as_of, holdings=holdings)


def _statement_datetime(details: Element, ns: dict) -> datetime:
    node_dt = details.find("s:StmtDtTm/s:DtTm", ns)
    node_d = details.find("s:StmtDtTm/s:Dt", ns)
    try:
        if node_dt is not None and (node_dt.text or "").strip():
            value = datetime.fromisoformat(node_dt.text.strip().replace("Z", "+00:00"))
            # ISO 20022 local times without an offset are the servicer's; ours are New York.
            return value if value.tzinfo else value.replace(tzinfo=_NEW_YORK)
        if node_d is not None and (node_d.text or "").strip():
            return end_of_day(datetime.strptime(node_d.text.strip(), "%Y-%m-%d").date())  # noqa: DTZ007
    except ValueError:
        raise StatementError("StmtDtTm is not a valid ISO date or date-time", code="malformed_statement") from None
    raise StatementError("missing StmtDtTm", code="malformed_statement")


def end_of_day(day) -> datetime:
    """A date-only statement reports positions at the end of that business day in New York."""
    return datetime.combine(day, time(23, 59, 59), tzinfo=_NEW_YORK).astimezone(UTC)
