"""CSV statement of holdings: one row per holding, with a header row

    statement_id,account,as_of,isin,ticker,quantity

`as_of` is a date (end of that day in New York) or an ISO date-time with offset; `quantity` is an
exact decimal number of shares (at most 9 decimals). All rows must carry the same statement_id,
account and as_of. Either isin or ticker identifies the security.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime

from custody.statements import ParsedHolding, ParsedStatement, StatementError, shares_to_nano
from custody.statements.semt002 import end_of_day

REQUIRED_COLUMNS = ("statement_id", "account", "as_of", "quantity")


def parse_csv(content: bytes) -> ParsedStatement:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise StatementError("CSV statement is not UTF-8", code="malformed_statement") from None
    try:
        reader = csv.DictReader(io.StringIO(text, newline=""), strict=True)
        header = [name.strip().lower() for name in (reader.fieldnames or [])]
        missing = [column for column in REQUIRED_COLUMNS if column not in header]
        if missing or not ({"isin", "ticker"} & set(header)):
            raise StatementError(f"CSV header must have {', '.join(REQUIRED_COLUMNS)} and isin or ticker; "
                                 f"missing {', '.join(missing) or 'isin/ticker'}", code="malformed_statement")
        reader.fieldnames = header
        rows = list(reader)
    except csv.Error as exc:
        raise StatementError(f"malformed CSV: {exc}", code="malformed_statement") from None
    if not rows:
        raise StatementError("CSV statement has no rows", code="malformed_statement")

    first = rows[0]
    statement_ref, account, as_of_text = (first.get(k, "").strip() for k in ("statement_id", "account", "as_of"))
    if not statement_ref or not account or not as_of_text:
        raise StatementError("row 2: statement_id, account and as_of are required", code="malformed_statement")
    holdings = []
    for line_no, row in enumerate(rows, start=2):
        if None in row:
            raise StatementError(f"row {line_no}: more fields than the header", code="malformed_statement")
        if (row.get("statement_id", "").strip(), row.get("account", "").strip(), row.get("as_of", "").strip()) != (
                statement_ref, account, as_of_text):
            raise StatementError(f"row {line_no}: statement_id, account and as_of differ from the first row",
                                 code="malformed_statement")
        isin, ticker = (row.get("isin") or "").strip(), (row.get("ticker") or "").strip()
        if not isin and not ticker:
            raise StatementError(f"row {line_no}: no isin or ticker", code="malformed_statement")
        quantity = (row.get("quantity") or "").strip()
        if not quantity:
            # An empty holdings list is a header row with no rows; a row without a quantity is an error.
            raise StatementError(f"row {line_no}: missing quantity", code="malformed_statement")
        holdings.append(ParsedHolding(isin=isin, ticker=ticker,
                                      quantity_nano=shares_to_nano(quantity, where=f"row {line_no}")))
    return ParsedStatement(statement_ref=statement_ref, account_number=account, as_of=_as_of(as_of_text),
                           holdings=holdings)


def _as_of(value: str) -> datetime:
    try:
        if len(value) == 10:
            return end_of_day(datetime.strptime(value, "%Y-%m-%d").date())  # noqa: DTZ007
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise StatementError(f"as_of {value!r} is not an ISO date or date-time", code="malformed_statement") from None
    if parsed.tzinfo is None:
        raise StatementError("as_of date-time needs a UTC offset", code="malformed_statement")
    return parsed
