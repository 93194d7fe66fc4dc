"""Dates with the precision the source gave: parsing, precision and event-time arithmetic."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.core.dates import PartialDate, Precision, months_between

pytestmark = pytest.mark.unit

days = st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2200, 12, 31))


@st.composite
def partial_dates(draw: st.DrawFn) -> PartialDate:
    """Draw a date known to a year, a month or a day."""
    day = draw(days)
    precision = draw(st.sampled_from(Precision))
    if precision is Precision.YEAR:
        return PartialDate(day.year)
    if precision is Precision.MONTH:
        return PartialDate(day.year, day.month)
    return PartialDate(day.year, day.month, day.day)


@pytest.mark.parametrize(
    ("text", "expected", "precision"),
    [
        ("2026", PartialDate(2026), Precision.YEAR),
        ("2025-12", PartialDate(2025, 12), Precision.MONTH),
        ("2025-12-04", PartialDate(2025, 12, 4), Precision.DAY),
        ("2024-02-29", PartialDate(2024, 2, 29), Precision.DAY),
        ("1900", PartialDate(1900), Precision.YEAR),
        ("2200-12-31", PartialDate(2200, 12, 31), Precision.DAY),
    ],
)
def test_a_date_keeps_the_precision_its_text_gave(text: str, expected: PartialDate, precision: Precision) -> None:
    date = PartialDate.parse(text)

    assert date == expected
    assert date.precision is precision
    assert str(date) == text


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "expected YYYY, YYYY-MM or YYYY-MM-DD"),
        ("25", "expected YYYY, YYYY-MM or YYYY-MM-DD"),
        ("2025-1", "expected YYYY, YYYY-MM or YYYY-MM-DD"),
        ("2025-12-4", "expected YYYY, YYYY-MM or YYYY-MM-DD"),
        ("2025/12/04", "expected YYYY, YYYY-MM or YYYY-MM-DD"),
        ("December 2025", "expected YYYY, YYYY-MM or YYYY-MM-DD"),
        ("2025-12-04T10:00", "expected YYYY, YYYY-MM or YYYY-MM-DD"),
        ("1899", "year 1899 is outside 1900-2200"),
        ("2201-01", "year 2201 is outside 1900-2200"),
        ("2025-00", "month 0 does not exist"),
        ("2025-13", "month 13 does not exist"),
        ("2025-04-31", "day 31 does not exist in 2025-04"),
        ("2025-02-29", "day 29 does not exist in 2025-02"),
        ("2025-12-00", "day 0 does not exist in 2025-12"),
    ],
)
def test_a_malformed_or_impossible_date_is_refused_with_its_reason(text: str, message: str) -> None:
    with pytest.raises(ValueError) as refused:
        PartialDate.parse(text)

    assert str(refused.value) == message


def test_the_month_index_is_the_middle_of_the_period() -> None:
    year, month, day = PartialDate.parse("2025"), PartialDate.parse("2025-12"), PartialDate(2025, 12, 1)

    indices = (year.month_index, month.month_index, day.month_index)

    assert indices == (2025 * 12 + 6.0, 2025 * 12 + 11.5, 2025 * 12 + 11 + 0.5 / 31)


def test_october_to_december_is_two_months_of_event_time() -> None:
    october, december = PartialDate.parse("2025-10"), PartialDate.parse("2025-12")

    assert months_between(october, december) == 2.0
    assert months_between(december, october) == -2.0


def test_a_year_is_as_far_from_the_next_year_as_twelve_months() -> None:
    assert months_between(PartialDate(2025), PartialDate(2026)) == 12.0


def test_the_period_bounds_follow_the_precision() -> None:
    year, month, day = PartialDate(2024), PartialDate(2024, 2), PartialDate(2024, 2, 10)

    assert (year.start, year.end) == (dt.date(2024, 1, 1), dt.date(2024, 12, 31))
    assert (month.start, month.end) == (dt.date(2024, 2, 1), dt.date(2024, 2, 29))
    assert (day.start, day.end, day.midpoint) == (dt.date(2024, 2, 10),) * 3
    assert month.midpoint == dt.date(2024, 2, 15)


def test_on_equal_event_time_the_more_precise_date_counts_as_later() -> None:
    # July has 31 days, so the middle of its 16th day is the middle of the month.
    month, day = PartialDate(2025, 7), PartialDate(2025, 7, 16)

    ordered = sorted([month, day], key=PartialDate.sort_key)

    assert month.month_index == day.month_index
    assert ordered == [month, day]


@given(partial_dates())
def test_printing_then_parsing_a_date_gives_it_back(date: PartialDate) -> None:
    text = str(date)

    assert PartialDate.parse(text) == date
    assert PartialDate.parse(text).precision is date.precision


@given(partial_dates())
def test_the_month_index_lies_inside_the_period(date: PartialDate) -> None:
    start = date.start.year * 12 + date.start.month - 1
    end = date.end.year * 12 + date.end.month

    assert start < date.month_index < end
    assert date.start <= date.midpoint <= date.end


@given(partial_dates(), partial_dates())
def test_months_between_is_antisymmetric_and_agrees_with_the_order(first: PartialDate, second: PartialDate) -> None:
    distance = months_between(first, second)

    assert distance == -months_between(second, first)
    if distance > 0:
        assert sorted([second, first], key=PartialDate.sort_key) == [first, second]


@given(partial_dates(), partial_dates(), partial_dates())
def test_months_between_adds_up_along_a_chain(first: PartialDate, second: PartialDate, third: PartialDate) -> None:
    total = months_between(first, second) + months_between(second, third)

    assert total == pytest.approx(months_between(first, third), abs=1e-9)


@given(days)
def test_a_day_sorts_inside_its_month_and_its_month_inside_its_year(day: dt.date) -> None:
    as_day = PartialDate(day.year, day.month, day.day)
    as_month = PartialDate(day.year, day.month)

    assert as_month.month_index - 0.5 < as_day.month_index < as_month.month_index + 0.5
    assert PartialDate(day.year).month_index - 6 < as_month.month_index < PartialDate(day.year).month_index + 6
