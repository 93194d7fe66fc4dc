"""Exchange rates in the worker's fold: folded on every partition, and a change re-evaluates the alerts it converts."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from tracker.core.fx import Rates
from tracker.core.routing import Router
from tracker.kafka.partitioning import partition_for
from tracker.kafka.publisher import BROADCAST_HEADER
from tracker.rules_file import load_rules
from tracker.worker.alerting import Alerting
from tracker.worker.folding import BatchFolder, Incoming
from tracker.worker.index import TableIndex
from tracker.worker.metrics import PipelineMetrics

pytestmark = pytest.mark.unit

PARTITIONS = 4
SOURCE = {"name": "test"}


def order_in_yuan(event_id: str, value: float) -> Incoming:
    body = {
        "type": "chip_delivery.reported",
        "id": event_id,
        "entity": "acme",
        "vendor": "nvidia",
        "product": "nvidia_h20",
        "order_value": {"value": value, "unit": "CNY"},
        "stage": "ordered",
        "occurred_on": "2025-06",
        "source": SOURCE,
    }
    return Incoming("events", partition_for("acme", PARTITIONS), 0, b"acme", json.dumps(body).encode(), (), None)


def broadcast(body: dict[str, Any], offset: int) -> list[Incoming]:
    value = json.dumps({**body, "source": SOURCE}).encode()
    return [
        Incoming("events", p, offset, f"#{p}".encode(), value, (BROADCAST_HEADER,), None) for p in range(PARTITIONS)
    ]


def cny_rate(event_id: str, usd_per_unit: float, offset: int) -> list[Incoming]:
    body = {"type": "fx_rate.reported", "id": event_id, "currency": "CNY", "usd_per_unit": usd_per_unit}
    return broadcast({**body, "occurred_on": "2025-05"}, offset)


def retraction(target: str, offset: int) -> list[Incoming]:
    body = {"type": "event.retracted", "id": f"r-{target}", "target_id": target, "reason": "wrong"}
    return broadcast({**body, "occurred_on": "2025-06"}, offset)


class Pipeline:
    """A batch folder with the default rules over plain dict tables; transitions are collected."""

    def __init__(self) -> None:
        self.series: dict[str, Any] = {}
        self.groups: dict[str, Any] = {}
        self.sent: list[dict[str, Any]] = []

        async def send(records: list[tuple[bytes, bytes]]) -> None:
            self.sent.extend(json.loads(value) for _, value in records)

        async def reroute(*args: Any) -> None:
            raise AssertionError(f"nothing should be re-sent: {args[:2]}")

        metrics = PipelineMetrics.create(CollectorRegistry())
        self.index = TableIndex(self.series, PARTITIONS)
        alerting = Alerting(load_rules(None), Router(), self.series, self.groups, self.index.group, send, metrics)
        self.folder = BatchFolder(
            Router(), self.series, reroute, "events", "dlq", PARTITIONS, metrics, self.index, alerting
        )

    def fold(self, *records: Incoming) -> None:
        asyncio.run(self.folder.fold(list(records)))

    def transitions(self) -> list[tuple[str, str]]:
        return [(document["status"], document["alert"]["rule"]) for document in self.sent]


def test_a_rate_is_folded_on_every_partition() -> None:
    pipeline = Pipeline()

    pipeline.fold(*cny_rate("fx-may", 0.14, 0))

    for partition in range(PARTITIONS):
        rates = Rates.from_state(
            {key: value for key, value in pipeline.series.items() if key.startswith(f"#{partition}/")}
        )
        assert rates.at("CNY", "2025-06") is not None


def test_a_rate_arriving_after_an_order_fires_the_order_alert_and_its_retraction_resolves_it() -> None:
    pipeline = Pipeline()
    pipeline.fold(order_in_yuan("big-order", 10e9))  # 10 billion yuan: no rate yet, no USD value, no alert
    assert pipeline.transitions() == []

    pipeline.fold(*cny_rate("fx-may", 0.14, 1))  # 1.4 billion dollars: above the 1e9 line

    assert pipeline.transitions() == [("firing", "large-chip-order")]
    firing = pipeline.sent[0]
    assert firing["alert"]["value"] == pytest.approx(1.4e9)
    assert "fx-may" in [event["id"] for event in firing["provenance"]["events"]]

    pipeline.fold(*retraction("fx-may", 2))

    assert pipeline.transitions() == [("firing", "large-chip-order"), ("resolved", "large-chip-order")]


def test_the_group_of_an_entity_reads_its_partitions_rates() -> None:
    pipeline = Pipeline()
    pipeline.fold(order_in_yuan("small-order", 1e6), *cny_rate("fx-may", 0.14, 1))

    keys = pipeline.index.group("acme")

    assert "acme/chip:acme:nvidia:nvidia_h20" in keys
    home = partition_for("acme", PARTITIONS)
    rates_keys = {key for key in keys if key.startswith("#")}
    assert rates_keys and all(key.startswith(f"#{home}/fx/") for key in rates_keys)
