"""The Prometheus rules are well formed, select real metrics, and every alert has a unit test.

promtool itself (check config, check rules, test rules) runs in
tests/integration/test_promtool.py; these checks need no binary.
"""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from tests.unit.metric_catalog import RULES_DIR, known_metrics, metric_names

pytestmark = pytest.mark.unit

PROMETHEUS_DIR = RULES_DIR.parent
SEVERITIES = {"critical", "warning", "info"}


def rules() -> list[dict[str, Any]]:
    return [
        rule
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
    ]


ALERTS = [rule for rule in rules() if "alert" in rule]
RECORDS = [rule for rule in rules() if "record" in rule]


def alert_tests() -> list[dict[str, Any]]:
    return [
        case
        for path in sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))
        for test in yaml.safe_load(path.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
    ]


def test_there_are_alerts_for_the_pipeline_and_for_stale_signals() -> None:
    names = {rule["alert"] for rule in ALERTS}

    assert {
        "TrackerWorkerDown",
        "TrackerConsumerLagGrowing",
        "TrackerEventsRejected",
        "TrackerNotificationsDeadLettered",
        "MarketSignalStale",
    } <= names


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_every_alert_has_a_severity_a_summary_and_a_description(rule: dict[str, Any]) -> None:
    assert rule["labels"]["severity"] in SEVERITIES
    assert rule["annotations"]["summary"]
    assert rule["annotations"]["description"]


@pytest.mark.parametrize("rule", ALERTS, ids=lambda rule: rule["alert"])
def test_every_alert_is_unit_tested_firing_and_quiet(rule: dict[str, Any]) -> None:
    cases = [case for case in alert_tests() if case["alertname"] == rule["alert"]]

    assert any(case["exp_alerts"] for case in cases), f"no promtool case where {rule['alert']} fires"
    assert any(not case["exp_alerts"] for case in cases), f"no promtool case where {rule['alert']} stays quiet"


@pytest.mark.parametrize("rule", RECORDS, ids=lambda rule: rule["record"])
def test_recorded_names_follow_level_metric_operations(rule: dict[str, Any]) -> None:
    level, metric, operations = rule["record"].split(":")

    assert level and metric and operations


@pytest.mark.parametrize("rule", ALERTS + RECORDS, ids=lambda rule: rule.get("alert") or rule["record"])
def test_every_metric_a_rule_selects_exists(rule: dict[str, Any]) -> None:
    assert metric_names(rule["expr"]) - known_metrics() == set()


def test_prometheus_loads_every_rules_file_and_promtool_tests_every_one() -> None:
    config = yaml.safe_load((PROMETHEUS_DIR / "prometheus.yml").read_text())
    loaded = {path for pattern in config["rule_files"] for path in PROMETHEUS_DIR.glob(pattern)}
    tested = {
        (path.parent / name).resolve()
        for path in (PROMETHEUS_DIR / "tests").glob("*.yml")
        for name in yaml.safe_load(path.read_text())["rule_files"]
    }

    assert loaded == set(RULES_DIR.glob("*.yml"))
    assert {path.resolve() for path in loaded} <= tested


def test_rules_files_use_the_yml_extension_the_config_globs() -> None:
    strays = [path.name for path in RULES_DIR.iterdir() if path.suffix != ".yml"]

    assert strays == []
