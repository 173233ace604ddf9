"""Custodian statement parsers: ISO 20022 semt.002 (Statement of Holdings) XML and CSV.

Parsers only turn bytes into a ParsedStatement or raise StatementError; matching securities and
accounts, idempotency and recording happen in custody.services.statement_import.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from config.api import DomainError
from ledger.units import NANO

MAX_STATEMENT_BYTES = 20 * 1024 * 1024
# Digits, optionally a point and more digits: no exponents, signs, NaN or infinities.
_PLAIN_DECIMAL = re.compile(r"^([0-9]{1,20})(?:\.([0-9]+))?$")


class StatementError(DomainError):
    code = "invalid_statement"


@dataclass(frozen=True)
class ParsedHolding:
    isin: str
    ticker: str
    quantity_nano: int
    description: str = ""


@dataclass(frozen=True)
class ParsedStatement:
    statement_ref: str
    account_number: str
    as_of: datetime
    holdings: list[ParsedHolding]


def shares_to_nano(text: str, *, where: str) -> int:
    """An exact decimal number of shares -> nano-shares; anything finer than 1e-9 is refused, not rounded."""
    text = (text or "").strip()
    if text.startswith("-") and _PLAIN_DECIMAL.match(text[1:]):
        raise StatementError(f"{where}: negative quantity {text}")
    match = _PLAIN_DECIMAL.match(text)
    if not match:
        raise StatementError(f"{where}: quantity {text[:40]!r} is not a plain decimal number of shares")
    if len(match.group(2) or "") > 9:
        raise StatementError(f"{where}: quantity {text} has more than 9 decimal places")
    nano = Decimal(text) * NANO
    if nano >= 2**63:
        raise StatementError(f"{where}: quantity {text} is too large")
    return int(nano)


def parse(content: bytes, *, format: str) -> ParsedStatement:  # noqa: A002 - the statement format's name
    if len(content) > MAX_STATEMENT_BYTES:
        raise StatementError(f"statement is larger than {MAX_STATEMENT_BYTES} bytes")
    if format == "semt002":
        from custody.statements.semt002 import parse_semt002

        return parse_semt002(content)
    if format == "csv":
        from custody.statements.csv_format import parse_csv

        return parse_csv(content)
    raise StatementError(f"unknown statement format {format!r}", code="unknown_statement_format")


def detect_format(file_name: str, content: bytes) -> str:
    head = content.lstrip()[:64]
    if file_name.lower().endswith(".xml") or head.startswith(b"<"):
        return "semt002"
    return "csv"
