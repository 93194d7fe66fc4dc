"""Fault 3: the broker stops and comes back while `tracker publish` and HTTP ingestion are running.

The test runs a broker of its own (the session broker is shared), so it can
stop it (SIGTERM) and start it again on the same data directory. A large file
is being published with ``tracker publish -v`` and a loop POSTs batches to
/v1/events when the broker goes away. Afterwards, every record acknowledged
to a caller must be in the log exactly once (a retraction: once per
partition, at the acknowledged offsets) and in the state; every record not
acknowledged must have been reported as failed; and no caller may hang.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, child_env
from tests.integration.fault_helpers import (
    OwnBroker,
    fold_progress,
    health_or_none,
    pure_fold,
    record_figures,
    signal_differences,
    worker_signals,
)
from tests.integration.kafka_helpers import end_offsets
from tracker.bench.workload import generate
from tracker.core.decode import decode_event
from tracker.core.events import EventRetracted
from tracker.errors import EventValidationError, TrackerError
from tracker.polling import wait_until
from tracker.settings import Settings

pytestmark = [pytest.mark.integration, pytest.mark.faults]

CLI_EVENTS = 20_000
HTTP_BATCH = 100
# Longer than the producer's 15 s request timeout: callers must get errors, not only delays.
DOWN_SECONDS = 30
# The producer's request timeout is 15 s: a caller must hear back within it, plus slack.
CALLER_BOUND_SECONDS = 25
# The large publish is under way once the log grows by this much between two looks (the HTTP loop
# alone adds a few hundred records a second).
BURST = 800
HTTP_PAUSE = 0.5


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[OwnBroker]:
    """A broker only this test uses; stopped at the end whatever happened."""
    broker = OwnBroker.started(tmp_path / "kafka")
    try:
        yield broker
    finally:
        broker.stop()


def cli_file(path: Path, seed: int) -> dict[str, bool]:
    """Write CLI_EVENTS valid events with distinct ids; return {id: is a retraction}."""
    seen: dict[str, bool] = {}
    lines = []
    for raw in generate(CLI_EVENTS + CLI_EVENTS // 20, 2_000, seed).records:
        try:
            event = decode_event(raw)
        except EventValidationError:
            continue
        if event.event_id in seen:
            continue  # the workload's exact duplicates: here every acknowledged id must appear once
        seen[event.event_id] = isinstance(event, EventRetracted)
        lines.append(raw)
        if len(lines) == CLI_EVENTS:
            break
    path.write_bytes(b"\n".join(lines) + b"\n")
    return seen


def http_event(index: int) -> dict[str, Any]:
    return {
        "type": "usage.reported",
        "id": f"http-{index:06d}",
        "entity": f"http-entity-{index % 40:02d}",
        "metric": "mau",
        "value": {"value": float(index + 1), "unit": "users"},
        "occurred_on": f"{2020 + index % 6}-{1 + index % 12:02d}",
        "source": {"name": "http loop"},
    }


@dataclass
class Post:
    """One POST /v1/events of the loop: when, how long, what came back."""

    started: float
    seconds: float
    status: int | None
    document: dict[str, Any] | None
    error: str = ""


@dataclass(eq=False)  # a Thread must stay hashable
class IngestionLoop(threading.Thread):
    """POST batches of new events to a worker, one after the other, until stopped."""

    url: str
    posts: list[Post] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    stopping: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        super().__init__(name="http-ingestion", daemon=True)

    def run(self) -> None:
        index = 0
        while not self.stopping.is_set():
            batch = [http_event(index + i) for i in range(HTTP_BATCH)]
            for event in batch:
                self.sent[event["id"]] = len(self.posts)
            index += HTTP_BATCH
            body = "\n".join(json.dumps(event) for event in batch).encode()
            request = urllib.request.Request(
                f"{self.url}/v1/events", data=body, method="POST", headers={"Content-Type": "application/x-ndjson"}
            )
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=CALLER_BOUND_SECONDS + 60) as response:
                    status, document = response.status, json.loads(response.read())
                    error = ""
            except urllib.error.HTTPError as exc:
                status, document, error = exc.code, _json_or_none(exc.read()), ""
            except OSError as exc:  # a timeout or a reset: the caller got no answer
                status, document, error = None, None, repr(exc)
            self.posts.append(Post(started, time.monotonic() - started, status, document, error))
            time.sleep(HTTP_PAUSE)


def _json_or_none(body: bytes) -> dict[str, Any] | None:
    try:
        return dict(json.loads(body))
    except ValueError:
        return None


def parse_cli(stdout: str, stderr: str) -> tuple[dict[str, tuple[int, int]], set[str], list[str]]:
    """Return (acknowledged id -> (partition, offset), failed ids, other stderr lines) of ``tracker publish -v``."""
    acknowledged = {}
    for line in stdout.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[1].startswith("partition=") and parts[2].startswith("offset="):
            acknowledged[parts[0]] = (int(parts[1].removeprefix("partition=")), int(parts[2].removeprefix("offset=")))
    failed = set()
    other = []
    for line in stderr.splitlines():
        if line.startswith("failed: "):
            failed.add(line.removeprefix("failed: ").split(":", 1)[0])
        elif line.strip():
            other.append(line)
    return acknowledged, failed, other


@dataclass
class BackgroundPublish:
    """`tracker publish -v PATH` running as a subprocess; ``returned_at`` is when it exited."""

    process: subprocess.Popen[str]
    stdout: str = ""
    stderr: str = ""
    returned_at: float | None = None

    @classmethod
    def start(cls, settings: Settings, path: Path) -> BackgroundPublish:
        process = subprocess.Popen(
            [sys.executable, "-m", "tracker", "publish", "-v", str(path)],
            env=child_env(settings),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        running = cls(process)
        threading.Thread(target=running._collect, name="publish-output", daemon=True).start()
        return running

    def _collect(self) -> None:
        # communicate() drains both pipes, so a chatty publish never blocks on a full pipe.
        self.stdout, self.stderr = self.process.communicate()
        self.returned_at = time.monotonic()

    def wait(self, timeout: float) -> int:
        wait_until("tracker publish to return", lambda: self.returned_at is not None, timeout)
        return int(self.process.returncode)


def test_callers_learn_the_fate_of_every_record_when_the_broker_restarts(
    own_broker, settings_factory, worker_factory, tmp_path
):
    seed = random.randrange(1_000_000)
    settings = settings_factory(kafka_bootstrap=own_broker.bootstrap)
    worker = worker_factory(settings)
    cli_ids = cli_file(tmp_path / "large.jsonl", seed)
    late = tmp_path / "during-outage.jsonl"
    late.write_text("\n".join(json.dumps({**http_event(900_000 + i), "id": f"late-{i}"}) for i in range(50)) + "\n")
    loop = IngestionLoop(worker.url)
    loop.start()
    wait_until("the HTTP loop to get an answer", lambda: loop.posts, 60)

    # Act: the broker goes away while a large publish and the HTTP loop are sending.
    cli = BackgroundPublish.start(settings, tmp_path / "large.jsonl")
    last = [sum(end_offsets(settings, settings.events_topic).values())]

    def under_way() -> bool:
        now = sum(end_offsets(settings, settings.events_topic).values())
        grew, last[0] = now - last[0], now
        return grew >= BURST

    wait_until("the large publish to be under way", under_way, 60, 0.05)
    in_log_at_stop = last[0]
    stop_began = time.monotonic()
    stop_seconds = own_broker.stop()
    down_at = time.monotonic()
    during = subprocess.run(
        [sys.executable, "-m", "tracker", "publish", "-v", str(late)],
        env=child_env(settings),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=DOWN_SECONDS + 120,
    )
    during_seconds = time.monotonic() - down_at
    time.sleep(max(0.0, DOWN_SECONDS - (time.monotonic() - down_at)))
    cli_running_at_restart = cli.returned_at is None
    restart_seconds = own_broker.start()
    up_at = time.monotonic()

    def accepted_since_up() -> bool:
        return any(post.started >= up_at and post.status == 202 for post in loop.posts)

    try:
        wait_until("a POST accepted after the restart", accepted_since_up, 90)
    except TrackerError as exc:
        recent = [(round(p.started - up_at, 1), p.status, str(p.document)[:300], p.error) for p in loop.posts[-4:]]
        raise AssertionError(f"{exc}; the last POSTs (start after restart s, status, body, error): {recent}") from exc
    first_accept_after_up = min(p.started + p.seconds for p in loop.posts if p.started >= up_at and p.status == 202)
    loop.stopping.set()
    loop.join(timeout=CALLER_BOUND_SECONDS + 90)
    cli.wait(timeout=180)
    cli_acked, cli_failed, cli_other = parse_cli(cli.stdout, cli.stderr)
    assert cli.returned_at is not None

    # What each HTTP caller was told about each of its records.
    http_acked: dict[str, list[tuple[int, int]]] = {}
    http_failed: set[str] = set()
    for post in loop.posts:
        for result in (post.document or {}).get("results", []):
            if result["status"] == "accepted":
                http_acked[result["id"]] = [(p["partition"], p["offset"]) for p in result["placements"]]
            elif result["status"] == "failed":
                http_failed.add(result["id"])
    http_sent = {event_id for event_id, index in loop.sent.items() if index < len(loop.posts)}
    http_no_outcome = sorted(http_sent - set(http_acked) - http_failed)
    outage_posts = [p for p in loop.posts if p.started + p.seconds >= stop_began and p.started <= up_at]

    # The log, once the worker has folded all of it.
    def caught_up() -> bool:
        ends, committed = fold_progress(settings)
        return committed == ends and health_or_none(worker.url) is not None

    wait_until("the worker to fold the whole log", caught_up, 120, 0.5)
    caught_up_after = time.monotonic() - up_at
    reference = pure_fold(settings)
    signals = worker_signals(worker.url)
    copies: dict[str, list[tuple[int, int]]] = defaultdict(list)
    # A retraction also has copies on every partition marked as broadcast; each (partition, kind)
    # holds at most one record of an id, or the id was written twice.
    kinds: dict[str, Counter[tuple[int, bool]]] = defaultdict(Counter)
    for event_id, partition, offset, broadcast in reference.ids():
        copies[event_id].append((partition, offset))
        kinds[event_id][(partition, broadcast)] += 1
    acked = {**{event_id: [placed] for event_id, placed in cli_acked.items()}, **http_acked}
    retractions = {event_id for event_id, retraction in cli_ids.items() if retraction}

    acked_missing = sorted(i for i in acked if not copies.get(i))
    acked_duplicated = sorted(i for i in acked if any(count > 1 for count in kinds[i].values()))
    acked_elsewhere = sorted(i for i in acked if copies.get(i) and not set(acked[i]) <= set(copies[i]))
    failed_but_written = sorted(i for i in cli_failed | http_failed if copies.get(i))
    written_unasked = sorted(set(copies) - set(cli_ids) - set(loop.sent))
    partial = sorted(
        i
        for i in retractions
        if copies.get(i) and {p for p, broadcast in kinds[i] if broadcast} != set(range(settings.partitions))
    )
    cli_returned_after_stop = cli.returned_at - stop_began

    record_figures(
        "broker_restart",
        {
            "seed": seed,
            "injected": 1,
            "broker_down_seconds": round(up_at - down_at, 1),
            "broker_stop_seconds": round(stop_seconds, 1),
            "broker_restart_seconds": round(restart_seconds, 1),
            "records_in_log_at_stop": in_log_at_stop,
            "cli_records": len(cli_ids),
            "cli_exit_code": cli.process.returncode,
            "cli_acknowledged": len(cli_acked),
            "cli_failed": len(cli_failed),
            "cli_unaccounted": len(set(cli_ids) - set(cli_acked) - cli_failed),
            "cli_returned_after_stop_seconds": round(cli_returned_after_stop, 1),
            "cli_still_running_when_broker_restarted": cli_running_at_restart,
            "cli_started_during_outage_exit_code": during.returncode,
            "cli_started_during_outage_seconds": round(during_seconds, 1),
            "http_posts": len(loop.posts),
            "http_posts_during_outage": len(outage_posts),
            "http_status_counts": dict(Counter(str(p.status) for p in loop.posts)),
            "http_outage_answers": [(p.status, round(p.seconds, 1)) for p in outage_posts],
            "http_longest_answer_seconds": round(max(p.seconds for p in loop.posts), 1),
            "http_records_acknowledged": len(http_acked),
            "http_records_failed": len(http_failed),
            "http_records_without_outcome": len(http_no_outcome),
            "http_records_without_outcome_but_written": sum(1 for i in http_no_outcome if copies.get(i)),
            "in_flight_not_acknowledged": len(cli_failed) + len(http_failed) + len(http_no_outcome),
            "acknowledged_lost": len(acked_missing),
            "acknowledged_duplicated": len(acked_duplicated),
            "failed_but_written": len(failed_but_written),
            "retractions_written_to_only_some_partitions": len(partial),
            "broker_up_to_first_accepted_post_seconds": round(first_accept_after_up - up_at, 1),
            "broker_up_to_worker_caught_up_seconds": round(caught_up_after, 1),
        },
    )

    # Every acknowledged record is in the log, once, where its caller was told.
    assert not acked_missing, acked_missing[:5]
    assert not acked_duplicated, [(i, dict(kinds[i])) for i in acked_duplicated[:5]]
    assert not acked_elsewhere, [(i, acked[i], copies[i]) for i in acked_elsewhere[:5]]
    assert not written_unasked, written_unasked[:5]
    # The CLI accounts for every record: acknowledged or reported failed (exit 2), never neither.
    assert set(cli_acked) | cli_failed == set(cli_ids), len(set(cli_ids) - set(cli_acked) - cli_failed)
    assert not set(cli_acked) & cli_failed
    assert cli.process.returncode == (2 if cli_failed else 0), (cli.process.returncode, cli_other[:5])
    # A publish started while the broker is away fails at once with exit 2, and says why.
    assert during.returncode == 2, (during.returncode, during.stdout[-500:], during.stderr[-1500:])
    assert "Traceback" not in during.stderr, during.stderr[-1500:]
    assert during_seconds < CALLER_BOUND_SECONDS
    assert worker.process.poll() is None, "the worker died with the broker"

    # The rest is checked together, so that one report names every broken promise.
    problems = []
    differences = signal_differences(reference.signals, signals)
    if differences:
        problems.append(
            f"the worker's signals are not the pure fold of the log: {differences}; the log holds "
            f"{len(partial)} retraction(s) in the log without a broadcast copy on every partition: "
            f"{partial[:3]}"
        )
    if cli_returned_after_stop >= CALLER_BOUND_SECONDS:
        problems.append(
            f"tracker publish returned {cli_returned_after_stop:.0f} s after the broker stopped (down "
            f"{DOWN_SECONDS} s; still running at the restart: {cli_running_at_restart}), not within "
            f"{CALLER_BOUND_SECONDS} s"
        )
    slow = [(p.status, round(p.seconds, 1), p.document) for p in loop.posts if p.seconds >= CALLER_BOUND_SECONDS]
    if slow:
        problems.append(f"POST /v1/events answered after {CALLER_BOUND_SECONDS} s or more: {slow[:3]}")
    if http_no_outcome:
        written = sum(1 for i in http_no_outcome if copies.get(i))
        problems.append(
            f"{len(http_no_outcome)} HTTP record(s) got no per-record outcome ({written} of them are in the log): "
            f"{[(p.status, p.document) for p in outage_posts if p.status != 202][:2]}"
        )
    if not any(p.status == 503 and (p.document or {}).get("failed") for p in outage_posts):
        problems.append(f"no POST during the outage was answered 503 with failed records: {outage_posts[:3]}")
    assert not problems, "\n".join(problems)
