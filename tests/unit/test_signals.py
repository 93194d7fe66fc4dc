"""Signals derived from the fold: every family, and the brief's figures for the seed article."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from tracker.core.catalogue import SIGNAL_HELP, Signal
from tracker.core.events import Event
from tracker.core.fold import Projection
from tracker.core.routing import Router, parse_peers
from tracker.core.signals import derive_signals

pytestmark = pytest.mark.unit

EventFactory = Callable[..., Event]
SignalKey = tuple[str, tuple[tuple[str, str], ...]]

SEED_9 = "seed-09-bytedance-tokens-2025-12"


def signals_of(events: Iterable[Event], router: Router | None = None) -> dict[SignalKey, float]:
    """Fold ``events`` and return every derived signal by name and labels, checking none repeats."""
    router = router or Router()
    signals = derive_signals(router, Projection(router).replay(events).state)
    by_key = {(signal.name, signal.labels): signal.value for signal in signals}
    assert len(by_key) == len(signals), "a signal was derived twice"
    return by_key


def key(name: str, **labels: str) -> SignalKey:
    """Return the key of one signal, its labels in the order the family declares them."""
    return name, tuple(labels.items())


def family(signals: dict[SignalKey, float], name: str) -> dict[tuple[tuple[str, str], ...], float]:
    """Return the signals of one family by labels."""
    return {labels: value for (found, labels), value in signals.items() if found == name}


def midnight_utc(year: int, month: int = 1, day: int = 1) -> float:
    """Return the Unix time of a day's start in UTC."""
    return dt.datetime(year, month, day, tzinfo=dt.UTC).timestamp()


# --- the seed article ------------------------------------------------------------------------------------


@pytest.fixture
def seed_signals(seed_events: tuple[Event, ...], router: Router) -> dict[SignalKey, float]:
    return signals_of(seed_events, router)


def test_the_seed_article_encodes_the_ten_facts_of_the_brief(seed_events: tuple[Event, ...]) -> None:
    kinds = [event.type for event in seed_events]

    assert kinds == [
        "investment.announced",
        "investment.announced",
        "chip_delivery.reported",
        "export_rule.changed",
        "chip_delivery.reported",
        "usage.reported",
        "usage.reported",
        "usage.reported",
        "usage.reported",
        "usage.reported",
    ]
    assert seed_events[8].event_id == SEED_9


@pytest.mark.parametrize(
    ("signal", "expected"),
    [
        (key("market_usage", entity="bytedance", metric="tokens_per_day"), 5.0e13),
        (key("market_usage", entity="google", metric="tokens_per_day"), 4.3e13),
        (key("market_usage", entity="doubao", metric="mau"), 1.59e8),
        (key("market_investment_usd", entity="bytedance", period="2026"), 2.3e10),
        (key("market_investment_usd", entity="us_hyperscalers", period="2025"), 3.75e11),
        (key("market_chip_units", buyer="bytedance", vendor="nvidia", product="nvidia_h200", stage="ordered"), 20000),
        (key("market_chip_order_value_usd", buyer="bytedance", vendor="nvidia", product="nvidia_h200"), 4.0e8),
        (
            key(
                "market_chip_units",
                buyer="cn_approved_customers",
                vendor="nvidia",
                product="nvidia_h200",
                stage="scheduled",
            ),
            60000,
        ),
        (key("market_export_rule_state", authority="us_government", product="nvidia_h200", destination="CN"), 1),
    ],
    ids=lambda item: item[0] if isinstance(item, tuple) else None,
)
def test_the_seed_article_yields_the_briefs_exact_figures(
    seed_signals: dict[SignalKey, float], signal: SignalKey, expected: float
) -> None:
    assert seed_signals[signal] == expected


