"""Re-evaluate alert rules for the fold groups a batch touched, and publish the transitions.

Each part of a fold group a rule reads (a unit: a series, a peer pair) with
pending or firing alerts keeps its last evaluation in the ``groups`` table,
split by the first two hex digits of each alert's fingerprint into at most 256
entries, ``<fold key>/group/<unit>#<xx>``: a batch rewrites only the entries
whose alerts it changed, and an entry stays small however many alerts its
unit holds (an event rule fires once per live fact: 16,000 facts of one
export series made one entry of 17 MB, over the changelog's record limit). A
transition is sent to the alerts topic (and acknowledged) before the entry is
written, so a crash in between re-sends it on replay (same idempotency key)
and never loses it.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, MutableMapping
from collections.abc import Set as AbstractSet
from typing import Any

import orjson

from tracker.core.alerts import Alert, evaluate_units, resolution, transitions
from tracker.core.fold import SeriesValue
from tracker.core.routing import Router
from tracker.core.rules import RuleSet
from tracker.core.transitions import MAX_PROVENANCE_EVENTS, Provenance, Trail, document
from tracker.worker.metrics import PipelineMetrics

__all__ = ["Alerting", "unit_key"]

UNIT_INFIX = "/group/"
#: Between a unit and the two hex digits of its entry's bucket (a unit never holds "#").
BUCKET_MARK = "#"

#: Groups evaluated between two chances for the web server to answer.
GROUPS_PER_YIELD = 20

#: Send (key, value) records to the alerts topic and wait for the broker's acknowledgement.
SendTransitions = Callable[[list[tuple[bytes, bytes]]], Awaitable[None]]


def unit_key(fold_key: str, unit: str, bucket: str = "") -> str:
    """Return the groups-table key of one entry of a unit of a fold group (same partition as its series).

    ``bucket`` is the first two hex digits of the entry's fingerprints; entries written before
    units were split have none.
    """
    return f"{fold_key}{UNIT_INFIX}{unit}{BUCKET_MARK if bucket else ''}{bucket}"


def _bucket(fingerprint: str) -> str:
    return fingerprint[:2]


class Alerting:
    """Evaluate touched groups after each batch; publish transitions; keep the groups table."""

    def __init__(
        self,
        rules: RuleSet,
        router: Router,
        series: Mapping[str, SeriesValue],
        groups: MutableMapping[str, Any],
        members: Callable[[str], AbstractSet[str]],
        send: SendTransitions,
        metrics: PipelineMetrics,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.rules = rules
        self.router = router
        self.series = series
        self.groups = groups
        self.members = members
        self.send = send
        self.metrics = metrics
        self.clock = clock
        # Groups evaluated whole under these rules since the partitions were assigned: from
        # then on only the parts a batch wrote are evaluated again.
        self._evaluated: set[str] = set()
        # The buckets with an entry, per unit, per fold key (built from the table when first needed).
        self._stored: dict[str, dict[str, set[str]]] | None = None
        # Evaluated, not flushed yet: transitions to publish, then entries to write.
        self._documents: list[dict[str, Any]] = []
        self._writes: dict[str, dict[str, Any] | None] = {}

    def reset(self) -> None:
        """Forget what is known per group (partitions were assigned)."""
        self._evaluated.clear()
        self._stored = None

    def _stored_units(self, fold_key: str) -> dict[str, set[str]]:
        if self._stored is None:
            self._stored = {}
            for key in self.groups:
                group, _, name = key.partition(UNIT_INFIX)
                if name:
                    unit, _, bucket = name.partition(BUCKET_MARK)
                    self._stored.setdefault(group, {}).setdefault(unit, set()).add(bucket)
        return self._stored.setdefault(fold_key, {})

    async def update(
        self,
        touched: Mapping[str, list[Provenance]],
        new_keys: Mapping[str, set[str]],
        fresh: Mapping[str, SeriesValue] | None = None,
    ) -> None:
        """Re-evaluate each touched fold group, publish the transitions and write the entries."""
        await self.evaluate(touched, new_keys, fresh)
        await self.flush()

    async def evaluate(
        self,
        touched: Mapping[str, list[Provenance]],
        new_keys: Mapping[str, set[str]],
        fresh: Mapping[str, SeriesValue] | None = None,
    ) -> None:
        """Re-evaluate each touched fold group; its transitions and entries wait for ``flush``.

        ``new_keys`` are the series keys the batch wrote, and ``fresh`` the values it
        wrote, already decoded (read first: the table holds them encoded). A batch is
        evaluated one partition at a time (an entry belongs to its group's partition),
        and flushed once.
        """
        now = self.clock()
        documents = self._documents
        writes = self._writes
        for count, (fold_key, provenance) in enumerate(touched.items(), 1):
            # A group is evaluated whole the first time this worker touches it (the rules may
            # have changed since its entries were written), then only where a batch wrote.
            whole = fold_key not in self._evaluated
            state = _Members(self.series, self.members(fold_key), fresh or {})
            changed = None if whole else new_keys.get(fold_key, set())
            evaluated = evaluate_units(self.rules, self.router, state, changed)
            # Evaluated whole, a group also clears the entries of parts no rule reads any more.
            stored_units = self._stored_units(fold_key)
            units = set(evaluated) | set(stored_units) if whole else set(evaluated)
            trail = Trail(provenance)
            for unit in sorted(units):
                buckets = stored_units.get(unit, set())
                if not buckets and not evaluated.get(unit):
                    continue  # nothing was pending or firing, nothing is: the common case
                stored = {bucket: self.groups.get(unit_key(fold_key, unit, bucket)) or {} for bucket in buckets}
                previous = {fp: entry for value in stored.values() for fp, entry in value.get("alerts", {}).items()}
                after = {alert.fingerprint: alert for alert in evaluated.get(unit, ())}
                changes = []
                if {fp: entry["alert"]["state"] for fp, entry in previous.items()} != {
                    fp: alert.state for fp, alert in after.items()
                }:  # the same alerts in the same states make no transition: the common case
                    before = {fp: Alert.from_json(entry["alert"]) for fp, entry in previous.items()}
                    resolve = functools.partial(resolution, self.rules, self.router, state)
                    changes = [document(t, trail, now) for t in transitions(before, after, resolve)]
                documents.extend(changes)
                kept = self._entries(previous, after, changes, trail, now)
                split: dict[str, dict[str, Any]] = {}
                for fingerprint, entry in kept.items():
                    split.setdefault(_bucket(fingerprint), {})[fingerprint] = entry
                for bucket in sorted(buckets | set(split)):
                    value = {"alerts": split[bucket], "rules_version": self.rules.version} if bucket in split else None
                    if value != (stored.get(bucket) or None):
                        writes[unit_key(fold_key, unit, bucket)] = value
            self._evaluated.add(fold_key)
            if count % GROUPS_PER_YIELD == 0:
                await asyncio.sleep(0)

    async def flush(self) -> None:
        """Publish the transitions evaluated since the last flush, then write their entries."""
        documents, self._documents = self._documents, []
        writes, self._writes = self._writes, {}
        # Sent together and acknowledged before any entry is written: a crash in
        # between re-sends them on replay (same idempotency keys) instead of losing them.
        if documents:
            await self.send([(d["alert"]["fingerprint"].encode(), orjson.dumps(d)) for d in documents])
        counts = Counter((document["alert"]["rule"], document["status"]) for document in documents)
        for (rule, status), count in counts.items():  # one labelled increment per rule and status
            self.metrics.transitions.labels(alertname=rule, state=status).inc(count)
        for count, (key, value) in enumerate(writes.items(), 1):
            if count % (10 * GROUPS_PER_YIELD) == 0:
                await asyncio.sleep(0)
            fold_key, _, name = key.partition(UNIT_INFIX)
            unit, _, bucket = name.partition(BUCKET_MARK)
            buckets = self._stored_units(fold_key).setdefault(unit, set())
            if value is None:
                del self.groups[key]
                buckets.discard(bucket)
                if not buckets:
                    del self._stored_units(fold_key)[unit]
            else:
                self.groups[key] = value
                buckets.add(bucket)

    def _entries(
        self,
        previous: Mapping[str, Any],
        after: Mapping[str, Alert],
        documents: list[dict[str, Any]],
        trail: Trail,
        now: float,
    ) -> dict[str, Any]:
        """Return a unit's stored alerts after an evaluation, by fingerprint."""
        fired = {d["alert"]["fingerprint"]: d["idempotency_key"] for d in documents if d["status"] == "firing"}
        changed = {d["alert"]["fingerprint"] for d in documents}
        kept: dict[str, Any] = {}
        for fingerprint, alert in after.items():
            earlier = previous.get(fingerprint)
            if fingerprint in changed or earlier is None:
                # The records of this batch that caused the alert, or (when its causes came
                # earlier) the first few of the group's records: an entry per alert stays small
                # however busy the group is.
                causes = trail.causes(alert)[:MAX_PROVENANCE_EVENTS]
                # fired_at and the firing key let reminders (repeat_interval) name themselves.
                entry = {
                    "provenance": [item.to_json() for item in causes],
                    "fired_at": now,
                    "idempotency_key": fired.get(fingerprint),
                }
            else:
                entry = {name: earlier.get(name) for name in ("provenance", "fired_at", "idempotency_key")}
            kept[fingerprint] = {"alert": alert.to_json(), **entry}
        return kept


class _Members(Mapping[str, SeriesValue]):
    """A fold group's series, read from the table (and decoded) only when evaluation asks."""

    def __init__(
        self, series: Mapping[str, SeriesValue], keys: AbstractSet[str], fresh: Mapping[str, SeriesValue]
    ) -> None:
        self._series = series
        self._keys = keys
        self._read: dict[str, SeriesValue] = {}
        self._fresh = fresh

    def __contains__(self, key: object) -> bool:
        return key in self._keys and (key in self._fresh or key in self._series)

    def __getitem__(self, key: str) -> SeriesValue:
        value = self._fresh.get(key) or self._read.get(key)
        if value is None:
            value = self._read[key] = self._series[key]
        return value

    def __iter__(self) -> Iterator[str]:
        return (key for key in self._keys if key in self)

    def __len__(self) -> int:
        return sum(1 for _ in self)
