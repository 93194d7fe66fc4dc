"""Deliver alert transitions to webhook subscribers: signed, retried, at least once, never blocking.

Each subscription has its own queue and delivery task, so a slow or failing
receiver delays only itself. A transition's Kafka record is acknowledged once
every delivery it caused has succeeded or been dead-lettered, so a crash in
between re-reads it; the delivery ledger (a compacted topic of
``<subscription>|<idempotency key>``) turns that re-read, or any replay, into
a no-op for receivers that already got it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import Counter

from tracker.core.subscriptions import (
    IDEMPOTENCY_HEADER,
    REDACTED,
    SIGNATURE_HEADER,
    Subscription,
    WebhookChannel,
    redact_url,
    sign,
    webhook_body,
)

__all__ = ["Attempt", "HttpSender", "Notifier", "RetryPolicy"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attempt:
    """What one HTTP attempt returned: a status (None on a network error) and Retry-After.

    ``refused`` means the address policy stopped the request before it was sent.
    """

    status: int | None
    retry_after: float | None = None
    error: str = ""
    refused: bool = False


class HttpSender(Protocol):
    """The one transport seam: POST a body and report the outcome."""

    def __call__(self, url: str, body: bytes, headers: dict[str, str]) -> Awaitable[Attempt]: ...


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter, capped; Retry-After wins when it is longer."""

    base: float = 0.5
    cap: float = 30.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Return how long to wait before attempt ``attempt + 1``."""
        backoff = rng.uniform(0, min(self.cap, self.base * 2 ** (attempt - 1)))
        return min(self.cap, max(backoff, retry_after or 0.0))


def _without_url(error: str, url: str) -> str:
    """Return an error message with the URL, or its path and query, masked (some client errors quote it)."""
    error = error.replace(url, redact_url(url))
    after_scheme = url.find("://") + 3
    cuts = [at for at in (url.find(mark, after_scheme) for mark in "/?#") if at >= 0]
    tail = url[min(cuts) :] if cuts else ""  # path, query and fragment
    return error.replace(tail, REDACTED) if len(tail) > 1 else error


def _retryable(outcome: Attempt) -> bool:
    if outcome.refused:
        return False
    return outcome.status is None or outcome.status == 429 or outcome.status >= 500


@dataclass
class _Job:
    transition: dict[str, Any]
    done: Callable[[], None]


class Notifier:
    """Fan transitions out to matching webhook subscriptions, one delivery queue each."""

    def __init__(
        self,
        subscriptions: Callable[[], list[Subscription]],
        delivered: Callable[[str], bool],
        mark_delivered: Callable[[str], Awaitable[None]],
        dead_letter: Callable[[dict[str, Any]], Awaitable[None]],
        sender: HttpSender,
        outcomes: Counter,
        external_url: str,
        policy: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        find: Callable[[str], Subscription | None] | None = None,
    ) -> None:
        self.subscriptions = subscriptions
        self.find = find or self._scan
        self.delivered = delivered
        self.mark_delivered = mark_delivered
        self.dead_letter = dead_letter
        self.sender = sender
        self.outcomes = outcomes
        self.external_url = external_url
        self.policy = policy
        self.sleep = sleep
        self.clock = clock
        self.rng = rng or random.Random()
        self._queues: dict[str, asyncio.Queue[_Job]] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def _scan(self, subscription_id: str) -> Subscription | None:
        return next((sub for sub in self.subscriptions() if sub.id == subscription_id), None)

    def dispatch(self, transition: dict[str, Any], acknowledge: Callable[[], None]) -> None:
        """Queue a transition for every webhook subscription that wants it; ack when all are done."""
        alert = transition["alert"]
        targets = [
            sub
            for sub in self.subscriptions()
            if isinstance(sub.channel, WebhookChannel) and sub.wants(alert["labels"], transition["status"])
        ]
        remaining = len(targets)
        if remaining == 0:
            acknowledge()
            return

        def one_done() -> None:
            nonlocal remaining
            remaining -= 1
            if remaining == 0:
                acknowledge()

        for sub in targets:
            self._queue(sub.id).put_nowait(_Job(transition, one_done))

    def send_to(self, sub: Subscription, transition: dict[str, Any], done: Callable[[], None]) -> None:
        """Queue one transition for one subscription (reminders use this)."""
        self._queue(sub.id).put_nowait(_Job(transition, done))

    def _queue(self, subscription_id: str) -> asyncio.Queue[_Job]:
        queue = self._queues.get(subscription_id)
        if queue is None:
            queue = self._queues[subscription_id] = asyncio.Queue()
            self._tasks[subscription_id] = asyncio.create_task(self._drain(subscription_id, queue))
        return queue

    async def _drain(self, subscription_id: str, queue: asyncio.Queue[_Job]) -> None:
        while True:
            job = await queue.get()
            sub = self.find(subscription_id)
            if sub is not None and isinstance(sub.channel, WebhookChannel):
                try:
                    await self.deliver(sub, job.transition)
                except Exception:
                    # Neither delivered-and-recorded nor dead-lettered: leave the transition
                    # unacknowledged so a restart re-reads it, and keep serving the queue.
                    logger.exception("delivery to subscription %s failed", subscription_id)
                    continue
            job.done()

    async def deliver(self, sub: Subscription, transition: dict[str, Any]) -> str:
        """Deliver one transition to one subscription; return the outcome label."""
        assert isinstance(sub.channel, WebhookChannel)
        mark = f"{sub.id}|{transition['idempotency_key']}"
        if self.delivered(mark):
            self.outcomes.labels(outcome="duplicate_skipped").inc()
            return "duplicate_skipped"
        body = json.dumps(webhook_body(sub.id, transition, self.external_url), sort_keys=True).encode()
        secret = sub.channel.secret.get_secret_value()
        last = Attempt(None, error="not attempted")
        for attempt in range(1, sub.channel.max_attempts + 1):
            headers = {
                "Content-Type": "application/json",
                SIGNATURE_HEADER: sign(secret, body, int(self.clock())),
                IDEMPOTENCY_HEADER: transition["idempotency_key"],
            }
            last = await self.sender(sub.channel.url, body, headers)
            if last.status is not None and 200 <= last.status < 300:
                await self.mark_delivered(mark)
                self.outcomes.labels(outcome="delivered").inc()
                return "delivered"
            if not _retryable(last):
                break
            if attempt < sub.channel.max_attempts:
                self.outcomes.labels(outcome="retried").inc()
                await self.sleep(self.policy.delay(attempt, last.retry_after, self.rng))
        # Whoever may read topics reads the dead letters: the URL's path and query, which may
        # hold the receiver's credential (Slack's do), stay out of them.
        await self.dead_letter(
            {
                "subscription": sub.id,
                "idempotency_key": transition["idempotency_key"],
                "url": redact_url(sub.channel.url),
                "last_status": last.status,
                "last_error": _without_url(last.error, sub.channel.url),
                "transition": transition,
            }
        )
        self.outcomes.labels(outcome="dead_lettered").inc()
        return "dead_lettered"

    async def close(self) -> None:
        """Cancel the delivery tasks (undelivered transitions stay unacknowledged)."""
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
