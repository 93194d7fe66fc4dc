"""The latency run: publish at a steady rate and time how soon probe facts are visible in /v1/signals."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from typing import Any

import aiohttp

from tracker.core.events import UsageReported
from tracker.kafka.publisher import Publisher
from tracker.rules_file import build_router
from tracker.settings import Settings

__all__ = ["PROBES_PER_SECOND", "measure_latency", "percentile"]

#: Events a second, among the latency run's load, whose publish-to-visible time is measured.
PROBES_PER_SECOND = 20


async def measure_latency(settings: Settings, url: str, seconds: float, rate: float) -> list[float]:
    """Publish at ``rate`` events/s; twenty a second are probes whose visibility in /v1/signals is timed.

    Probes are polled every 20 ms over one keep-alive connection, one request at a
    time: the measure must not load the worker. Polling through a pool of threads,
    each request on a new connection, made the worker answer several hundred requests
    a second once probes waited, which slowed the fold, which made probes wait longer
    (publish -> folded went from 0.06 s to several seconds on the worker's own clock).
    Twenty probes a second make p99 more than the slowest probe of a short run.
    """
    router = build_router(settings)
    latencies: list[float] = []
    waiting: dict[str, float] = {}

    async def poll(session: aiohttp.ClientSession) -> None:
        while True:
            for entity, sent_at in list(waiting.items()):
                probe_url = f"{url}/v1/signals?name=market_usage&entity={entity}"
                async with session.get(probe_url) as response:
                    found = (await response.json())["signals"]
                if found:
                    latencies.append(time.perf_counter() - sent_at)
                    del waiting[entity]
                elif time.perf_counter() - sent_at > 30:
                    del waiting[entity]  # never seen: left out, and counted by the probe total
            await asyncio.sleep(0.02)

    def usage(entity: str, index: int) -> UsageReported:
        return UsageReported.model_validate(
            {
                "type": "usage.reported",
                "id": f"lat-{entity}-{index}",
                "entity": entity,
                "metric": "mau",
                "value": {"value": float(index), "unit": "users"},
                "occurred_on": "2025-06",
                "source": {"name": "bench"},
            }
        )

    load: list[asyncio.Future[Any]] = []
    async with Publisher(settings, router) as publisher, aiohttp.ClientSession() as session:
        poller = asyncio.create_task(poll(session))
        started = time.perf_counter()
        for index in range(int(seconds * rate)):
            due = started + index / rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if index % max(1, int(rate / PROBES_PER_SECOND)) == 0:
                entity = f"probe-{index:07d}"
                sent_at = time.perf_counter()
                await publisher.publish([usage(entity, index)])
                waiting[entity] = sent_at
            else:
                load.append(asyncio.ensure_future(publisher.publish([usage(f"load-{index % 500:03d}", index)])))
        await asyncio.gather(*load)
        while waiting and not poller.done():
            await asyncio.sleep(0.05)
        poller.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await poller
    return latencies


def percentile(values: list[float], q: float) -> float:
    """Return the ``q`` quantile of ``values`` (the nearest rank), or NaN for none."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else math.nan
