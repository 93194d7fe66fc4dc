"""``tracker bench``: measure ingest, fold, latency, recovery and memory against the ceilings.

Every figure comes from one run on one machine, next to the ceilings measured
on the same topic in the same run. The fold's answer is checked against the
pure fold of the generated events first; a wrong answer gets no throughput.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from tracker.bench.ceilings import read_topic
from tracker.bench.latency import measure_latency, percentile
from tracker.bench.workload import Workload, generate
from tracker.core.decode import decode_event
from tracker.core.fold import Projection
from tracker.core.routing import Router
from tracker.core.signals import derive_signals
from tracker.errors import EventValidationError, TrackerError
from tracker.kafka.client_config import client_options
from tracker.kafka.publisher import Publisher
from tracker.kafka.topics import ensure_topics
from tracker.polling import http_json, wait_until
from tracker.rules_file import build_router
from tracker.settings import Settings
from tracker.worker.launch import WorkerProcess, free_port, start_worker

__all__ = ["BenchOptions", "expected_signals", "run_bench"]

#: Records per HTTP ingestion request (the NDJSON batch of issue 6).
HTTP_BATCH = 1000

#: Requests in flight at once in the concurrent HTTP ingestion figure: a demanding client.
HTTP_CONNECTIONS = 4

#: Seconds a benchmark worker has to stop after SIGTERM: after a large fold its tables
#: hold more to close than a test worker's.
STOP_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class BenchOptions:
    """What to run: sizes, and which stages."""

    events: int = 200_000
    entities: int = 10_000
    memory_sizes: tuple[int, ...] = ()
    latency_seconds: float = 10.0
    latency_rate: float = 1000.0
    quick: bool = False
    seed: int = 1


def _start_worker(settings: Settings, log: Path) -> WorkerProcess:
    # Its own port: the configured one may be taken by a demo or another worker.
    return start_worker(settings.model_copy(update={"http_port": free_port()}), log)


def _signal_count(worker: WorkerProcess) -> int:
    try:
        return len(http_json(f"{worker.url}/v1/signals", 120)["signals"])
    except OSError:
        return 0


def _progress(worker: WorkerProcess) -> dict[str, Any]:
    worker.check_running()
    return worker.health(timeout=30)


@dataclass
class Report:
    """Figures of one run, printed as a table and written as JSON."""

    machine: dict[str, Any] = field(default_factory=dict)
    figures: dict[str, Any] = field(default_factory=dict)

    def table(self) -> str:
        """Return the figures as an aligned text table."""
        width = max(len(name) for name in self.figures)
        return "\n".join(f"{name:<{width}}  {_show(value)}" for name, value in self.figures.items())


def _show(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}" if abs(value) >= 10 else f"{value:.3f}"
    return str(value)


async def _publish(settings: Settings, workload: Workload) -> tuple[float, int]:
    """Publish every record as a user would: validated events through the publisher, raw junk raw."""
    router = build_router(settings)
    events = []
    junk = []
    for raw in workload.records:
        try:
            events.append(decode_event(raw))
        except EventValidationError:
            junk.append(raw)
    started = time.perf_counter()
    async with Publisher(settings, router) as publisher:
        for start in range(0, len(events), 10_000):
            failures = [r for r in await publisher.publish(events[start : start + 10_000]) if isinstance(r, Exception)]
            if failures:
                raise TrackerError(f"publish failed: {failures[0]}")
    elapsed = time.perf_counter() - started
    producer = AIOKafkaProducer(**client_options(settings), acks="all")
    await producer.start()
    try:
        for raw in junk:
            await producer.send(settings.events_topic, raw, key=b"junk")
        await producer.flush()
    finally:
        await producer.stop()
    return elapsed, len(events)


def _expected_signals(settings: Settings, workload: Workload) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    return expected_signals(build_router(settings), workload)


def expected_signals(router: Router, workload: Workload) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Return the signals of the pure fold of a workload, sorted: what a fold must show."""
    projection = Projection(router)
    for raw in workload.records:
        with contextlib.suppress(EventValidationError):
            projection.apply(decode_event(raw))
    return sorted((s.name, s.labels, s.value) for s in derive_signals(router, projection.state))


def _same_signals(expected: list[Any], actual: list[dict[str, Any]]) -> str | None:
    got = sorted((s["name"], tuple(s["labels"].items()), s["value"]) for s in actual)
    got = [(name, tuple(sorted(labels)), value) for name, labels, value in got]
    want = [(name, tuple(sorted(labels)), value) for name, labels, value in expected]
    if len(got) != len(want):
        got_keys = {(name, labels) for name, labels, _ in got}
        want_keys = {(name, labels) for name, labels, _ in want}
        missing = sorted(want_keys - got_keys)[:3]
        extra = sorted(got_keys - want_keys)[:3]
        return f"{len(got)} signals from the worker, {len(want)} from the pure fold; missing {missing}, extra {extra}"
    for (gn, gl, gv), (wn, wl, wv) in zip(sorted(got), sorted(want), strict=True):
        if gn != wn or gl != wl or not math.isclose(gv, wv, rel_tol=1e-9, abs_tol=1e-12):
            return f"first difference: worker {gn}{dict(gl)}={gv}, pure fold {wn}{dict(wl)}={wv}"
    return None


