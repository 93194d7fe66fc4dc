"""Wire the worker: one Faust app, its tables and the fold agent, alerting, notifications and the web routes.

The fold is a Faust agent on the events topic: it takes batches
(``take_events``), folds them through the pure core and writes the changed
keys to two Faust tables, ``series`` and ``groups`` (RocksDB by default, with
changelogs, recovery and standby replicas from Faust). Alert transitions go
to the alerts topic through Faust. ``build_worker`` makes everything from a
``Settings`` object; nothing happens at import time.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import os
import signal
import time
from dataclasses import dataclass
from typing import Any

import faust
import orjson
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry

from tracker.kafka.client_config import faust_credentials
from tracker.kafka.committing import CommittingConsumer
from tracker.kafka.lag import LagProbe
from tracker.kafka.log_reader import LogReader
from tracker.kafka.partitioning import partitioner
from tracker.kafka.publisher import Publisher
from tracker.kafka.topics import MAX_TABLE_VALUE_BYTES, refused_for_good
from tracker.rules_file import build_router, load_rules
from tracker.settings import Settings
from tracker.worker.alerting import Alerting
from tracker.worker.api import Ingestion
from tracker.worker.faust_fixes import flush_whole_producer_buffer, hold_streams_until_seeked, widen_producer_buffer
from tracker.worker.folding import BatchFolder, Incoming
from tracker.worker.http_client import AiohttpSender
from tracker.worker.http_guard import web_application_options
from tracker.worker.index import TableIndex
from tracker.worker.metrics import (
    AlertCollector,
    LagCollector,
    PipelineMetrics,
    SignalCollector,
    TombstoneCollector,
)
from tracker.worker.notifications import Notifications
from tracker.worker.reads import Reads
from tracker.worker.routes import install_routes
from tracker.worker.state import WorkerState
from tracker.worker.tables import ROCKSDB_OPTIONS, JsonTable, RecordedTable

__all__ = ["Worker", "build_worker"]

logger = logging.getLogger(__name__)

#: How long Faust's producer waits to fill a batch of changelog records, and a batch's size:
#: a fold batch writes thousands of keys (Faust's default linger of 0 sends one request each).
PRODUCER_LINGER_SECONDS = 0.01
PRODUCER_MAX_BATCH_BYTES = 512 * 1024

#: Changelog records a standby buffers per table before applying them (Faust's default is
#: 1,000): what it still holds is applied when a rebalance starts, as part of the takeover.
STANDBY_BUFFER_RECORDS = 50

#: Pause between two attempts to send alert transitions while the broker does not take them.
SEND_RETRY_SECONDS = 1.0


@dataclass
class Worker:
    """A built worker: the Faust app, what it folds into (read by the routes and collectors), its metrics."""

    app: faust.App
    state: WorkerState
    registry: CollectorRegistry


def _owned_partitions(app: faust.App, events_topic: str) -> set[int]:
    """Return the events-topic partitions the app folds now (active, and recovered)."""
    if _settling(app):
        return set()
    return {tp.partition for tp in app.assignor.assigned_actives() if tp.topic == events_topic}


def _settling(app: faust.App) -> bool:
    """Return whether a rebalance is under way or its tables are being recovered.

    Recovery starts a moment after the assignment arrives; between the two, only
    ``rebalancing`` says the tables are not complete yet.
    """
    return bool(app.rebalancing or app.tables.recovery.in_recovery)  # type: ignore[attr-defined]


def build_worker(settings: Settings) -> Worker:
    """Build the worker for ``settings`` (Faust app, tables, fold agent, alerting, routes, metrics)."""
    rules = load_rules(settings.rules_path)
    router = build_router(settings, rules)  # the rules file is read once
    app = faust.App(
        # The Faust id names the fold's consumer group and prefixes the changelogs,
        # so the topic prefix goes in front of it too.
        settings.faust_app_id,
        broker=f"kafka://{settings.bootstrap}",
        # The same TLS and SASL settings as every aiokafka client of the tracker (client_config.py).
        broker_credentials=faust_credentials(settings),
        store=f"{settings.store}://",
        table_standby_replicas=settings.standby_replicas,
        datadir=str(settings.data_dir / "faust"),
        autodiscover=False,
        web_enabled=True,
        web_host=settings.http_host,
        web_bind=settings.http_host,
        web_port=settings.http_port,
        web_application_options=web_application_options(settings.max_body_bytes),
        # Faust's /router/ pages answer 500 (KeyError) for an unknown table name (issue 14); which
        # worker folds a key is in /healthz. The /table/ pages stay.
        web_router_enabled=False,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        producer_partitioner=partitioner,
        producer_acks=-1,
        producer_linger=PRODUCER_LINGER_SECONDS,
        producer_max_batch_size=PRODUCER_MAX_BATCH_BYTES,
        # A table value is one record: a busy series or fold group can pass Kafka's 1 MB default.
        producer_max_request_size=MAX_TABLE_VALUE_BYTES,
        consumer_auto_offset_reset="earliest",
        # A worker that dies silently (SIGKILL, a lost host) keeps its partitions this long;
        # heartbeats go out every third of it, from the consumer's own thread.
        broker_session_timeout=settings.session_timeout_seconds,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_seconds / 3),
        processing_guarantee="at_least_once",
        key_serializer="raw",
        value_serializer="raw",
    )
    events_topic = app.topic(settings.events_topic, key_type=bytes, value_type=bytes, partitions=settings.partitions)
    dead_letters = app.topic(settings.dead_letter_topic, partitions=settings.partitions)
    alerts_topic = app.topic(settings.alerts_topic, partitions=settings.partitions)
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry, tuple(rule.name for rule in rules.rules))

    def table(name: str) -> RecordedTable:
        # use_partitioner: the agent writes a key once per batch, outside per-event iteration;
        # its changelog partition then comes from our partitioner, which sends every key to its
        # fold key's partition, as the events topic does.
        created = RecordedTable(
            app,
            name=name,
            default=None,
            partitions=settings.partitions,
            use_partitioner=True,
            standby_buffer_size=STANDBY_BUFFER_RECORDS,
            options=ROCKSDB_OPTIONS if settings.store == "rocksdb" else None,
            # Keys are written as JSON (partition_for hashes a key's text inside its quotes), values
            # as JSON bytes that JsonTable encodes and decodes itself (tables.py says why).
            key_type=str,
            value_type=bytes,
        )
        created.records_read = metrics.records_read.labels(topic=f"{settings.faust_app_id}-{name}-changelog")
        app.tables.add(created)
        return created

    series = JsonTable(table("series"), settings.partitions)
    groups = JsonTable(table("groups"), settings.partitions)
    lag = LagProbe(settings, settings.faust_app_id)
    index = TableIndex(series, settings.partitions)
    state = WorkerState(
        settings, router, rules, series, groups, index, lambda: _owned_partitions(app, settings.events_topic)
    )
    registry.register(SignalCollector(router, state.signals))
    registry.register(AlertCollector(state.alerts))
    registry.register(LagCollector(settings.events_topic, lambda: lag.lag, state.owned_partitions))
    registry.register(TombstoneCollector(state.tombstones))
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="faust")

    async def send(
        topic: str, key: bytes, value: bytes, partition: int | None, headers: list[tuple[str, bytes]]
    ) -> Any:
        # Sent with the batch's table writes: Faust flushes its producer before it commits.
        target = events_topic if topic == settings.events_topic else dead_letters
        return await target.send(key=key, value=value, partition=partition, headers=headers)

    async def send_transitions(records: list[tuple[bytes, bytes]]) -> None:
        # Wait for the broker's ack: the groups table is written only after it. A transition the
        # broker refuses for good is dead-lettered: retrying it would stall the fold for good.
        # Any other failure (the broker away) is retried: a transition carries its idempotency key.
        unsent = list(records)
        while unsent:
            pending: list[tuple[bytes, bytes, Any]] = []
            failed: list[tuple[bytes, bytes]] = []
            for key, value in unsent:
                try:
                    pending.append((key, value, await alerts_topic.send(key=key, value=value)))
                except Exception as exc:  # refused by the client before it was queued
                    await dead_letter_or_retry(key, value, exc, failed)
            for key, value, future in pending:
                try:
                    await future
                except Exception as exc:  # refused by the broker
                    await dead_letter_or_retry(key, value, exc, failed)
            if failed:
                logger.warning("cannot send %d transitions to %s, retrying", len(failed), settings.alerts_topic)
                await asyncio.sleep(SEND_RETRY_SECONDS)
            unsent = failed

    async def dead_letter_or_retry(key: bytes, value: bytes, exc: Exception, retry: list[tuple[bytes, bytes]]) -> None:
        if refused_for_good(exc) is None:
            retry.append((key, value))
        else:
            await dead_letter_refused(settings.alerts_topic, key, len(value), exc)

    async def dead_letter_refused(topic: str, key: bytes, size: int, exc: Exception) -> None:
        refusal = refused_for_good(exc)
        if refusal is None:
            raise exc
        # The record itself cannot be written anywhere: the letter says what it was and why.
        letter = {
            "reason": "refused_by_broker",
            "error": type(refusal).__name__,
            "topic": topic,
            "key": key.decode("utf-8", errors="replace")[:1000],
            "bytes": size,
        }
        logger.error("%s refused a record of %d bytes (key %.200r): %s", topic, size, key, letter["error"])
        metrics.rejected.labels(reason="refused_by_broker").inc()
        await (await dead_letters.send(key=f"refused:{topic}".encode(), value=json.dumps(letter).encode()))

    alerting = Alerting(rules, router, series, groups, index.group, send_transitions, metrics)
    folder = BatchFolder(
        router,
        series,
        send,
        settings.events_topic,
        settings.dead_letter_topic,
        settings.partitions,
        metrics,
        index,
        alerting,
    )

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def _forget_partitions(sender: Any, assigned: Any, **kwargs: Any) -> None:
        # Partitions may have moved: what is known per partition is rebuilt lazily from the tables.
        index.reset()
        alerting.reset()
        metrics.rebalances.inc()

    hold_streams_until_seeked(app, settings)
    widen_producer_buffer(app, settings.batch_size)
    flush_whole_producer_buffer(app)

    async def fold(stream: Any) -> None:
        async for events in stream.take_events(settings.batch_size, within=settings.batch_within_seconds):
            series.hold(events)
            groups.hold(events)
            try:
                await folder.fold([_incoming(event) for event in events])
            except Exception:
                # Faust's default supervisor would restart the agent, and the batch's events would
                # be acked and committed unfolded. Stop hard instead: nothing past the last commit
                # is committed, and the restarted worker folds the batch again.
                logger.critical("the fold failed; stopping the worker before its offsets move", exc_info=True)
                os.kill(os.getpid(), signal.SIGKILL)
                raise
            metrics.records_read.labels(topic=settings.events_topic).inc(len(events))

    app.agent(events_topic, name="fold")(fold)

    state.progress = lambda: {
        "folded": folder.folded,
        "records": folder.records,
        # Whether Faust is still reading the changelogs: cheap to ask, unlike deriving every
        # signal or counting the store's keys (a scan of RocksDB: half the worker's CPU when
        # the benchmark polled /healthz).
        "recovering": _settling(app),
    }

    notification_dlq = app.topic(settings.notifications_dead_letter_topic)

    async def dead_letter(record: dict[str, Any]) -> None:
        pending = await notification_dlq.send(key=record["subscription"].encode(), value=json.dumps(record).encode())
        await pending

    sender = AiohttpSender(policy=settings.webhook_policy)
    notifications = Notifications(settings, metrics.notifications, dead_letter, sender)

    # Transitions are read by a consumer of our own, not a Faust agent: its offsets are
    # committed only past transitions whose deliveries are all done, so a crash re-reads
    # exactly the unfinished ones. (A Faust agent commits what it has taken from its stream,
    # and one waiting for the registries lost the records fetched meanwhile: Faust clears
    # its queues when it resumes after recovery.)
    transitions = CommittingConsumer(
        settings,
        settings.alerts_topic,
        f"{app.conf.id}-notify",
        lambda value, done: notifications.notifier.dispatch(orjson.loads(value), done),
    )

    async def remind() -> None:
        if notifications.ready.is_set() and notifications.wants_reminders():
            notifications.remind(state.alerts(), time.time())

    app.timer(1.0, name="remind")(remind)
    ingestion = Ingestion(settings, Publisher(settings, router))
    log = LogReader(settings, settings.events_topic)
    # Faust's aiohttp driver, the one the worker runs, holds the aiohttp application.
    install_routes(app.web.web_app, state, ingestion, notifications, Reads(state, log))  # type: ignore[attr-defined]

    @app.service
    class WorkerServices(faust.Service):
        async def on_start(self) -> None:
            _warn_if_open(settings)
            await notifications.start()
            await transitions.start()
            await lag.start()

        async def on_stop(self) -> None:
            notifications.end_feeds()  # open alert streams would hold the web server up
            await lag.stop()
            await transitions.stop()
            await notifications.stop()
            await ingestion.close()
            await log.close()

    return Worker(app, state, registry)


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
