"""Prometheus exposition: pipeline counters, and signals read from the tables at scrape time.

Signals are never kept in gauges: the collector derives them from the table
on every scrape, restricted to the partitions this worker owns right now, so
a rebalance can never leave a stale series behind.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from tracker.core.catalogue import SIGNAL_HELP, Signal
from tracker.core.fold import SeriesValue
from tracker.core.routing import Router
from tracker.kafka.partitioning import partition_for

__all__ = ["AlertCollector", "LagCollector", "PipelineMetrics", "SignalCollector", "TombstoneCollector", "owned_state"]

EVENT_TYPES = (
    "investment.announced",
    "export_rule.changed",
    "chip_delivery.reported",
    "usage.reported",
    "event.retracted",
)


@dataclass(frozen=True)
class PipelineMetrics:
    """The worker's own counters, registered on one registry."""

    events: Counter
    rejected: Counter
    duplicates: Counter
    rerouted: Counter
    latency: Histogram
    transitions: Counter
    notifications: Counter
    batch_size: Histogram
    records_read: Counter
    rebalances: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry, rules: tuple[str, ...] = ()) -> PipelineMetrics:
        """Register the pipeline metrics on ``registry``, every known label set starting at zero."""
        metrics = cls(
            events=Counter("tracker_events", "Events folded, by type.", ["type"], registry=registry),
            rejected=Counter(
                "tracker_events_rejected",
                "Records refused, by reason.",
                ["reason"],
                registry=registry,
            ),
            duplicates=Counter("tracker_events_duplicate", "Events whose id was already folded.", registry=registry),
            rerouted=Counter(
                "tracker_events_rerouted",
                "Records re-sent to their home partition (or broadcast) before folding.",
                registry=registry,
            ),
            latency=Histogram(
                "tracker_processing_latency_seconds",
                "Time from a record's broker timestamp to its fold.",
                buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                registry=registry,
            ),
            transitions=Counter(
                "tracker_alert_transitions",
                "Alert transitions published, by rule (alertname) and state (firing, resolved).",
                ["alertname", "state"],
                registry=registry,
            ),
            batch_size=Histogram(
                "tracker_fold_batch_records",
                "Records per fold batch (one table write per changed key per batch).",
                buckets=(1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000),
                registry=registry,
            ),
            records_read=Counter(
                "tracker_records_read",
                "Records read, by topic: events by the fold, changelog records applied to the tables.",
                ["topic"],
                registry=registry,
            ),
            rebalances=Counter(
                "tracker_rebalances",
                "Partition assignments the fold received from its consumer group.",
                registry=registry,
            ),
            notifications=Counter(
                "tracker_notifications",
                "Webhook notification outcomes: delivered, retried, dead_lettered, duplicate_skipped.",
                ["outcome"],
                registry=registry,
            ),
        )
        # A counter that appears at its first increment hides that increment from rate().
        for kind in EVENT_TYPES:
            metrics.events.labels(type=kind)
        for reason in ("invalid_json", "invalid_event", "id_conflict", "refused_by_broker"):
            metrics.rejected.labels(reason=reason)
        for outcome in ("delivered", "retried", "dead_lettered", "duplicate_skipped"):
            metrics.notifications.labels(outcome=outcome)
        for rule in rules:
            for state in ("firing", "resolved"):
                metrics.transitions.labels(alertname=rule, state=state)
        return metrics


def owned_state(table: Mapping[str, SeriesValue], owned: set[int], partitions: int) -> dict[str, SeriesValue]:
    """Return the table entries whose keys live on the partitions in ``owned``.

    Keys are filtered before values are read: a store may hold standby partitions too, and
    reading a value decodes it.
    """
    return {key: table[key] for key in list(table) if partition_for(key, partitions) in owned}


class SignalCollector(Collector):
    """Expose derived signals as gauge families, computed at scrape time."""

    def __init__(self, router: Router, signals: Callable[[], list[Signal]]) -> None:
        self.router = router
        self.signals = signals

    def collect(self) -> Iterator[Metric]:
        """Yield one gauge family per signal name."""
        by_name: dict[str, list[Signal]] = defaultdict(list)
        for signal in self.signals():
            by_name[signal.name].append(signal)
        for name, help_text in SIGNAL_HELP.items():
            members = by_name.get(name, [])
            if not members:
                continue
            # Not GaugeMetricFamily: its label names are fixed per family, and a peer ratio of
            # investments also names the periods it compares (a ratio of usage has none).
            family = Metric(name, help_text, "gauge")
            for signal in members:
                family.add_sample(name, dict(signal.labels), signal.value)
            yield family


class LagCollector(Collector):
    """Expose ``tracker_consumer_lag{topic,partition}`` for the partitions this worker owns."""

    def __init__(self, topic: str, lag: Callable[[], dict[int, int]], owned: Callable[[], set[int]]) -> None:
        self.topic = topic
        self.lag = lag
        self.owned = owned

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the lag of each owned partition, as last measured against the broker."""
        family = GaugeMetricFamily(
            "tracker_consumer_lag",
            "Records in the events topic not yet committed by the fold.",
            labels=["topic", "partition"],
        )
        lag, owned = self.lag(), self.owned()
        for partition in sorted(owned):
            if partition in lag:
                family.add_metric([self.topic, str(partition)], float(lag[partition]))
        yield family


class AlertCollector(Collector):
    """Expose ``market_alert_firing`` (1 while firing) from the groups table at scrape time."""

    def __init__(self, alerts: Callable[[], list[dict[str, Any]]]) -> None:
        self.alerts = alerts

    def collect(self) -> Iterator[Metric]:
        """Yield the firing alerts of the groups this worker owns."""
        family = Metric("market_alert_firing", "1 while an alert fires; labels identify the alert.", "gauge")
        for entry in self.alerts():
            alert = entry["alert"]
            if alert["state"] != "firing":
                continue
            # The rule is ``alertname`` here as in the alert's labels, matchers and streams.
            labels = {**alert["labels"], "alertname": alert["rule"]}
            family.add_sample("market_alert_firing", labels, 1.0)
        yield family


class TombstoneCollector(Collector):
    """Expose ``tracker_retraction_tombstones{partition}`` for the partitions this worker owns."""

    def __init__(self, count: Callable[[], dict[int, int]]) -> None:
        self.count = count

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Yield the number of retracted ids each owned partition keeps tombstones for."""
        family = GaugeMetricFamily(
            "tracker_retraction_tombstones",
            "Retracted ids a partition keeps tombstones for (kept for good, known fact or not).",
            labels=["partition"],
        )
        for partition, count in sorted(self.count().items()):
            family.add_metric([str(partition)], float(count))
        yield family