@pytest.mark.parametrize(
    ("signal", "expected", "brief"),
    [
        (
            key("market_usage_growth_monthly_ratio", entity="bytedance", metric="tokens_per_day"),
            (50 / 30) ** 0.5 - 1,
            "0.29",
        ),
        (key("market_usage_growth_monthly_ratio", entity="doubao", metric="mau"), (159 / 157) ** 0.5 - 1, "0.0063"),
        (key("market_peer_ratio", entity="bytedance", peer="google", metric="tokens_per_day"), 50 / 43, "1.163"),
        (
            key(
                "market_peer_ratio",
                entity="bytedance",
                peer="us_hyperscalers",
                metric="investment_usd",
                period="2026",
                peer_period="2025",
            ),
            23 / 375,
            "0.0613",
        ),
    ],
    ids=["bytedance-growth", "doubao-growth", "tokens-ratio", "investment-ratio"],
)
def test_the_seed_article_yields_the_briefs_ratios(
    seed_signals: dict[SignalKey, float], signal: SignalKey, expected: float, brief: str
) -> None:
    value = seed_signals[signal]

    decimals = len(brief.partition(".")[2])
    assert value == pytest.approx(expected, rel=1e-12)
    assert f"{value:.{decimals}f}" == brief


def test_the_seed_article_yields_no_investment_growth_and_no_other_ratio(seed_signals: dict[SignalKey, float]) -> None:
    ratios = family(seed_signals, "market_peer_ratio")

    assert family(seed_signals, "market_investment_growth_ratio") == {}
    assert len(ratios) == 2
    assert set(family(seed_signals, "market_usage_growth_monthly_ratio")) == {
        (("entity", "bytedance"), ("metric", "tokens_per_day")),
        (("entity", "doubao"), ("metric", "mau")),
    }


def test_retracting_event_9_falls_back_to_october_and_republishing_restores_it(
    seed_events: tuple[Event, ...], router: Router, event_factory: EventFactory
) -> None:
    retraction = event_factory("event.retracted", target_id=SEED_9, reason="figure misread")
    republished = event_factory(
        "usage.reported",
        id="seed-09-bytedance-tokens-2025-12-corrected",
        entity="bytedance",
        metric="tokens_per_day",
        value={"value": 50e12, "unit": "tokens_per_day"},
        occurred_on="2025-12",
    )
    tokens = key("market_usage", entity="bytedance", metric="tokens_per_day")
    ratio = key("market_peer_ratio", entity="bytedance", peer="google", metric="tokens_per_day")
    growth = key("market_usage_growth_monthly_ratio", entity="bytedance", metric="tokens_per_day")

    before = signals_of(seed_events, router)
    retracted = signals_of([*seed_events, retraction], router)
    restored = signals_of([*seed_events, retraction, republished], router)

    assert (retracted[tokens], retracted[ratio]) == (3e13, 30 / 43)
    assert growth not in retracted
    assert (restored[tokens], restored[ratio], restored[growth]) == (before[tokens], before[ratio], before[growth])


def test_retracting_event_9_changes_only_bytedance_tokens(
    seed_events: tuple[Event, ...], router: Router, event_factory: EventFactory
) -> None:
    retraction = event_factory("event.retracted", target_id=SEED_9)

    before = signals_of(seed_events, router)
    after = signals_of([*seed_events, retraction], router)

    changed = {name for (name, labels), value in before.items() if after.get((name, labels)) != value}
    touched = {
        dict(labels).get("entity") for (name, labels), value in before.items() if after.get((name, labels)) != value
    }
    assert changed == {
        "market_usage",
        "market_usage_growth_monthly_ratio",
        "market_peer_ratio",
        "market_signal_observed_timestamp_seconds",
        "market_events_trailing",
    }
    assert touched == {"bytedance"}


def test_every_seed_signal_family_is_documented(seed_signals: dict[SignalKey, float]) -> None:
    assert {name for name, _ in seed_signals} <= set(SIGNAL_HELP)


def test_a_signal_reads_its_labels() -> None:
    signal = Signal("market_usage", (("entity", "doubao"), ("metric", "mau")), 1.59e8)

    assert (signal.label("entity"), signal.label("metric")) == ("doubao", "mau")


