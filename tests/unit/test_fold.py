"""The fold: duplicates, id conflicts and retractions, whatever order the facts arrive in."""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterable
from typing import Any

import pytest

from tracker.core.catalogue import Signal
from tracker.core.events import Event, content_digest
from tracker.core.fold import FoldBatch, Outcome, Projection, SeriesValue, fact_payload, live_facts, tombstones_key
from tracker.core.routing import Router
from tracker.core.signals import derive_signals

pytestmark = pytest.mark.unit

EventFactory = Callable[..., Event]

TOKENS = "bytedance/usage:bytedance:tokens_per_day"


def fold(events: Iterable[Event], router: Router | None = None) -> Projection:
    """Replay ``events`` in order into a fresh projection."""
    return Projection(router or Router()).replay(events)


def live_ids(state: dict[str, SeriesValue]) -> set[str]:
    """Return the ids of every live fact in the state."""
    return {event_id for key, value in state.items() if not key.startswith("#") for event_id, _ in live_facts(value)}


def usage_signal(projection: Projection, entity: str = "bytedance") -> float | None:
    """Return ``market_usage`` of an entity's tokens per day, or None when absent."""
    signals: list[Signal] = derive_signals(projection.router, projection.state)
    found = [s.value for s in signals if s.name == "market_usage" and s.label("entity") == entity]
    return found[0] if found else None


@pytest.fixture
def october(event_factory: EventFactory) -> Event:
    return event_factory(
        "usage.reported", id="tokens-2025-10", occurred_on="2025-10", value={"low": 30e12, "unit": "tokens_per_day"}
    )


@pytest.fixture
def december(event_factory: EventFactory) -> Event:
    return event_factory("usage.reported", id="tokens-2025-12", occurred_on="2025-12")


@pytest.fixture
def retract_december(event_factory: EventFactory) -> Event:
    return event_factory("event.retracted", id="retract-dec", target_id="tokens-2025-12")


# --- facts and duplicates --------------------------------------------------------------------------


def test_a_fact_is_stored_in_its_series_under_its_id(december: Event) -> None:
    projection = Projection(Router())

    outcome = projection.apply(december)

    assert outcome is Outcome.APPLIED
    assert list(projection.state) == [TOKENS]
    assert dict(live_facts(projection.state[TOKENS])) == {"tokens-2025-12": fact_payload(december)}


def test_the_same_fact_twice_is_a_no_op(december: Event) -> None:
    projection = fold([december])
    before = copy.deepcopy(projection.state)

    outcome = projection.apply(december)

    assert outcome is Outcome.DUPLICATE
    assert projection.state == before
    assert projection.outcomes[Outcome.APPLIED] == projection.outcomes[Outcome.DUPLICATE] == 1


def test_the_same_fact_without_an_id_reported_twice_is_a_no_op(event_factory: EventFactory) -> None:
    first, again = event_factory("usage.reported"), event_factory("usage.reported")
    projection = fold([first])

    outcome = projection.apply(again)

    assert first.id is None and again.id is None
    assert outcome is Outcome.DUPLICATE
    assert live_ids(projection.state) == {first.event_id}


def test_facts_arriving_late_count_by_event_time(october: Event, december: Event) -> None:
    in_order, late = fold([october, december]), fold([december, october])

    assert usage_signal(in_order) == usage_signal(late) == 50e12
    assert in_order.state == late.state


# --- id conflicts ----------------------------------------------------------------------------------


def test_an_id_reused_for_other_content_keeps_the_smaller_digest(event_factory: EventFactory) -> None:
    one = event_factory("usage.reported", id="shared", value={"value": 1e12, "unit": "t"})
    two = event_factory("usage.reported", id="shared", value={"value": 2e12, "unit": "t"})
    keeper = min(one, two, key=content_digest)
    forward, backward = Projection(Router()), Projection(Router())

    outcomes = [forward.apply(one), forward.apply(two), backward.apply(two), backward.apply(one)]

    assert outcomes == [Outcome.APPLIED, Outcome.ID_CONFLICT, Outcome.APPLIED, Outcome.ID_CONFLICT]
    assert forward.state == backward.state
    assert usage_signal(forward) == keeper.value.point  # type: ignore[union-attr]


