"""Contract v2: its new fields refuse bad input by name, v1 records keep their ids, the samples convert."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tracker.core.alerts import evaluate
from tracker.core.decode import split_records, validate_event
from tracker.core.events import ChipDeliveryReported, Event, FxRateReported, InvestmentAnnounced
from tracker.core.fold import Projection, fact_payload
from tracker.core.routing import Router, parse_peers
from tracker.core.signals import derive_signals
from tracker.demo import DEMO_EVENTS
from tracker.errors import EventValidationError
from tracker.rules_file import load_rules, parse_rules

pytestmark = pytest.mark.unit

RawFactory = Callable[..., dict[str, Any]]
ROOT = Path(__file__).resolve().parents[2]
SAMPLES = ROOT / "events" / "samples"
BRIEF_PEERS = "bytedance:google:tokens_per_day,bytedance:us_hyperscalers:investment_usd"


def refusal(data: dict[str, Any]) -> list[str]:
    """Validate ``data`` and return the refusal as ``path: reason`` lines."""
    with pytest.raises(EventValidationError) as refused:
        validate_event(data)
    return [str(error) for error in refused.value.errors]


def read_events(*names: str) -> list[Event]:
    """Return the events of sample files, failing on any invalid line."""
    events = []
    for name in names:
        for record in split_records((ROOT / name).read_bytes()):
            assert record.event is not None, (name, record.line, record.errors)
            events.append(record.event)
    return events


# --- field-named refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "reason"),
    [
        ("2029-2025", "the span ends in 2025, before it starts in 2029"),
        ("1985-1995", "year 1985 of the span is outside 1990-2200"),
        ("2025-2201", "year 2201 of the span is outside 1990-2200"),
        ("2025/2029", "Input should be a valid integer"),
        ("2025-29", "Input should be a valid integer"),
        (2201, "Input should be less than or equal to 2200"),
        (True, "Input should be a valid integer"),
    ],
)
def test_a_bad_period_is_refused_at_its_field(raw_event_factory: RawFactory, period: object, reason: str) -> None:
    assert refusal(raw_event_factory("investment.announced", period=period)) == [f"period: {reason}"]


def test_a_span_keeps_its_years_and_a_one_year_span_is_that_year(raw_event_factory: RawFactory) -> None:
    span = validate_event(raw_event_factory("investment.announced", period="2025-2029"))
    one = validate_event(raw_event_factory("investment.announced", period="2026-2026"))
    year = validate_event(raw_event_factory("investment.announced", period=2026))

    assert isinstance(span, InvestmentAnnounced) and isinstance(one, InvestmentAnnounced)
    assert (span.period, span.span.years, str(span.span)) == ("2025-2029", 5, "2025-2029")
    assert one.period == 2026 and one.event_id == year.event_id


def test_an_order_with_neither_units_nor_value_is_refused_at_units(raw_event_factory: RawFactory) -> None:
    data = raw_event_factory("chip_delivery.reported", units=None)

    assert refusal(data) == ["units: give units, order_value, or both"]


def test_a_bad_order_value_is_the_only_error_of_an_order_without_units(raw_event_factory: RawFactory) -> None:
    data = raw_event_factory("chip_delivery.reported", units=None, order_value={"value": 2e9, "unit": "US$"})

    assert refusal(data) == [
        "order_value.unit: unknown currency code 'US$': expected an ISO 4217 code such as USD, EUR, CNY"
    ]


def test_an_order_known_only_by_its_value_is_accepted(raw_event_factory: RawFactory) -> None:
    event = validate_event(
        raw_event_factory("chip_delivery.reported", units=None, order_value={"low": 2e9, "unit": "USD"})
    )

    assert isinstance(event, ChipDeliveryReported)
    assert event.units is None and event.order_value is not None and event.order_value.point == 2e9


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"usd_per_unit": 0}, "usd_per_unit: Input should be greater than 0"),
        ({"usd_per_unit": -0.14}, "usd_per_unit: Input should be greater than 0"),
        ({"usd_per_unit": "0.14"}, "usd_per_unit: Input should be a valid number"),
        ({"currency": "USD"}, "currency: USD needs no rate: a dollar is a dollar"),
        (
            {"currency": "RMB"},
            "currency: unknown currency code 'RMB': expected an ISO 4217 code such as USD, EUR, CNY",
        ),
        ({"usd_per_unit": None}, "usd_per_unit: Field required"),
    ],
)
def test_a_bad_rate_is_refused_at_its_field(
    raw_event_factory: RawFactory, overrides: dict[str, Any], expected: str
) -> None:
    assert refusal(raw_event_factory("fx_rate.reported", **overrides)) == [expected]


@pytest.mark.parametrize("currency", ["EUR", "CNY", "JPY", "KRW", "GBP", "INR", "SAR", "AED"])
def test_money_takes_the_currencies_of_the_news(raw_event_factory: RawFactory, currency: str) -> None:
    event = validate_event(raw_event_factory("investment.announced", amount={"value": 1e9, "unit": currency}))

    assert isinstance(event, InvestmentAnnounced) and event.amount.unit == currency


# --- v1 records are what they were ------------------------------------------------------------------------


def test_a_v1_record_keeps_its_v1_id_and_payload() -> None:
    # Ids derived under contract v1 (before order_value existed), for records without an id.
    chip = {
        "type": "chip_delivery.reported",
        "entity": "a",
        "vendor": "n",
        "product": "p",
        "units": {"value": 5, "unit": "units"},
        "stage": "ordered",
        "occurred_on": "2025",
        "source": {"name": "x"},
    }
    capex = {
        "type": "investment.announced",
        "entity": "a",
        "amount": {"low": 5, "unit": "USD"},
        "period": 2025,
        "occurred_on": "2025",
        "source": {"name": "x"},
    }

    chip_event, capex_event = validate_event(chip), validate_event(capex)

    assert chip_event.event_id == "ev-1bb2c0519731f223ce7ca487"
    assert capex_event.event_id == "ev-e7f876b3bb906c987385099d"
    # A v1 payload has no v2 tail, so state folded before v2 reads the same.
    assert fact_payload(chip_event)[1:] == ["2025", "ordered", 5.0, None]
    assert fact_payload(capex_event)[1:] == ["2025", 2025, 5.0]


# --- the samples ------------------------------------------------------------------------------------------


def test_the_v2_samples_hold_one_fact_of_each_new_shape() -> None:
    events = read_events("events/samples/contract-v2.jsonl")
    rates = read_events("events/samples/fx-rates.jsonl")

    spans = [e for e in events if isinstance(e, InvestmentAnnounced) and e.span.years > 1]
    foreign = [e for e in events if isinstance(e, InvestmentAnnounced) and e.amount.unit != "USD"]
    by_value = [e for e in events if isinstance(e, ChipDeliveryReported) and e.units is None and e.order_value]
    assert spans and foreign and by_value
    assert rates and all(isinstance(rate, FxRateReported) and rate.source.url for rate in rates)
    assert {e.amount.unit for e in foreign} <= {rate.currency for rate in rates if isinstance(rate, FxRateReported)}


def test_the_demo_converts_the_v2_samples_and_keeps_the_seeds_signals_and_three_alerts() -> None:
    router = Router(parse_peers(BRIEF_PEERS))
    seed = Projection(router).replay(read_events("events/samples/seed.jsonl")).state
    everything = Projection(router).replay(read_events(*DEMO_EVENTS)).state

    before = {(s.name, s.labels): s.value for s in derive_signals(router, seed)}
    after = {(s.name, s.labels): s.value for s in derive_signals(router, everything)}

    assert {key: after[key] for key in before} == before
    assert after[("market_investment_usd", (("entity", "alibaba"), ("period", "2025-2027")))] == 380e9 * 0.13729663
    # Announced on 11 November 2024: October's monthly average is the newest rate at or before it.
    assert after[("market_investment_usd", (("entity", "japan_government"), ("period", "2024-2030")))] == (
        10e12 * 0.00668137
    )
    assert (
        after[
            (
                "market_chip_order_value_usd",
                (("buyer", "cn_internet_majors"), ("vendor", "nvidia"), ("product", "nvidia_a800")),
            )
        ]
        == 1e9
    )
    rules = load_rules(None)
    groups: dict[str, dict[str, Any]] = {}
    rates = {key: value for key, value in everything.items() if "/fx/" in key}
    for key, value in everything.items():
        if not key.startswith("#"):
            groups.setdefault(key.partition("/")[0], dict(rates))[key] = value
    fired = sorted(alert.rule for group in groups.values() for alert in evaluate(rules, router, group).values())
    assert fired == ["export-rule-change-china", "peer-overtake-tokens", "usage-growth-stalled"]


def test_the_rates_file_quotes_what_it_converts() -> None:
    # usd_per_unit is 1 / the quoted units per dollar, to 8 decimals.
    for line in (SAMPLES / "fx-rates.jsonl").read_text().splitlines():
        data = json.loads(line)
        quoted = float(data["source"]["quote"].rsplit(" ", 1)[1])
        assert data["usd_per_unit"] == round(1 / quoted, 8)


def test_a_threshold_rule_on_per_year_spending_reads_spans_converted_at_their_rate() -> None:
    rules = parse_rules(
        "rules:\n  - name: big-plan\n    severity: info\n"
        "    threshold: {signal: market_investment_usd_per_year, above: 1.0e+10}\n"
    )
    router = Router()
    events = read_events("events/samples/contract-v2.jsonl", "events/samples/fx-rates.jsonl")
    state = Projection(router).replay(events).state
    rates = {key: value for key, value in state.items() if "/fx/" in key}
    groups = {key.partition("/")[0] for key in state if not key.startswith("#")}

    fired = [
        alert
        for group in sorted(groups)
        for alert in evaluate(
            rules, router, {**rates, **{k: v for k, v in state.items() if k.startswith(f"{group}/")}}
        ).values()
        if alert.state == "firing"
    ]

    # Alibaba: 380e9 yuan over three years is about 1.74e10 dollars a year; Japan's about 9.5e9 stays under.
    assert [(alert.labels["entity"], alert.labels["period"]) for alert in fired] == [("alibaba", "2025-2027")]


def test_an_investment_peer_ratio_compares_per_year_dollars_and_names_both_periods() -> None:
    router = Router(parse_peers("bytedance:alibaba:investment_usd"))
    seed = read_events("events/samples/seed.jsonl")[:1]  # bytedance: about 23e9 USD for 2026
    alibaba = read_events("events/samples/contract-v2.jsonl")[:1]  # 380e9 CNY for 2025-2027
    rates = read_events("events/samples/fx-rates.jsonl")

    def ratios(events: list[Event]) -> dict[tuple[tuple[str, str], ...], float]:
        state = Projection(router).replay(events).state
        return {s.labels: s.value for s in derive_signals(router, state) if s.name == "market_peer_ratio"}

    without_rate, with_rates = ratios([*seed, *alibaba]), ratios([*seed, *alibaba, *rates])

    assert without_rate == {}  # alibaba's plan has no dollar figure yet: no ratio, not a ratio of yuan
    labels = (
        ("entity", "bytedance"),
        ("peer", "alibaba"),
        ("metric", "investment_usd"),
        ("period", "2026"),
        ("peer_period", "2025-2027"),
    )
    assert with_rates == {labels: pytest.approx(23e9 / (380e9 * 0.13729663 / 3), rel=1e-12)}