# --- usage -------------------------------------------------------------------------------------------------


def usage(event_factory: EventFactory, occurred_on: str, quantity: dict[str, Any] | float, **more: Any) -> Event:
    """Return a bytedance tokens-per-day figure."""
    value = quantity if isinstance(quantity, dict) else {"value": quantity, "unit": "tokens_per_day"}
    return event_factory("usage.reported", occurred_on=occurred_on, value=value, **more)


TOKENS_LABELS = (("entity", "bytedance"), ("metric", "tokens_per_day"))


def test_the_usage_figure_is_the_newest_by_event_time_not_by_arrival(event_factory: EventFactory) -> None:
    newest, older = usage(event_factory, "2025-12", 50e12), usage(event_factory, "2025-10", 30e12)

    signals = signals_of([newest, older])

    assert family(signals, "market_usage") == {TOKENS_LABELS: 50e12}
    assert family(signals, "market_signal_observed_timestamp_seconds") == {TOKENS_LABELS: midnight_utc(2025, 12)}


@pytest.mark.parametrize(
    ("quantity", "point"),
    [
        ({"low": 30e12, "unit": "t"}, 30e12),
        ({"high": 30e12, "unit": "t"}, 30e12),
        ({"low": 20e12, "high": 40e12, "unit": "t"}, 30e12),
        ({"value": 30e12, "unit": "t", "approx": True}, 30e12),
    ],
)
def test_the_usage_figure_is_the_point_estimate(
    event_factory: EventFactory, quantity: dict[str, Any], point: float
) -> None:
    assert family(signals_of([usage(event_factory, "2025-10", quantity)]), "market_usage") == {TOKENS_LABELS: point}


def test_growth_compounds_monthly_between_the_two_newest_periods(event_factory: EventFactory) -> None:
    events = [
        usage(event_factory, "2024", 1e12),
        usage(event_factory, "2025-01-16", 10e12),
        usage(event_factory, "2025-04-16", 80e12),
    ]

    growth = family(signals_of(events), "market_usage_growth_monthly_ratio")

    # Mid-January to mid-April is three months of event time: 8x is a doubling each month.
    assert growth == {TOKENS_LABELS: pytest.approx(1.0, abs=0.01)}


def test_growth_skips_figures_from_the_same_period_as_the_newest(event_factory: EventFactory) -> None:
    events = [
        usage(event_factory, "2025-10", 30e12),
        usage(event_factory, "2025-12", 40e12, source={"name": "Reuters"}),
        usage(event_factory, "2025-12", 50e12),
    ]

    signals = signals_of(events)

    newest = signals[key("market_usage", entity="bytedance", metric="tokens_per_day")]
    assert newest in (40e12, 50e12)
    assert family(signals, "market_usage_growth_monthly_ratio") == {
        TOKENS_LABELS: pytest.approx((newest / 30e12) ** 0.5 - 1)
    }


@pytest.mark.parametrize(
    "events",
    [
        [("2025-12", 50e12)],
        [("2025-12", 50e12), ("2025-12", 40e12)],
        [("2025-12", 50e12), ("2025-10", 0)],
    ],
    ids=["one figure", "one period", "from zero"],
)
def test_no_growth_without_an_earlier_positive_figure(
    event_factory: EventFactory, events: list[tuple[str, float]]
) -> None:
    signals = signals_of(usage(event_factory, date, figure, source={"name": f"s{figure}"}) for date, figure in events)

    assert family(signals, "market_usage_growth_monthly_ratio") == {}
    assert TOKENS_LABELS in family(signals, "market_usage")


def test_a_decline_is_negative_growth(event_factory: EventFactory) -> None:
    events = [usage(event_factory, "2025-10", 40e12), usage(event_factory, "2025-12", 10e12)]

    growth = family(signals_of(events), "market_usage_growth_monthly_ratio")

    assert growth == {TOKENS_LABELS: pytest.approx(-0.5)}


