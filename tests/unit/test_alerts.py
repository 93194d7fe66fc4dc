"""Alert evaluation on event time: the seed article's three alerts, retraction, hysteresis, ``for``, event rules."""

from __future__ import annotations

import itertools
import json
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import pytest

from tracker.core.alerts import MAX_CAUSE_IDS, Alert, Transition, evaluate, resolution, transitions
from tracker.core.decode import validate_event
from tracker.core.events import Event
from tracker.core.fold import Projection, SeriesValue
from tracker.core.routing import Router, parse_peers
from tracker.core.rules import RuleSet
from tracker.core.transitions import Provenance, transition_document
from tracker.rules_file import load_rules, parse_rules
from tracker.settings import DEFAULT_PEERS

pytestmark = pytest.mark.unit

EventFactory = Callable[..., Event]

SEED_4 = "seed-04-us-h200-cn-loosened"
SEED_9 = "seed-09-bytedance-tokens-2025-12"
SEED_10 = "seed-10-google-tokens-2025-12"


# --- helpers ---------------------------------------------------------------------------------------------


def router_for(rules: RuleSet) -> Router:
    """Return the router a worker builds: the default peer pairs plus those the rules compare."""
    return Router(tuple(dict.fromkeys(parse_peers(DEFAULT_PEERS) + rules.peer_pairs())))


def fold_groups(state: Mapping[str, SeriesValue]) -> dict[str, dict[str, SeriesValue]]:
    """Split a projection's state into fold groups by fold key, leaving the tombstones out."""
    groups: dict[str, dict[str, SeriesValue]] = defaultdict(dict)
    for key, value in state.items():
        if not key.startswith("#"):
            groups[key.partition("/")[0]][key] = value
    return dict(groups)


def evaluate_all(rules: RuleSet, router: Router, events: Iterable[Event]) -> dict[str, Alert]:
    """Fold ``events`` and evaluate ``rules`` group by group, as the workers do; merge the results."""
    state = Projection(router).replay(events).state
    alerts: dict[str, Alert] = {}
    for group in fold_groups(state).values():
        found = evaluate(rules, router, group)
        assert not set(found) & set(alerts), "two groups produced the same fingerprint"
        alerts.update(found)
    return alerts


def resolver(rules: RuleSet, router: Router, events: Iterable[Event]) -> Callable[[Alert], Alert]:
    """Return what the worker resolves an alert with: ``resolution`` over its group, after ``events``."""
    groups = fold_groups(Projection(router).replay(events).state)

    def resolve(alert: Alert) -> Alert:
        fold_key = alert.unit.partition("|")[2].partition("/")[0]
        return resolution(rules, router, groups.get(fold_key, {}), alert)

    return resolve


def by_rule(alerts: Mapping[str, Alert]) -> dict[str, Alert]:
    """Return the alerts by rule name, checking each rule fired at most once."""
    named = {alert.rule: alert for alert in alerts.values()}
    assert len(named) == len(alerts), f"a rule fired more than once: {sorted(a.rule for a in alerts.values())}"
    return named


def usage(factory: EventFactory, entity: str, metric: str, value: float, month: str) -> Event:
    """Return a usage figure of ``entity`` for one month."""
    return factory(
        "usage.reported", entity=entity, metric=metric, value={"value": value, "unit": "users"}, occurred_on=month
    )


def investment(factory: EventFactory, entity: str, period: int, amount: float, month: str) -> Event:
    """Return an announcement of ``entity``'s AI spending for ``period``."""
    return factory(
        "investment.announced",
        entity=entity,
        period=period,
        amount={"value": amount, "unit": "USD"},
        occurred_on=month,
    )


def retraction_of(target_id: str) -> Event:
    """Return a retraction of the event ``target_id``."""
    return validate_event(
        {
            "type": "event.retracted",
            "target_id": target_id,
            "reason": "misreported",
            "occurred_on": "2026-01",
            "source": {"name": "Financial Times"},
        }
    )


