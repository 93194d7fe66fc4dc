"""Fault 1: the worker is SIGKILLed three times while events stream in; nothing is lost or counted twice.

A background publisher streams the synthetic workload (facts, duplicates,
retractions) through the tracker's own ``Publisher``. The worker is killed
at a random moment, restarted with the same app id (tables come back from
their changelogs, offsets from the consumer group), three times in a row.
Once the fold's committed offsets reach the end of the topic, every signal
(GET /v1/signals) and every alert state (GET /v1/alerts) must equal the pure
fold of the whole log read back from the topic.

The consumer session timeout decides how long a restarted worker waits for
the group to forget the killed one (TRACKER_SESSION_TIMEOUT_SECONDS, 20 s by
default). This test sets it to 10 s to fit three kills in its time budget.
The scale-out test measures the default.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.conftest import RunningWorker
from tests.integration.fault_helpers import (
    count_differences,
    fold_progress,
    health_or_none,
    pure_fold,
    record_figures,
    records_per_event,
    signal_differences,
    worker_alerts,
    worker_signals,
)
from tracker.bench.workload import generate
from tracker.core.decode import decode_event
from tracker.core.events import Event
from tracker.errors import EventValidationError, PublishError, TrackerError
from tracker.kafka.publisher import Publisher, Receipt
from tracker.polling import wait_until
from tracker.rules_file import build_router
from tracker.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

EVENTS = 50_000
ENTITIES = 2_000
KILLS = 3
# Publishing is paced so that the three kills land while events still stream in.
RATE = 1_000.0
CHUNK = 500
SESSION_TIMEOUT = "10"
CATCH_UP_TIMEOUT = 150


@dataclass(eq=False)  # a Thread must stay hashable
class StreamingPublisher(threading.Thread):
    """Publish events at a steady rate on a thread of its own; keep every receipt."""

    settings: Settings
    events: list[Event]
    receipts: list[Receipt] = field(default_factory=list)
    failures: list[PublishError] = field(default_factory=list)
    error: BaseException | None = None

    def __post_init__(self) -> None:
        super().__init__(name="streaming-publisher", daemon=True)

    def check(self) -> None:
        """Raise what went wrong on the publishing thread, if anything did."""
        if self.error is not None:
            raise AssertionError(f"the publisher failed: {self.error!r}") from self.error

    def run(self) -> None:
        try:
            asyncio.run(self._publish())
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    async def _publish(self) -> None:
        started = time.monotonic()
        async with Publisher(self.settings, build_router(self.settings)) as publisher:
            for start in range(0, len(self.events), CHUNK):
                for result in await publisher.publish(self.events[start : start + CHUNK]):
                    if isinstance(result, Receipt):
                        self.receipts.append(result)
                    else:
                        self.failures.append(result)
                due = started + (start + CHUNK) / RATE
                await asyncio.sleep(max(0.0, due - time.monotonic()))


def workload_events(seed: int) -> list[Event]:
    """Return the valid events of the synthetic workload (duplicates and retractions included)."""
    events = []
    for raw in generate(EVENTS, ENTITIES, seed).records:
        # Invalid records are the hostile-input tests' business.
        with contextlib.suppress(EventValidationError):
            events.append(decode_event(raw))
    return events


def quiet(worker: RunningWorker, seconds: float = 5.0) -> bool:
    """Return whether the worker's record count stayed the same for ``seconds``."""
    before = (health_or_none(worker.url) or {}).get("records")
    time.sleep(seconds)
    return before is not None and before == (health_or_none(worker.url) or {}).get("records")


def folding(worker: RunningWorker, publisher: StreamingPublisher) -> bool:
    """Return whether the worker has folded a record since it started (and the publisher is fine)."""
    publisher.check()
    return bool((health_or_none(worker.url) or {}).get("records"))


