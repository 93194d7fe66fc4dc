"""``tracker bench``: measure ingest, fold, latency, recovery and memory against the ceilings.

Every figure comes from one run on one machine, next to the ceilings measured
on the same topic in the same run. The fold's answer is checked against the
pure fold of the generated events first; a wrong answer gets no throughput.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tracker.bench.ceilings import read_topic
from tracker.bench.correctness import expected_signals, same_signals
from tracker.bench.ingest import HTTP_CONNECTIONS, http_ingest, publish_workload
from tracker.bench.latency import measure_latency, percentile
from tracker.bench.worker_runs import (
    STOP_GRACE_SECONDS,
    fold_from_start,
    fold_without_rules,
    recovery_seconds,
    restart_seconds,
    served_signal_count,
    wait_until_idle,
)
from tracker.bench.workload import generate
from tracker.errors import TrackerError
from tracker.kafka.topics import ensure_topics
from tracker.polling import http_json
from tracker.rules_file import build_router
from tracker.settings import Settings

__all__ = ["BenchOptions", "Report", "run_bench"]


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

    seconds, published = asyncio.run(publish_workload(settings, workload))
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

    worker, fold_rate, _ = fold_from_start(settings, total, workdir / "fold.log")
    try:
        served = http_json(f"{worker.url}/v1/signals", 120)["signals"]
        signal_count = len(served)
        expected = expected_signals(build_router(settings), workload)
        mismatch = same_signals(expected, served)
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
        rate = fold_without_rules(settings, expected, rebroadcast, workdir)
        figures["fold without alert rules (records/s)"] = rate
        figures["fold without alert rules / decode ceiling"] = rate / decode.rate
        if not options.quick:
            rate, sent = http_ingest(worker, workload, connections=1)
            figures["ingest: HTTP NDJSON x1000, one connection (events/s)"] = rate
            rate, sent_again = http_ingest(worker, workload, connections=HTTP_CONNECTIONS)
            figures[f"ingest: HTTP NDJSON x1000, {HTTP_CONNECTIONS} concurrent connections (events/s)"] = rate
            sent += sent_again  # the same events again: duplicates, folded as no-ops
            # The latency run starts only once those records are folded: no backlog.
            wait_until_idle(worker, at_least=total + sent // 2)
            latencies = asyncio.run(
                measure_latency(settings, worker.url, options.latency_seconds, options.latency_rate)
            )
            figures[f"latency p50 at {options.latency_rate:.0f}/s (ms)"] = percentile(latencies, 0.5) * 1000
            figures[f"latency p99 at {options.latency_rate:.0f}/s (ms)"] = percentile(latencies, 0.99) * 1000
            figures["latency probes"] = len(latencies)
            # What a restarted worker must serve again, after the HTTP and latency stages added theirs.
            signal_count = served_signal_count(worker)
    finally:
        worker.stop(grace=STOP_GRACE_SECONDS)

    if not options.quick:
        seconds = recovery_seconds(settings, workdir / "recovery", signal_count)
        figures["recovery: tables rebuilt from changelogs (s)"] = seconds
        figures["recovery: state restored (records in the log)"] = total
        figures["restart on its kept RocksDB data dir: to folding again (s)"] = restart_seconds(settings, signal_count)

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
    published = asyncio.run(publish_workload(settings, workload))[1]
    total = published + workload.retractions * settings.partitions + workload.invalid
    worker, _, _ = fold_from_start(settings, total, workdir / f"{tag}.log")
    try:
        peak = worker.peak_rss_mb()
        signal_count = served_signal_count(worker)
    finally:
        worker.stop(grace=STOP_GRACE_SECONDS)
    return peak, recovery_seconds(settings, workdir / f"{tag}-recovery", signal_count)
