"""The period an investment is for: one year (``2025``) or an inclusive span of years (``"2025-2029"``)."""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

from pydantic_core import PydanticCustomError

__all__ = ["FIRST_YEAR", "LAST_YEAR", "Period", "check_period"]

FIRST_YEAR, LAST_YEAR = 1990, 2200
_SPAN = re.compile(r"^([0-9]{4})-([0-9]{4})$")


class Period(NamedTuple):
    """An inclusive span of years; a single year is a span of one."""

    first: int
    last: int

    @property
    def years(self) -> int:
        """Return how many years the span covers (1 for a single year)."""
        return self.last - self.first + 1

    def shifted(self, years: int) -> Period:
        """Return the span of the same length ``years`` later (earlier if negative)."""
        return Period(self.first + years, self.last + years)

    def __str__(self) -> str:
        return str(self.first) if self.first == self.last else f"{self.first}-{self.last}"

    @classmethod
    def of(cls, period: int | str) -> Period:
        """Return the span of a validated ``period`` field (an int year or ``"YYYY-YYYY"``)."""
        return _of(period)


@functools.lru_cache(maxsize=4096)
def _of(period: int | str) -> Period:
    # Signals read the period of every announcement again at each derivation.
    if isinstance(period, int):
        return Period(period, period)
    first, _, last = period.partition("-")
    return Period(int(first), int(last))


def check_period(value: object) -> int | str:
    """Validate a ``period``: a JSON integer year, or a text span ``"YYYY-YYYY"`` (inclusive).

    A span of one year (``"2025-2025"``) is the year itself (``2025``), so both spellings
    give one fact one id. Errors repeat pydantic's own wording for the integer form, the
    only form contract v1 knew.
    """
    if isinstance(value, str):
        match = _SPAN.match(value)
        if match is None:
            raise PydanticCustomError("int_type", "Input should be a valid integer")
        first, last = int(match[1]), int(match[2])
        for year in (first, last):
            if not FIRST_YEAR <= year <= LAST_YEAR:
                raise PydanticCustomError(
                    "period_span", "year {year} of the span is outside {low}-{high}", _bounds(year)
                )
        if last < first:
            raise PydanticCustomError(
                "period_span", "the span ends in {last}, before it starts in {first}", {"first": first, "last": last}
            )
        return first if first == last else f"{first}-{last}"
    if isinstance(value, bool) or not isinstance(value, int):
        raise PydanticCustomError("int_type", "Input should be a valid integer")
    if value < FIRST_YEAR:
        raise PydanticCustomError(
            "greater_than_equal", "Input should be greater than or equal to {ge}", {"ge": FIRST_YEAR}
        )
    if value > LAST_YEAR:
        raise PydanticCustomError("less_than_equal", "Input should be less than or equal to {le}", {"le": LAST_YEAR})
    return value


def _bounds(year: int) -> dict[str, int]:
    return {"year": year, "low": FIRST_YEAR, "high": LAST_YEAR}