def seed_record(seed_text: str, event_id: str) -> dict[str, Any]:
    """Return the raw JSON of one seed event."""
    records = [json.loads(line) for line in seed_text.splitlines() if line.strip()]
    return next(record for record in records if record["id"] == event_id)


def along_event_time(
    rules: RuleSet, router: Router, events: list[Event]
) -> tuple[list[dict[str, Alert]], list[list[Transition]]]:
    """Evaluate after each fact in event-time order; return every evaluation and the transitions between them."""
    ordered = sorted(events, key=lambda event: event.occurred.sort_key())
    evaluations = [evaluate_all(rules, router, ordered[: n + 1]) for n in range(len(ordered))]
    steps = [transitions(before, after) for before, after in itertools.pairwise(evaluations)]
    return evaluations, steps


@pytest.fixture(scope="module")
def default_rules() -> RuleSet:
    return load_rules(None)


@pytest.fixture(scope="module")
def default_router(default_rules: RuleSet) -> Router:
    return router_for(default_rules)


# --- the seed article under the default rules -------------------------------------------------------------


def test_the_default_rules_fire_exactly_the_three_alerts_of_the_brief_on_the_seed(
    seed_events: tuple[Event, ...], default_rules: RuleSet, default_router: Router
) -> None:
    # Arrange: the default rules and the seed article (fixtures).

    # Act
    alerts = by_rule(evaluate_all(default_rules, default_router, seed_events))

    # Assert: three alerts, all firing, and nothing else.
    assert sorted(alerts) == ["export-rule-change-china", "peer-overtake-tokens", "usage-growth-stalled"]
    assert {alert.state for alert in alerts.values()} == {"firing"}

    export = alerts["export-rule-change-china"]
    assert export.severity == "critical"
    assert export.labels["authority"] == "us_government"
    assert export.labels["product"] == "nvidia_h200"
    assert export.labels["destination"] == "CN"
    assert export.labels["direction"] == "loosened"
    assert export.cause_ids == (SEED_4,)
    assert export.annotations["summary"] == "us_government loosened exports of nvidia_h200 to CN"

    crossing = alerts["peer-overtake-tokens"]
    assert crossing.severity == "warning"
    assert (crossing.labels["entity"], crossing.labels["peer"], crossing.labels["metric"]) == (
        "bytedance",
        "google",
        "tokens_per_day",
    )
    assert crossing.value == pytest.approx(50 / 43)
    assert crossing.value == pytest.approx(1.163, abs=5e-4)
    assert crossing.since == "2025-12"
    assert crossing.cause_ids == (SEED_9, SEED_10)
    assert crossing.annotations["summary"] == "bytedance overtook google on tokens_per_day (ratio 1.163)"

    stalled = alerts["usage-growth-stalled"]
    assert stalled.severity == "warning"
    assert (stalled.labels["entity"], stalled.labels["metric"]) == ("doubao", "mau")
    assert stalled.value == pytest.approx(0.0063, abs=5e-5)
    assert stalled.annotations["summary"] == "doubao mau grows 0.63% a month, under 1%"


def test_every_alert_carries_its_rule_name_severity_and_version_as_identity(
    seed_events: tuple[Event, ...], default_rules: RuleSet, default_router: Router
) -> None:
    # Arrange
    versions = {rule.name: rule.version for rule in default_rules.rules}

    # Act
    alerts = evaluate_all(default_rules, default_router, seed_events)

    # Assert
    for fingerprint, alert in alerts.items():
        assert alert.fingerprint == fingerprint
        assert alert.labels["alertname"] == alert.rule
        assert alert.labels["severity"] == alert.severity
        assert alert.rule_version == versions[alert.rule]
        assert Alert.from_json(json.loads(json.dumps(alert.to_json()))) == alert