def _fold(settings: Settings, total: int, log: Path) -> tuple[WorkerProcess, float, int]:
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


def _fold_without_rules(settings: Settings, expected: list[Any], total: int, workdir: Path) -> float:
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
    worker, rate, _ = _fold(bare, total, workdir / "fold-no-rules.log")
    try:
        served = http_json(f"{worker.url}/v1/signals", 120)["signals"]
    finally:
        worker.stop(grace=STOP_GRACE_SECONDS)
    mismatch = _same_signals(expected, served)
    if mismatch:
        raise TrackerError(f"the fold without alert rules disagrees with the pure fold: {mismatch}")
    return rate


def _faust_ceiling(settings: Settings, total: int, workdir: Path, flags: list[str]) -> float:
    out = workdir / f"faust-ceiling{'-'.join(['', *flags])}.json"
    command = [
        sys.executable,
        "-m",
        "tracker.bench.faust_ceiling",
        settings.bootstrap,
        settings.events_topic,
        str(settings.partitions),
        str(total),
        str(out),
        *flags,
    ]
    subprocess.run(command, timeout=3600, check=False, capture_output=True)
    if not out.exists():
        raise TrackerError(f"the Faust ceiling run ({' '.join(flags) or 'no work'}) did not finish")
    return float(json.loads(out.read_text())["rate"])


def _wait_until_idle(worker: WorkerProcess, at_least: int, quiet_seconds: float = 2.0) -> None:
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


def _http_ingest(worker: WorkerProcess, workload: Workload, connections: int) -> tuple[float, int]:
    """POST 20,000 records as NDJSON batches of 1,000, ``connections`` at a time; return (events/s, sent)."""
    valid = [raw for raw in workload.records[:20_000] if raw.startswith(b"{")]
    bodies = [b"\n".join(valid[start : start + HTTP_BATCH]) for start in range(0, len(valid), HTTP_BATCH)]

    def post(body: bytes) -> None:
        request = urllib.request.Request(f"{worker.url}/v1/events", data=body, method="POST")
        # urlopen raises on 503 (a record failed) and 422 (none accepted): no figure then.
        with urllib.request.urlopen(request, timeout=60) as response:
            document = json.loads(response.read())
        if document["failed"] or document["accepted"] + document["rejected"] != body.count(b"\n") + 1:
            raise TrackerError(f"HTTP ingestion did not answer every record: {document['failed']} failed")

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=connections) as pool:
        for _ in pool.map(post, bodies):
            pass
    return len(valid) / (time.perf_counter() - started), len(valid)


def _machine() -> dict[str, Any]:
    cpus = os.cpu_count()
    memory = Path("/proc/meminfo").read_text().splitlines()[0].split()[1]
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    return {
        "cpus": cpus,
        "cpu": model,
        "memory_gb": round(int(memory) / 1024 / 1024, 1),
        "python": sys.version.split()[0],
    }


