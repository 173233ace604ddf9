"""A simulated custodian for `make run`: writes the statement a custodian would send (semt.002 or
CSV), reporting the settled positions the ledger holds at it. Real custodians send their own files."""

from __future__ import annotations

from datetime import datetime
from xml.etree.ElementTree import Element, SubElement, tostring  # noqa: S405 - building XML, never parsing it

from django.utils import timezone

from config.profiles import refuse_in_production
from custody.ledger_reads import balances_as_of_by_prefix
from custody.models import CustodyAccount, Security
from ledger.selectors import position_at
from ledger.units import NANO

NAMESPACE = "urn:iso:std:iso:20022:tech:xsd:semt.002.001.11"


def _quantity(nano: int) -> str:
    whole, frac = divmod(nano, NANO)
    return f"{whole}.{frac:09d}".rstrip("0").rstrip(".")


def semt002_document(*, account_number: str, statement_id: str, as_of: datetime, servicer_bic: str,
                     holdings: list[tuple[str, str, int]]) -> bytes:
    """holdings: (ISIN, description, nano-shares)."""
    document = Element("Document", xmlns=NAMESPACE)
    report = SubElement(document, "SctiesBalCtdyRpt")
    pagination = SubElement(report, "Pgntn")
    SubElement(pagination, "PgNb").text = "1"
    SubElement(pagination, "LastPgInd").text = "true"
    details = SubElement(report, "StmtGnlDtls")
    SubElement(details, "StmtId").text = statement_id
    SubElement(SubElement(details, "StmtDtTm"), "DtTm").text = as_of.isoformat()
    SubElement(SubElement(details, "Frqcy"), "Cd").text = "ADHO"
    SubElement(SubElement(details, "UpdTp"), "Cd").text = "COMP"
    SubElement(SubElement(details, "StmtBsis"), "Cd").text = "SETT"
    SubElement(details, "ActvtyInd").text = "true"
    SubElement(details, "SubAcctInd").text = "false"
    if servicer_bic:
        SubElement(SubElement(SubElement(report, "AcctSvcr"), "Id"), "AnyBIC").text = servicer_bic
    SubElement(SubElement(report, "SfkpgAcct"), "Id").text = account_number
    for isin, description, nano in holdings:
        balance = SubElement(report, "BalForAcct")
        identification = SubElement(balance, "FinInstrmId")
        SubElement(identification, "ISIN").text = isin
        if description:
            SubElement(identification, "Desc").text = description[:140]
        aggregate = SubElement(balance, "AggtBal")
        SubElement(aggregate, "ShrtLngInd").text = "LONG"
        SubElement(SubElement(SubElement(SubElement(aggregate, "Qty"), "Qty"), "Qty"), "Unit").text = _quantity(nano)
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(document, encoding="unicode").encode()


def simulated_statement(*, account: CustodyAccount, as_of: datetime | None = None, format: str = "semt002",  # noqa: A002
                        ) -> bytes:
    """The statement of `account` as of `as_of` (default now) from the ledger's settled positions at its
    custodian (a simulated custodian keeps one account per custodian). Never in production: a statement
    written from the ledger would reconcile the ledger against itself."""
    refuse_in_production("a simulated custodian statement")
    as_of = as_of or timezone.now()
    custodian = account.custodian
    prefix = f"custody/{custodian.code}/"
    positions = {path[len(prefix):]: figures.posted for (path, asset), figures in
                 balances_as_of_by_prefix(prefix=prefix, position=position_at(instant=as_of)).items()
                 if asset == f"shares:{path[len(prefix):]}" and figures.posted > 0}
    securities = {s.ticker: s for s in Security.objects.filter(ticker__in=positions)}
    holdings = [(securities[t].isin, securities[t].name, q) for t, q in sorted(positions.items())]
    statement_id = f"SIM-{as_of:%Y%m%d%H%M%S%f}-{account.account_number}"[:35]
    if format == "csv":
        lines = ["statement_id,account,as_of,isin,ticker,quantity"]
        lines += [f"{statement_id},{account.account_number},{as_of.isoformat()},{isin},{securities_ticker},"
                  f"{_quantity(q)}" for (isin, _d, q), securities_ticker in zip(holdings, sorted(positions), strict=True)]
        return ("\n".join(lines) + "\n").encode()
    return semt002_document(account_number=account.account_number, statement_id=statement_id, as_of=as_of,
                            servicer_bic=custodian.bic, holdings=holdings)