def test_the_label_names_of_the_rules_cover_every_label_their_alerts_carry(
    seed_events: tuple[Event, ...], default_rules: RuleSet, default_router: Router, event_factory: EventFactory
) -> None:
    # Arrange: the seed, plus facts that fire the two info rules.
    surge = [
        investment(event_factory, "acme", 2024, 10e9, "2024-01"),
        investment(event_factory, "acme", 2025, 20e9, "2025-01"),
    ]
    order = event_factory(
        "chip_delivery.reported",
        entity="acme",
        vendor="nvidia",
        product="nvidia_b200",
        units={"value": 100_000, "unit": "units"},
        unit_price={"value": 30_000, "unit": "USD"},
        stage="ordered",
        occurred_on="2025-06",
    )

    # Act
    alerts = evaluate_all(default_rules, default_router, [*seed_events, *surge, order])

    # Assert: every rule fires, and a matcher may name any label it fired with.
    assert {alert.rule for alert in alerts.values()} == {rule.name for rule in default_rules.rules}
    carried = {name for alert in alerts.values() for name in alert.labels}
    assert carried <= default_rules.label_names
    assert "rule" not in default_rules.label_names
    # peer_period labels a peer ratio of investments only.
    assert default_rules.label_names - carried == {"peer_period"}


# --- retraction and re-publication ------------------------------------------------------------------------


def test_retracting_event_9_resolves_the_crossing_and_changes_nothing_else(
    seed_events: tuple[Event, ...], default_rules: RuleSet, default_router: Router
) -> None:
    # Arrange
    before = evaluate_all(default_rules, default_router, seed_events)

    # Act
    after = evaluate_all(default_rules, default_router, [*seed_events, retraction_of(SEED_9)])
    changes = transitions(before, after)

    # Assert: one "resolved" transition, for the crossing; the other two alerts are untouched.
    assert [(change.status, change.alert.rule) for change in changes] == [("resolved", "peer-overtake-tokens")]
    resolved = changes[0].alert
    crossing = by_rule(before)["peer-overtake-tokens"]
    assert resolved.fingerprint == crossing.fingerprint
    assert resolved.state == "resolved"
    assert resolved.cause_ids == crossing.cause_ids
    assert after == {key: alert for key, alert in before.items() if alert.rule != "peer-overtake-tokens"}


def test_a_resolved_crossing_describes_the_resolution_in_event_time(
    seed_events: tuple[Event, ...], default_rules: RuleSet, default_router: Router
) -> None:
    # Arrange: event 9 retracted, bytedance falls back to October's 30e12 against google's 43e12.
    events = [*seed_events, retraction_of(SEED_9)]
    before = evaluate_all(default_rules, default_router, seed_events)
    after = evaluate_all(default_rules, default_router, events)

    # Act
    (change,) = transitions(before, after, resolver(default_rules, default_router, events))

    # Assert: the annotations and the value are those at resolution, not at firing.
    resolved = change.alert
    assert (change.status, resolved.state) == ("resolved", "resolved")
    assert resolved.since == "2025-12"
    assert resolved.until == "2025-12"
    assert resolved.value == pytest.approx(30 / 43)
    assert resolved.annotations["summary"] == "bytedance is no longer above google on tokens_per_day (ratio 0.698)"
    assert resolved.fingerprint == by_rule(before)["peer-overtake-tokens"].fingerprint


