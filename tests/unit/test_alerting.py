"""Alert entries per unit: a batch rewrites only the parts it changed; a removed rule resolves on the next touch."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tracker.core.routing import Router
from tracker.core.rules import RuleSet
from tracker.kafka.partitioning import partition_for
from tracker.kafka.publisher import BROADCAST_HEADER
from tracker.rules_file import load_rules, parse_rules
from tracker.worker.alerting import Alerting
from tracker.worker.folding import BatchFolder, Incoming
from tracker.worker.index import TableIndex
from tracker.worker.metrics import AlertCollector, PipelineMetrics

pytestmark = pytest.mark.unit

PARTITIONS = 4


class RecordingTable(dict[str, Any]):
    """A dict that remembers which keys were written or deleted."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[str] = []

    def __setitem__(self, key: str, value: Any) -> None:
        self.written.append(key)
        super().__setitem__(key, value)

    def __delitem__(self, key: str) -> None:
        self.written.append(key)
        super().__delitem__(key)


def export_change(event_id: str, product: str, occurred_on: str) -> Incoming:
    body = {
        "type": "export_rule.changed",
        "id": event_id,
        "authority": "us_bis",
        "product": product,
        "destination": "CN",
        "direction": "tightened",
        "effective_on": occurred_on,
        "occurred_on": occurred_on,
        "source": {"name": "test"},
    }
    return Incoming("events", partition_for("us_bis", PARTITIONS), 0, b"us_bis", json.dumps(body).encode(), (), None)


def retraction(event_id: str, target_id: str) -> Incoming:
    body = {
        "type": "event.retracted",
        "id": event_id,
        "target_id": target_id,
        "reason": "misreported",
        "occurred_on": "2026-01",
        "source": {"name": "test"},
    }
    partition = partition_for("us_bis", PARTITIONS)  # its broadcast copy on the target's partition
    return Incoming("events", partition, 1, None, json.dumps(body).encode(), (BROADCAST_HEADER,), None)


class Pipeline:
    """A batch folder with alerting over plain dict tables; transitions are collected."""

    def __init__(self, rules: RuleSet, series: dict[str, Any], groups: RecordingTable) -> None:
        self.sent: list[dict[str, Any]] = []

        async def send(records: list[tuple[bytes, bytes]]) -> None:
            self.sent.extend(json.loads(value) for _, value in records)

        async def reroute(*args: Any) -> None:
            raise AssertionError(f"nothing should be re-sent: {args[:2]}")

        self.registry = CollectorRegistry()
        metrics = PipelineMetrics.create(self.registry)
        index = TableIndex(series, PARTITIONS)
        alerting = Alerting(rules, Router(), series, groups, index.group, send, metrics)
        self.folder = BatchFolder(Router(), series, reroute, "events", "dlq", PARTITIONS, metrics, index, alerting)

    def fold(self, *records: Incoming) -> None:
        asyncio.run(self.folder.fold(list(records)))


def test_a_batch_rewrites_only_the_entries_of_the_parts_it_changed() -> None:
    series: dict[str, Any] = {}
    groups = RecordingTable()
    pipeline = Pipeline(load_rules(None), series, groups)
    pipeline.fold(export_change("h200", "nvidia_h200", "2025-01"), export_change("b200", "nvidia_b200", "2025-02"))
    assert len(groups) == 2 and len(pipeline.sent) == 2
    groups.written.clear()

    pipeline.fold(export_change("h200-again", "nvidia_h200", "2025-03"))

    (written,) = groups.written
    assert written.startswith("us_bis/group/export-rule-change-china|") and "nvidia_h200" in written
    assert [document["alert"]["labels"]["event_id"] for document in pipeline.sent[2:]] == ["h200-again"]
    assert sum(len(entry["alerts"]) for entry in groups.values()) == 3


def test_a_group_first_touched_under_new_rules_drops_the_alerts_of_a_removed_rule() -> None:
    series: dict[str, Any] = {}
    groups = RecordingTable()
    before = Pipeline(load_rules(None), series, groups)
    before.fold(export_change("h200", "nvidia_h200", "2025-01"), export_change("b200", "nvidia_b200", "2025-02"))
    assert len(groups) == 2
    # The same tables, and rules without the export rule: the next touch evaluates the group whole.
    only_growth = parse_rules(
        "rules:\n  - name: surge\n    severity: info\n    growth: {of: investment, above: 0.25}\n"
    )
    after = Pipeline(only_growth, series, groups)

    after.fold(export_change("h100", "nvidia_h100", "2025-03"))

    assert groups == {}
    resolved = sorted(d["alert"]["labels"]["event_id"] for d in after.sent if d["status"] == "resolved")
    assert resolved == ["b200", "h200"]
    assert not [d for d in after.sent if d["status"] == "firing"]


def test_the_bytes_written_per_transition_stay_bounded_however_many_facts_a_batch_holds() -> None:
    # Issue 14, finding 1: each transition carried the provenance of every record its
    # group had in the batch, so N facts of one export series wrote N transitions of N records.
    facts = 1000
    pipeline = Pipeline(load_rules(None), {}, RecordingTable())
    records = [export_change(f"h200-{n:04d}", "nvidia_h200", "2025-01") for n in range(facts)]

    pipeline.fold(*records)

    assert len(pipeline.sent) == facts
    sizes = [len(json.dumps(document)) for document in pipeline.sent]
    assert max(sizes) < 4096, max(sizes)
    for document in pipeline.sent:
        (own,) = document["provenance"]["events"]
        assert own["id"] == document["alert"]["labels"]["event_id"]
        assert document["provenance"]["events_omitted"] == 0