def test_an_id_reused_in_another_series_is_kept_in_both_a_documented_limit(event_factory: EventFactory) -> None:
    # Ids are derived from content; only a publisher setting ids by hand can reuse one across
    # series, and conflicts are detected within a series only (see events/README.md).
    bytedance = event_factory("usage.reported", id="shared", entity="bytedance")
    google = event_factory("usage.reported", id="shared", entity="google")
    projection = Projection(Router())

    outcomes = [projection.apply(bytedance), projection.apply(google)]

    assert outcomes == [Outcome.APPLIED, Outcome.APPLIED]
    assert usage_signal(projection, "bytedance") == bytedance.value.point  # type: ignore[union-attr]
    assert usage_signal(projection, "google") == google.value.point  # type: ignore[union-attr]


# --- retractions -----------------------------------------------------------------------------------


def test_a_retraction_removes_its_target_and_the_older_figure_shows_again(
    october: Event, december: Event, retract_december: Event
) -> None:
    projection = fold([october, december])

    outcome = projection.apply(retract_december)

    assert outcome is Outcome.RETRACTION
    assert live_ids(projection.state) == {"tokens-2025-10"}
    assert usage_signal(projection) == 30e12


def test_a_retraction_arriving_before_its_target_wins(october: Event, december: Event, retract_december: Event) -> None:
    early, late = fold([retract_december, october, december]), fold([october, december, retract_december])

    assert live_ids(early.state) == live_ids(late.state) == {"tokens-2025-10"}
    assert derive_signals(early.router, early.state) == derive_signals(late.router, late.state)


def test_a_retraction_of_an_unknown_id_waits_as_a_tombstone(
    october: Event, december: Event, retract_december: Event
) -> None:
    projection = fold([october, retract_december])
    signals_before = derive_signals(projection.router, projection.state)

    outcome = projection.apply(december)

    assert outcome is Outcome.APPLIED
    assert live_ids(projection.state) == {"tokens-2025-10"}
    assert derive_signals(projection.router, projection.state) == signals_before


def test_a_retraction_with_nothing_to_retract_changes_no_signal(october: Event, event_factory: EventFactory) -> None:
    projection = fold([october])
    before = derive_signals(projection.router, projection.state)

    outcome = projection.apply(event_factory("event.retracted", target_id="never-published"))

    assert outcome is Outcome.RETRACTION
    assert derive_signals(projection.router, projection.state) == before


@pytest.mark.parametrize("order", ["retraction first", "retraction last"])
def test_retracting_a_retraction_has_no_effect(
    october: Event, december: Event, retract_december: Event, event_factory: EventFactory, order: str
) -> None:
    undo = event_factory("event.retracted", target_id="retract-dec", reason="retracted by mistake")
    events = [undo, october, december, retract_december]
    if order == "retraction last":
        events.reverse()

    projection = fold(events)

    assert live_ids(projection.state) == {"tokens-2025-10"}
    assert usage_signal(projection) == 30e12


def test_a_duplicate_of_a_retracted_fact_stays_retracted(
    october: Event, december: Event, retract_december: Event
) -> None:
    projection = fold([october, december, retract_december])

    outcome = projection.apply(december)

    assert outcome is Outcome.DUPLICATE
    assert usage_signal(projection) == 30e12


def test_two_retractions_of_one_fact_retract_it_once(
    october: Event, december: Event, retract_december: Event, event_factory: EventFactory
) -> None:
    second = event_factory("event.retracted", target_id="tokens-2025-12", reason="also wrong")

    one, two = fold([october, december, retract_december]), fold([second, october, december, retract_december])

    assert live_ids(one.state) == live_ids(two.state) == {"tokens-2025-10"}
    assert derive_signals(one.router, one.state) == derive_signals(two.router, two.state)