def test_publishing_event_9_again_under_a_new_id_fires_the_crossing_again_with_a_new_cause(
    seed_text: str, seed_events: tuple[Event, ...], default_rules: RuleSet, default_router: Router
) -> None:
    # Arrange: the seed, event 9 retracted, then event 9 published again under a new id.
    first = evaluate_all(default_rules, default_router, seed_events)
    retracted_log = [*seed_events, retraction_of(SEED_9)]
    retracted = evaluate_all(default_rules, default_router, retracted_log)
    again = validate_event({**seed_record(seed_text, SEED_9), "id": "seed-09-bytedance-tokens-2025-12-again"})

    # Act
    republished = evaluate_all(default_rules, default_router, [*retracted_log, again])
    changes = transitions(retracted, republished)

    # Assert: the crossing fires again, same identity, but caused by the new fact.
    assert [(change.status, change.alert.rule) for change in changes] == [("firing", "peer-overtake-tokens")]
    old, new = by_rule(first)["peer-overtake-tokens"], changes[0].alert
    assert new.fingerprint == old.fingerprint
    assert new.value == pytest.approx(old.value)
    assert new.cause_ids == ("seed-09-bytedance-tokens-2025-12-again", SEED_10)
    assert new.cause_ids != old.cause_ids
    at = 1_767_225_600.0
    first_key = transition_document(Transition("firing", old), [], at)["idempotency_key"]
    second_key = transition_document(Transition("firing", new), [], at)["idempotency_key"]
    assert first_key != second_key


def test_the_idempotency_key_of_a_transition_does_not_depend_on_when_or_where_it_was_evaluated(
    seed_events: tuple[Event, ...], default_rules: RuleSet, default_router: Router
) -> None:
    # Arrange
    alert = by_rule(evaluate_all(default_rules, default_router, seed_events))["peer-overtake-tokens"]
    here = [Provenance(SEED_9, "events", 0, 8)]
    there = [Provenance(SEED_10, "events", 3, 120)]

    # Act
    once = transition_document(Transition("firing", alert), here, 1_767_225_600.0)
    replayed = transition_document(Transition("firing", alert), there, 1_800_000_000.0)
    resolved = transition_document(Transition("resolved", alert), here, 1_767_225_600.0)

    # Assert
    assert once["idempotency_key"] == replayed["idempotency_key"]
    assert resolved["idempotency_key"] != once["idempotency_key"]


def test_an_alert_started_by_many_facts_of_one_date_lists_a_bounded_number_of_them_and_counts_all(
    seed_text: str, seed_events: tuple[Event, ...], default_rules: RuleSet, default_router: Router
) -> None:
    # Arrange: google's December figure reported again by 30 more sources (30 more facts of its date).
    google = seed_record(seed_text, SEED_10)
    again = [
        validate_event({**google, "id": f"google-again-{n:02d}", "source": {"name": f"wire {n}"}}) for n in range(30)
    ]

    # Act
    crossing = by_rule(evaluate_all(default_rules, default_router, [*seed_events, *again]))["peer-overtake-tokens"]
    document = transition_document(Transition("firing", crossing), [], 1_767_225_600.0)

    # Assert: the first causes in sorted order are listed, every cause is counted.
    every = sorted([SEED_9, SEED_10, *(event.event_id for event in again)])
    assert crossing.cause_count == 32
    assert crossing.cause_ids == tuple(every[:MAX_CAUSE_IDS])
    assert document["provenance"]["cause_count"] == 32
    assert len(document["provenance"]["cause_ids"]) == MAX_CAUSE_IDS


# --- hysteresis and for_months along event time -----------------------------------------------------------

HYSTERESIS = """
rules:
  - name: usage-low
    severity: warning
    threshold:
      signal: market_usage
      match: {entity: acme, metric: mau}
      below: 150.0e+6
      resolve_above: 155.0e+6
"""


@pytest.fixture
def acme_usage(event_factory: EventFactory) -> list[Event]:
    """Return acme's monthly users: 160M, 149M, 152M, 156M from January to April 2025."""
    figures = [(160e6, "2025-01"), (149e6, "2025-02"), (152e6, "2025-03"), (156e6, "2025-04")]
    return [usage(event_factory, "acme", "mau", value, month) for value, month in figures]


