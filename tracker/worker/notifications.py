"""The notification side of a worker: the subscription registry, the delivery ledger,
webhook delivery, and the live alert feed behind ``GET /v1/alerts/stream``."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from prometheus_client import Counter
from pydantic import ValidationError

from tracker.core.matchers import Matcher, match_all
from tracker.core.subscriptions import Subscription
from tracker.core.transitions import due_reminders
from tracker.kafka.views import TopicTail, TopicView
from tracker.settings import Settings
from tracker.worker.delivery import HttpSender, Notifier
from tracker.worker.http_client import AiohttpSender

__all__ = ["Feed", "Notifications"]

logger = logging.getLogger(__name__)

FEED_QUEUE_SIZE = 1000

#: A live feed's queue of transitions; None ends the stream.
Feed = asyncio.Queue[dict[str, Any] | None]


class Notifications:
    """Subscriptions, ledger and feed of one worker; ``start`` reads the registries first."""

    def __init__(
        self,
        settings: Settings,
        outcomes: Counter,
        dead_letter: Callable[[dict[str, Any]], Awaitable[None]],
        sender: HttpSender | None = None,
    ) -> None:
        self.registry = TopicView(settings, settings.subscriptions_topic)
        self.ledger = TopicView(settings, settings.deliveries_topic)
        self.tail = TopicTail(settings, settings.alerts_topic, self._to_feed)
        self._sender = sender or AiohttpSender()
        # Per id, the stored value last parsed and what it parsed to (None: it no longer validates).
        self._parsed: dict[str, tuple[bytes, Subscription | None]] = {}
        self._feeds: set[tuple[tuple[Matcher, ...], Feed]] = set()
        self._ended = False
        self.ready = asyncio.Event()
        self._reminding: set[str] = set()
        external = f"http://{settings.http_host}:{settings.http_port}"
        self.notifier = Notifier(
            subscriptions=self.subscriptions,
            find=self.get,
            delivered=lambda mark: mark in self.ledger.data,
            mark_delivered=lambda mark: self.ledger.put(mark, b"1"),
            dead_letter=dead_letter,
            sender=self._sender,
            outcomes=outcomes,
            external_url=external,
        )

    async def start(self) -> None:
        """Read subscriptions and delivery marks to the end, then follow them and the alerts."""
        await self.registry.start()
        await self.ledger.start()
        await self.tail.start()
        self.ready.set()

    async def stop(self) -> None:
        """Stop delivery and every consumer."""
        await self.notifier.close()
        for part in (self.tail, self.ledger, self.registry):
            await part.stop()
        close = getattr(self._sender, "close", None)
        if close is not None:
            await close()

    def subscriptions(self) -> list[Subscription]:
        """Return every live subscription, by id (the caps on subscriptions bound this list)."""
        data = self.registry.data
        for gone in self._parsed.keys() - data.keys():
            del self._parsed[gone]
        found = (self._parse(key, raw) for key, raw in sorted(data.items()))
        return [sub for sub in found if sub is not None]

    def get(self, subscription_id: str) -> Subscription | None:
        """Return one subscription, or None."""
        raw = self.registry.data.get(subscription_id)
        return None if raw is None else self._parse(subscription_id, raw)

    def _parse(self, key: str, raw: bytes) -> Subscription | None:
        known = self._parsed.get(key)
        if known is not None and known[0] is raw:
            return known[1]
        try:
            parsed: Subscription | None = Subscription.model_validate_json(raw)
        except ValidationError as exc:
            # Written by an older version, or by hand: today's checks refuse it, so it is
            # neither delivered to nor shown. The reasons name fields, never the values.
            reasons = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors(include_input=False))
            logger.warning("subscription %r is ignored, it no longer validates: %s", key[:64], reasons)
            parsed = None
        self._parsed[key] = (raw, parsed)
        return parsed

    async def save(self, subscription: Subscription) -> None:
        """Create or replace a subscription; return once this worker's registry has it."""
        await self.registry.put(subscription.id, json.dumps(subscription.stored()).encode())

    async def delete(self, subscription_id: str) -> None:
        """Delete a subscription (a tombstone on the compacted topic)."""
        await self.registry.put(subscription_id, None)

    def wants_reminders(self) -> bool:
        """Return whether any webhook subscription asks for reminders."""
        return any(sub.repeat_interval > 0 for sub in self.subscriptions())

    def remind(self, entries: list[dict[str, Any]], now: float) -> int:
        """Queue the reminders now due for firing alerts (``repeat_interval``); return how many."""
        queued = 0
        for reminder in due_reminders(self.subscriptions(), entries, now):
            # Each reminder has its own key: the ledger sends each once, on any worker.
            if f"{reminder.subscription.id}|{reminder.key}" in self.ledger.data or reminder.key in self._reminding:
                continue
            self._reminding.add(reminder.key)
            done = functools.partial(self._reminding.discard, reminder.key)
            self.notifier.send_to(reminder.subscription, reminder.document, done)
            queued += 1
        return queued

    def _to_feed(self, raw: bytes) -> None:
        try:
            transition = json.loads(raw)
        except ValueError:
            return
        labels = transition["alert"]["labels"]
        for matchers, queue in list(self._feeds):
            if match_all(matchers, labels):
                with contextlib.suppress(asyncio.QueueFull):  # a stalled client drops, never blocks
                    queue.put_nowait(transition)

    def open_feed(self, matchers: tuple[Matcher, ...]) -> Feed:
        """Register a live feed of transitions whose labels match."""
        queue: Feed = asyncio.Queue(FEED_QUEUE_SIZE)
        if self._ended:
            queue.put_nowait(None)  # a client that connects while the worker stops is sent away at once
        else:
            self._feeds.add((matchers, queue))
        return queue

    def close_feed(self, queue: Feed) -> None:
        """Forget a feed whose client went away."""
        self._feeds = {feed for feed in self._feeds if feed[1] is not queue}

    def end_feeds(self) -> None:
        """End every live feed (the worker is stopping): each stream tells its client to reconnect.

        A stream waits on its queue between keepalives; until it ends, the web server
        does not stop, and the worker with it (two minutes with a connected client).
        """
        for _, queue in self._feeds:
            if queue.full():
                queue.get_nowait()  # a stalled client: it loses one transition more, and the stream ends
            queue.put_nowait(None)
        self._feeds = set()
        self._ended = True
