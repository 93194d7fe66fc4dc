"""Every dashboard panel against a real Prometheus scraping a real worker fed with the seed article.

One stack per module: a worker on the session's broker with two webhook
subscriptions (one receiver up, one down), then a Prometheus started from
deploy/prometheus (scrape and rule evaluation every second), then two rounds of
the seed, each with one record that is not JSON written straight to the events
topic. The second round folds as duplicates, so the BRIEF's values stand. The
bad records and the dead receiver exist so that the health panels for rejects,
dead letters and failed notifications have real data to show.
"""

from __future__ import annotations

import json
import math
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SEED, RunningWorker, free_port, launch_worker, run_cli
from tests.integration.helpers import post, sample, scrape, wait_for_sample
from tests.integration.kafka_helpers import Raw, produce_raw
from tests.integration.prometheus_server import DEPLOY, PrometheusServer, config_for, ensure_installed
from tests.integration.receivers import Receiver
from tests.integration.test_seed_pipeline import EXPECTED
from tracker.monitoring.grafana import MARKET_SIGNALS_UID, substitute, targets
from tracker.settings import Settings

pytestmark = pytest.mark.integration

DASHBOARD_DIR = DEPLOY / "grafana" / "dashboards"
DASHBOARDS = {path.stem: json.loads(path.read_text()) for path in sorted(DASHBOARD_DIR.glob("*.json"))}
SECRET = "monitoring-test-secret-0123456789"
# Grafana's built-in variables; the rate window spans the whole module's stack.
BUILTINS = {"__rate_interval": "5m", "__interval": "15s", "__range": "1h"}
# The seed's alerts: export-rule change, peer crossing, stalled growth (../shared/BRIEF.md).
SEED_ALERTS = 3
STALE_AFTER_DAYS = 90
SEED_LINES = SEED.read_text().splitlines()
# Health panels that what the stack went through must move off zero: (title, refId).
# Rates need only one moving series (the second round adds no alert transition);
# since-start totals must be positive in every series, with no stray zero beside them.
MOVING = [
    ("Records read by the fold per second, by topic", "A"),
    ("Events folded per second, by type", "A"),
    ("Duplicates and re-routes per second", "A"),
    ("Rejected records per second, by reason", "A"),
    ("Records per fold batch", "A"),
    ("Processing latency", "A"),
    ("Processing latency", "C"),
]
COUNTED = [
    ("Workers up", "A"),
    ("Rejected since worker start", "A"),
    ("Dead-lettered since worker start", "A"),
    ("Dead-lettered since worker start", "B"),
    ("Notification outcomes since worker start", "A"),
    ("Alert transitions since worker start", "A"),
]


@dataclass
class Stack:
    """The worker, its settings and the Prometheus that scrapes it."""

    settings: Settings
    worker: RunningWorker
    prometheus: PrometheusServer

    @property
    def instance(self) -> str:
        return f"127.0.0.1:{self.settings.http_port}"


def start_worker(settings: Settings) -> RunningWorker:
    """Start `tracker worker` and wait until it owns every partition; stop it if it never does."""
    started: list[RunningWorker] = []
    try:
        return launch_worker(settings, started)
    except BaseException:
        for worker in started:
            worker.stop()
        raise


def subscribe(worker: RunningWorker, receiver: Receiver, owner: str) -> None:
    """Subscribe ``receiver`` to every alert, with one delivery attempt."""
    body = {
        "owner": owner,
        "channel": {"type": "webhook", "url": f"{receiver.url}/hook", "secret": SECRET, "max_attempts": 1},
    }
    status, document = post(f"{worker.url}/v1/subscriptions", json.dumps(body).encode(), "application/json")
    assert status == 201, document