def test_a_threshold_with_hysteresis_fires_below_the_line_and_resolves_only_above_the_resolve_line(
    acme_usage: list[Event],
) -> None:
    # Arrange
    rules = parse_rules(HYSTERESIS)
    router = router_for(rules)

    # Act
    evaluations, steps = along_event_time(rules, router, acme_usage)

    # Assert: 160M quiet; 149M fires; 152M (between the lines) still fires; 156M resolves.
    states = [[(alert.state, alert.since, alert.value) for alert in found.values()] for found in evaluations]
    assert states == [
        [],
        [("firing", "2025-02", 149e6)],
        [("firing", "2025-02", 152e6)],
        [],
    ]
    assert [[change.status for change in step] for step in steps] == [["firing"], [], ["resolved"]]


def test_a_resolved_alert_ends_at_the_event_date_the_condition_stopped_holding_with_the_value_then(
    acme_usage: list[Event], event_factory: EventFactory
) -> None:
    # Arrange: resolved templates; 156M in April resolves, then May's 153M (between the lines) arrives.
    rules = parse_rules(
        HYSTERESIS.replace(
            "    threshold:",
            '    annotations: {summary: "{entity} at {value:.3g}"}\n'
            '    resolved_annotations: {summary: "{entity} back at {value:.3g}"}\n'
            "    threshold:",
        )
    )
    router = router_for(rules)
    events = [*acme_usage, usage(event_factory, "acme", "mau", 153e6, "2025-05")]
    before = evaluate_all(rules, router, acme_usage[:3])
    after = evaluate_all(rules, router, events)

    # Act
    (change,) = transitions(before, after, resolver(rules, router, events))

    # Assert: firing since February, resolved in April (not May, not the wall clock), at 156M.
    assert before[change.alert.fingerprint].annotations == {"summary": "acme at 1.52e+08"}
    assert (change.status, change.alert.since, change.alert.until) == ("resolved", "2025-02", "2025-04")
    assert change.alert.value == 156e6
    assert change.alert.annotations == {"summary": "acme back at 1.56e+08"}


def test_without_a_resolve_line_the_same_figures_resolve_as_soon_as_the_line_is_crossed_back(
    acme_usage: list[Event],
) -> None:
    # Arrange: the same rule without resolve_above.
    rules = parse_rules(HYSTERESIS.replace("      resolve_above: 155.0e+6\n", ""))

    # Act
    _, steps = along_event_time(rules, router_for(rules), acme_usage)

    # Assert: 152M is above 150M, so the alert resolves one step earlier.
    assert [[change.status for change in step] for step in steps] == [["firing"], ["resolved"], []]


@pytest.mark.parametrize("facts", [2, 3, 4])
def test_the_alert_state_depends_on_event_time_not_arrival_order(acme_usage: list[Event], facts: int) -> None:
    # Arrange: the first ``facts`` figures in event time, delivered in every possible order.
    rules = parse_rules(HYSTERESIS)
    router = router_for(rules)
    known = acme_usage[:facts]
    expected = evaluate_all(rules, router, known)

    # Act
    outcomes = [evaluate_all(rules, router, list(order)) for order in itertools.permutations(known)]

    # Assert
    assert all(outcome == expected for outcome in outcomes)
    assert bool(expected) == (facts < 4)


def test_a_late_figure_between_the_lines_does_not_resolve_an_alert_it_arrives_after(
    acme_usage: list[Event],
) -> None:
    # Arrange: March's 152M reaches us first, then February's 149M, then January's 160M.
    rules = parse_rules(HYSTERESIS)
    router = router_for(rules)
    january, february, march, _ = acme_usage

    # Act
    alerts = list(evaluate_all(rules, router, [march, february, january]).values())

    # Assert: in event time 149M came first, so the alert fired in February and holds through March.
    assert [(alert.state, alert.since, alert.value) for alert in alerts] == [("firing", "2025-02", 152e6)]


FOR_TWO_MONTHS = """
rules:
  - name: usage-low-for-a-while
    severity: info
    threshold:
      signal: market_usage
      match: {entity: acme}
      below: 150.0e+6
      for_months: 2
"""


