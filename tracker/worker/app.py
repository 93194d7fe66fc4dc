"""Wire the worker: one Faust app, its topics and table, the batch fold agent and the web routes.

This is the only module that knows both Faust and the core. ``build_worker``
makes everything from a ``Settings`` object; nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry

from tracker.core.routing import Router
from tracker.core.rules import RuleSet
from tracker.core.signals import Signal, derive_signals
from tracker.errors import InfrastructureError
from tracker.kafka.client_config import faust_credentials
from tracker.kafka.committing import CommittingConsumer
from tracker.kafka.lag import LagProbe, committed_offsets
from tracker.kafka.partitioning import partition_for, partitioner
from tracker.kafka.publisher import Publisher
from tracker.kafka.topics import MAX_TABLE_VALUE_BYTES
from tracker.rules_file import build_router, load_rules
from tracker.settings import Settings
from tracker.worker.alerting import Alerting
from tracker.worker.api import Ingestion
from tracker.worker.folding import BatchFolder, Incoming
from tracker.worker.http_client import AiohttpSender
from tracker.worker.index import TableIndex
from tracker.worker.metrics import AlertCollector, LagCollector, PipelineMetrics, SignalCollector, owned_state
from tracker.worker.notifications import Notifications
from tracker.worker.routes import install_routes

__all__ = ["Worker", "build_worker"]

logger = logging.getLogger(__name__)

#: How long the end of a rebalance waits for the fold's committed offsets (see _hold_streams_until_seeked).
COMMITTED_LOOKUP_SECONDS = 10.0

#: How long Faust's producer waits to fill a batch of changelog records, and its size.
PRODUCER_LINGER_SECONDS = 0.01
PRODUCER_MAX_BATCH_BYTES = 512 * 1024


@dataclass
class Worker:
    """A built worker: the Faust app plus what tests and the CLI need to reach."""

    app: faust.App
    settings: Settings
    router: Router
    rules: RuleSet
    table: Any
    groups: Any
    registry: CollectorRegistry
    progress: Callable[[], dict[str, int | bool]]
    index: TableIndex | None = None

    def owned_partitions(self) -> set[int]:
        """Return the events-topic partitions this worker actively owns now."""
        actives = self.app.assignor.assigned_actives()
        return {tp.partition for tp in actives if tp.topic == self.settings.events_topic}

    def signals(self, entity: str | None = None) -> list[Signal]:
        """Derive the signals of the keys this worker owns (only ``entity``'s fold group if given)."""
        if entity is None:
            state = owned_state(self.table, self.owned_partitions(), self.settings.partitions)
            return derive_signals(self.router, state)
        fold_key = self.router.fold_key(entity)
        if partition_for(fold_key, self.settings.partitions) not in self.owned_partitions():
            return []
        assert self.index is not None
        state = {key: self.table[key] for key in self.index.group(fold_key) if self.table.get(key) is not None}
        return derive_signals(self.router, state)

    def alerts(self) -> list[dict[str, Any]]:
        """Return the pending and firing alerts (with provenance) of the groups this worker owns."""
        owned = owned_state(self.groups, self.owned_partitions(), self.settings.partitions)
        entries = [entry for group in owned.values() for entry in group["alerts"].values()]
        return sorted(entries, key=lambda entry: (entry["alert"]["rule"], entry["alert"]["fingerprint"]))


def build_worker(settings: Settings) -> Worker:
    """Build the Faust app for ``settings`` (topics, table, agent, routes, metrics)."""
    rules = load_rules(settings.rules_path)
    router = build_router(settings)
    app = faust.App(
        # The Faust id names the consumer group and prefixes internal topics,
        # so the topic prefix goes in front of it too.
        settings.faust_app_id,
        broker=f"kafka://{settings.bootstrap}",
        # The same TLS and SASL settings as every aiokafka client of the tracker (client_config.py).
        broker_credentials=faust_credentials(settings),
        store="memory://",
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        web_enabled=True,
        web_host=settings.http_host,
        web_bind=settings.http_host,
        web_port=settings.http_port,
        web_application_options={"client_max_size": settings.max_body_bytes + 1},
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        producer_partitioner=partitioner,
        producer_acks=-1,
        # A batch writes thousands of changelog records: let them share produce requests
        # (Faust's default linger of 0 sends one small request each; measured in
        # docs/performance.md).
        producer_linger=PRODUCER_LINGER_SECONDS,
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        # A table value is one record: a busy series or fold group can pass Kafka's 1 MB default.
        producer_max_request_size=MAX_TABLE_VALUE_BYTES,
        consumer_auto_offset_reset="earliest",
        # A worker that dies silently (SIGKILL, a lost host) keeps its partitions this long;
        # heartbeats (from the consumer's own thread) go out at least three times within it.
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        processing_guarantee="at_least_once",
        # Table keys are text hashed by our partitioner; values are plain JSON.
        key_serializer="raw",
        value_serializer="json",
    )
    events_topic = app.topic(
        settings.events_topic,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    dead_letters = app.topic(
        settings.dead_letter_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    # use_partitioner: the agent writes the table once per key per batch, outside
    # per-event iteration; changelog partitions then come from our partitioner,
    # which sends every key to its fold key's partition, as the events topic does.
    table = app.Table(
        "series",
        default=None,
        partitions=settings.partitions,
        use_partitioner=True,
        key_type=str,
    )
    groups = app.Table(
        "groups",
        default=None,
        partitions=settings.partitions,
        use_partitioner=True,
        key_type=str,
    )
    alerts_topic = app.topic(
        settings.alerts_topic,
        key_serializer="raw",
        value_serializer="raw",
        partitions=settings.partitions,
    )
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry, tuple(rule.name for rule in rules.rules))
    lag = LagProbe(settings, app.conf.id)
    worker = Worker(app, settings, router, rules, table, groups, registry, progress=dict)
    registry.register(SignalCollector(router, worker.signals))
    registry.register(AlertCollector(worker.alerts))
    registry.register(LagCollector(settings.events_topic, lambda: lag.lag, worker.owned_partitions))
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="faust")

    async def send(
        topic: str,
        key: bytes,
        value: bytes,
        partition: int | None,
        headers: list[tuple[str, bytes]],
    ) -> Any:
        target = events_topic if topic == settings.events_topic else dead_letters
        return await target.send(key=key, value=value, partition=partition, headers=headers)

    async def send_transition(key: bytes, value: bytes) -> None:
        # Wait for the broker's ack: the groups table is written only after it.
        pending = await alerts_topic.send(key=key, value=value)
        await pending

    # The store behind a table: reads without the per-access sensor hooks (the fold reads
    # each key several times per record); every write still goes through the table.
    series_store = table.data
    index = TableIndex(series_store, settings.partitions)
    worker.index = index
    alerting = Alerting(rules, router, series_store, groups, index.group, send_transition, metrics)
    folder = BatchFolder(
        router,
        table,
        send,
        settings.events_topic,
        settings.dead_letter_topic,
        settings.partitions,
        metrics,
        index,
        alerting,
        reads=series_store,
    )
    worker.progress = lambda: {
        "folded": folder.folded,
        "records": folder.records,
        # Keys in the local series table (all partitions it holds), and whether Faust is
        # still reading the changelogs: cheap to ask, unlike deriving every signal.
        "series_keys": len(series_store),
        "recovering": bool(app.tables.recovery.in_recovery),  # type: ignore[attr-defined]
    }

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _forget_locations(sender: Any, assigned: Any, **kwargs: Any) -> None:
        # Partitions may have moved: the fact-id index is rebuilt lazily per partition.
        index.reset()

    @app.on_rebalance_complete.connect  # type: ignore[arg-type]
    async def _pause_flow_until_seek(sender: Any, **kwargs: Any) -> None:
        # Works around a Faust 0.15.3 race (docs/reliability.md, bug 6; faust-streaming/faust#596):
        # after recovery Faust resumes the stream partitions before it seeks them to the committed
        # offsets, and records fetched in between end up twice among the acked offsets, which
        # stalls commits. This signal comes before that resume; with the flow stopped, the drain
        # loop drops what it holds, and Faust turns the flow back on after its seek. Only when
        # each of our partitions has a committed offset: the seek leaves the others where they
        # are, so what was dropped there would never be read again.
        ours = {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.events_topic}
        if not ours:
            return
        try:
            committed = await asyncio.wait_for(committed_offsets(settings, app.conf.id), COMMITTED_LOOKUP_SECONDS)
        except (InfrastructureError, TimeoutError) as exc:
            logger.warning("cannot read the fold's committed offsets; streams resume as Faust does: %s", exc)
            return
        if all(committed.get(partition) is not None for partition in ours):
            app.consumer.stop_flow()

    async def fold(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_seconds):
            await folder.fold([_incoming(event) for event in events])

    app.agent(events_topic, name="fold")(fold)

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
        lambda value, done: notifications.notifier.dispatch(json.loads(value), done),
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

        async def on_stop(self) -> None:
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


def _incoming(event: Any) -> Incoming:
    message = event.message
    headers = message.headers.items() if isinstance(message.headers, dict) else (message.headers or ())
    return Incoming(
        topic=message.topic,
        partition=message.partition,
        offset=message.offset,
        key=message.key,
        value=message.value,
        headers=tuple((name, bytes(value)) for name, value in headers),
        timestamp=message.timestamp,
    )