def test_three_sigkills_while_events_stream_in_lose_nothing_and_count_nothing_twice(settings_factory, worker_factory):
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    # Faust's info log says what its commits do: the evidence when they stall.
    settings = settings_factory(log_level="info", session_timeout_seconds=float(SESSION_TIMEOUT))
    events = workload_events(seed)
    worker = worker_factory(settings)
    publisher = StreamingPublisher(settings, events)
    test_started = time.monotonic()

    publisher.start()
    kills = []
    for _ in range(KILLS):
        # A random moment once this life is folding: wait for its first record, then a random delay.
        wait_until("the worker to fold", lambda w=worker: folding(w, publisher), timeout=90)
        time.sleep(rng.uniform(1.0, 6.0))
        before = health_or_none(worker.url) or {}
        ends, committed = fold_progress(settings)
        worker.kill()
        killed_at = time.monotonic()
        assert worker.process.returncode == -signal.SIGKILL
        worker = worker_factory(settings)
        owned_at = time.monotonic()
        wait_until("the restarted worker to fold", lambda w=worker: folding(w, publisher), timeout=90)
        kills.append(
            {
                "at_seconds": round(killed_at - test_started, 1),
                "records_in_topic": sum(ends.values()),
                "in_flight": sum(ends.values()) - sum(committed.values()),
                "folded_by_this_life": before.get("records", 0),
                "restart_to_partitions_seconds": round(owned_at - killed_at, 1),
                "kill_to_folding_again_seconds": round(time.monotonic() - killed_at, 1),
            }
        )
    publisher.join(timeout=180)
    assert not publisher.is_alive(), "the publisher did not finish"
    assert publisher.error is None, publisher.error
    assert publisher.failures == [], publisher.failures[:3]

    total = records_per_event(events, settings.partitions)

    observed: dict[str, Any] = {}

    def caught_up() -> bool:
        # Twice in a row: records the worker itself writes (re-routed or broadcast copies) count too.
        ends, committed = fold_progress(settings)
        done = sum(ends.values()) >= total and committed == ends
        again = done and observed.get("ends") == ends and observed.get("committed") == committed
        observed.update(ends=ends, committed=committed, expected=total, health=health_or_none(worker.url))
        return again

    last_kill = time.monotonic()
    try:
        wait_until("the fold to commit the whole topic", caught_up, timeout=CATCH_UP_TIMEOUT, interval=0.5)
        caught_up_after: float | None = time.monotonic() - last_kill
    except TrackerError:
        caught_up_after = None
        # Compare anyway, once the worker has stopped folding: the figures say what a stuck commit cost.
        wait_until("the worker to stop folding", lambda: quiet(worker), 60, 0.1)
    final_life = health_or_none(worker.url) or {}
    reference = pure_fold(settings, at_least=total)
    signals = worker_signals(worker.url)
    alerts = worker_alerts(worker.url)

    in_log = {}
    for event_id, partition, _, _ in reference.ids():
        in_log.setdefault(event_id, set()).add(partition)
    acknowledged = {receipt.event_id for receipt in publisher.receipts}
    lost_acknowledged = sorted(acknowledged - set(in_log))
    signal_problems = signal_differences(reference.signals, signals)
    missing_alerts = reference.alerts - alerts
    extra_alerts = alerts - reference.alerts
    refolded = sum(kill["folded_by_this_life"] for kill in kills) + int(final_life.get("records", 0)) - total
    record_figures(
        "worker_crash",
        {
            "seed": seed,
            "events_published": len(events),
            "records_in_topic": total,
            "kills": len(kills),
            "kill_details": kills,
            "in_flight_at_kills": [kill["in_flight"] for kill in kills],
            "session_timeout_seconds": int(SESSION_TIMEOUT),
            "acknowledged_not_in_log": len(lost_acknowledged),
            "signals": len(reference.signals),
            "signals_missing_extra_or_different": count_differences(reference.signals, signals),
            "alerts": len(reference.alerts),
            "alerts_missing": len(missing_alerts),
            "alerts_extra": len(extra_alerts),
            "records_refolded_after_kills_approx": refolded,
            "last_restart_to_caught_up_seconds": None if caught_up_after is None else round(caught_up_after, 1),
            "committed_behind_end_at_the_end": sum(observed["ends"].values()) - sum(observed["committed"].values())
            if caught_up_after is None
            else 0,
            "test_seconds": round(time.monotonic() - test_started, 1),
        },
    )

    assert lost_acknowledged == [], lost_acknowledged[:5]
    assert len(acknowledged) == len({event.event_id for event in events})
    assert not signal_problems, signal_problems
    commit_log = [line for line in worker.log.read_text().splitlines() if "ommit" in line][-8:]
    assert caught_up_after is not None, f"the fold never committed the whole topic; last seen {observed}; {commit_log}"
    assert not missing_alerts and not extra_alerts, {
        "missing": sorted(missing_alerts)[:3],
        "extra": sorted(extra_alerts)[:3],
    }
    # The comparison has teeth: a realistic state, with alerts in it.
    assert len(reference.signals) > 1_000
    assert reference.alerts
