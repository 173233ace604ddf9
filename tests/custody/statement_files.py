"""Builders of custodian statements in the official semt.002 structure and in our CSV layout."""

from __future__ import annotations

from xml.etree.ElementTree import Element, SubElement, tostring  # noqa: S405 - building, not parsing

NS = "urn:iso:std:iso:20022:tech:xsd:semt.002.001.11"


def semt002(*, account: str, statement_id: str, as_of: str, holdings: list[tuple[str, str]],
            basis: str = "SETT", update: str = "COMP", datetime_: bool = False) -> bytes:
    """holdings: (ISIN, quantity as decimal text)."""
    document = Element("Document", xmlns=NS)
    report = SubElement(document, "SctiesBalCtdyRpt")
    pagination = SubElement(report, "Pgntn")
    SubElement(pagination, "PgNb").text = "1"
    SubElement(pagination, "LastPgInd").text = "true"
    details = SubElement(report, "StmtGnlDtls")
    SubElement(details, "StmtId").text = statement_id
    SubElement(SubElement(details, "StmtDtTm"), "DtTm" if datetime_ else "Dt").text = as_of
    SubElement(SubElement(details, "Frqcy"), "Cd").text = "DAIL"
    SubElement(SubElement(details, "UpdTp"), "Cd").text = update
    SubElement(SubElement(details, "StmtBsis"), "Cd").text = basis
    SubElement(details, "ActvtyInd").text = "true"
    SubElement(details, "AudtdInd").text = "false"
    SubElement(details, "SubAcctInd").text = "false"
    SubElement(SubElement(SubElement(report, "AcctSvcr"), "Id"), "AnyBIC").text = "IRVTUS3NXXX"
    SubElement(SubElement(report, "SfkpgAcct"), "Id").text = account
    for isin, quantity in holdings:
        balance = SubElement(report, "BalForAcct")
        SubElement(SubElement(balance, "FinInstrmId"), "ISIN").text = isin
        aggregate = SubElement(balance, "AggtBal")
        SubElement(aggregate, "ShrtLngInd").text = "LONG"
        SubElement(SubElement(SubElement(SubElement(aggregate, "Qty"), "Qty"), "Qty"), "Unit").text = quantity
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + tostring(document)


def csv_statement(*, account: str, statement_id: str, as_of: str, holdings: list[tuple[str, str]]) -> bytes:
    lines = ["statement_id,account,as_of,isin,ticker,quantity"]
    lines += [f"{statement_id},{account},{as_of},{isin},,{quantity}" for isin, quantity in holdings]
    return ("\n".join(lines) + "\n").encode()
