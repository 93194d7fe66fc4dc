"""Numbers, units and dates as a person reads them: ``23 B USD``, ``50 T tokens/day``, ``+29.1%/month``."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "date_of_timestamp",
    "human_number",
    "percent_text",
    "quantity_text",
    "signal_text",
    "signal_unit",
    "unit_text",
]

#: Short scales, largest first: the figures analysts read are "billions" and "trillions".
_SCALES = ((1e12, "T"), (1e9, "B"), (1e6, "M"))
#: How a quantity's or a metric's unit reads in a sentence.
_UNIT_WORDS = {
    "tokens_per_day": "tokens/day",
    "tokens_per_month": "tokens/month",
    "mau": "users",
    "wau": "users",
    "dau": "users",
    "investment_usd": "USD",
}
_EXPORT_DIRECTIONS = {1.0: "loosened", -1.0: "tightened"}


def _significant(value: float, digits: int = 3) -> str:
    """Return ``value`` to ``digits`` significant digits, no exponent, no trailing zeros, commas past 999."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = math.floor(math.log10(abs(value)))
    decimals = max(0, digits - 1 - magnitude)
    text = f"{value:,.{decimals}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text


def human_number(value: float) -> str:
    """Return a number as people write it: ``23 B``, ``375 B``, ``50 T``, ``159 M``, ``60,000``, ``1.16``."""
    for scale, suffix in _SCALES:
        if abs(value) >= scale:
            return f"{_significant(value / scale)} {suffix}"
    if abs(value) >= 1000:
        return f"{round(value):,}"
    return _significant(value)


def unit_text(unit: str) -> str:
    """Return a unit as it reads after a number (``tokens_per_day`` is ``tokens/day``)."""
    return _UNIT_WORDS.get(unit, unit)


def _with_unit(number: str, unit: str) -> str:
    return f"{number} {unit}" if unit else number


def quantity_text(quantity: Mapping[str, Any]) -> str:
    """Return a reported figure as the source put it: a point, a range, a bound, maybe approximate."""
    unit = unit_text(str(quantity.get("unit", "")))
    value, low, high = quantity.get("value"), quantity.get("low"), quantity.get("high")
    if value is not None:
        text = _with_unit(human_number(value), unit)
        return f"about {text}" if quantity.get("approx") else text
    if low is not None and high is not None:
        return _with_unit(f"{human_number(low)} to {human_number(high)}", unit)
    if low is not None:
        return f"at least {_with_unit(human_number(low), unit)}"
    if high is not None:
        return f"at most {_with_unit(human_number(high), unit)}"
    return unit


def percent_text(ratio: float) -> str:
    """Return a ratio as a signed percentage: two decimals under 10%, one above (``+0.63%``, ``+29.1%``)."""
    percent = ratio * 100
    return f"{percent:+.2f}%" if abs(percent) < 10 else f"{percent:+.1f}%"


def date_of_timestamp(seconds: float) -> str:
    """Return the UTC date of a Unix timestamp (signals carry event dates as timestamps)."""
    return dt.datetime.fromtimestamp(seconds, dt.UTC).date().isoformat()


def signal_unit(name: str, labels: Mapping[str, str]) -> str:
    """Return the unit a signal family's value is in, given its labels ("" for a plain ratio)."""
    if name == "market_usage":
        return unit_text(labels.get("metric", ""))
    if name.endswith("_usd") or name == "market_investment_usd_per_year":
        return "USD/year" if name.endswith("_per_year") else "USD"
    if name in ("market_investment", "market_chip_order_value"):
        return labels.get("currency", "")
    if name == "market_chip_units":
        return "units"
    if name == "market_fx_usd_per_unit":
        return f"USD/{labels.get('currency', 'unit')}"
    if name == "market_events_trailing":
        return "facts"
    return ""


def signal_text(name: str, labels: Mapping[str, str], value: float) -> str:
    """Return a signal's value for a person: with its unit, a growth as a percentage, a date as a date."""
    if name.endswith("_timestamp_seconds"):
        return date_of_timestamp(value)
    if name == "market_export_rule_state":
        return _EXPORT_DIRECTIONS.get(value, human_number(value))
    if name == "market_usage_growth_monthly_ratio":
        return f"{percent_text(value)}/month"
    if name == "market_investment_growth_ratio":
        return percent_text(value)
    if name == "market_fx_usd_per_unit":
        return _with_unit(_significant(value, 4), signal_unit(name, labels))
    if name == "market_peer_ratio":
        return _significant(value, 4)
    if name == "market_events_trailing" and value == 1:
        return "1 fact"
    return _with_unit(human_number(value), signal_unit(name, labels))
