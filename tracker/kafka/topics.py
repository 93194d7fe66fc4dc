"""Create the topics the tracker owns, with the partition count its tables use."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTimestampError,
    KafkaError,
    MessageSizeTooLargeError,
    PolicyViolationError,
    RecordListTooLargeError,
    RecordTooLargeError,
    TopicAlreadyExistsError,
    UnsupportedForMessageFormatError,
)

from tracker.errors import InfrastructureError
from tracker.kafka.client_config import client_options
from tracker.settings import Settings

__all__ = ["MAX_TABLE_VALUE_BYTES", "check_partition_count", "ensure_topics", "refused_for_good"]


async def _described(admin: AIOKafkaAdminClient, names: list[str]) -> list[dict[str, Any]]:
    # A topic just created may be described with no partitions until its
    # metadata reaches the broker that answers: ask again for a few seconds.
    for _ in range(50):
        described: list[dict[str, Any]] = await admin.describe_topics(names)
        if all(topic["partitions"] and not topic["error_code"] for topic in described):
            return described
        await asyncio.sleep(0.2)
    return described


#: A table changelog rolls its segment at this size or age, so the log cleaner can compact
#: all but the last minute of writes: a worker restarting with empty state then reads about
#: one record per table key instead of one per write. (Kafka never compacts the active
#: segment, which is 1 GB or 7 days by default.)
CHANGELOG_SEGMENT_BYTES = 16 * 1024 * 1024
CHANGELOG_SEGMENT_MS = 60_000

#: Largest table value (one changelog record) the changelogs accept, above the broker's 1 MB
#: default: every fact of a series, or every alert of a fold group, is one value.
MAX_TABLE_VALUE_BYTES = 16 * 1024 * 1024


#: Errors with which a record is refused whatever the number of attempts: too large for the
#: topic or the client, or against the topic's rules. Sending it again would stall the fold.
REFUSED_FOR_GOOD = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTimestampError,
    PolicyViolationError,
    UnsupportedForMessageFormatError,
)


def refused_for_good(exc: BaseException) -> KafkaError | None:
    """Return the client's error if ``exc`` refuses a record for good (Faust wraps it as the cause)."""
    cause = exc if isinstance(exc, REFUSED_FOR_GOOD) else exc.__cause__
    return cause if isinstance(cause, REFUSED_FOR_GOOD) else None


def _configs(name: str, settings: Settings) -> dict[str, str]:
    # The events topic is the log of record and alert transitions its audit trail:
    # nothing is ever deleted. Registries and changelogs keep the latest value per key.
    if name in settings.changelog_topics:
        return {
            "cleanup.policy": "compact",
            "segment.bytes": str(CHANGELOG_SEGMENT_BYTES),
            "segment.ms": str(CHANGELOG_SEGMENT_MS),
            "min.cleanable.dirty.ratio": "0.2",
            "max.message.bytes": str(MAX_TABLE_VALUE_BYTES),
        }
    if name in (settings.subscriptions_topic, settings.deliveries_topic):
        return {"cleanup.policy": "compact"}
    return {"retention.ms": "-1"}


#: describe_configs' config_source of a setting made on the topic itself.
DYNAMIC_TOPIC_CONFIG = 1


async def _configure_changelogs(admin: AIOKafkaAdminClient, settings: Settings) -> None:
    """Give changelogs created by an older version today's settings, keeping other overrides."""
    resources = [ConfigResource(ConfigResourceType.TOPIC, name) for name in settings.changelog_topics]
    # A topic just created may be unknown to the broker that answers for a moment: ask again.
    for _ in range(50):
        described = await admin.describe_configs(resources)
        if not any(code for response in described for code, *_ in response.resources):
            break
        await asyncio.sleep(0.2)
    changes = []
    for response in described:
        for _code, _message, _kind, name, entries in response.resources:
            overrides = {entry[0]: entry[1] for entry in entries if entry[3] == DYNAMIC_TOPIC_CONFIG}
            wanted = _configs(name, settings)
            if any(overrides.get(key) != value for key, value in wanted.items()):
                # AlterConfigs replaces every override of the topic: keep the operator's.
                changes.append(ConfigResource(ConfigResourceType.TOPIC, name, configs={**overrides, **wanted}))
    if not changes:
        return
    responses = await admin.alter_configs(changes)
    refused = [(name, message) for r in responses for code, message, _, name in r.resources if code]
    if refused:
        raise InfrastructureError(f"cannot configure the changelogs: {refused}", code="AlterConfigs")


async def ensure_topics(settings: Settings) -> None:
    """Create every topic the tracker owns if missing; fail if a partition count differs."""
    wanted = {
        settings.events_topic: settings.partitions,
        settings.dead_letter_topic: settings.partitions,
        settings.alerts_topic: settings.partitions,
        settings.notifications_dead_letter_topic: settings.partitions,
        settings.subscriptions_topic: 1,
        settings.deliveries_topic: settings.partitions,
    }
    # The tables' changelogs are created here, before any worker starts, rather than by
    # Faust at start-up: a producer learns of topics that exist when it starts, and a
    # table write to a changelog its producer does not know fails inside aiokafka.
    wanted.update(dict.fromkeys(settings.changelog_topics, settings.partitions))
    admin = AIOKafkaAdminClient(**client_options(settings), request_timeout_ms=15000)
    try:
        await admin.start()
        new = [
            NewTopic(name, count, settings.replication_factor, topic_configs=_configs(name, settings))
            for name, count in wanted.items()
        ]
        for topic in new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([topic])
        await _configure_changelogs(admin, settings)
        described = await _described(admin, list(wanted))
    except KafkaError as exc:
        raise InfrastructureError(
            f"cannot create topics on {settings.bootstrap}: {exc}", code=type(exc).__name__
        ) from exc
    finally:
        await admin.close()
    for topic in described:
        check_partition_count(topic["topic"], len(topic["partitions"]), wanted[topic["topic"]])


def check_partition_count(topic: str, count: int, wanted: int) -> None:
    """Raise InfrastructureError if an existing topic has another partition count than the settings'.

    The fold key hashes to a partition out of ``TRACKER_PARTITIONS``: with another count,
    a fact and its table keys would land on different partitions.
    """
    if count != wanted:
        raise InfrastructureError(
            f"topic {topic} has {count} partitions but TRACKER_PARTITIONS is "
            f"{wanted}: use a new TRACKER_TOPIC_PREFIX or the matching count"
        )