def test_a_growth_beyond_a_float_gives_no_growth_rather_than_stopping_the_fold(event_factory: EventFactory) -> None:
    # Half a month apart, a ratio of 1e12 compounds to the power of 31 a month: beyond a float.
    events = [usage(event_factory, "2025-10-15", 1.0), usage(event_factory, "2025-10", 1e12)]

    signals = signals_of(events)

    assert family(signals, "market_usage_growth_monthly_ratio") == {}
    assert family(signals, "market_usage") == {TOKENS_LABELS: 1e12}


# --- investment ------------------------------------------------------------------------------------------


def capex(
    event_factory: EventFactory, period: int, amount: float, occurred_on: str, entity: str = "bytedance"
) -> Event:
    """Return an announcement of ``amount`` USD for ``period``."""
    return event_factory(
        "investment.announced",
        entity=entity,
        period=period,
        amount={"value": amount, "unit": "USD"},
        occurred_on=occurred_on,
    )


def test_the_latest_announcement_for_a_period_wins_by_event_time(event_factory: EventFactory) -> None:
    revised, first = capex(event_factory, 2026, 25e9, "2026-03"), capex(event_factory, 2026, 23e9, "2025-12")

    signals = signals_of([revised, first])

    assert family(signals, "market_investment_usd") == {(("entity", "bytedance"), ("period", "2026")): 25e9}
    assert signals[key("market_signal_observed_timestamp_seconds", entity="bytedance", metric="investment_usd")] == (
        midnight_utc(2026, 3)
    )


def test_investment_growth_compares_a_period_with_the_previous_one(event_factory: EventFactory) -> None:
    events = [
        capex(event_factory, 2024, 10e9, "2024-01"),
        capex(event_factory, 2025, 15e9, "2025-01"),
        capex(event_factory, 2026, 23e9, "2025-12"),
        capex(event_factory, 2028, 30e9, "2025-12-20"),
    ]

    signals = signals_of(events)

    assert family(signals, "market_investment_usd") == {
        (("entity", "bytedance"), ("period", str(year))): amount
        for year, amount in [(2024, 10e9), (2025, 15e9), (2026, 23e9), (2028, 30e9)]
    }
    assert family(signals, "market_investment_growth_ratio") == {
        (("entity", "bytedance"), ("period", "2025")): pytest.approx(0.5),
        (("entity", "bytedance"), ("period", "2026")): pytest.approx(23 / 15 - 1),
    }


def test_no_investment_growth_from_a_zero_period(event_factory: EventFactory) -> None:
    events = [capex(event_factory, 2025, 0, "2025-01"), capex(event_factory, 2026, 5e9, "2025-12")]

    assert family(signals_of(events), "market_investment_growth_ratio") == {}


def test_the_investment_peer_ratio_compares_the_latest_announcements(event_factory: EventFactory) -> None:
    router = Router(parse_peers("bytedance:us_hyperscalers:investment_usd"))
    events = [
        capex(event_factory, 2026, 23e9, "2025-12"),
        capex(event_factory, 2025, 20e9, "2025-01"),
        capex(event_factory, 2025, 375e9, "2025", entity="us_hyperscalers"),
        capex(event_factory, 2024, 200e9, "2024-06", entity="us_hyperscalers"),
    ]

    ratios = family(signals_of(events, router), "market_peer_ratio")

    # The labels say what is compared: bytedance's 2026 plan with us_hyperscalers' 2025 one.
    assert ratios == {
        (
            ("entity", "bytedance"),
            ("peer", "us_hyperscalers"),
            ("metric", "investment_usd"),
            ("period", "2026"),
            ("peer_period", "2025"),
        ): 23 / 375
    }


# --- chips -----------------------------------------------------------------------------------------------


def chips(
    event_factory: EventFactory, stage: str, units: dict[str, Any] | float, price: float | None = None, **more: Any
) -> Event:
    """Return a report of nvidia_h200 chips bought by bytedance."""
    quantity = units if isinstance(units, dict) else {"value": units, "unit": "units"}
    unit_price = None if price is None else {"value": price, "unit": "USD"}
    return event_factory("chip_delivery.reported", stage=stage, units=quantity, unit_price=unit_price, **more)


