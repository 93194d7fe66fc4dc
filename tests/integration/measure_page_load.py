"""Time the page in headless Chromium on a worker holding a generated workload (docs/performance.md).

    TRACKER_KAFKA_BOOTSTRAP=127.0.0.1:9092 python -m tests.integration.measure_page_load --events 200000

Starts a worker on fresh topics, publishes the seed article and ``--events``
valid records of ``tracker.bench.workload``, waits until the fold is idle, then
loads each view in a fresh tab ``--runs`` times and prints, per view, the time
from navigation to the page's ``tracker:drawn`` mark (HTML, scripts, the API
reads of what is drawn first and every chart drawn) and to its ``tracker:complete``
mark (what follows the drawn page too: an entity's export-rule changes), and the
slowest API read of the last run.

``--keep DIR`` keeps the worker's data dir and topics there: a later run with
the same ``DIR`` restarts the worker on them instead of publishing again, so two
versions of the read side can be timed on one folded state.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from tests.conftest import SEED, RunningWorker, launch_worker, unique_settings
from tests.integration.browser import Chromium
from tracker.bench.workload import generate
from tracker.core.decode import decode_event
from tracker.errors import EventValidationError, TrackerError
from tracker.kafka.publisher import Publisher
from tracker.polling import http_json, wait_until
from tracker.rules_file import build_router
from tracker.settings import Settings

VIEWS = {"overview": "/", "bytedance": "/#/entity/bytedance", "a workload entity": "/#/entity/entity-00042"}


async def publish(settings: Settings, records: list[bytes]) -> int:
    """Publish the valid records through the tracker's publisher; return how many."""
    events = []
    for raw in records:
        try:
            events.append(decode_event(raw))
        except EventValidationError:
            continue
    async with Publisher(settings, build_router(settings)) as publisher:
        for start in range(0, len(events), 10_000):
            failed = [r for r in await publisher.publish(events[start : start + 10_000]) if isinstance(r, Exception)]
            if failed:
                raise TrackerError(f"publish failed: {failed[0]}")
    return len(events)


def wait_idle(worker: RunningWorker, at_least: int, quiet: float = 5.0) -> None:
    """Wait until the worker has read ``at_least`` records and then nothing more for ``quiet`` seconds."""
    seen = {"records": -1, "since": time.monotonic()}

    def idle() -> bool:
        records = int(worker.health()["records"])  # type: ignore[call-overload]
        if records != seen["records"]:
            seen.update(records=records, since=time.monotonic())
            return False
        return records >= at_least and time.monotonic() - seen["since"] >= quiet

    wait_until("the fold to go idle", idle, timeout=3600, interval=1.0)


def main() -> None:
    """Measure and print the page's load times."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--views", default=",".join(VIEWS), help="comma-separated, of: " + ", ".join(VIEWS))
    parser.add_argument("--keep", type=Path, help="keep the folded state in this dir, or restart on the one kept there")
    options = parser.parse_args()
    bootstrap = Settings().kafka_bootstrap
    started: list[RunningWorker] = []
    root = options.keep or Path(tempfile.mkdtemp(prefix="tracker-page-load-"))
    kept = root / "settings.json"
    try:
        if kept.exists():
            saved = json.loads(kept.read_text())
            settings = unique_settings(bootstrap, root, **{**saved, "data_dir": Path(saved["data_dir"])})
        else:
            settings = unique_settings(bootstrap, root)
        try:
            worker = launch_worker(settings, started)
            if not kept.exists():
                records = [*SEED.read_bytes().splitlines(), *generate(options.events).records]
                began = time.monotonic()
                published = asyncio.run(publish(settings, records))
                wait_idle(worker, published)
                print(f"{published} events published and folded in {time.monotonic() - began:.0f} s")
                if options.keep:
                    names = ("topic_prefix", "app_id", "data_dir")
                    kept.write_text(json.dumps({name: str(getattr(settings, name)) for name in names}))
            else:
                wait_until("the worker to recover its state", lambda: not worker.health()["recovering"], timeout=600)
            signals = len(http_json(f"{worker.url}/v1/signals", timeout=120)["signals"])
            alerts = len(http_json(f"{worker.url}/v1/alerts", timeout=120)["alerts"])
            print(f"state: {signals} signals, {alerts} active alerts")
            browser = Chromium()
            try:
                for view in options.views.split(","):
                    path = VIEWS[view]
                    times, complete, reads, failed = [], [], [], []
                    for _ in range(options.runs):
                        tab = browser.open_tab()
                        try:
                            tab.goto(f"{worker.url}{path}", timeout=300)
                            times.append(tab.evaluate("performance.getEntriesByName('tracker:drawn')[0].startTime"))
                            complete.append(
                                tab.evaluate("performance.getEntriesByName('tracker:complete')[0]?.startTime ?? NaN")
                            )
                            reads = tab.evaluate(
                                "performance.getEntriesByType('resource').filter(r => r.name.includes('/v1/'))"
                                ".map(r => [new URL(r.name).pathname + new URL(r.name).search, r.duration])"
                            )
                            if tab.evaluate("document.body.dataset.state") != "ready" or tab.console_errors:
                                failed.append(tab.evaluate("document.querySelector('.error')?.textContent ?? ''"))
                        finally:
                            tab.close()
                    slowest = max(reads, key=lambda r: r[1]) if reads else ["-", 0]
                    print(
                        json.dumps(
                            {
                                "view": view,
                                "median_ms": round(statistics.median(times)),
                                "max_ms": round(max(times)),
                                "complete_median_ms": round(statistics.median(complete)),
                                "api_reads": len(reads),
                                "slowest_read": [slowest[0], round(slowest[1])],
                                "failed": failed,
                            }
                        )
                    )
            finally:
                browser.close()
        finally:
            for running in started:
                running.stop()
    finally:
        if options.keep is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
