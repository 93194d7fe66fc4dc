"""Prometheus's and Alertmanager's own tools accept deploy/ as it is; the example receiver prints alerts.

promtool and amtool come from Debian's packages (deploy/prometheus/install.sh,
run here when they are missing). No broker is involved.
"""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.prometheus_server import DEPLOY, ensure_installed

pytestmark = pytest.mark.integration

PROMETHEUS_DIR = DEPLOY / "prometheus"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
ECHO = DEPLOY / "alertmanager" / "webhook_echo.py"


@pytest.fixture(scope="module", autouse=True)
def tools() -> None:
    """Install promtool and amtool if they are missing."""
    ensure_installed()


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a tool from the repository root; the result carries its output for assertions."""
    return subprocess.run([str(arg) for arg in args], capture_output=True, text=True, timeout=120, cwd=DEPLOY.parent)


@pytest.mark.parametrize("config", ["prometheus.yml", "kubernetes.yml"])
def test_promtool_accepts_each_prometheus_config_and_its_rules(config: str) -> None:
    result = run("promtool", "check", "config", PROMETHEUS_DIR / config)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
    assert "rules found" in result.stdout


def test_promtool_accepts_every_rules_file() -> None:
    files = sorted((PROMETHEUS_DIR / "rules").glob("*.yml"))

    result = run("promtool", "check", "rules", *files)

    assert files
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_promtool_unit_tests_of_the_rules_pass() -> None:
    files = sorted((PROMETHEUS_DIR / "tests").glob("*.yml"))

    result = run("promtool", "test", "rules", *files)

    assert files
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("SUCCESS") == len(files)


def test_promtool_unit_tests_can_fail(tmp_path: Path) -> None:
    broken = tmp_path / "broken_test.yml"
    broken.write_text(
        f"rule_files: [{PROMETHEUS_DIR / 'rules' / 'alerts.yml'}]\n"
        "tests:\n"
        "  - interval: 1m\n"
        "    input_series: [{series: 'up{job=\"tracker\", instance=\"w\"}', values: '1x10'}]\n"
        "    alert_rule_test:\n"
        "      - {eval_time: 5m, alertname: TrackerWorkerDown, exp_alerts: [{exp_labels: {severity: critical}}]}\n"
    )

    result = run("promtool", "test", "rules", broken)

    assert result.returncode != 0
    assert "FAILED" in result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config() -> None:
    result = run("amtool", "check-config", ALERTMANAGER_CONFIG)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


@pytest.mark.parametrize("severity", ["critical", "warning", "info"])
def test_alertmanager_routes_every_severity_to_the_webhook(severity: str) -> None:
    result = run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG}",
        f"severity={severity}",
        "job=tracker",
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "tracker-webhook"


@pytest.fixture
def echo() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    """Run the example webhook receiver on a free loopback port."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, str(ECHO), "--host", "127.0.0.1", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().startswith("listening on")
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_example_receiver_prints_one_line_per_alert(echo: tuple[str, subprocess.Popen[str]]) -> None:
    url, process = echo
    notification = {
        "version": "4",
        "status": "firing",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "TrackerEventsRejected", "severity": "warning"},
                "annotations": {"summary": "worker-1:6066 rejected records (invalid_json) in the last 10 minutes"},
            },
            {"status": "resolved", "labels": {"alertname": "TrackerWorkerDown", "severity": "critical"}},
        ],
    }
    request = urllib.request.Request(
        f"{url}/alerts", data=json.dumps(notification).encode(), headers={"Content-Type": "application/json"}
    )

    with urllib.request.urlopen(request, timeout=10) as response:
        status = response.status
    assert process.stdout is not None
    lines = [process.stdout.readline().strip() for _ in notification["alerts"]]

    assert status == 200
    assert lines == [
        "firing TrackerEventsRejected [warning] worker-1:6066 rejected records (invalid_json) in the last 10 minutes",
        "resolved TrackerWorkerDown [critical]",
    ]


def test_the_example_receiver_refuses_a_body_that_is_not_json(echo: tuple[str, subprocess.Popen[str]]) -> None:
    url, _ = echo
    request = urllib.request.Request(f"{url}/alerts", data=b"{nope")

    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=10)

    assert refused.value.code == 400
