"""What each topic keeps: the log forever, registries and changelogs compacted."""

from __future__ import annotations

import pytest

from tracker.kafka.topics import _configs
from tracker.settings import Settings

pytestmark = pytest.mark.unit


def test_the_event_log_and_alert_trail_are_never_deleted() -> None:
    settings = Settings()
    for name in (settings.events_topic, settings.alerts_topic, settings.dead_letter_topic):
        assert _configs(name, settings) == {"retention.ms": "-1"}


def test_changelogs_roll_small_segments_so_the_cleaner_can_compact_them() -> None:
    settings = Settings()
    for name in settings.changelog_topics:
        configs = _configs(name, settings)
        assert configs["cleanup.policy"] == "compact"
        assert int(configs["segment.bytes"]) <= 64 * 1024 * 1024
        assert int(configs["segment.ms"]) <= 10 * 60 * 1000


def test_registries_keep_the_latest_value_per_key() -> None:
    settings = Settings()
    for name in (settings.subscriptions_topic, settings.deliveries_topic):
        assert _configs(name, settings) == {"cleanup.policy": "compact"}