def test_a_condition_must_hold_for_months_of_event_time_before_it_fires(event_factory: EventFactory) -> None:
    # Arrange
    rules = parse_rules(FOR_TWO_MONTHS)
    figures = [(160e6, "2025-01"), (149e6, "2025-02"), (148e6, "2025-03"), (147e6, "2025-04")]
    events = [usage(event_factory, "acme", "mau", value, month) for value, month in figures]

    # Act
    evaluations, steps = along_event_time(rules, router_for(rules), events)

    # Assert: pending for February and March (held 0 and 1 month), firing from April (held 2).
    states = [[(alert.state, alert.since) for alert in found.values()] for found in evaluations]
    assert states == [[], [("pending", "2025-02")], [("pending", "2025-02")], [("firing", "2025-02")]]
    assert [[change.status for change in step] for step in steps] == [[], [], ["firing"]]


def test_a_pending_alert_that_recovers_goes_away_without_a_resolved_transition(event_factory: EventFactory) -> None:
    # Arrange
    rules = parse_rules(FOR_TWO_MONTHS)
    figures = [(149e6, "2025-02"), (148e6, "2025-03"), (151e6, "2025-04")]
    events = [usage(event_factory, "acme", "mau", value, month) for value, month in figures]

    # Act
    evaluations, steps = along_event_time(rules, router_for(rules), events)

    # Assert
    assert [[alert.state for alert in found.values()] for found in evaluations] == [["pending"], ["pending"], []]
    assert steps == [[], []]


def test_a_pending_condition_restarts_its_clock_after_it_stops_holding(event_factory: EventFactory) -> None:
    # Arrange: below the line in February, back above in March, below again from April.
    rules = parse_rules(FOR_TWO_MONTHS)
    figures = [(149e6, "2025-02"), (151e6, "2025-03"), (148e6, "2025-04"), (147e6, "2025-05")]
    events = [usage(event_factory, "acme", "mau", value, month) for value, month in figures]

    # Act
    alerts = list(evaluate_all(rules, router_for(rules), events).values())

    # Assert: only one month has passed since April, so it is still pending, counted from April.
    assert [(alert.state, alert.since) for alert in alerts] == [("pending", "2025-04")]


# --- event rules and growth rules -------------------------------------------------------------------------

EVENT_RULES = """
rules:
  - name: nvidia-export
    severity: critical
    annotations:
      summary: "{authority} {direction} {product} to {destination}"
    event:
      type: export_rule.changed
      match: {product: "nvidia_*"}
  - name: nvidia-order
    severity: info
    event:
      type: chip_delivery.reported
      match: {product: "nvidia_*", stage: ordered}
  - name: export-to-russia
    severity: critical
    event:
      type: export_rule.changed
      match: {destination: RU}
  - name: amd-export
    severity: critical
    event:
      type: export_rule.changed
      match: {product: "amd_*"}
"""


def test_event_rules_match_facts_by_glob_and_a_rule_matching_nothing_fires_nothing(
    seed_events: tuple[Event, ...],
) -> None:
    # Arrange
    rules = parse_rules(EVENT_RULES)

    # Act
    alerts = by_rule(evaluate_all(rules, router_for(rules), seed_events))

    # Assert: the H200 export change and bytedance's H200 order; no RU rule, no AMD product.
    assert sorted(alerts) == ["nvidia-export", "nvidia-order"]
    export, order = alerts["nvidia-export"], alerts["nvidia-order"]
    assert export.labels["event_id"] == SEED_4
    assert export.since == "2025-12"
    assert export.value is None
    assert export.annotations["summary"] == "us_government loosened nvidia_h200 to CN"
    assert (order.labels["buyer"], order.labels["product"], order.labels["stage"]) == (
        "bytedance",
        "nvidia_h200",
        "ordered",
    )
    assert order.cause_ids == ("seed-03-bytedance-h200-test-order",)


