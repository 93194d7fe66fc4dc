"""The read side in the core: facts listed and filtered, histories by event time, queries refused by name."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tracker.core.events import Event
from tracker.core.facts import candidates, fact_document, matches_document
from tracker.core.fold import Projection, SeriesValue
from tracker.core.history import signal_history
from tracker.core.knowledge import known_state
from tracker.core.queries import encode_cursor, fact_query, signal_query
from tracker.core.routing import Router
from tracker.errors import QueryRefused

pytestmark = pytest.mark.unit

EventFactory = Callable[..., Event]
TOKENS = [("name", "market_usage"), ("entity", "bytedance"), ("metric", "tokens_per_day")]


@pytest.fixture
def seed_state(seed_events: tuple[Event, ...], router: Router) -> dict[str, SeriesValue]:
    return Projection(router).replay(seed_events).state


def history(router: Router, state: dict[str, SeriesValue], params: list[tuple[str, str]]) -> list[dict]:
    query = signal_query(params, history=True)
    return [item.to_json() for item in signal_history(router, known_state(state, query.as_of), query)]


# --- history ---------------------------------------------------------------------------------------------


def test_tokens_per_day_history_shows_october_then_december(router: Router, seed_state: dict) -> None:
    assert history(router, seed_state, TOKENS) == [
        {
            "name": "market_usage",
            "labels": {"entity": "bytedance", "metric": "tokens_per_day"},
            "points": [
                {"date": "2025-10", "value": 3.0e13, "facts": ["seed-08-bytedance-tokens-2025-10"]},
                {"date": "2025-12", "value": 5.0e13, "facts": ["seed-09-bytedance-tokens-2025-12"]},
            ],
        }
    ]


def test_history_as_of_mid_november_ends_with_october(router: Router, seed_state: dict) -> None:
    (series,) = history(router, seed_state, [*TOKENS, ("as_of", "2025-11-15")])

    assert [(p["date"], p["value"]) for p in series["points"]] == [("2025-10", 3.0e13)]


def test_peer_ratio_history_starts_when_both_sides_are_known(router: Router, seed_state: dict) -> None:
    params = [("name", "market_peer_ratio"), ("entity", "bytedance"), ("peer", "google"), ("metric", "tokens_per_day")]

    (series,) = history(router, seed_state, params)

    assert [(p["date"], round(p["value"], 3)) for p in series["points"]] == [("2025-12", 1.163)]
    assert sorted(series["points"][0]["facts"]) == ["seed-09-bytedance-tokens-2025-12", "seed-10-google-tokens-2025-12"]


def test_a_retracted_fact_leaves_the_history(router: Router, seed_events: tuple, event_factory: EventFactory) -> None:
    retraction = event_factory("event.retracted", id="r9", target_id="seed-09-bytedance-tokens-2025-12")
    state = Projection(router).replay([*seed_events, retraction]).state

    (series,) = history(router, state, TOKENS)

    assert [p["date"] for p in series["points"]] == ["2025-10"]


def test_slugs_are_matched_whatever_their_case(router: Router, seed_state: dict) -> None:
    params = [("name", "market_usage"), ("entity", "ByteDance"), ("metric", "TOKENS_PER_DAY")]

    assert len(history(router, seed_state, params)) == 1


# --- facts -----------------------------------------------------------------------------------------------


def test_facts_are_listed_in_event_time_then_id_order(seed_state: dict) -> None:
    listed = candidates(seed_state, fact_query([]))

    assert len(listed) == 10
    assert [entry.event_id for entry in listed[:3]] == [
        "seed-02-us-hyperscalers-capex-2025",
        "seed-06-doubao-mau-2025-08",
        "seed-07-doubao-mau-2025-10",
    ]
    assert listed[-1].event_id == "seed-10-google-tokens-2025-12"


def test_a_cursor_resumes_after_the_last_fact_of_a_page(seed_state: dict) -> None:
    first = candidates(seed_state, fact_query([]))[:4]
    cursor = encode_cursor(first[-1].occurred_on, first[-1].event_id)

    rest = candidates(seed_state, fact_query([("cursor", cursor)]))

    assert [e.event_id for e in first + rest] == [e.event_id for e in candidates(seed_state, fact_query([]))]


def test_filters_on_type_fields_and_dates(seed_state: dict) -> None:
    chips = candidates(seed_state, fact_query([("type", "chip_delivery.reported"), ("product", "NVIDIA_H200")]))
    export = candidates(seed_state, fact_query([("destination", "cn")]))
    autumn = candidates(seed_state, fact_query([("occurred_from", "2025-09"), ("occurred_to", "2025-11")]))

    assert {e.event_id for e in chips} == {"seed-03-bytedance-h200-test-order", "seed-05-cn-approved-h200-first-batch"}
    assert [e.event_id for e in export] == ["seed-04-us-h200-cn-loosened"]
    assert {e.event_id for e in autumn} == {"seed-07-doubao-mau-2025-10", "seed-08-bytedance-tokens-2025-10"}


def test_a_retracted_fact_is_hidden_unless_asked_for_and_says_by_what(
    router: Router, seed_events: tuple, event_factory: EventFactory
) -> None:
    retraction = event_factory("event.retracted", id="r9", target_id="seed-09-bytedance-tokens-2025-12")
    state = Projection(router).replay([*seed_events, retraction]).state

    hidden = candidates(state, fact_query([]))
    shown = candidates(state, fact_query([("include_retracted", "true"), ("metric", "tokens_per_day")]))

    assert len(hidden) == 9
    (nine,) = [e for e in shown if e.event_id == "seed-09-bytedance-tokens-2025-12"]
    assert fact_document(nine, None, "events", 0)["retracted_by"] == {"id": "r9", "known_on": "2025-12-01"}


def test_status_and_reporting_entity_are_decided_on_the_document() -> None:
    query = fact_query([("status", "planned"), ("entity", "bytedance")])

    assert matches_document({"status": "planned", "entity": "bytedance"}, query)
    assert not matches_document({"status": "reported", "entity": "bytedance"}, query)
    assert not matches_document({"status": "planned", "entity": None}, query)


# --- refusals --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("params", "parameter"),
    [
        ([("as_of", "2025-11-31")], "as_of"),
        ([("name", "market_usage"), ("peer", "google")], "peer"),
        ([("name", "market_usages")], "name"),
        ([("bogus", "1")], "bogus"),
    ],
)
def test_a_signal_query_naming_something_unknown_is_refused_by_parameter(params: list, parameter: str) -> None:
    with pytest.raises(QueryRefused) as refused:
        signal_query(params)

    assert refused.value.parameter == parameter


def test_refusals_list_what_is_accepted() -> None:
    with pytest.raises(QueryRefused) as refused:
        fact_query([("type", "usage")])

    assert "usage.reported" in refused.value.accepted
    assert str(refused.value).startswith("type: 'usage' is not a fact type")


def test_a_history_needs_a_family_with_one() -> None:
    with pytest.raises(QueryRefused) as refused:
        signal_query([("name", "market_events_trailing")], history=True)

    assert "market_usage" in refused.value.accepted
