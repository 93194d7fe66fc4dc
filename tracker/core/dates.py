"""Dates with the precision the source gave: a year, a month or a day."""

from __future__ import annotations

import calendar
import datetime as dt
import functools
import re
from dataclasses import dataclass
from enum import IntEnum

__all__ = ["PartialDate", "Precision", "months_between"]

_PATTERN = re.compile(r"^([0-9]{4})(?:-([0-9]{2})(?:-([0-9]{2}))?)?$")


class Precision(IntEnum):
    """How much of a date the source gave; larger is more precise."""

    YEAR = 1
    MONTH = 2
    DAY = 3


@dataclass(frozen=True, order=False)
class PartialDate:
    """A calendar date known to a year, a month or a day (``2025``, ``2025-12``, ``2025-12-04``)."""

    year: int
    month: int | None = None
    day: int | None = None

    @classmethod
    def parse(cls, text: str) -> PartialDate:
        """Parse ``YYYY``, ``YYYY-MM`` or ``YYYY-MM-DD``; raise ValueError naming the problem."""
        return _parse(text)

    @classmethod
    def _parse_uncached(cls, text: str) -> PartialDate:
        match = _PATTERN.match(text)
        if match is None:
            raise ValueError("expected YYYY, YYYY-MM or YYYY-MM-DD")
        year = int(match[1])
        month = int(match[2]) if match[2] else None
        day = int(match[3]) if match[3] else None
        if not 1900 <= year <= 2200:
            raise ValueError(f"year {year} is outside 1900-2200")
        if month is not None and not 1 <= month <= 12:
            raise ValueError(f"month {month} does not exist")
        if month is not None and day is not None:
            last = calendar.monthrange(year, month)[1]
            if not 1 <= day <= last:
                raise ValueError(f"day {day} does not exist in {year:04d}-{month:02d}")
        return cls(year, month, day)

    @property
    def precision(self) -> Precision:
        """Return how precisely the date is known."""
        if self.day is not None:
            return Precision.DAY
        if self.month is not None:
            return Precision.MONTH
        return Precision.YEAR

    @functools.cached_property
    def month_index(self) -> float:
        """Return the middle of the period in months since year 0 (event-time arithmetic)."""
        if self.month is None:
            return self.year * 12 + 6.0
        base = self.year * 12 + (self.month - 1)
        if self.day is None:
            return base + 0.5
        days = calendar.monthrange(self.year, self.month)[1]
        return base + (self.day - 0.5) / days

    @functools.cached_property
    def start(self) -> dt.date:
        """Return the first day of the period."""
        return dt.date(self.year, self.month or 1, self.day or 1)

    @property
    def end(self) -> dt.date:
        """Return the last day of the period."""
        if self.month is None:
            return dt.date(self.year, 12, 31)
        if self.day is None:
            return dt.date(self.year, self.month, calendar.monthrange(self.year, self.month)[1])
        return dt.date(self.year, self.month, self.day)

    @property
    def midpoint(self) -> dt.date:
        """Return the middle day of the period, used for timestamps."""
        return self.start + (self.end - self.start) // 2

    def sort_key(self) -> tuple[float, int]:
        """Return a key ordering dates by event time; on a tie the more precise date counts as later."""
        return self._order

    @functools.cached_property
    def _order(self) -> tuple[float, int]:
        # Parsed dates are shared (see _parse) and sorted again and again by rule evaluation.
        return (self.month_index, int(self.precision))

    def __str__(self) -> str:
        if self.month is None:
            return f"{self.year:04d}"
        if self.day is None:
            return f"{self.year:04d}-{self.month:02d}"
        return f"{self.year:04d}-{self.month:02d}-{self.day:02d}"


@functools.lru_cache(maxsize=100_000)
def _parse(text: str) -> PartialDate:
    # Folds and rule evaluation parse the same few thousand dates over and over.
    return PartialDate._parse_uncached(text)


def months_between(earlier: PartialDate, later: PartialDate) -> float:
    """Return the event-time distance in months between the middles of two periods."""
    return later.month_index - earlier.month_index
