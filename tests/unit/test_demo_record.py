"""The demo's record: where it runs, what a re-run resumes, and progress only on a terminal."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from tracker.demo import _resumed
from tracker.demo_record import DemoRecord, with_demo
from tracker.progress import Progress
from tracker.settings import Settings

pytestmark = pytest.mark.unit


def test_the_record_round_trips_and_keeps_no_secret(tmp_path: Path) -> None:
    settings = Settings(topic_prefix="demo-1-", http_port=7000, api_token="a-token-of-16-chars")

    DemoRecord.of(settings, seeded=True).write(tmp_path)

    assert DemoRecord.read(tmp_path) == DemoRecord("demo-1-", None, 9092, 7000, 4, seeded=True)
    assert "a-token" not in (tmp_path / "demo.json").read_text()


def test_no_record_or_an_unreadable_one_leaves_the_settings_alone(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    before = with_demo(settings)
    (tmp_path / "demo.json").write_text("{not json")

    assert before == settings
    assert with_demo(settings) == settings


def test_the_record_is_ignored_when_another_broker_is_set_explicitly(tmp_path: Path) -> None:
    DemoRecord("demo-1-", None, 9092, 6066, 4, seeded=True).write(tmp_path)
    production = Settings(data_dir=tmp_path, kafka_bootstrap="kafka.internal:9092")

    assert with_demo(production).events_topic == "market-events"
    assert with_demo(Settings(data_dir=tmp_path)).events_topic == "demo-1-market-events"


def test_a_rerun_resumes_the_recorded_topics_with_the_new_settings() -> None:
    record = DemoRecord("demo-1-", None, 9092, 6066, 4, seeded=True)
    rerun = Settings(webhook_allow="127.0.0.1", topic_prefix="")

    resumed = _resumed(rerun, record)

    assert resumed is not None
    assert (resumed.topic_prefix, resumed.webhook_allow, resumed.http_port) == ("demo-1-", "127.0.0.1", 6066)


def test_a_rerun_on_another_broker_starts_fresh() -> None:
    record = DemoRecord("demo-1-", None, 9092, 6066, 4, seeded=True)

    assert _resumed(Settings(kafka_bootstrap="kafka.internal:9092"), record) is None


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_is_drawn_on_a_terminal_and_erased_when_done() -> None:
    terminal = Terminal()
    progress = Progress("publishing", total=8192, stream=terminal)

    progress.update(4096)
    progress.close()

    assert "\rpublishing 4,096/8,192 (50%)" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r")


def test_progress_says_nothing_on_a_pipe() -> None:
    pipe = io.StringIO()
    progress = Progress("waiting for the worker", stream=pipe)

    progress.update()
    progress.close()

    assert pipe.getvalue() == ""
