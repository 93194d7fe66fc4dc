"""ensure_topics on a real broker: changelogs get their settings, also when they already exist."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

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