def test_a_unit_with_many_alerts_keeps_them_in_small_entries_split_by_fingerprint() -> None:
    # An event rule fires once per live fact: 16,000 facts of one series made one entry of 17 MB.
    groups = RecordingTable()
    pipeline = Pipeline(load_rules(None), {}, groups)

    pipeline.fold(*(export_change(f"h200-{n:04d}", "nvidia_h200", "2025-01") for n in range(1000)))

    assert sum(len(entry["alerts"]) for entry in groups.values()) == 1000
    assert len(groups) <= 256
    assert max(len(json.dumps(entry)) for entry in groups.values()) < 64 * 1024
    for key, entry in groups.items():
        assert {fingerprint[:2] for fingerprint in entry["alerts"]} == {key.rpartition("#")[2]}


def test_an_entry_written_before_units_were_split_is_moved_without_a_transition() -> None:
    # Arrange: the alert entry of the h200 unit as it was stored before units were split.
    series: dict[str, Any] = {}
    groups = RecordingTable()
    pipeline = Pipeline(load_rules(None), series, groups)
    pipeline.fold(export_change("h200", "nvidia_h200", "2025-01"))
    ((key, entry),) = groups.items()
    legacy = key.rpartition("#")[0]
    groups.clear()
    groups[legacy] = entry
    restarted = Pipeline(load_rules(None), series, groups)  # evaluates the group whole on first touch

    # Act: another fact of the group, on another product.
    restarted.fold(export_change("b200", "nvidia_b200", "2025-02"))

    # Assert: only the new fact fires; the old entry now lives under its bucket.
    assert [d["alert"]["labels"]["event_id"] for d in restarted.sent] == ["b200"]
    assert legacy not in groups and key in groups
    assert groups[key] == entry


def test_the_rule_is_labelled_alertname_on_every_exported_alert_sample() -> None:
    # Arrange: one export change fires the export rule.
    groups = RecordingTable()
    pipeline = Pipeline(load_rules(None), {}, groups)
    pipeline.fold(export_change("e1", "nvidia_h200", "2025-12"))
    entries = [entry for value in groups.values() for entry in value["alerts"].values()]
    registry = CollectorRegistry()
    registry.register(AlertCollector(lambda: entries))

    # Act
    firing = [s.labels for m in registry.collect() for s in m.samples if s.name == "market_alert_firing"]
    counted = [
        s.labels
        for m in pipeline.registry.collect()
        for s in m.samples
        if s.name == "tracker_alert_transitions_total" and s.value
    ]

    # Assert: the label name of the alert's labels, matchers, streams and Alertmanager.
    assert [labels["alertname"] for labels in firing] == ["export-rule-change-china"]
    assert firing[0] == {**pipeline.sent[0]["alert"]["labels"], "alertname": "export-rule-change-china"}
    assert "rule" not in firing[0]
    assert counted == [{"alertname": "export-rule-change-china", "state": "firing"}]


def test_a_retracted_export_change_sends_a_resolved_transition_describing_the_retraction() -> None:
    # Arrange
    pipeline = Pipeline(load_rules(None), {}, RecordingTable())
    pipeline.fold(export_change("h200", "nvidia_h200", "2025-12"))

    # Act
    pipeline.fold(retraction("r1", "h200"))

    # Assert: the resolved transition says what ended, and when in event time.
    firing, resolved = pipeline.sent
    assert (firing["status"], resolved["status"]) == ("firing", "resolved")
    assert firing["alert"]["annotations"]["summary"] == "us_bis tightened exports of nvidia_h200 to CN"
    assert resolved["alert"]["annotations"]["summary"] == "Retracted: us_bis tightened exports of nvidia_h200 to CN"
    assert (resolved["alert"]["since"], resolved["alert"]["until"]) == ("2025-12", "2025-12")
    assert firing["alert"]["until"] == ""


def test_a_batch_rewrites_only_the_buckets_of_the_facts_it_revised_and_keeps_their_other_alerts() -> None:
    # Arrange: 100 alerts of one export series in 256 buckets, so some buckets hold several.
    groups = RecordingTable()
    pipeline = Pipeline(load_rules(None), {}, groups)
    pipeline.fold(*(export_change(f"h200-{n:03d}", "nvidia_h200", "2025-01") for n in range(100)))
    retracted = {f"h200-{n:03d}" for n in range(0, 100, 2)}
    held = {
        key: {entry["alert"]["labels"]["event_id"] for entry in value["alerts"].values()}
        for key, value in groups.items()
    }
    assert any(len(ids) > 1 and ids & retracted and ids - retracted for ids in held.values())
    groups.written.clear()
    pipeline.sent.clear()

    # Act: every other fact retracted.
    pipeline.fold(*(retraction(f"r-{target}", target) for target in sorted(retracted)))

    # Assert: the retracted facts resolve; the others stay stored; untouched buckets are not rewritten.
    assert sorted(d["alert"]["labels"]["event_id"] for d in pipeline.sent if d["status"] == "resolved") == sorted(
        retracted
    )
    assert len(pipeline.sent) == len(retracted)
    left = {entry["alert"]["labels"]["event_id"] for value in groups.values() for entry in value["alerts"].values()}
    assert left == {f"h200-{n:03d}" for n in range(100)} - retracted
    assert set(groups.written) == {key for key, ids in held.items() if ids & retracted}