def publish_round(worker: RunningWorker, round_number: int) -> None:
    """Publish the seed and the demo's exchange rates (duplicates the second time), and a record that is not JSON."""
    for path in (SEED, SEED.parent / "fx-rates.jsonl"):
        published = run_cli(worker.settings, "publish", str(path))
        assert published.returncode == 0, published.stderr
    produce_raw(worker.settings, worker.settings.events_topic, [Raw(b"{this is not JSON", key=b"monitoring-test")])
    rejected = sample("tracker_events_rejected_total", reason="invalid_json")
    wait_for_sample(worker.url, rejected, lambda v: v >= round_number)


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """Start the worker and Prometheus, feed the seed; stop both at the end of the module."""
    ensure_installed()
    directory = tmp_path_factory.mktemp("monitoring")
    unique = uuid.uuid4().hex[:10]
    settings = Settings(
        kafka_bootstrap=kafka_bootstrap,
        topic_prefix=f"test-{unique}-",
        app_id=f"tracker-{unique}",
        http_port=free_port(),
        data_dir=directory / "worker",
        webhook_allow="127.0.0.1",  # its webhook receivers listen on loopback
    )
    worker = start_worker(settings)
    live, dead = Receiver().start(), Receiver()
    prometheus = PrometheusServer(config_for([f"127.0.0.1:{settings.http_port}"]), directory / "prometheus")
    try:
        subscribe(worker, live, "monitoring-live")
        subscribe(worker, dead, "monitoring-dead")
        prometheus.start()
        # A scrape before any event: rates and latency quantiles then cover the seed's increments.
        prometheus.wait_for('up{job="tracker"} == 1')

        publish_round(worker, 1)
        wait_for_sample(
            worker.url, sample("tracker_notifications_total", outcome="dead_lettered"), lambda v: v >= SEED_ALERTS
        )
        live.wait_for(SEED_ALERTS, timeout=60, succeeded=True)
        # These counters start at zero, so only "> 0" proves a scrape came after the first round:
        # the second round's increments then fall between two samples.
        prometheus.wait_for('tracker_notifications_total{outcome="dead_lettered"} > 0')
        prometheus.wait_for('tracker_events_rejected_total{reason="invalid_json"} > 0')
        prometheus.wait_for("tracker_records_read_total > 0")
        # Labelled counters are born at their first increment, so a rate only sees
        # what comes after a scrape of them: a second round gives the rate panels a slope.
        publish_round(worker, 2)
        wait_for_sample(worker.url, sample("tracker_events_duplicate_total"), lambda v: v >= len(SEED_LINES))
        prometheus.wait_for("tracker_events_duplicate_total > 0")
        prometheus.wait_for("instance_topic_partition:tracker_consumer_lag:records")
        prometheus.wait_for_scrapes(2)
        yield Stack(settings, worker, prometheus)
    finally:
        prometheus.stop()
        live.stop()
        worker.stop()


def variables(board: dict[str, Any]) -> list[dict[str, Any]]:
    return list(board["templating"]["list"])


def escape(value: str) -> str:
    """Escape a value for a regex matcher, as Grafana does for a selected variable value."""
    return re.sub(r"([\\.^$*+?()\[\]{}|])", r"\\\\\1", value)


def selection(board: dict[str, Any], stack: Stack, which: str) -> dict[str, str]:
    """Return variable values: every query variable at "All", or one real value each."""
    one = {"entity": "bytedance", "metric": "tokens_per_day", "job": "tracker", "instance": stack.instance}
    values = dict(BUILTINS)
    for variable in variables(board):
        if variable["type"] == "query":
            values[variable["name"]] = variable["allValue"] if which == "all" else escape(one[variable["name"]])
        else:
            values[variable["name"]] = variable["query"]
    return values


QUERIES = [
    pytest.param(name, item["title"], target["refId"], id=f"{name}/{item['title']}/{target['refId']}")
    for name, board in DASHBOARDS.items()
    for item, target in targets(board)
]


def test_the_dashboards_have_queries_to_run() -> None:
    assert set(DASHBOARDS) == {"market-signals", "tracker-health"}
    assert len(QUERIES) >= 20


def test_prometheus_scrapes_the_worker(stack: Stack) -> None:
    (target,) = stack.prometheus.api("targets", state="active")["activeTargets"]

    assert target["labels"]["job"] == "tracker"
    assert target["labels"]["instance"] == stack.instance
    assert target["health"] == "up", target["lastError"]


@pytest.mark.parametrize(("dashboard", "title", "ref_id"), QUERIES)
@pytest.mark.parametrize("which", ["all", "one"])
def test_every_panel_query_returns_data(stack: Stack, dashboard: str, title: str, ref_id: str, which: str) -> None:
    board = DASHBOARDS[dashboard]
    (expr,) = [t["expr"] for item, t in targets(board) if item["title"] == title and t["refId"] == ref_id]

    result = stack.prometheus.query(substitute(expr, selection(board, stack, which)))

    assert result, f"no data for {expr!r} ({which})"
    assert any(math.isfinite(item["value"]) for item in result), f"{expr!r} ({which}): {result}"


def health_values(stack: Stack, title: str, ref_id: str) -> list[float]:
    """Return the values the Tracker health panel ``title`` shows for its query ``ref_id``."""
    board = DASHBOARDS["tracker-health"]
    (expr,) = [t["expr"] for item, t in targets(board) if item["title"] == title and t["refId"] == ref_id]
    return [item["value"] for item in stack.prometheus.query(substitute(expr, selection(board, stack, "all")))]


@pytest.mark.parametrize(("title", "ref_id"), MOVING, ids=[f"{t}/{r}" for t, r in MOVING])
def test_rate_panels_move_with_the_activity(stack: Stack, title: str, ref_id: str) -> None:
    values = health_values(stack, title, ref_id)

    assert any(value > 0 for value in values), values


@pytest.mark.parametrize(("title", "ref_id"), COUNTED, ids=[f"{t}/{r}" for t, r in COUNTED])
def test_since_start_panels_count_what_happened(stack: Stack, title: str, ref_id: str) -> None:
    values = health_values(stack, title, ref_id)

    assert values, title
    # Every label set starts at zero (so rate() sees the first increment); what happened is counted.
    assert all(value >= 0 for value in values), values
    assert any(value > 0 for value in values), values


