"""Reads that look at part of the state answer as a read of the whole state does; the overview's pieces."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from tracker.bench.workload import generate
from tracker.core.dates import PartialDate
from tracker.core.decode import decode_event, validate_event
from tracker.core.events import Event
from tracker.core.facts import FactEntry, _field_mismatch, candidates, fact_entries, fact_subjects, key_may_hold
from tracker.core.fold import Projection, SeriesValue
from tracker.core.history import history_subject, key_may_feed, signal_history
from tracker.core.knowledge import known_state
from tracker.core.overview import alert_counts, entities_page, entity_summary, key_subject, rank_alerts
from tracker.core.queries import HISTORY_FAMILIES, FactQuery, encode_cursor, fact_query, overview_query, signal_query
from tracker.core.routing import Router
from tracker.core.signals import derive_signals
from tracker.errors import EventValidationError, QueryRefused
from tracker.worker.alert_digest import AlertDigest

pytestmark = pytest.mark.unit


def _workload_events() -> list[Event]:
    events = []
    for raw in generate(3000, entities=40).records:
        try:
            events.append(decode_event(raw))
        except EventValidationError:
            continue
    return events


@pytest.fixture(scope="module")
def state(
    seed_events: tuple[Event, ...], router: Router, raw_event_factory: Callable[..., Any]
) -> dict[str, SeriesValue]:
    """The seed article, two exchange rates and a small workload: every kind, retractions, several fold groups."""
    rates = [
        validate_event(raw_event_factory("fx_rate.reported", id=f"fx-{currency}", currency=currency))
        for currency in ("CNY", "EUR")
    ]
    return Projection(router).replay([*seed_events, *rates, *_workload_events()]).state


def group_of(state: dict[str, SeriesValue], router: Router, subjects: frozenset[str]) -> dict[str, SeriesValue]:
    """The series of the subjects' fold groups and the rates, as a worker's index lists them."""
    fold_keys = {router.fold_key(subject) for subject in subjects}
    return {k: v for k, v in state.items() if k.partition("/")[0] in fold_keys or k.startswith("#")}


TYPES = ["usage.reported", "chip_delivery.reported", "export_rule.changed", "fx_rate.reported"]
SLUGS = ["bytedance", "google", "doubao", "entity-00003", "entity-00017", "us_government", "us_bis", "nvidia"]
FACT_PARAMS = st.lists(
    st.one_of(
        st.tuples(st.just("type"), st.sampled_from(TYPES)),
        st.tuples(st.sampled_from(["entity", "buyer", "authority"]), st.sampled_from(SLUGS)),
        st.tuples(st.just("vendor"), st.sampled_from(["nvidia", "amd"])),
        st.tuples(st.just("destination"), st.sampled_from(["CN", "AE"])),
        st.tuples(st.just("product"), st.sampled_from(["nvidia_h200", "amd_mi350"])),
        st.tuples(st.just("metric"), st.sampled_from(["mau", "tokens_per_day"])),
        st.tuples(st.just("stage"), st.sampled_from(["ordered", "delivered"])),
        st.tuples(st.just("include_retracted"), st.just("true")),
        st.tuples(st.just("as_of"), st.sampled_from(["2023-06", "2025-11-15"])),
        st.tuples(st.just("occurred_from"), st.just("2024")),
        st.tuples(st.just("currency"), st.sampled_from(["CNY", "USD"])),
        st.tuples(st.just("order"), st.sampled_from(["asc", "desc"])),
        st.tuples(
            st.just("cursor"),
            st.sampled_from(
                [
                    encode_cursor("2023-04", "bench-00001000"),
                    encode_cursor("2025-12", "seed-09-bytedance-tokens-2025-12"),
                ]
            ),
        ),
    ),
    max_size=4,
    unique_by=lambda pair: pair[0],
)


def every_fact_filtered(state: dict[str, SeriesValue], query: FactQuery) -> list[FactEntry]:
    """The listing as issue 17 made it: every fact of the state built, then filtered one by one."""
    after = None if query.after is None else (PartialDate.parse(query.after[0]).sort_key(), query.after[1])
    out = []
    for entry in fact_entries(known_state(state, query.as_of)):
        start = PartialDate.parse(entry.occurred_on).start.isoformat()
        if (
            (
                after is None
                or (
                    (entry.order, entry.event_id) < after if query.descending else (entry.order, entry.event_id) > after
                )
            )
            and (query.type is None or entry.type == query.type)
            and (entry.retracted_by is None or query.include_retracted)
            and (query.occurred_from is None or start >= query.occurred_from)
            and (query.occurred_to is None or start <= query.occurred_to)
            and not any(_field_mismatch(entry, name, wanted) for name, wanted in query.fields.items())
        ):
            out.append(entry)
    return out[::-1] if query.descending else out


@settings(max_examples=150, deadline=None)
@given(params=FACT_PARAMS)
@example(params=[("order", "desc"), ("cursor", encode_cursor("2025-12", "seed-09-bytedance-tokens-2025-12"))])
def test_facts_read_from_keys_or_one_group_are_those_of_the_whole_state(
    state: dict[str, SeriesValue], router: Router, params: list[tuple[str, str]]
) -> None:
    query = fact_query(params)
    subjects = fact_subjects(query)
    part = {k: v for k, v in state.items() if key_may_hold(k, query)}
    if subjects is not None:
        part = group_of(part, router, subjects)

    assert candidates(part, query) == every_fact_filtered(state, query)


HISTORY_PARAMS = st.tuples(
    st.sampled_from(HISTORY_FAMILIES),
    st.lists(
        st.tuples(st.sampled_from(["entity", "buyer", "authority", "product", "metric"]), st.sampled_from(SLUGS[:6])),
        max_size=2,
        unique_by=lambda pair: pair[0],
    ),
)


@settings(max_examples=100, deadline=None)
@given(family_labels=HISTORY_PARAMS)
def test_histories_read_from_keys_or_one_group_are_those_of_the_whole_state(
    state: dict[str, SeriesValue], router: Router, family_labels: tuple[str, list[tuple[str, str]]]
) -> None:
    name, labels = family_labels
    try:
        query = signal_query([("name", name), *labels], history=True)
    except QueryRefused:
        return  # a label the family does not have: refused before any read
    subject = history_subject(query)
    part = {k: v for k, v in state.items() if key_may_feed(k, query)}
    if subject is not None:
        part = group_of(state, router, frozenset({subject}))

    assert signal_history(router, known_state(part, None), query) == signal_history(router, state, query)


def test_entity_alone_pins_usage_and_investments_but_not_chips_reported_by_it() -> None:
    assert fact_subjects(fact_query([("entity", "bytedance"), ("type", "usage.reported")])) == {"bytedance"}
    assert fact_subjects(fact_query([("buyer", "bytedance"), ("type", "chip_delivery.reported")])) == {"bytedance"}
    assert fact_subjects(fact_query([("entity", "bytedance")])) is None


def test_the_overview_lists_entities_from_keys_a_page_at_a_time(state: dict[str, SeriesValue]) -> None:
    subjects = {subject for key in state if (subject := key_subject(key))}

    first, total, rest = entities_page(subjects, "entity-", None, 10)
    second, _, _ = entities_page(subjects, "entity-", first[-1], 10)

    assert {"bytedance", "doubao", "us_government", "cn_approved_customers"} <= subjects
    assert first == sorted(first) and second[0] > first[-1] and len(first) == len(second) == 10
    assert total == 40 and rest == 30


def test_an_entity_row_shows_its_latest_figures(seed_events: tuple[Event, ...], router: Router) -> None:
    signals = derive_signals(router, Projection(router).replay(seed_events).state)

    summary = entity_summary(signals, "bytedance")

    names = {(s["name"], s["labels"].get("metric") or s["labels"].get("period")) for s in summary}
    assert ("market_usage", "tokens_per_day") in names
    assert ("market_investment_usd", "2026") in names
    assert all(s["name"] != "market_events_trailing" for s in summary)


def test_alerts_are_ranked_most_severe_then_most_recent_and_counted_per_entity() -> None:
    alerts = [
        {"rule": "a", "severity": "warning", "since": "2025-12", "labels": {"entity": "bytedance"}},
        {"rule": "b", "severity": "critical", "since": "2025-10", "labels": {"authority": "us_government"}},
        {"rule": "c", "severity": "warning", "since": "2026-01", "labels": {"entity": "doubao"}},
        {"rule": "d", "severity": "info", "since": "2026-02", "labels": {"entity": "bytedance"}},
    ]

    assert [a["rule"] for a in rank_alerts(alerts, 3)] == ["b", "c", "a"]
    assert alert_counts(alerts)["bytedance"] == 2


def test_an_overview_query_refuses_what_it_does_not_know() -> None:
    with pytest.raises(QueryRefused) as refused:
        overview_query([("entity", "bytedance")])

    assert refused.value.parameter == "entity"
    assert overview_query([("q", " ByteDance "), ("alerts", "5")]).q == "bytedance"


def test_the_alert_digest_is_read_again_only_when_the_fold_moved() -> None:
    alert = {"rule": "r", "fingerprint": "f", "severity": "warning", "since": "2025", "labels": {"entity": "x"}}
    groups = {"x/r": {"alerts": {"f": {"alert": alert, "provenance": []}}}}
    moment = {"records": 1}
    digest = AlertDigest(lambda: groups, lambda: moment["records"])

    before = digest.get()
    groups["y/r"] = {"alerts": {"g": {"alert": {**alert, "labels": {"buyer": "y"}}, "provenance": []}}}
    unchanged = digest.get()
    moment["records"] = 2
    after = digest.get()

    assert before.total == unchanged.total == 1
    assert after.total == 2 and after.where == {"x": ["x/r"], "y": ["y/r"]} and after.counts["y"] == 1


@pytest.mark.parametrize(
    ("parse", "params", "parameter"),
    [
        (signal_query, [("entity", "byte dance")], "entity"),
        (signal_query, [("name", "market_chip_units"), ("buyer", "bytedance!")], "buyer"),
        (fact_query, [("product", "h200 ")], None),
        (fact_query, [("authority", "us/bis")], "authority"),
        (signal_query, [("peer", "x" * 65)], "peer"),
    ],
)
def test_a_filter_no_slug_can_match_is_refused_and_names_its_parameter(
    parse: Any, params: list[tuple[str, str]], parameter: str | None
) -> None:
    if parameter is None:  # surrounding spaces are trimmed: a slug still
        assert parse(params).fields == {"product": "h200"}
        return
    with pytest.raises(QueryRefused) as refused:
        parse(params)

    assert refused.value.parameter == parameter
    assert "is not a slug" in str(refused.value)


def test_a_slug_in_another_case_finds_the_stored_one() -> None:
    assert signal_query([("entity", "ByteDance")]).labels == {"entity": "bytedance"}
    assert fact_query([("vendor", "NVIDIA")]).fields == {"vendor": "nvidia"}
