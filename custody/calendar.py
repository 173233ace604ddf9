"""Trading and settlement calendar.

A US equity trade settles on the Nth day after the trade date on which both the exchange (NYSE,
via exchange_calendars' XNYS, which includes ad-hoc closures) and the settlement banks (the
Federal Reserve's holiday calendar, via `holidays`' XFED) are open. The two differ: the exchange
trades on Columbus Day and Veterans Day when banks are closed, and banks work on Good Friday when
the exchange is closed. No holiday is written by hand here.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from functools import lru_cache

import exchange_calendars
import holidays
import pandas as pd

# Bounds of the exchange calendar we build; rules-based holidays are known that far ahead.
_CALENDAR_START = "2000-01-03"
_CALENDAR_END = "2045-12-29"
DEFAULT_SETTLEMENT_DAYS = 1
_MAX_SETTLEMENT_DAYS = 30


@lru_cache(maxsize=1)
def exchange() -> exchange_calendars.ExchangeCalendar:
    return exchange_calendars.get_calendar("XNYS", start=_CALENDAR_START, end=_CALENDAR_END)


@lru_cache(maxsize=1)
def _fed_holidays() -> holidays.HolidayBase:
    return holidays.financial_holidays("XFED")


def is_exchange_session(day: date) -> bool:
    return bool(exchange().is_session(pd.Timestamp(day)))


def is_bank_business_day(day: date) -> bool:
    return day.weekday() < 5 and day not in _fed_holidays()


def is_settlement_day(day: date) -> bool:
    return is_exchange_session(day) and is_bank_business_day(day)


def settlement_date(trade_date: date, settlement_days: int = DEFAULT_SETTLEMENT_DAYS) -> date:
    """The date a trade made on `trade_date` settles: the `settlement_days`-th following day on
    which both the exchange and the settlement banks are open (T+0 settles on T itself)."""
    if isinstance(trade_date, datetime) or not isinstance(trade_date, date):
        raise TypeError("trade_date must be a date")
    if isinstance(settlement_days, bool) or not isinstance(settlement_days, int) or not 0 <= settlement_days <= _MAX_SETTLEMENT_DAYS:
        raise ValueError(f"settlement_days must be an integer in 0..{_MAX_SETTLEMENT_DAYS}")
    day, remaining = trade_date, settlement_days
    while remaining:
        day += timedelta(days=1)
        if is_settlement_day(day):
            remaining -= 1
    return day


def _utc(at: datetime) -> pd.Timestamp:
    if at.tzinfo is None:
        raise ValueError("an aware datetime is required")
    return pd.Timestamp(at).tz_convert("UTC")


def is_market_open(at: datetime) -> bool:
    """Whether the exchange's regular session is open at `at` (early closes included)."""
    return bool(exchange().is_open_on_minute(_utc(at).floor("min")))


def next_market_open(after: datetime) -> datetime:
    """The next regular-session open strictly after `after`, as an aware UTC datetime."""
    return exchange().next_open(_utc(after)).to_pydatetime()


def trade_date_of(executed_at: datetime) -> date:
    """The exchange-local (New York) date of an execution."""
    return _utc(executed_at).tz_convert("America/New_York").date()
