from datetime import UTC, date, datetime

import pytest

from custody import calendar


@pytest.mark.parametrize(
    ("trade_date", "days", "expected", "why"),
    [
        # Columbus Day 2025 (Mon 13 Oct): NYSE open, Fed closed -> not a settlement day.
        (date(2025, 10, 10), 1, date(2025, 10, 14), "Columbus Day 2025: exchange open, banks closed"),
        (date(2025, 10, 13), 1, date(2025, 10, 14), "a trade on Columbus Day itself settles next day"),
        # Veterans Day 2025 (Tue 11 Nov): NYSE open, Fed closed.
        (date(2025, 11, 10), 1, date(2025, 11, 12), "Veterans Day 2025"),
        (date(2026, 11, 10), 1, date(2026, 11, 12), "Veterans Day 2026 (Wed)"),
        (date(2026, 10, 9), 1, date(2026, 10, 13), "Columbus Day 2026 (Mon 12 Oct) after a weekend"),
        (date(2027, 10, 8), 1, date(2027, 10, 12), "Columbus Day 2027 (Mon 11 Oct)"),
        (date(2027, 11, 10), 1, date(2027, 11, 12), "Veterans Day 2027 (Thu)"),
        # Good Friday: NYSE closed, banks open -> not a settlement day either.
        (date(2025, 4, 17), 1, date(2025, 4, 21), "Good Friday 2025 (18 Apr)"),
        (date(2026, 4, 2), 1, date(2026, 4, 6), "Good Friday 2026 (3 Apr)"),
        (date(2027, 3, 25), 1, date(2027, 3, 29), "Good Friday 2027 (26 Mar)"),
        # Ad-hoc exchange closure (National Day of Mourning, 9 Jan 2025): banks open, NYSE closed.
        (date(2025, 1, 8), 1, date(2025, 1, 10), "NYSE closed for President Carter's funeral"),
        # Both closed.
        (date(2025, 12, 24), 1, date(2025, 12, 26), "Christmas"),
        (date(2025, 7, 3), 1, date(2025, 7, 7), "Independence Day then the weekend"),
        # An ordinary week, and N other than 1.
        (date(2025, 6, 10), 1, date(2025, 6, 11), "ordinary Tuesday"),
        (date(2025, 10, 9), 2, date(2025, 10, 14), "T+2 over Columbus Day"),
        (date(2025, 11, 7), 2, date(2025, 11, 12), "T+2 over a weekend and Veterans Day"),
        (date(2025, 6, 10), 0, date(2025, 6, 10), "T+0"),
    ],
)
def test_settlement_date(trade_date, days, expected, why):
    assert calendar.settlement_date(trade_date, days) == expected, why


def test_default_is_t_plus_one():
    assert calendar.settlement_date(date(2025, 10, 10)) == date(2025, 10, 14)


def test_the_two_calendars_really_differ_on_those_days():
    assert calendar.is_exchange_session(date(2025, 10, 13)) and not calendar.is_bank_business_day(date(2025, 10, 13))
    assert calendar.is_exchange_session(date(2026, 11, 11)) and not calendar.is_bank_business_day(date(2026, 11, 11))
    assert not calendar.is_exchange_session(date(2026, 4, 3)) and calendar.is_bank_business_day(date(2026, 4, 3))


@pytest.mark.parametrize("bad", [-1, 31, True, "1"])
def test_settlement_days_validated(bad):
    with pytest.raises(ValueError):
        calendar.settlement_date(date(2025, 6, 10), bad)


def test_trade_date_must_be_a_date():
    with pytest.raises(TypeError):
        calendar.settlement_date(datetime(2025, 6, 10, tzinfo=UTC))


def test_market_hours_and_next_open():
    assert calendar.is_market_open(datetime(2025, 11, 24, 15, 0, tzinfo=UTC))  # 10:00 New York
    assert not calendar.is_market_open(datetime(2025, 11, 24, 21, 30, tzinfo=UTC))  # after the close
    # Day after Thanksgiving 2025 closes early at 13:00 New York (18:00 UTC).
    assert calendar.is_market_open(datetime(2025, 11, 28, 17, 59, tzinfo=UTC))
    assert not calendar.is_market_open(datetime(2025, 11, 28, 18, 30, tzinfo=UTC))
    # Friday evening -> Monday 09:30 New York; Good Friday 2026 -> Monday 6 April.
    assert calendar.next_market_open(datetime(2025, 11, 21, 22, 0, tzinfo=UTC)) == datetime(2025, 11, 24, 14, 30, tzinfo=UTC)
    assert calendar.next_market_open(datetime(2026, 4, 2, 21, 0, tzinfo=UTC)) == datetime(2026, 4, 6, 13, 30, tzinfo=UTC)


def test_naive_datetimes_refused():
    with pytest.raises(ValueError):
        calendar.is_market_open(datetime(2025, 11, 24, 15, 0))  # noqa: DTZ001


def test_trade_date_is_new_york_date():
    assert calendar.trade_date_of(datetime(2025, 6, 11, 1, 0, tzinfo=UTC)) == date(2025, 6, 10)
