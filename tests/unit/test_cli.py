"""The CLI as a user sees it: what `tracker ...` prints and its exit code, with the worker's API faked at our port."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tracker.cli import common, main
from tracker.core.events import EventRetracted
from tracker.demo_record import DemoRecord
from tracker.errors import InfrastructureError
from tracker.kafka.publisher import Receipt
from tracker.settings import Settings

pytestmark = pytest.mark.unit

HISTORY = {
    "series": [
        {
            "name": "market_usage",
            "labels": {"entity": "bytedance", "metric": "tokens_per_day"},
            "points": [
                {"date": "2025-10", "value": 30e12, "facts": ["seed-08-bytedance-tokens-2025-10"]},
                {"date": "2025-12", "value": 50e12, "facts": ["seed-09-bytedance-tokens-2025-12"]},
            ],
        }
    ]
}


@dataclass
class FakeWorker:
    """The worker's API as the CLI's one HTTP port sees it: canned answers, and every request kept."""

    answers: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = field(default_factory=dict)
    requests: list[tuple[str, str, dict[str, str], object]] = field(default_factory=list)
    settings: list[Settings] = field(default_factory=list)
    published: list[Any] = field(default_factory=list)
    down: bool = False

    def answer(self, method: str, path: str, *documents: tuple[int, dict[str, Any]]) -> None:
        self.answers[(method, path)] = list(documents)

    def api(
        self, settings: Settings, method: str, path: str, body: object | None = None, query: Any = ()
    ) -> tuple[int, dict[str, Any]]:
        if self.down:
            raise InfrastructureError(f"cannot reach the worker at {settings.api_url}: connection refused")
        self.settings.append(settings)
        self.requests.append((method, path, {k: v for k, v in query if v not in (None, "")}, body))
        queue = self.answers.get((method, path), [(404, {"error": "not found"})])
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def publish(self, settings: Settings, events: list[Any]) -> list[Receipt]:
        self.settings.append(settings)
        self.published.extend(events)
        return [Receipt(event.event_id, ((0, 7),)) for event in events]


@pytest.fixture
def worker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeWorker]:
    """Fake the worker's API and the publisher; settings from a clean environment and an empty data dir."""
    for name in [name for name in __import__("os").environ if name.startswith("TRACKER_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path))
    fake = FakeWorker()
    monkeypatch.setattr(common, "api", fake.api)
    monkeypatch.setattr(common, "publish_events", fake.publish)
    yield fake


def test_history_prints_the_seed_points_in_event_time_with_units(
    worker: FakeWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange
    worker.answer("GET", "/v1/signals/history", (200, HISTORY))

    # Act
    code = main(["history", "market_usage", "--label", "entity=bytedance", "--label", "metric=tokens_per_day"])

    # Assert
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert out[0].split() == ["labels", "date", "value", "facts"]
    assert "2025-10" in out[1] and "30 T tokens/day" in out[1]
    assert "2025-12" in out[2] and "50 T tokens/day" in out[2]
    assert worker.requests[0][2] == {"name": "market_usage", "entity": "bytedance", "metric": "tokens_per_day"}


def test_as_of_and_labels_reach_the_worker_and_an_empty_answer_says_so(
    worker: FakeWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    worker.answer("GET", "/v1/signals", (200, {"signals": []}))

    code = main(["signals", "market_usage", "--label", "entity=nobody", "--as-of", "2025-11-15"])

    assert code == 0
    assert capsys.readouterr().out.strip() == "no signals match name=market_usage entity=nobody as of 2025-11-15"
    assert worker.requests[0][2] == {"name": "market_usage", "entity": "nobody", "as_of": "2025-11-15"}


def test_signals_print_as_csv_or_as_the_api_json(worker: FakeWorker, capsys: pytest.CaptureFixture[str]) -> None:
    document = {"signals": [{"name": "market_chip_units", "labels": {"stage": "scheduled"}, "value": 60000.0}]}
    worker.answer("GET", "/v1/signals", (200, document))

    assert main(["signals", "--format", "csv"]) == 0
    csv_out = capsys.readouterr().out
    assert main(["signals", "--format", "json"]) == 0
    json_out = capsys.readouterr().out
    assert main(["signals"]) == 0
    table_out = capsys.readouterr().out

    assert csv_out.splitlines() == ["signal,labels,value,unit", "market_chip_units,stage=scheduled,60000.0,units"]
    assert json.loads(json_out) == document
    assert table_out.splitlines()[1].endswith("60,000 units")


def test_a_refused_query_names_the_parameter_and_what_is_accepted(
    worker: FakeWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    refusal = {"error": "state: unknown alert state 'bogus'", "parameter": "state", "accepted": ["pending", "firing"]}
    worker.answer("GET", "/v1/alerts", (400, refusal))

    code = main(["alerts", "--state", "bogus"])

    err = capsys.readouterr().err.splitlines()
    assert code == 1
    assert err == ["state: unknown alert state 'bogus'", "accepted: pending, firing"]


def test_an_unreachable_worker_is_exit_2_with_a_hint(worker: FakeWorker, capsys: pytest.CaptureFixture[str]) -> None:
    worker.down = True

    code = main(["facts"])

    assert code == 2
    assert "cannot reach the worker at http://127.0.0.1:6066" in capsys.readouterr().err


def test_facts_follow_the_cursor_and_print_a_row_per_fact(
    worker: FakeWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    fact = {
        "type": "usage.reported",
        "id": "f-1",
        "occurred_on": "2025-12",
        "entity": "bytedance",
        "metric": "tokens_per_day",
        "value": {"value": 50e12, "unit": "tokens_per_day"},
        "status": "reported",
        "source": {"name": "Financial Times"},
        "retracted_by": None,
    }
    worker.answer(
        "GET",
        "/v1/facts",
        (200, {"facts": [fact], "next_cursor": "c2"}),
        (200, {"facts": [{**fact, "id": "f-2"}], "next_cursor": None}),
    )

    code = main(["facts", "--entity", "bytedance", "--field", "metric=tokens_per_day", "--from", "2025-10"])

    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split()[1] for line in out[1:]] == ["f-1", "f-2"]
    assert "tokens_per_day 50 T tokens/day" in out[1]
    assert worker.requests[1][2]["cursor"] == "c2"
    assert worker.requests[0][2]["occurred_from"] == "2025-10" and worker.requests[0][2]["metric"] == "tokens_per_day"


def test_facts_that_match_nothing_say_which_filters_matched_nothing(
    worker: FakeWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    worker.answer("GET", "/v1/facts", (200, {"facts": [], "next_cursor": None}))

    code = main(["facts", "--entity", "nobody", "--as-of", "2025-11"])

    assert code == 0
    assert capsys.readouterr().out.strip() == "no facts match entity=nobody as of 2025-11"


def test_retracting_an_id_the_worker_does_not_know_warns_and_publishes(
    worker: FakeWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange: GET /v1/facts/{id} answers 404 (the default).

    # Act
    code = main(
        ["retract", "seed-09-typo", "--reason", "misread figure", "--source", "Analyst desk", "--on", "2026-01-05"]
    )

    # Assert
    captured = capsys.readouterr()
    assert code == 0
    assert "warning: the worker does not know seed-09-typo" in captured.err
    [event] = worker.published
    assert isinstance(event, EventRetracted)
    assert (event.target_id, event.reason, event.source.name, event.occurred_on) == (
        "seed-09-typo",
        "misread figure",
        "Analyst desk",
        "2026-01-05",
    )
    assert captured.out.startswith(f"retracted seed-09-typo: published {event.event_id} -> market-events")


def test_retracting_a_known_fact_prints_no_warning(worker: FakeWorker, capsys: pytest.CaptureFixture[str]) -> None:
    worker.answer("GET", "/v1/facts/seed-09", (200, {"fact": {"id": "seed-09", "retracted_by": None}}))

    code = main(["retract", "seed-09", "--reason", "wrong", "--source", "desk"])

    assert code == 0
    assert capsys.readouterr().err == ""
    assert len(worker.published) == 1


def test_a_retraction_that_breaks_the_contract_is_refused_and_not_published(
    worker: FakeWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["retract", "has space", "--reason", "wrong", "--source", "desk", "--on", "Dec 2025"])

    err = capsys.readouterr().err
    assert code == 1
    assert "occurred_on: use YYYY, YYYY-MM or YYYY-MM-DD" in err and "target_id:" in err
    assert worker.published == []


def test_subscriptions_have_a_header_or_say_there_are_none(
    worker: FakeWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    sub = {
        "id": "sub-1",
        "owner": "desk",
        "matchers": "{}",
        "channel": {"type": "sse"},
        "send_resolved": True,
        "repeat_interval": 0,
    }
    worker.answer("GET", "/v1/subscriptions", (200, {"subscriptions": []}), (200, {"subscriptions": [sub]}))

    assert main(["subscriptions"]) == 0
    empty = capsys.readouterr().out
    assert main(["subscriptions"]) == 0
    listed = capsys.readouterr().out.splitlines()

    assert empty.startswith("no subscriptions")
    assert listed[0].split() == ["id", "owner", "matchers", "channel", "target", "resolved", "repeat"]
    assert listed[1].split()[:4] == ["sub-1", "desk", "{}", "sse"]


def test_a_webhook_without_a_secret_is_a_usage_error_naming_the_flag(
    worker: FakeWorker, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["subscribe", "--owner", "desk", "--webhook", "https://hooks.example.org/x"])

    assert code == 2
    assert "--secret is required with --webhook" in capsys.readouterr().err
    assert worker.requests == []


def test_a_label_without_a_value_is_a_usage_error(worker: FakeWorker, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["history", "market_usage", "--label", "bytedance"])

    assert code == 2
    assert "expected NAME=VALUE, not 'bytedance'" in capsys.readouterr().err


def test_after_a_demo_the_commands_use_its_topics_and_worker(
    worker: FakeWorker, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Arrange: the record `tracker demo` leaves in its data dir.
    demo = Settings(topic_prefix="demo-1700000000-", http_port=7123, kafka_bootstrap="127.0.0.1:19092", partitions=2)
    DemoRecord.of(demo, seeded=True).write(tmp_path)
    worker.answer("GET", "/v1/facts/x", (200, {"fact": {"id": "x", "retracted_by": None}}))
    fact = tmp_path / "my-fact.jsonl"
    fact.write_text(
        '{"type": "usage.reported", "entity": "doubao", "metric": "mau", "value": {"value": 1.6e8, "unit": "users"},'
        ' "occurred_on": "2025-11", "source": {"name": "QuestMobile"}}\n'
    )

    # Act
    published = main(["publish", str(fact)])
    retracted = main(["retract", "x", "--reason", "wrong", "--source", "desk"])

    # Assert
    out = capsys.readouterr().out
    assert (published, retracted) == (0, 0)
    assert "published 1, rejected 0, failed 0 -> demo-1700000000-market-events" in out
    assert {s.events_topic for s in worker.settings} == {"demo-1700000000-market-events"}
    assert {s.api_url for s in worker.settings} == {"http://127.0.0.1:7123"}
    assert {s.bootstrap for s in worker.settings} == {"127.0.0.1:19092"}


def test_a_setting_given_explicitly_wins_over_the_demo_record(
    worker: FakeWorker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    DemoRecord.of(Settings(topic_prefix="demo-1-", http_port=7123), seeded=True).write(tmp_path)
    monkeypatch.setenv("TRACKER_HTTP_PORT", "6066")
    worker.answer("GET", "/v1/alerts", (200, {"alerts": []}))

    assert main(["alerts"]) == 0

    assert capsys.readouterr().out.strip() == "no alerts"
    assert worker.settings[0].api_url == "http://127.0.0.1:6066"
    assert worker.settings[0].topic_prefix == "demo-1-"
