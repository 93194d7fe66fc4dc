"""The signal families: each one's name, labels and help, and the ``Signal`` tuple they are made of.

What /metrics, /v1/signals, alert rules and queries agree on: a rule or a query
may name a family and filter on its labels, and nothing else.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = ["SIGNAL_HELP", "SIGNAL_LABELS", "TRAILING_WINDOWS", "Signal"]

#: Every signal family and the labels it carries: what a query may filter on and an alert on it is labelled with.
SIGNAL_LABELS: dict[str, tuple[str, ...]] = {
    "market_usage": ("entity", "metric"),
    "market_usage_growth_monthly_ratio": ("entity", "metric"),
    "market_investment_usd": ("entity", "period"),
    "market_investment_usd_per_year": ("entity", "period"),
    "market_investment": ("entity", "period", "currency"),
    "market_investment_growth_ratio": ("entity", "period"),
    "market_chip_units": ("buyer", "vendor", "product", "stage"),
    "market_chip_order_value_usd": ("buyer", "vendor", "product"),
    "market_chip_order_value": ("buyer", "vendor", "product", "currency"),
    "market_fx_usd_per_unit": ("currency",),
    "market_export_rule_state": ("authority", "product", "destination"),
    "market_export_rule_changed_timestamp_seconds": ("authority", "product", "destination"),
    "market_peer_ratio": ("entity", "peer", "metric", "period", "peer_period"),
    "market_signal_observed_timestamp_seconds": ("entity", "metric"),
    "market_events_trailing": ("entity", "type", "window"),
}

TRAILING_WINDOWS = {"90d": 90, "365d": 365}
SIGNAL_HELP = {
    "market_usage": "Latest usage figure by event time (point estimate).",
    "market_usage_growth_monthly_ratio": "Compounded monthly growth between the two newest usage figures.",
    "market_investment_usd": "Latest announced AI-infrastructure spending for a period, in USD.",
    "market_investment_usd_per_year": "Announced spending for a period in USD, spread evenly over its years.",
    "market_investment": "Latest announced AI-infrastructure spending for a period, in the currency reported.",
    "market_investment_growth_ratio": "Growth of announced spending versus the previous period of equal length.",
    "market_chip_units": "Chip units summed over distinct live reports, by stage.",
    "market_chip_order_value_usd": "Value of ordered chips in USD: the order value reported, else units times price.",
    "market_chip_order_value": "Value of ordered chips in the currency reported, by currency.",
    "market_fx_usd_per_unit": "Newest exchange rate by event time: US dollars for one unit of the currency.",
    "market_export_rule_state": "Export regime by latest effective date: +1 loosened, -1 tightened.",
    "market_export_rule_changed_timestamp_seconds": "Effective date of the latest export-rule change.",
    "market_peer_ratio": "Entity's latest figure divided by its peer's, for configured peer pairs.",
    "market_signal_observed_timestamp_seconds": "Event time of the newest observation of a signal.",
    "market_events_trailing": "Live events in a trailing window anchored at the entity's newest event.",
}


class Signal(NamedTuple):
    """One derived value with its family name and labels (a tuple: rule evaluation makes many)."""

    name: str
    labels: tuple[tuple[str, str], ...]
    value: float

    def label(self, name: str) -> str:
        """Return one label's value."""
        return dict(self.labels)[name]
