"""The laws of alert evaluation: alerts are a function of the set of live facts.

Whatever the arrival order, however often a fact is redelivered, the alerts
are the same; evaluating the same facts again sends nothing; a retraction is
the same as never having published its target.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from tracker.core.alerts import Alert, evaluate, fingerprint, resolution, transitions
from tracker.core.decode import validate_event
from tracker.core.events import Event, EventRetracted
from tracker.core.fold import Projection, SeriesValue
from tracker.core.routing import Router, parse_peers, series_of
from tracker.kafka.partitioning import partition_for
from tracker.kafka.publisher import BROADCAST_HEADER, encode_event
from tracker.rules_file import DEFAULT_RULES, parse_rules
from tracker.settings import DEFAULT_PEERS
from tracker.worker.alerting import Alerting
from tracker.worker.folding import BatchFolder, Incoming
from tracker.worker.index import TableIndex
from tracker.worker.metrics import AlertCollector, PipelineMetrics

pytestmark = pytest.mark.unit

# The default rules, plus rules that exercise hysteresis, ``for_months``, a peer ratio
# falling below a line, and event globs, on the entities the strategies draw.
RULES = parse_rules(
    DEFAULT_RULES.read_text(encoding="utf-8")
    + """
  - name: doubao-low
    severity: warning
    threshold:
      signal: market_usage
      match: {entity: doubao}
      below: 150.0e+6
      resolve_above: 155.0e+6
  - name: bytedance-high-for-a-while
    severity: info
    threshold:
      signal: market_usage
      match: {entity: bytedance, metric: tokens_per_day}
      above: 40.0e+12
      resolve_below: 35.0e+12
      for_months: 2
  - name: bytedance-behind-google
    severity: info
    peer: {entity: bytedance, peer: google, metric: tokens_per_day, below: 0.8, resolve_above: 0.9}
  - name: any-nvidia-export
    severity: critical
    event:
      type: export_rule.changed
      match: {product: "nvidia_*", direction: tightened}
"""
)
ROUTER = Router(tuple(dict.fromkeys(parse_peers(DEFAULT_PEERS) + RULES.peer_pairs())))

laws = settings(max_examples=120, deadline=None)


# --- generated events ------------------------------------------------------------------------------------


@st.composite
def months(draw: st.DrawFn) -> str:
    """Draw an event date known to a month or, now and then, only to a year."""
    year = draw(st.integers(2025, 2026))
    if draw(st.integers(0, 6)) == 0:
        return f"{year}"
    return f"{year}-{draw(st.integers(1, 12)):02d}"


@st.composite
def usage_facts(draw: st.DrawFn) -> dict[str, Any]:
    """Draw a usage figure of the bytedance/google peer pair, or of doubao."""
    entity, metric, scale = draw(
        st.sampled_from(
            [
                ("bytedance", "tokens_per_day", 1e12),
                ("google", "tokens_per_day", 1e12),
                ("doubao", "mau", 1e6),
            ]
        )
    )
    shape = draw(st.sampled_from(["value", "low"]))
    return {
        "type": "usage.reported",
        "entity": entity,
        "metric": metric,
        "value": {shape: draw(st.integers(20, 60)) * 5 * scale / 2, "unit": "units"},
        "occurred_on": draw(months()),
        "source": {"name": draw(st.sampled_from(["Financial Times", "QuestMobile"]))},
    }


@st.composite
def export_facts(draw: st.DrawFn) -> dict[str, Any]:
    """Draw an export-rule change on one of two products and two destinations."""
    data: dict[str, Any] = {
        "type": "export_rule.changed",
        "authority": "us_government",
        "product": draw(st.sampled_from(["nvidia_h200", "nvidia_h20", "amd_mi308"])),
        "destination": draw(st.sampled_from(["CN", "RU"])),
        "direction": draw(st.sampled_from(["loosened", "tightened"])),
        "occurred_on": draw(months()),
        "source": {"name": "Financial Times"},
    }
    if draw(st.booleans()):
        data["effective_on"] = draw(months())
    return data


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    """Draw usage figures and export changes, an id reused with other content, and retractions."""
    found = draw(st.lists(st.one_of(usage_facts(), usage_facts(), export_facts()), min_size=1, max_size=10))
    if draw(st.booleans()):
        # The same id published twice with other figures: only the smaller digest may count.
        index = draw(st.integers(0, len(found) - 1))
        found[index] = {**found[index], "id": "reused"}
        other = dict(found[index])
        if other["type"] == "usage.reported":
            other["value"] = {"value": 42e12, "unit": "units"}
        else:
            other["direction"] = "tightened" if other["direction"] == "loosened" else "loosened"
        found.append(other)
    events = [validate_event(data) for data in found]
    targets = draw(st.lists(st.sampled_from([event.event_id for event in events] + ["ghost"]), max_size=3))
    return events + [retraction(target) for target in targets]


@st.composite
def deliveries(draw: st.DrawFn, events: Sequence[Event]) -> list[Event]:
    """Draw an arrival order of ``events`` where any of them may be redelivered."""
    redelivered = draw(st.lists(st.sampled_from(list(events)), max_size=len(events)))
    return draw(st.permutations([*events, *redelivered]))


def retraction(target_id: str) -> Event:
    """Return a retraction of ``target_id``."""
    return validate_event(
        {
            "type": "event.retracted",
            "target_id": target_id,
            "reason": "misreported",
            "occurred_on": "2026-12",
            "source": {"name": "Financial Times"},
        }
    )


# --- what is compared ----------------------------------------------------------------------------------


def fold_groups(state: Mapping[str, SeriesValue]) -> dict[str, dict[str, SeriesValue]]:
    """Split a projection's state into fold groups by fold key, leaving the tombstones out."""
    groups: dict[str, dict[str, SeriesValue]] = defaultdict(dict)
    for key, value in state.items():
        if not key.startswith("#"):
            groups[key.partition("/")[0]][key] = value
    return dict(groups)


