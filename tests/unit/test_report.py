"""Reports read like a person writes: human numbers with units, dates, percentages, a header, a sentence when empty."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.report import (
    alerts_report,
    fact_detail,
    facts_report,
    history_report,
    human_number,
    no_match,
    quantity_text,
    render,
    signal_text,
    signals_report,
    subscriptions_report,
)

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (23e9, "23 B"),
        (375e9, "375 B"),
        (50e12, "50 T"),
        (43e12, "43 T"),
        (159e6, "159 M"),
        (1.5e6, "1.5 M"),
        (1.234e9, "1.23 B"),
        (60_000, "60,000"),
        (999_999, "999,999"),
        (1234.5, "1,234"),
        (1e15, "1,000 T"),
        (1.163, "1.16"),
        (0.0613, "0.0613"),
        (0.5, "0.5"),
        (0, "0"),
        (-2e9, "-2 B"),
    ],
)
def test_a_number_reads_in_thousands_millions_billions_or_trillions(value: float, text: str) -> None:
    assert human_number(value) == text


@given(st.floats(min_value=-1e18, max_value=1e18, allow_nan=False))
def test_no_number_prints_with_an_exponent(value: float) -> None:
    assert "e" not in human_number(value).lower()


@pytest.mark.parametrize(
    ("name", "labels", "value", "text"),
    [
        ("market_investment_usd", {"entity": "bytedance", "period": "2026"}, 23e9, "23 B USD"),
        ("market_investment_usd", {"entity": "us_hyperscalers", "period": "2025"}, 3.75e11, "375 B USD"),
        ("market_investment_usd_per_year", {"entity": "alibaba"}, 1.7e10, "17 B USD/year"),
        ("market_investment", {"entity": "alibaba", "currency": "CNY"}, 380e9, "380 B CNY"),
        ("market_usage", {"entity": "bytedance", "metric": "tokens_per_day"}, 50e12, "50 T tokens/day"),
        ("market_usage", {"entity": "doubao", "metric": "mau"}, 159e6, "159 M users"),
        ("market_chip_units", {"stage": "scheduled"}, 60_000, "60,000 units"),
        ("market_chip_order_value_usd", {"buyer": "bytedance"}, 4e8, "400 M USD"),
        ("market_usage_growth_monthly_ratio", {"metric": "tokens_per_day"}, 0.2910, "+29.1%/month"),
        ("market_usage_growth_monthly_ratio", {"metric": "mau"}, 0.0063, "+0.63%/month"),
        ("market_investment_growth_ratio", {}, -0.25, "-25.0%"),
        ("market_peer_ratio", {"metric": "tokens_per_day"}, 50 / 43, "1.163"),
        ("market_export_rule_state", {"destination": "CN"}, 1.0, "loosened"),
        ("market_export_rule_state", {"destination": "CN"}, -1.0, "tightened"),
        ("market_export_rule_changed_timestamp_seconds", {}, 1764547200.0, "2025-12-01"),
        ("market_signal_observed_timestamp_seconds", {}, 1759276800.0, "2025-10-01"),
        ("market_fx_usd_per_unit", {"currency": "JPY"}, 0.00668137, "0.006681 USD/JPY"),
        ("market_events_trailing", {"window": "90d"}, 3.0, "3 facts"),
        ("market_events_trailing", {"window": "90d"}, 1.0, "1 fact"),
    ],
)
def test_a_signal_reads_with_its_unit(name: str, labels: dict[str, str], value: float, text: str) -> None:
    assert signal_text(name, labels, value) == text


@pytest.mark.parametrize(
    ("quantity", "text"),
    [
        ({"value": 23e9, "unit": "USD", "approx": True}, "about 23 B USD"),
        ({"low": 350e9, "high": 400e9, "unit": "USD"}, "350 B to 400 B USD"),
        ({"low": 30e12, "unit": "tokens_per_day"}, "at least 30 T tokens/day"),
        ({"high": 5e3, "unit": "units"}, "at most 5,000 units"),
        ({"value": 157e6, "unit": "users"}, "157 M users"),
    ],
)
def test_a_figure_reads_as_the_source_gave_it(quantity: dict[str, Any], text: str) -> None:
    assert quantity_text(quantity) == text


SIGNALS = {
    "signals": [
        {"name": "market_usage", "labels": {"entity": "doubao", "metric": "mau"}, "value": 159e6},
        {"name": "market_investment_usd", "labels": {"entity": "bytedance", "period": "2026"}, "value": 23e9},
        {"name": "market_chip_units", "labels": {"buyer": "cn_approved_customers", "stage": "scheduled"}, "value": 6e4},
    ]
}


def test_the_signals_table_has_a_header_and_human_values_aligned_right() -> None:
    # Act
    lines = render(signals_report(SIGNALS, "no signals"), "table").splitlines()

    # Assert
    assert lines[0].split() == ["signal", "labels", "value"]
    assert [line.split()[0] for line in lines[1:]] == ["market_chip_units", "market_investment_usd", "market_usage"]
    assert lines[1].endswith("60,000 units")
    assert lines[2].endswith("23 B USD")
    assert lines[3].endswith("159 M users")
    assert len({len(line) for line in lines[1:]}) == 1  # right-aligned: every row ends in the same column


def test_csv_keeps_raw_values_with_the_unit_apart_and_json_is_the_answer_as_is() -> None:
    report = signals_report(SIGNALS, "no signals")

    rows = list(csv.reader(io.StringIO(render(report, "csv"))))

    assert rows[0] == ["signal", "labels", "value", "unit"]
    assert rows[2] == ["market_investment_usd", "entity=bytedance;period=2026", "23000000000.0", "USD"]
    assert json.loads(render(report, "json")) == SIGNALS


def test_an_empty_answer_says_so_in_a_table_and_keeps_its_header_in_csv() -> None:
    report = facts_report({"facts": [], "next_cursor": None}, no_match("facts", {"entity": "nobody", "as_of": "2025"}))

    assert render(report, "table") == "no facts match entity=nobody as of 2025"
    assert render(report, "csv").splitlines() == [",".join(report.raw_headers)]


def test_no_match_names_only_the_filters_given() -> None:
    assert no_match("signals", {"name": None, "entity": ""}) == "no signals"
    assert no_match("alerts", {"state": "firing", "as_of": None}) == "no alerts match state=firing"


HISTORY = {
    "series": [
        {
            "name": "market_usage",
            "labels": {"entity": "bytedance", "metric": "tokens_per_day"},
            "points": [
                {"date": "2025-10", "value": 30e12, "facts": ["seed-08-bytedance-tokens-2025-10"]},
                {"date": "2025-12", "value": 50e12, "facts": ["seed-09-bytedance-tokens-2025-12"]},
            ],
        }
    ]
}


def test_a_history_reads_one_point_per_row_in_event_time_with_its_facts() -> None:
    lines = render(history_report(HISTORY, "no history"), "table").splitlines()

    assert lines[0].split() == ["labels", "date", "value", "facts"]
    assert "2025-10" in lines[1] and "30 T tokens/day" in lines[1] and "seed-08-bytedance-tokens-2025-10" in lines[1]
    assert "2025-12" in lines[2] and "50 T tokens/day" in lines[2]


FACT = {
    "type": "usage.reported",
    "id": "seed-08-bytedance-tokens-2025-10",
    "occurred_on": "2025-10",
    "known_on": "2025-10-01",
    "entity": "bytedance",
    "metric": "tokens_per_day",
    "value": {"low": 30e12, "unit": "tokens_per_day"},
    "status": "reported",
    "source": {"name": "Financial Times", "url": None, "quote": "a dépassé 30 000 milliards de tokens par jour"},
    "position": {"topic": "market-events", "partition": 1, "offset": 7},
    "retracted_by": None,
}
CHIPS = {
    "type": "chip_delivery.reported",
    "id": "seed-03-bytedance-h200-test-order",
    "occurred_on": "2025-12",
    "buyer": "bytedance",
    "entity": "bytedance",
    "vendor": "nvidia",
    "product": "nvidia_h200",
    "units": {"value": 20000, "unit": "units"},
    "unit_price": {"value": 20000, "unit": "USD", "approx": True},
    "stage": "ordered",
    "status": "planned",
    "source": {"name": "Financial Times"},
    "retracted_by": {"id": "fix-1", "known_on": "2025-12-30"},
}


def test_a_fact_row_says_what_the_fact_says_with_its_source_and_retraction() -> None:
    lines = render(facts_report({"facts": [FACT, CHIPS]}, "no facts"), "table").splitlines()

    assert lines[0].split() == ["occurred", "id", "type", "subject", "fact", "status", "source", "retracted"]
    assert "tokens_per_day at least 30 T tokens/day" in lines[1] and "Financial Times" in lines[1]
    assert "20,000 units nvidia_h200 at about 20,000 USD each from nvidia, ordered" in lines[2]
    assert lines[2].endswith("retracted by fix-1 (2025-12-30)")


def test_a_fact_known_only_by_its_series_fields_still_gets_a_row() -> None:
    legacy = {"type": "usage.reported", "id": "old-1", "occurred_on": "2025-08", "entity": "doubao", "source": None}

    lines = render(facts_report({"facts": [legacy]}, "no facts"), "table").splitlines()

    assert lines[1].split() == ["2025-08", "old-1", "usage.reported", "doubao"]


def test_a_page_without_retracted_facts_has_no_retracted_column() -> None:
    header = render(facts_report({"facts": [FACT]}, "no facts"), "table").splitlines()[0]

    assert "retracted" not in header


def test_one_fact_shows_its_quote_and_the_signals_it_feeds() -> None:
    document = {
        "fact": FACT,
        "signals": [
            {"name": "market_usage", "labels": {"entity": "bytedance", "metric": "tokens_per_day"}, "value": 3e13}
        ],
        "alerts": [],
    }

    text = fact_detail(document)

    assert "quote:     “a dépassé 30 000 milliards de tokens par jour”" in text
    assert "source:    Financial Times" in text
    assert "30 T tokens/day" in text.splitlines()[-1]


def test_alerts_are_listed_most_severe_first_with_their_summary() -> None:
    document = {
        "alerts": [
            {"rule": "usage-growth-stalled", "severity": "warning", "state": "firing", "since": "2025-10",
             "labels": {"entity": "doubao"}, "annotations": {"summary": "doubao mau grows 0.63%"}, "value": 0.0063,
             "cause_ids": ["seed-06", "seed-07"]},
            {"rule": "export-rule-change-china", "severity": "critical", "state": "firing", "since": "2025-12",
             "labels": {"destination": "CN"}, "annotations": {}, "value": 1.0, "cause_ids": ["seed-04"]},
        ]
    }  # fmt: skip

    report = alerts_report(document, "no alerts")
    lines = render(report, "table").splitlines()

    assert lines[0].split() == ["severity", "rule", "state", "since", "summary", "labels"]
    assert lines[1].startswith("critical") and lines[2].startswith("warning")
    assert report.raw[1][-1] == "seed-06 seed-07"


def test_subscriptions_have_a_header_and_say_when_there_are_none() -> None:
    sub = {
        "id": "sub-1",
        "owner": "desk",
        "matchers": '{entity="bytedance"}',
        "channel": {"type": "webhook", "url": "https://hooks.example.org", "secret": "**********"},
        "send_resolved": True,
        "repeat_interval": 0,
    }

    table = render(subscriptions_report({"subscriptions": [sub]}, "no subscriptions"), "table")
    empty = render(subscriptions_report({"subscriptions": []}, "no subscriptions"), "table")

    assert table.splitlines()[0].split() == ["id", "owner", "matchers", "channel", "target", "resolved", "repeat"]
    assert "https://hooks.example.org" in table and "**********" not in table
    assert empty == "no subscriptions"