@pytest.mark.parametrize("dashboard", sorted(DASHBOARDS))
def test_variable_queries_offer_the_seed_values(stack: Stack, dashboard: str) -> None:
    board = DASHBOARDS[dashboard]
    chosen = selection(board, stack, "one")
    unescaped = {name: value.replace("\\\\", "") for name, value in chosen.items()}

    for variable in variables(board):
        if variable["type"] != "query":
            continue
        found = re.fullmatch(r"label_values\((.+), (\w+)\)", variable["definition"])
        assert found, variable["definition"]
        match, label = substitute(found.group(1), chosen), found.group(2)

        offered = stack.prometheus.label_values(label, match)

        assert unescaped[variable["name"]] in offered, (variable["name"], offered)


def shown_by(board: dict[str, Any], name: str) -> list[str]:
    """Return the expressions of the panels of ``board`` that query the metric ``name``."""
    return [t["expr"] for _, t in targets(board) if re.search(rf"\b{re.escape(name)}\b", t["expr"])]


@pytest.mark.parametrize("key", list(EXPECTED), ids=lambda key: f"{key[0]}{dict(sorted(key[1]))}")
def test_market_signals_panels_show_the_brief_values(stack: Stack, key: tuple[str, Any]) -> None:
    board = DASHBOARDS["market-signals"]
    assert board["uid"] == MARKET_SIGNALS_UID
    name, labels = key
    exprs = shown_by(board, name)
    assert exprs, f"no Market signals panel shows {name}"

    shown = [
        item["value"]
        for expr in exprs
        for item in stack.prometheus.query(substitute(expr, selection(board, stack, "all")))
        if dict(labels).items() <= item["metric"].items()
    ]

    assert shown, f"{name}{dict(labels)} is in no panel of {exprs}"
    for value in shown:
        assert math.isclose(value, EXPECTED[key], rel_tol=1e-9), f"{name}{dict(labels)}: {value} != {EXPECTED[key]}"


def test_the_worker_and_prometheus_agree_on_every_signal(stack: Stack) -> None:
    exported = {key: value for key, value in scrape(stack.worker.url).items() if key[0].startswith("market_")}

    for (name, labels), value in exported.items():
        selector = ", ".join(f'{label}="{text}"' for label, text in sorted(labels))
        (item,) = stack.prometheus.query(f"{name}{{{selector}}}")
        assert item["value"] == value, (name, dict(labels))


def test_recording_rules_evaluate_without_error_and_record_the_seed(stack: Stack) -> None:
    rules = [rule for rule in stack.prometheus.rules() if rule["type"] == "recording"]

    assert len(rules) >= 5
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
        assert not rule.get("lastError"), rule["name"]
        assert stack.prometheus.query(rule["name"]), f"{rule['name']} recorded nothing"
    (share,) = stack.prometheus.query(
        'entity_peer_metric:market_peer_share:ratio{entity="bytedance", peer="google", metric="tokens_per_day"}'
    )
    assert math.isclose(share["value"], 50 / 93, rel_tol=1e-9)


def test_alerting_rules_load_and_fire_on_what_the_stack_went_through(stack: Stack) -> None:
    rules = [rule for rule in stack.prometheus.rules() if rule["type"] == "alerting"]
    stack.prometheus.wait_for('ALERTS{alertname="TrackerNotificationsDeadLettered", alertstate="firing"}')
    now = time.time()
    observed = stack.prometheus.query("market_signal_observed_timestamp_seconds")
    stale = {
        (item["metric"]["entity"], item["metric"]["metric"])
        for item in observed
        if now - item["value"] > STALE_AFTER_DAYS * 86400
    }

    firing = {item["metric"]["alertname"] for item in stack.prometheus.query('ALERTS{alertstate="firing"}')}
    pending = stack.prometheus.query('ALERTS{alertstate="pending"}')

    assert {rule["name"] for rule in rules} >= {"TrackerWorkerDown", "TrackerEventsRejected", "MarketSignalStale"}
    assert all(rule["health"] == "ok" for rule in rules), [(r["name"], r.get("lastError")) for r in rules]
    assert firing == {"TrackerEventsRejected", "TrackerNotificationsDeadLettered"}
    assert {(a["metric"]["entity"], a["metric"]["metric"]) for a in pending} == stale
    assert {a["metric"]["alertname"] for a in pending} <= {"MarketSignalStale"}


def test_prometheus_config_for_tests_keeps_the_deployed_rules() -> None:
    config = config_for(["127.0.0.1:1"])

    assert [job["job_name"] for job in config["scrape_configs"]] == ["tracker"]
    assert all(Path(pattern).is_absolute() for pattern in config["rule_files"])
    assert "alerting" not in config