def test_a_retracted_fact_republished_under_a_new_id_counts_again(
    october: Event, december: Event, retract_december: Event, event_factory: EventFactory
) -> None:
    projection = fold([october, december, retract_december])

    outcome = projection.apply(event_factory("usage.reported", id="tokens-2025-12-again", occurred_on="2025-12"))

    assert outcome is Outcome.APPLIED
    assert usage_signal(projection) == 50e12


def test_a_retraction_removes_a_fact_whatever_its_series(event_factory: EventFactory) -> None:
    facts = [
        event_factory("investment.announced", id="capex"),
        event_factory("chip_delivery.reported", id="order"),
        event_factory("export_rule.changed", id="rule"),
    ]
    retractions = [event_factory("event.retracted", target_id=fact.event_id) for fact in facts]

    projection = fold([*facts, *retractions])

    assert live_ids(projection.state) == set()
    assert derive_signals(projection.router, projection.state) == []


def test_a_retraction_is_not_a_fact(retract_december: Event) -> None:
    with pytest.raises(ValueError, match="a retraction is not a fact"):
        fact_payload(retract_december)


# --- batches -----------------------------------------------------------------------------------------


def batch_over(store: dict[str, SeriesValue], router: Router | None = None, partition: int = 0) -> FoldBatch:
    """Return a batch reading from ``store`` the way a table-backed agent does."""

    def locate(event_id: str) -> list[str]:
        return [key for key, value in store.items() if not key.startswith("#") and event_id in value["facts"]]

    return FoldBatch(router or Router(), store.get, locate, functools.partial(tombstones_key, partition))


def test_a_batch_collects_each_changed_key_once_and_leaves_the_store_alone(
    october: Event, december: Event, event_factory: EventFactory
) -> None:
    store = dict(fold([october]).state)
    before = copy.deepcopy(store)
    batch = batch_over(store)
    capex = event_factory("investment.announced")

    outcomes = [batch.apply(event, event.event_id) for event in (december, capex, december)]

    assert outcomes == [Outcome.APPLIED, Outcome.APPLIED, Outcome.DUPLICATE]
    assert sorted(batch.changed) == ["bytedance/investment:bytedance", TOKENS]
    assert set(dict(live_facts(batch.changed[TOKENS]))) == {"tokens-2025-10", "tokens-2025-12"}
    assert store == before


@pytest.mark.parametrize("retraction_first", [True, False])
def test_a_retraction_and_its_target_in_one_batch_cancel_out(
    october: Event, december: Event, retract_december: Event, retraction_first: bool
) -> None:
    store = dict(fold([october]).state)
    batch = batch_over(store, partition=7)
    events = [retract_december, december] if retraction_first else [december, retract_december]

    for event in events:
        batch.apply(event, event.event_id)
    store.update(batch.changed)

    assert live_ids(store) == {"tokens-2025-10"}
    assert tombstones_key(7, retract_december.target_id) in store  # type: ignore[union-attr]


def test_a_tombstone_written_by_an_earlier_batch_kills_a_later_target(
    october: Event, december: Event, retract_december: Event
) -> None:
    store = dict(fold([october]).state)
    first = batch_over(store)
    first.apply(retract_december, retract_december.event_id)
    store.update(first.changed)

    second = batch_over(store)
    outcome = second.apply(december, december.event_id)
    store.update(second.changed)

    assert outcome is Outcome.APPLIED
    assert live_ids(store) == {"tokens-2025-10"}


def test_batches_give_the_state_of_the_reference_fold(
    seed_events: tuple[Event, ...], router: Router, event_factory: EventFactory
) -> None:
    retraction = event_factory("event.retracted", target_id="seed-09-bytedance-tokens-2025-12")
    events = [*seed_events[:4], retraction, *seed_events[4:]]
    reference = Projection(router).replay(events)
    store: dict[str, Any] = {}

    for start in range(0, len(events), 3):
        batch = batch_over(store, router)
        for event in events[start : start + 3]:
            batch.apply(event, event.event_id)
        store.update(batch.changed)

    assert store == reference.state
