"""Wire the worker: the fold loop and its tables, alerting, notifications, and a Faust app for the web.

The fold reads the events topic with its own consumer (fold_loop.py); the
Faust app serves HTTP, runs the timers and services, and sends the
notifications' dead letters. It joins no consumer group. ``build_worker``
makes everything from a ``Settings`` object; nothing happens at import time.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from faust.app import BootStrategy
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry

from tracker.core.fold import count_tombstones
from tracker.core.routing import Router
from tracker.core.rules import RuleSet
from tracker.core.signals import Signal, derive_signals
from tracker.kafka.client_config import faust_credentials
from tracker.kafka.committing import CommittingConsumer
from tracker.kafka.lag import LagProbe
from tracker.kafka.partitioning import partition_for, partitioner
from tracker.kafka.publisher import Publisher
from tracker.rules_file import build_router, load_rules
from tracker.settings import Settings
from tracker.worker.alerting import Alerting
from tracker.worker.api import Ingestion
from tracker.worker.fold_loop import Changelog, FoldLoop
from tracker.worker.folding import BatchFolder
from tracker.worker.http_client import AiohttpSender
from tracker.worker.http_guard import web_application_options
from tracker.worker.index import TableIndex
from tracker.worker.metrics import AlertCollector, LagCollector, PipelineMetrics, SignalCollector, TombstoneCollector
from tracker.worker.notifications import Notifications
from tracker.worker.routes import install_routes
from tracker.worker.state import StateTable

__all__ = ["Worker", "build_worker"]

logger = logging.getLogger(__name__)


class _WebOnly(BootStrategy):
    """Faust serves HTTP and runs timers and services; the fold loop consumes the events."""

    enable_kafka_consumer = False


@dataclass
class Worker:
    """A built worker: the Faust app plus what tests and the CLI need to reach."""

    app: faust.App
    settings: Settings
    router: Router
    rules: RuleSet
    table: StateTable
    groups: StateTable
    fold: FoldLoop
    registry: CollectorRegistry
    progress: Callable[[], dict[str, int | bool]]
    index: TableIndex | None = None

    def owned_partitions(self) -> set[int]:
        """Return the events-topic partitions this worker folds now (assigned and rebuilt)."""
        return set(self.fold.ready)

    def signals(self, entity: str | None = None) -> list[Signal]:
        """Derive the signals of the keys this worker owns (only ``entity``'s fold group if given)."""
        if entity is None:
            return derive_signals(self.router, self.table.owned(self.owned_partitions()))
        fold_key = self.router.fold_key(entity)
        if partition_for(fold_key, self.settings.partitions) not in self.owned_partitions():
            return []
        assert self.index is not None
        state = {key: self.table[key] for key in self.index.group(fold_key) if self.table.get(key) is not None}
        return derive_signals(self.router, state)

    def tombstones(self) -> dict[int, int]:
        """Return, per owned partition, how many retracted ids it keeps tombstones for."""
        return {partition: count_tombstones(self.table.get, partition) for partition in self.owned_partitions()}

    def alerts(self) -> list[dict[str, Any]]:
        """Return the pending and firing alerts (with provenance) of the groups this worker owns."""
        owned = self.groups.owned(self.owned_partitions())
        entries = [entry for group in owned.values() for entry in group["alerts"].values()]
        return sorted(entries, key=lambda entry: (entry["alert"]["rule"], entry["alert"]["fingerprint"]))


def build_worker(settings: Settings) -> Worker:
    """Build the worker for ``settings`` (fold loop, tables, alerting, routes, metrics)."""
    rules = load_rules(settings.rules_path)
    router = build_router(settings)
    app = faust.App(
        # The id prefixes Faust's names; with the topic prefix in front, like every group id here.
        settings.faust_app_id,
        broker=f"kafka://{settings.bootstrap}",
        # The same TLS and SASL settings as every aiokafka client of the tracker (client_config.py).
        broker_credentials=faust_credentials(settings),
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        web_enabled=True,
        web_host=settings.http_host,
        web_bind=settings.http_host,
        web_port=settings.http_port,
        web_application_options=web_application_options(settings.max_body_bytes),
        # Faust's /router/ pages describe a consumer group's table assignment; the worker joins none
        # (and the page answered 500 for an unknown table).
        web_router_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        producer_partitioner=partitioner,
        producer_acks=-1,
        key_serializer="raw",
        value_serializer="raw",
    )
    app.boot_strategy = _WebOnly(app)
    series_changelog, groups_changelog = settings.changelog_topics
    table = StateTable("series", settings.partitions)
    groups = StateTable("groups", settings.partitions)
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry, tuple(rule.name for rule in rules.rules))
    index = TableIndex(table, settings.partitions)
    fold = FoldLoop(
        settings,
        (Changelog(table, series_changelog), Changelog(groups, groups_changelog)),
        metrics,
        on_assigned=lambda: forget_partitions(),
    )
    lag = LagProbe(settings, settings.faust_app_id)
    worker = Worker(app, settings, router, rules, table, groups, fold, registry, progress=dict, index=index)
    registry.register(SignalCollector(router, worker.signals))
    registry.register(AlertCollector(worker.alerts))
    registry.register(LagCollector(settings.events_topic, lambda: lag.lag, worker.owned_partitions))
    registry.register(TombstoneCollector(worker.tombstones))
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="faust")

    async def send_transitions(records: list[tuple[bytes, bytes]]) -> None:
        # Wait for the broker's ack: the groups table is written only after it.
        await fold.send_now(settings.alerts_topic, records)

    alerting = Alerting(rules, router, table, groups, index.group, send_transitions, metrics)
    folder = BatchFolder(
        router,
        table,
        fold.send,
        settings.events_topic,
        settings.dead_letter_topic,
        settings.partitions,
        metrics,
        index,
        alerting,
    )
    fold.folder = folder

    def forget_partitions() -> None:
        # Partitions moved: what is known per partition is rebuilt lazily from the tables.
        index.reset()
        alerting.reset()

    worker.progress = lambda: {
        "folded": folder.folded,
        "records": folder.records,
        # Keys in the local series table, and whether some assigned partition is still
        # being rebuilt from the changelogs: cheap to ask, unlike deriving every signal.
        "series_keys": len(table),
        "recovering": fold.recovering,
    }

    notification_dlq = app.topic(settings.notifications_dead_letter_topic, key_serializer="raw", value_serializer="raw")

    async def dead_letter(record: dict[str, Any]) -> None:
        pending = await notification_dlq.send(key=record["subscription"].encode(), value=json.dumps(record).encode())
        await pending

    sender = AiohttpSender(policy=settings.webhook_policy)
    notifications = Notifications(settings, metrics.notifications, dead_letter, sender)

    # Transitions are read by a consumer of our own, not a Faust agent: its offsets are
    # committed only past transitions whose deliveries are all done, so a crash re-reads
    # exactly the unfinished ones. (A Faust agent waiting for the registries lost the
    # records fetched meanwhile: Faust clears its queues when it resumes after recovery.)
    transitions = CommittingConsumer(
        settings,
        settings.alerts_topic,
        f"{app.conf.id}-notify",
        lambda value, done: notifications.notifier.dispatch(orjson.loads(value), done),
    )

    async def remind() -> None:
        if notifications.ready.is_set() and notifications.wants_reminders():
            notifications.remind(worker.alerts(), time.time())

    app.timer(1.0, name="remind")(remind)
    ingestion = Ingestion(settings, Publisher(settings, router))
    install_routes(app, worker, ingestion, notifications)

    @app.service
    class WorkerServices(faust.Service):
        async def on_start(self) -> None:
            _warn_if_open(settings)
            await notifications.start()
            await transitions.start()
            await lag.start()
            await fold.start()

        async def on_stop(self) -> None:
            notifications.end_feeds()  # open alert streams would hold the web server up
            await fold.stop()
            await lag.stop()
            await transitions.stop()
            await notifications.stop()
            await ingestion.close()

    return worker


def _warn_if_open(settings: Settings) -> None:
    if settings.api_tokens_configured:
        return
    try:
        local = ipaddress.ip_address(settings.http_host).is_loopback
    except ValueError:
        local = settings.http_host == "localhost"
    reach = "any process on this machine" if local else "anyone who can reach it"
    logger.warning(
        "no API token is configured (TRACKER_API_TOKENS or TRACKER_API_TOKEN_SHA256): writes to %s:%s "
        "are unauthenticated; %s can publish events and manage subscriptions",
        settings.http_host,
        settings.http_port,
        reach,
    )