H200 = (("buyer", "bytedance"), ("vendor", "nvidia"), ("product", "nvidia_h200"))


def test_chip_units_add_up_over_distinct_reports_by_stage(event_factory: EventFactory) -> None:
    events = [
        chips(event_factory, "ordered", 20000, 20000),
        chips(event_factory, "ordered", 10000, 25000, occurred_on="2026-01"),
        chips(event_factory, "scheduled", {"low": 40000, "high": 80000, "unit": "units"}, 30000),
        chips(event_factory, "delivered", 5000),
        chips(event_factory, "delivered", 5000),
    ]

    signals = signals_of(events)

    assert family(signals, "market_chip_units") == {
        (*H200, ("stage", "delivered")): 5000,
        (*H200, ("stage", "ordered")): 30000,
        (*H200, ("stage", "scheduled")): 60000,
    }
    assert family(signals, "market_chip_order_value_usd") == {H200: 20000 * 20000 + 10000 * 25000}


def test_unpriced_orders_have_no_order_value(event_factory: EventFactory) -> None:
    signals = signals_of([chips(event_factory, "ordered", 20000), chips(event_factory, "scheduled", 5, 1)])

    assert family(signals, "market_chip_order_value_usd") == {}
    assert family(signals, "market_chip_units")[(*H200, ("stage", "ordered"))] == 20000


def test_chips_without_a_named_buyer_count_for_the_reporting_entity(event_factory: EventFactory) -> None:
    signals = signals_of([chips(event_factory, "ordered", 100, entity="tencent")])

    assert family(signals, "market_chip_units") == {
        (("buyer", "tencent"), ("vendor", "nvidia"), ("product", "nvidia_h200"), ("stage", "ordered")): 100
    }


# --- export rules ----------------------------------------------------------------------------------------


def rule(event_factory: EventFactory, direction: str, effective_on: str | None, occurred_on: str, **more: Any) -> Event:
    """Return a US rule on nvidia_h200 exports to China."""
    return event_factory(
        "export_rule.changed", direction=direction, effective_on=effective_on, occurred_on=occurred_on, **more
    )


RULE = (("authority", "us_government"), ("product", "nvidia_h200"), ("destination", "CN"))


@pytest.mark.parametrize(
    ("events", "state", "since"),
    [
        ([("loosened", "2025-12", "2025-12")], 1, midnight_utc(2025, 12)),
        ([("tightened", None, "2023-10-17")], -1, midnight_utc(2023, 10, 17)),
        ([("loosened", "2025-12", "2025-12"), ("tightened", "2026-03", "2026-01")], -1, midnight_utc(2026, 3)),
        ([("tightened", "2026-03", "2026-01"), ("loosened", "2025-12", "2026-02")], -1, midnight_utc(2026, 3)),
        ([("tightened", "2022-10", "2022-10"), ("loosened", "2025-12", "2025-12")], 1, midnight_utc(2025, 12)),
    ],
    ids=["loosened", "tightened", "tightened later", "effective date beats report date", "loosened later"],
)
def test_the_export_regime_is_the_change_with_the_latest_effective_date(
    event_factory: EventFactory, events: list[tuple[str, str | None, str]], state: int, since: float
) -> None:
    signals = signals_of(rule(event_factory, *change) for change in events)

    assert family(signals, "market_export_rule_state") == {RULE: state}
    assert family(signals, "market_export_rule_changed_timestamp_seconds") == {RULE: since}


def test_each_destination_has_its_own_regime(event_factory: EventFactory) -> None:
    events = [
        rule(event_factory, "loosened", None, "2025-12"),
        rule(event_factory, "tightened", None, "2025-12", destination="RU"),
    ]

    states = family(signals_of(events), "market_export_rule_state")

    assert states == {RULE: 1, (("authority", "us_government"), ("product", "nvidia_h200"), ("destination", "RU")): -1}