def run_bench(base: Settings, options: BenchOptions, out: Path | None) -> Report:
    """Run the benchmark and return its report; raise TrackerError on a wrong answer."""
    report = Report(machine=_machine())
    tag = f"bench-{int(time.time())}"
    workdir = base.data_dir / tag
    workdir.mkdir(parents=True, exist_ok=True)
    settings = base.model_copy(
        update={"topic_prefix": f"{base.topic_prefix}{tag}-", "app_id": f"{tag}-fold", "data_dir": workdir / "fold"}
    )
    figures = report.figures
    workload = generate(options.events, options.entities, options.seed)
    figures["events generated"] = len(workload.records)
    figures["duplicates / retractions / invalid"] = (
        f"{workload.duplicates} / {workload.retractions} / {workload.invalid}"
    )
    asyncio.run(ensure_topics(settings))

    seconds, published = asyncio.run(_publish(settings, workload))
    figures["ingest: tracker publish (events/s)"] = published / seconds
    total = published + workload.retractions * settings.partitions + workload.invalid

    transport = asyncio.run(read_topic(settings, settings.events_topic, settings.partitions, decode=False))
    decode = asyncio.run(read_topic(settings, settings.events_topic, settings.partitions, decode=True))
    figures["ceiling: transport (records/s)"] = transport.rate
    figures["ceiling: decode (records/s)"] = decode.rate

    for name, flags in (("take_events, no work", []), ("take_events + one table write per record", ["--table"])):
        # Before the fold, the topic holds each retraction once (the worker broadcasts it).
        rate = _faust_ceiling(settings, published + workload.invalid, workdir, flags)
        figures[f"ceiling: Faust {name} (records/s)"] = rate

    worker, fold_rate, _ = _fold(settings, total, workdir / "fold.log")
    try:
        served = http_json(f"{worker.url}/v1/signals", 120)["signals"]
        signal_count = len(served)
        expected = _expected_signals(settings, workload)
        mismatch = _same_signals(expected, served)
        if mismatch:
            raise TrackerError(f"the fold disagrees with the pure fold, no throughput reported: {mismatch}")
        figures["correctness: signals equal the pure fold"] = True
        figures["fold: one worker from offset 0 (records/s)"] = fold_rate
        figures["fold / decode ceiling"] = fold_rate / decode.rate
        figures["fold / transport ceiling"] = fold_rate / transport.rate
        figures["fold / Faust take_events ceiling"] = (
            fold_rate / figures["ceiling: Faust take_events, no work (records/s)"]
        )
        figures["worker peak RSS after fold (MB)"] = worker.peak_rss_mb()
        # The same fold with alert evaluation left out: how the fold's time splits.
        rebroadcast = total + workload.retractions * settings.partitions
        rate = _fold_without_rules(settings, expected, rebroadcast, workdir)
        figures["fold without alert rules (records/s)"] = rate
        figures["fold without alert rules / decode ceiling"] = rate / decode.rate
        if not options.quick:
            rate, sent = _http_ingest(worker, workload, connections=1)
            figures["ingest: HTTP NDJSON x1000, one connection (events/s)"] = rate
            rate, sent_again = _http_ingest(worker, workload, connections=HTTP_CONNECTIONS)
            figures[f"ingest: HTTP NDJSON x1000, {HTTP_CONNECTIONS} concurrent connections (events/s)"] = rate
            sent += sent_again  # the same events again: duplicates, folded as no-ops
            # The latency run starts only once those records are folded: no backlog.
            _wait_until_idle(worker, at_least=total + sent // 2)
            latencies = asyncio.run(
                measure_latency(settings, worker.url, options.latency_seconds, options.latency_rate)
            )
            figures[f"latency p50 at {options.latency_rate:.0f}/s (ms)"] = percentile(latencies, 0.5) * 1000
            figures[f"latency p99 at {options.latency_rate:.0f}/s (ms)"] = percentile(latencies, 0.99) * 1000
            figures["latency probes"] = len(latencies)
            # What a restarted worker must serve again, after the HTTP and latency stages added theirs.
            signal_count = _signal_count(worker)
    finally:
        worker.stop(grace=STOP_GRACE_SECONDS)

    if not options.quick:
        seconds = _recovery(settings, workdir / "recovery", signal_count)
        figures["recovery: tables rebuilt from changelogs (s)"] = seconds
        figures["recovery: state restored (records in the log)"] = total
        figures["restart on its kept RocksDB data dir: to folding again (s)"] = _restart(settings, signal_count)

    for size in options.memory_sizes:
        peak, recovery = _memory_at(base, size, options, workdir)
        figures[f"memory: peak RSS at N={size:,} (MB)"] = peak
        figures[f"recovery at N={size:,}: tables rebuilt from changelogs (s)"] = recovery
    if out is not None:
        out.write_text(json.dumps({"machine": report.machine, "figures": figures}, indent=2) + "\n")
    return report


def _memory_at(base: Settings, size: int, options: BenchOptions, workdir: Path) -> tuple[float, float]:
    """Fold ``size`` events from offset 0; return the worker's peak RSS and its recovery time."""
    tag = f"mem{size}"
    settings = base.model_copy(
        update={
            "topic_prefix": f"{base.topic_prefix}{workdir.name}-{tag}-",
            "app_id": f"{workdir.name}-{tag}",
            "data_dir": workdir / tag,
        }
    )
    workload = generate(size, options.entities, options.seed)
    asyncio.run(ensure_topics(settings))
    published = asyncio.run(_publish(settings, workload))[1]
    total = published + workload.retractions * settings.partitions + workload.invalid
    worker, _, _ = _fold(settings, total, workdir / f"{tag}.log")
    try:
        peak = worker.peak_rss_mb()
        signal_count = _signal_count(worker)
    finally:
        worker.stop(grace=STOP_GRACE_SECONDS)
    return peak, _recovery(settings, workdir / f"{tag}-recovery", signal_count)


def _restart(settings: Settings, signal_count: int) -> float:
    """Start a worker again on the data dir the fold left; return the seconds until it folds again."""
    return _time_to_folding(settings, settings.data_dir.with_suffix(".restart.log"), signal_count)


def _recovery(settings: Settings, data_dir: Path, signal_count: int) -> float:
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
        if _signal_count(worker) != signal_count:
            raise TrackerError("the worker serves a different number of signals than before it was restarted")
        return seconds
    finally:
        worker.stop(grace=STOP_GRACE_SECONDS)
