"""Fixtures shared by the integration tests that need the worker's notifications or a webhook receiver."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.conftest import RunningWorker
from tests.integration.receivers import Receiver
from tracker.polling import wait_until
from tracker.settings import Settings


@pytest.fixture
def start_worker(worker_factory: Callable[..., RunningWorker]) -> Iterator[Callable[[Settings], RunningWorker]]:
    """Start workers that also read subscriptions, the ledger and the alert feed before returning.

    Each worker's log tail is printed at teardown: pytest shows it when the test failed.
    """
    started: list[RunningWorker] = []

    def start(settings: Settings) -> RunningWorker:
        worker = worker_factory(settings)
        started.append(worker)
        wait_until("the worker's notifications", lambda: worker.health()["notifications_ready"], timeout=60)
        return worker

    yield start
    for worker in started:
        print(f"--- {worker.log} (exit {worker.process.poll()})\n{worker.log.read_text()[-4000:]}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A webhook receiver on 127.0.0.1."""
    with Receiver() as up:
        yield up