# --- peer ratios -----------------------------------------------------------------------------------------


def test_a_ratio_needs_a_configured_pair_and_both_figures(event_factory: EventFactory) -> None:
    bytedance = usage(event_factory, "2025-12", 50e12)
    google = usage(event_factory, "2025-12", 43e12, entity="google")
    pair = Router(parse_peers("bytedance:google:tokens_per_day"))

    unconfigured = signals_of([bytedance, google])
    one_sided = signals_of([bytedance], pair)
    both = signals_of([bytedance, google], pair)

    assert family(unconfigured, "market_peer_ratio") == family(one_sided, "market_peer_ratio") == {}
    assert family(both, "market_peer_ratio") == {
        (("entity", "bytedance"), ("peer", "google"), ("metric", "tokens_per_day")): 50 / 43
    }


def test_no_ratio_to_a_peer_at_zero(event_factory: EventFactory) -> None:
    router = Router(parse_peers("bytedance:google:tokens_per_day"))
    events = [usage(event_factory, "2025-12", 50e12), usage(event_factory, "2025-12", 0, entity="google")]

    assert family(signals_of(events, router), "market_peer_ratio") == {}


def test_a_ratio_compares_the_newest_figures_by_event_time(event_factory: EventFactory) -> None:
    router = Router(parse_peers("google:bytedance:tokens_per_day"))
    events = [
        usage(event_factory, "2025-12", 50e12),
        usage(event_factory, "2025-10", 30e12),
        usage(event_factory, "2025-06", 20e12, entity="google"),
        usage(event_factory, "2025-12", 43e12, entity="google"),
    ]

    ratios = family(signals_of(events, router), "market_peer_ratio")

    assert ratios == {(("entity", "google"), ("peer", "bytedance"), ("metric", "tokens_per_day")): 43 / 50}


def test_a_pair_configured_twice_is_one_ratio(event_factory: EventFactory) -> None:
    router = Router(parse_peers("bytedance:google:tokens_per_day,bytedance:google:tokens_per_day"))
    events = [usage(event_factory, "2025-12", 50e12), usage(event_factory, "2025-12", 43e12, entity="google")]

    signals = derive_signals(router, Projection(router).replay(events).state)

    assert [signal.value for signal in signals if signal.name == "market_peer_ratio"] == [50 / 43]


# --- trailing event counts --------------------------------------------------------------------------------


def test_trailing_counts_are_anchored_at_the_entitys_newest_fact(event_factory: EventFactory) -> None:
    events = [
        usage(event_factory, "2025-12-20", 50e12),
        usage(event_factory, "2025-10-01", 30e12),
        usage(event_factory, "2025-01-10", 10e12),
        usage(event_factory, "2024-06", 1e12),
        capex(event_factory, 2026, 23e9, "2025-12"),
    ]

    trailing = family(signals_of(events), "market_events_trailing")

    assert trailing == {
        (("entity", "bytedance"), ("type", "investment.announced"), ("window", "90d")): 1,
        (("entity", "bytedance"), ("type", "usage.reported"), ("window", "90d")): 2,
        (("entity", "bytedance"), ("type", "investment.announced"), ("window", "365d")): 1,
        (("entity", "bytedance"), ("type", "usage.reported"), ("window", "365d")): 3,
    }


def test_the_seed_trailing_counts(seed_signals: dict[SignalKey, float]) -> None:
    trailing = family(seed_signals, "market_events_trailing")

    assert trailing[(("entity", "bytedance"), ("type", "usage.reported"), ("window", "90d"))] == 2
    assert trailing[(("entity", "us_government"), ("type", "export_rule.changed"), ("window", "365d"))] == 1
    assert trailing[(("entity", "cn_approved_customers"), ("type", "chip_delivery.reported"), ("window", "90d"))] == 1


def test_no_facts_no_signals() -> None:
    assert derive_signals(Router(), {}) == []
