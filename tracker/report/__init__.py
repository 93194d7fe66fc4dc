"""Reports for people: the API's JSON as tables with human numbers, as CSV, or as is (pure: no I/O)."""

from tracker.report.numbers import (
    date_of_timestamp,
    human_number,
    percent_text,
    quantity_text,
    signal_text,
    signal_unit,
    unit_text,
)
from tracker.report.render import FORMATS, Format, Report, no_match, render, table_text
from tracker.report.views import (
    alerts_report,
    fact_detail,
    fact_text,
    facts_report,
    history_report,
    labels_text,
    signals_report,
    subscriptions_report,
)

__all__ = [
    "FORMATS",
    "Format",
    "Report",
    "alerts_report",
    "date_of_timestamp",
    "fact_detail",
    "fact_text",
    "facts_report",
    "history_report",
    "human_number",
    "labels_text",
    "no_match",
    "percent_text",
    "quantity_text",
    "render",
    "signal_text",
    "signal_unit",
    "signals_report",
    "subscriptions_report",
    "table_text",
    "unit_text",
]