def alerts_of(events: Iterable[Event]) -> dict[str, Alert]:
    """Fold ``events`` and evaluate the rules group by group, as the workers do."""
    alerts: dict[str, Alert] = {}
    for group in fold_groups(Projection(ROUTER).replay(events).state).values():
        alerts.update(evaluate(RULES, ROUTER, group))
    return alerts


# --- the laws ----------------------------------------------------------------------------------------


@laws
@given(st.data())
def test_alerts_depend_on_the_set_of_facts_not_on_arrival_order_or_redelivery(data: st.DataObject) -> None:
    # Arrange
    events = data.draw(histories())
    arrival = data.draw(deliveries(events))

    # Act
    reference, shuffled = alerts_of(events), alerts_of(arrival)

    # Assert
    assert shuffled == reference


@laws
@given(histories())
def test_evaluating_the_same_facts_again_sends_no_transition(events: list[Event]) -> None:
    # Arrange
    first = alerts_of(events)

    # Act
    replayed = alerts_of([*events, *events])

    # Assert
    assert transitions(first, first) == []
    assert transitions(first, replayed) == []


@laws
@given(histories())
def test_every_transition_from_nothing_is_a_firing_of_a_firing_alert(events: list[Event]) -> None:
    # Arrange
    alerts = alerts_of(events)

    # Act
    started, stopped = transitions({}, alerts), transitions(alerts, {})

    # Assert: pending alerts send nothing either way.
    firing = sorted(key for key, alert in alerts.items() if alert.state == "firing")
    assert [change.alert.fingerprint for change in started] == firing
    assert {change.status for change in started} <= {"firing"}
    assert sorted(change.alert.fingerprint for change in stopped) == firing
    assert {change.alert.state for change in stopped} <= {"resolved"}


@laws
@given(st.data())
def test_retracting_a_fact_is_never_having_published_it(data: st.DataObject) -> None:
    # Arrange
    events = data.draw(histories())
    facts = [event for event in events if not isinstance(event, EventRetracted)]
    target = data.draw(st.sampled_from(facts)).event_id
    with_retraction = data.draw(st.permutations([*events, retraction(target)]))
    without_target = [event for event in events if event.event_id != target]

    # Act
    retracted, never = alerts_of(with_retraction), alerts_of(without_target)

    # Assert
    assert retracted == never
    assert all(target not in alert.cause_ids for alert in retracted.values())


@laws
@given(st.data())
def test_re_evaluating_only_the_changed_series_gives_the_full_evaluation(data: st.DataObject) -> None:
    # Arrange: the log arrives in two batches; the first batch was evaluated in full.
    events = data.draw(deliveries(data.draw(histories())))
    cut = data.draw(st.integers(0, len(events)))
    projection = Projection(ROUTER).replay(events[:cut])
    before = {key: copy.deepcopy(value) for key, value in projection.state.items()}
    after = projection.replay(events[cut:]).state
    changed = {key for key, value in after.items() if before.get(key) != value}

    # Act
    for fold_key, group in fold_groups(after).items():
        previous = evaluate(RULES, ROUTER, fold_groups(before).get(fold_key, {}))
        incremental = evaluate(RULES, ROUTER, group, changed, previous)

        # Assert
        assert incremental == evaluate(RULES, ROUTER, group), fold_key


@laws
@given(histories())
def test_every_alert_is_caused_by_live_facts_of_its_own_group(events: list[Event]) -> None:
    # Arrange
    retracted = {event.target_id for event in events if isinstance(event, EventRetracted)}
    live = {event.event_id for event in events if not isinstance(event, EventRetracted)} - retracted

    # Act
    alerts = alerts_of(events)

    # Assert
    for alert in alerts.values():
        assert alert.state in ("pending", "firing")
        assert alert.cause_ids, f"{alert.rule} has no cause"
        assert set(alert.cause_ids) <= live