def test_an_event_alert_fires_once_per_live_fact_and_stops_when_its_fact_is_retracted(
    seed_events: tuple[Event, ...], event_factory: EventFactory
) -> None:
    # Arrange: a second, tightening, export change on the same regime.
    rules = parse_rules(EVENT_RULES)
    router = router_for(rules)
    tightened = event_factory("export_rule.changed", direction="tightened", occurred_on="2026-01")

    # Act
    both = evaluate_all(rules, router, [*seed_events, tightened])
    one_left = evaluate_all(rules, router, [*seed_events, tightened, retraction_of(SEED_4)])

    # Assert
    exports = sorted(alert.labels["direction"] for alert in both.values() if alert.rule == "nvidia-export")
    assert exports == ["loosened", "tightened"]
    assert [alert.labels["direction"] for alert in one_left.values() if alert.rule == "nvidia-export"] == ["tightened"]
    assert [change.status for change in transitions(both, one_left)] == ["resolved"]


def test_investment_surge_fires_when_a_period_is_more_than_25_percent_above_the_one_before(
    default_rules: RuleSet, default_router: Router, event_factory: EventFactory
) -> None:
    # Arrange: acme spends 10 bn in 2025 and announces 13 bn for 2026 (+30%).
    events = [
        investment(event_factory, "acme", 2025, 10e9, "2025-03"),
        investment(event_factory, "acme", 2026, 13e9, "2025-11"),
    ]

    # Act
    alerts = by_rule(evaluate_all(default_rules, default_router, events))

    # Assert
    assert sorted(alerts) == ["investment-surge"]
    surge = alerts["investment-surge"]
    assert (surge.state, surge.severity, surge.since) == ("firing", "info", "2025-11")
    assert (surge.labels["entity"], surge.labels["period"]) == ("acme", "2026")
    assert surge.value == pytest.approx(0.30)
    assert surge.annotations["summary"] == "acme raised its 2026 AI spending by 30% on the year before"


def test_investment_growth_under_the_line_fires_nothing(
    default_rules: RuleSet, default_router: Router, event_factory: EventFactory
) -> None:
    # Arrange: +20% only.
    events = [
        investment(event_factory, "acme", 2025, 10e9, "2025-03"),
        investment(event_factory, "acme", 2026, 12e9, "2025-11"),
    ]

    # Act
    alerts = evaluate_all(default_rules, default_router, events)

    # Assert
    assert alerts == {}


def test_a_peer_rule_between_two_entities_of_one_group_compares_their_latest_figures(
    event_factory: EventFactory,
) -> None:
    # Arrange: a rule-only peer pair (not in the default peers) folds both sides in one group.
    rules = parse_rules(
        """
rules:
  - name: acme-behind
    severity: info
    peer: {entity: acme, peer: zeta, metric: mau, below: 0.5}
"""
    )
    router = router_for(rules)
    events = [
        usage(event_factory, "acme", "mau", 40e6, "2025-05"),
        usage(event_factory, "zeta", "mau", 100e6, "2025-06"),
    ]

    # Act
    alerts = list(evaluate_all(rules, router, events).values())

    # Assert
    assert router.fold_key("acme") == router.fold_key("zeta")
    assert [(alert.state, alert.since, alert.value) for alert in alerts] == [("firing", "2025-06", 0.4)]


def test_evaluating_the_same_state_twice_sends_no_transition(
    seed_events: tuple[Event, ...], default_rules: RuleSet, default_router: Router
) -> None:
    # Arrange
    once = evaluate_all(default_rules, default_router, seed_events)

    # Act
    replayed = evaluate_all(default_rules, default_router, [*seed_events, *seed_events])

    # Assert
    assert replayed == once
    assert transitions(once, replayed) == []
    assert [change.status for change in transitions({}, once)] == ["firing"] * 3
    assert [change.status for change in transitions(once, {})] == ["resolved"] * 3
