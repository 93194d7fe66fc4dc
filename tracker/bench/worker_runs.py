"""The benchmark's worker processes: a fold from offset 0, a restart, a recovery, each timed.

Each worker gets a free HTTP port of its own (the configured one may be taken by a
demo or another worker) and is stopped when its stage ends.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from tracker.bench.correctness import same_signals
from tracker.errors import TrackerError
from tracker.kafka.topics import ensure_topics
from tracker.polling import http_json, wait_until
from tracker.settings import Settings
from tracker.worker.launch import WorkerProcess, free_port, start_worker

__all__ = [
    "STOP_GRACE_SECONDS",
    "fold_from_start",
    "fold_without_rules",
    "recovery_seconds",
    "restart_seconds",
    "served_signal_count",
    "wait_until_idle",
]

#: Seconds a benchmark worker has to stop after SIGTERM: after a large fold its tables
#: hold more to close than a test worker's.
STOP_GRACE_SECONDS = 30.0


def _start_worker(settings: Settings, log: Path) -> WorkerProcess:
    return start_worker(settings.model_copy(update={"http_port": free_port()}), log)


def served_signal_count(worker: WorkerProcess) -> int:
    """Return how many signals the worker serves, 0 if it does not answer."""
    try:
        return len(http_json(f"{worker.url}/v1/signals", 120)["signals"])
    except OSError:
        return 0


def _progress(worker: WorkerProcess) -> dict[str, Any]:
    worker.check_running()
    return worker.health(timeout=30)


def fold_from_start(settings: Settings, total: int, log: Path) -> tuple[WorkerProcess, float, int]:
    """Start a worker on a filled topic; return it, its fold rate (records/s) and records seen."""
    worker = _start_worker(settings, log)
    # The clock starts once the worker folds its partitions (they are assigned and their empty
    # tables rebuilt) and counts every record: a batch holds up to 20,000 records, so timing
    # from the first batch folded would leave a whole batch out.
    worker.wait_ready(1, timeout=120, interval=0.01)
    started = time.perf_counter()
    wait_until("the fold to catch up", lambda: _progress(worker)["records"] >= total, timeout=3600, interval=0.05)
    elapsed = time.perf_counter() - started
    return worker, total / elapsed, total


def fold_without_rules(settings: Settings, expected: list[Any], total: int, workdir: Path) -> float:
    """Fold the events topic again from offset 0 with no alert rules; return the rate (records/s).

    ``total`` counts the retractions the first fold broadcast, and those this one
    broadcasts again. The signals must still equal the pure fold (they never depend
    on rules), or no rate is given.
    """
    rules = workdir / "no-rules.yaml"
    rules.write_text("rules: []\n")
    bare = settings.model_copy(
        update={"app_id": f"{settings.app_id}-no-rules", "data_dir": workdir / "fold-no-rules", "rules_path": rules}
    )
    asyncio.run(ensure_topics(bare))  # its own changelogs
    worker, rate, _ = fold_from_start(bare, total, workdir / "fold-no-rules.log")
    try:
        served = http_json(f"{worker.url}/v1/signals", 120)["signals"]
    finally:
        worker.stop(grace=STOP_GRACE_SECONDS)
    mismatch = same_signals(expected, served)
    if mismatch:
        raise TrackerError(f"the fold without alert rules disagrees with the pure fold: {mismatch}")
    return rate


def wait_until_idle(worker: WorkerProcess, at_least: int, quiet_seconds: float = 2.0) -> None:
    """Wait until the worker has processed ``at_least`` records and then nothing new for a while."""
    last, since = -1, time.perf_counter()
    deadline = time.perf_counter() + 3600
    while time.perf_counter() < deadline:
        records = _progress(worker)["records"]
        if records != last:
            last, since = records, time.perf_counter()
        elif records >= at_least and time.perf_counter() - since >= quiet_seconds:
            return
        time.sleep(0.2)
    raise TrackerError("the worker never caught up")


def restart_seconds(settings: Settings, signal_count: int) -> float:
    """Start a worker again on the data dir the fold left; return the seconds until it folds again."""
    return _time_to_folding(settings, settings.data_dir.with_suffix(".restart.log"), signal_count)


def recovery_seconds(settings: Settings, data_dir: Path, signal_count: int) -> float:
    """Start a worker with empty local state; return the seconds until its tables are rebuilt."""
    return _time_to_folding(
        settings.model_copy(update={"data_dir": data_dir}), data_dir.with_suffix(".log"), signal_count
    )


def _time_to_folding(settings: Settings, log: Path, signal_count: int) -> float:
    """Start a worker; return the seconds until it owns every partition and Faust has read the changelogs.

    /healthz says so cheaply (polling /v1/signals, which derives every signal per
    call, slowed the recovery it measured). The signal count is checked after.
    """
    started = time.perf_counter()
    worker = _start_worker(settings, log)
    try:
        worker.wait_ready(recovered=True, timeout=600, interval=0.1)
        seconds = time.perf_counter() - started
        if served_signal_count(worker) != signal_count:
            raise TrackerError("the worker serves a different number of signals than before it was restarted")
        return seconds
    finally:
        worker.stop(grace=STOP_GRACE_SECONDS)