PARTITIONS = 3


def records(events: Sequence[Event], first_offset: int) -> list[Incoming]:
    """Return the records the publisher writes for ``events``: retractions broadcast to every partition."""
    out = []
    for offset, event in enumerate(events, first_offset):
        value, series = encode_event(event), series_of(event)
        if series is None:
            out.extend(
                Incoming("events", partition, offset, None, value, (BROADCAST_HEADER,), None)
                for partition in range(PARTITIONS)
            )
        else:
            key = ROUTER.fold_key(series.subject)
            out.append(Incoming("events", partition_for(key, PARTITIONS), offset, key.encode(), value, (), None))
    return out


def normalised(status: str, alert: Any) -> tuple[str, str, str]:
    """Return a transition as comparable text (the alerts topic carries it as JSON)."""
    data = alert.to_json() if isinstance(alert, Alert) else alert
    return status, data["fingerprint"], json.dumps(data, sort_keys=True)


def full_transitions(before: Iterable[Event], after: Iterable[Event]) -> list[tuple[str, str, str]]:
    """Return the transitions between full evaluations of every group, before and after a batch."""
    groups_before = fold_groups(Projection(ROUTER).replay(before).state)
    groups_after = fold_groups(Projection(ROUTER).replay(after).state)
    out = []
    for fold_key, group in groups_after.items():
        previous = evaluate(RULES, ROUTER, groups_before.get(fold_key, {}))
        resolve = functools.partial(resolution, RULES, ROUTER, group)
        out.extend(
            normalised(t.status, t.alert) for t in transitions(previous, evaluate(RULES, ROUTER, group), resolve)
        )
    return sorted(out)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_the_worker_evaluating_batch_by_batch_gives_what_full_evaluation_gives(data: st.DataObject) -> None:
    # Arrange: the log (duplicates, late facts, reused ids, retractions, and retractions of facts
    # already folded) cut into drawn batches; now and then the worker forgets what it evaluated,
    # as after a partition assignment.
    events = data.draw(deliveries(data.draw(histories())))
    facts = [event.event_id for event in events if not isinstance(event, EventRetracted)]
    events += [retraction(target) for target in data.draw(st.lists(st.sampled_from(facts), max_size=2))]
    cuts = sorted(data.draw(st.lists(st.integers(0, len(events)), max_size=4)))
    batches = [events[start:end] for start, end in zip([0, *cuts], [*cuts, len(events)], strict=True)]
    series: dict[str, Any] = {}
    groups: dict[str, Any] = {}
    sent: list[dict[str, Any]] = []

    async def send(documents: list[tuple[bytes, bytes]]) -> None:
        sent.extend(json.loads(value) for _, value in documents)

    async def reroute(*args: Any) -> None:
        raise AssertionError(f"nothing should be re-sent: {args[:2]}")

    metrics = PipelineMetrics.create(CollectorRegistry())
    index = TableIndex(series, PARTITIONS)
    alerting = Alerting(RULES, ROUTER, series, groups, index.group, send, metrics)
    folder = BatchFolder(ROUTER, series, reroute, "events", "dlq", PARTITIONS, metrics, index, alerting)

    for number, batch in enumerate(batches):
        folded = [event for done in batches[:number] for event in done]
        if data.draw(st.integers(0, 3), label="reassigned") == 0:
            alerting.reset()
        sent.clear()

        # Act
        asyncio.run(folder.fold(records(batch, len(folded))))

        # Assert: the batch's transitions, one by one, are those of full evaluations.
        assert sorted(normalised(d["status"], d["alert"]) for d in sent) == full_transitions(folded, folded + batch)

    # Assert: what is stored, and what market_alert_firing exports, is the full evaluation of the live facts.
    expected = alerts_of(events)
    stored = {fp: entry["alert"] for value in groups.values() for fp, entry in value["alerts"].items()}
    assert stored == {fp: json.loads(json.dumps(alert.to_json())) for fp, alert in expected.items()}
    registry = CollectorRegistry()
    registry.register(AlertCollector(lambda: [e for value in groups.values() for e in value["alerts"].values()]))
    firing = sorted(json.dumps(s.labels, sort_keys=True) for m in registry.collect() for s in m.samples)
    wanted = [{**alert.labels, "alertname": alert.rule} for alert in expected.values() if alert.state == "firing"]
    assert firing == sorted(json.dumps(labels, sort_keys=True) for labels in wanted)


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=12), max_size=6))
def test_an_alert_fingerprint_digests_the_json_of_its_sorted_labels(labels: dict[str, str]) -> None:
    # Fingerprints are stored in the groups changelog and sent to subscribers: how they are
    # computed may change, their value must not.
    text = json.dumps(tuple(sorted(labels.items())))
    assert fingerprint(labels) == hashlib.sha256(text.encode()).hexdigest()[:16]
