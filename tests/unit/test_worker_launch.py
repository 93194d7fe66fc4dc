"""The worker launcher's pure parts: the child's environment, the address polled, readiness, the log quoted.

Starting, stopping and killing real worker processes is covered by the integration
tests that use the launcher (the demo, the benchmark, the fault tests).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tracker.settings import Settings
from tracker.worker.launch import is_ready, log_tail, worker_env, worker_url

pytestmark = pytest.mark.unit


def test_the_child_runs_with_its_settings_and_no_inherited_tracker_variable() -> None:
    settings = Settings(topic_prefix="child-", http_port=7001, api_token="a-token-of-16-chars")
    parent = {"PATH": "/usr/bin", "TRACKER_TOPIC_PREFIX": "parent-", "TRACKER_WORKER_URL": "http://elsewhere"}

    env = worker_env(settings, parent)

    assert env["PATH"] == "/usr/bin"
    assert env["TRACKER_TOPIC_PREFIX"] == "child-"
    assert env["TRACKER_HTTP_PORT"] == "7001"
    assert env["TRACKER_API_TOKEN"] == "a-token-of-16-chars"  # the child needs the secret in clear
    assert "TRACKER_WORKER_URL" not in env  # unset in the child's settings: not taken from the parent


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:7002"),
        ("0.0.0.0", "http://127.0.0.1:7002"),
        ("::", "http://127.0.0.1:7002"),
        ("::1", "http://[::1]:7002"),
        ("10.1.2.3", "http://10.1.2.3:7002"),
    ],
)
def test_the_worker_is_polled_on_an_address_it_listens_on(host: str, url: str) -> None:
    assert worker_url(Settings(http_host=host, http_port=7002)) == url


@pytest.mark.parametrize(
    ("health", "partitions", "recovered", "ready"),
    [
        ({"partitions": []}, 1, False, False),
        ({}, 1, False, False),
        ({"partitions": [0]}, 1, False, True),
        ({"partitions": [0, 1]}, 4, False, False),
        ({"partitions": [0, 1, 2, 3]}, 4, False, True),
        ({"partitions": [0, 1, 2, 3], "recovering": True}, 4, False, True),
        ({"partitions": [0, 1, 2, 3], "recovering": True}, 4, True, False),
        ({"partitions": [0, 1, 2, 3], "recovering": False}, 4, True, True),
    ],
)
def test_a_worker_is_ready_once_it_owns_the_partitions_and_if_asked_has_recovered(
    health: dict[str, object], partitions: int, recovered: bool, ready: bool
) -> None:
    assert is_ready(health, partitions, recovered) is ready


def test_the_log_tail_is_the_end_of_the_log_or_says_there_is_none(tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    log.write_text("started\n" + "x" * 50 + "\nTraceback: the end\n")

    assert log_tail(log, chars=19) == "Traceback: the end\n"
    assert log_tail(tmp_path / "missing.log").startswith("(no log:")
