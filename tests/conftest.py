"""Fixtures shared by every tier: a real Kafka broker for the session, workers per test."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tracker.settings import Settings
from tracker.worker.launch import WorkerProcess, free_port, start_worker, worker_env

ROOT = Path(__file__).resolve().parent.parent
SEED = ROOT / "events" / "samples" / "seed.jsonl"


def free_port_pair() -> int:
    """Return a port p such that p and p + 1 can both be bound now (broker + controller)."""
    for _ in range(100):
        port = free_port()
        # Binding, not connecting: a port nobody listens on may still be held (TIME_WAIT).
        try:
            with socket.socket() as broker, socket.socket() as controller:
                broker.bind(("127.0.0.1", port))
                controller.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return port
    raise RuntimeError("no free pair of ports")


@pytest.fixture(scope="session")
def kafka_bootstrap(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a real single-node Kafka broker for the session (or use TRACKER_TEST_KAFKA_BOOTSTRAP)."""
    external = os.environ.get("TRACKER_TEST_KAFKA_BOOTSTRAP")
    if external:
        yield external
        return
    from tracker.kafka.broker import BrokerError, LocalBroker

    for attempt in range(3):  # a port taken between the check and the start: another pair
        broker = LocalBroker(data_dir=tmp_path_factory.mktemp("kafka"), port=free_port_pair())
        try:
            broker.start(timeout=180)
            break
        except BrokerError:
            if attempt == 2:
                raise
    try:
        yield broker.bootstrap_servers
    finally:
        broker.stop()


@pytest.fixture
def settings_factory(kafka_bootstrap: str, tmp_path: Path) -> Callable[..., Settings]:
    """Make settings with a unique topic prefix, app id, HTTP port and data dir."""

    def make(**overrides: object) -> Settings:
        return unique_settings(kafka_bootstrap, tmp_path, **overrides)

    return make


def unique_settings(bootstrap: str, root: Path, /, **overrides: object) -> Settings:
    """Return settings with a unique topic prefix, app id, HTTP port and data dir under ``root``.

    ``overrides`` may name any setting, ``kafka_bootstrap`` included (a test's own broker).
    """
    unique = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "kafka_bootstrap": bootstrap,
        "topic_prefix": f"test-{unique}-",
        "app_id": f"tracker-{unique}",
        "http_port": free_port(),
        "data_dir": root / unique,
        "webhook_allow": "127.0.0.1",  # the tests' webhook receivers listen on loopback
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


#: A worker a test started: ``stop()`` (SIGTERM, then SIGKILL), ``kill()`` (a crash), ``log``, ``health()``.
RunningWorker = WorkerProcess


def child_env(settings: Settings) -> dict[str, str]:
    """Return the environment for a tracker child process run with ``settings``."""
    return worker_env(settings, os.environ)


@pytest.fixture
def worker_factory() -> Iterator[Callable[[Settings], RunningWorker]]:
    """Start `tracker worker` processes; each is stopped when the test ends."""
    started: list[RunningWorker] = []

    def start(settings: Settings, wait_for_partitions: int | None = None) -> RunningWorker:
        return launch_worker(settings, started, wait_for_partitions)

    yield start
    for worker in started:
        worker.stop()


def launch_worker(
    settings: Settings, started: list[RunningWorker], wait_for_partitions: int | None = None
) -> RunningWorker:
    """Start `tracker worker` (appended to ``started`` at once, for the caller to stop) and wait for its partitions."""
    worker = start_worker(settings, settings.data_dir / "worker.log")
    started.append(worker)
    worker.wait_ready(wait_for_partitions)
    return worker


def run_cli(settings: Settings, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run the `tracker` CLI as a user would, with ``settings`` in its environment."""
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args],
        env=child_env(settings),
        input=stdin.decode() if stdin is not None else None,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
