"""Topics on a real broker: changelogs get their settings, even when they exist; the first publish creates them."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.conftest import SEED, run_cli
from tracker.kafka.topics import MAX_TABLE_VALUE_BYTES, ensure_topics
from tracker.polling import wait_until
from tracker.settings import Settings

pytestmark = pytest.mark.integration


async def topic_configs(settings: Settings, name: str) -> dict[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, name)])
        (resource,) = response.resources
        return {entry[0]: entry[1] for entry in resource[4]}
    finally:
        await admin.close()


async def create_plain(settings: Settings, name: str) -> None:
    """Create a changelog the way an older version did: compacted, nothing else."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        # Compacted, and one setting of the operator's own.
        configs = {"cleanup.policy": "compact", "min.insync.replicas": "1", "retention.ms": "3600000"}
        await admin.create_topics([NewTopic(name, settings.partitions, 1, topic_configs=configs)])
    finally:
        await admin.close()


def test_an_existing_changelog_gets_the_limits_a_large_table_value_needs(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    changelog = settings.changelog_topics[0]
    asyncio.run(create_plain(settings, changelog))
    assert asyncio.run(topic_configs(settings, changelog))["max.message.bytes"] != str(MAX_TABLE_VALUE_BYTES)

    asyncio.run(ensure_topics(settings))

    def configured() -> dict[str, str] | None:  # a config change reaches the broker's view shortly after
        configs = asyncio.run(topic_configs(settings, changelog))
        return configs if configs["max.message.bytes"] == str(MAX_TABLE_VALUE_BYTES) else None

    configs = wait_until("the changelog's new settings", configured, 10)
    assert configs["max.message.bytes"] == str(MAX_TABLE_VALUE_BYTES)
    assert configs["cleanup.policy"] == "compact"
    assert int(configs["segment.bytes"]) < 1024**3
    assert configs["retention.ms"] == "3600000"  # the operator's override is kept
    asyncio.run(ensure_topics(settings))  # a second start changes nothing
    assert asyncio.run(topic_configs(settings, changelog)) == configs


async def topic_partitions(settings: Settings) -> dict[str, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.bootstrap)
    await admin.start()
    try:
        names = [settings.events_topic, *settings.changelog_topics]
        return {topic["topic"]: len(topic["partitions"]) for topic in await admin.describe_topics(names)}
    finally:
        await admin.close()


def test_publish_on_a_fresh_broker_creates_the_topics_then_publishes_to_them_as_they_are(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()  # a prefix no topic has: the first run, with no worker yet

    first = run_cli(settings, "publish", str(SEED))
    again = run_cli(settings, "publish", str(SEED))
    other_count = run_cli(settings.model_copy(update={"partitions": 2}), "publish", str(SEED))

    assert first.returncode == 0, first.stderr
    assert f"published 10, rejected 0, failed 0 -> {settings.events_topic}" in first.stdout
    # Every topic the tracker owns was made with its settings, the changelogs included.
    assert asyncio.run(topic_partitions(settings)) == dict.fromkeys(
        [settings.events_topic, *settings.changelog_topics], settings.partitions
    )
    assert asyncio.run(topic_configs(settings, settings.events_topic))["retention.ms"] == "-1"
    assert again.returncode == 0, again.stderr
    assert "published 10, rejected 0, failed 0" in again.stdout
    assert other_count.returncode == 2
    assert f"{settings.events_topic} has 4 partitions but TRACKER_PARTITIONS is 2" in other_count.stderr
