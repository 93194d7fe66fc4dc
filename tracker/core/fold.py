"""The fold: facts in, series state out, as a function of the set of live events.

A series value is plain JSON so that it can live in a changelogged table::

    {"facts": {event_id: [digest, occurred_on, ...payload]},
     "retracted": {event_id: retraction_id},
     "known": {event_id: offset | [known_on, offset]}}

``known`` says where each fact's and each retraction's record is in the events
topic (the offset; the partition is the key's) and, when it is not the first
day of the fact's ``occurred_on`` (a ``reported_on`` says otherwise, or the id
is a retraction's), when it became known (``tracker.core.knowledge``). Readers
answer "as of" a date with it and read the fact's document back from the log.
A fact with no entry (written before ``known`` existed, or folded without a
log) counts as known from its ``occurred_on`` and has no position.

A fact is recorded once per id within its series; the same id with other
content keeps the content with the smaller digest, so the outcome never
depends on arrival order. (An id reused for facts of two different series is
not detected: ids are derived from content, so this takes a publisher that
sets ids by hand and reuses one.) Retractions are kept as tombstones (per partition) and as marks on the
series holding their target, whichever arrives first. Exchange rates are
folded on every partition into its rates keys (``tracker.core.fx``), with
the same rules.

A tombstone is kept for good, even for an id never seen: the fact may still
arrive, and must arrive dead. Dropping old ones would make the outcome depend
on arrival order. Their number is exported instead (``count_tombstones``).

A payload keeps the v1 shape for a v1 fact and appends what v2 added only
when it is there (a currency other than USD, an order value), so state
written before v2 reads the same.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import Any

from tracker.core.events import (
    ChipDeliveryReported,
    Event,
    EventRetracted,
    ExportRuleChanged,
    FxRateReported,
    InvestmentAnnounced,
    UsageReported,
    content_digest,
)
from tracker.core.fx import rates_key
from tracker.core.knowledge import entry_day, first_day, known_on
from tracker.core.routing import Router, SeriesId, series_of

__all__ = [
    "TOMBSTONE_BUCKETS",
    "FoldBatch",
    "Outcome",
    "Projection",
    "count_tombstones",
    "fact_payload",
    "known_entries",
    "live_facts",
    "tombstone_keys",
    "tombstones_key",
]

SeriesValue = dict[str, Any]

#: Tombstone records per partition. Each is rewritten whole whenever it changes: more buckets,
#: smaller rewrites (20,000 retractions of 27-character ids make buckets of about 19 KB).
TOMBSTONE_BUCKETS = 64


class Outcome(Enum):
    """What folding one event did."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    ID_CONFLICT = "id_conflict"
    RETRACTION = "retraction"


def fact_payload(event: Event) -> list[Any]:
    """Return the compact fields a series needs from a fact."""
    head: list[Any] = [content_digest(event), event.occurred_on]
    match event:
        case UsageReported():
            return [*head, event.value.point]
        case InvestmentAnnounced():
            currency = [] if event.amount.unit == "USD" else [event.amount.unit]
            return [*head, event.period, event.amount.point, *currency]
        case ChipDeliveryReported():
            return [*head, event.stage, *_chip_figures(event)]
        case ExportRuleChanged():
            return [*head, str(event.effective), 1 if event.direction == "loosened" else -1]
        case FxRateReported():
            return [*head, event.currency, event.usd_per_unit]
        case EventRetracted():
            raise ValueError("a retraction is not a fact")


def _chip_figures(event: ChipDeliveryReported) -> list[Any]:
    """Return units, unit price, then (v2) the price's currency, the order value and its currency."""
    units = event.units.point if event.units is not None else None
    price = event.unit_price.point if event.unit_price is not None else None
    figures: list[Any] = [units, price]
    price_currency = event.unit_price.unit if event.unit_price is not None else "USD"
    if event.order_value is not None or price_currency != "USD":
        value = event.order_value
        figures += [price_currency, value.point if value else None, value.unit if value else None]
    return figures


def live_facts(value: SeriesValue) -> Iterator[tuple[str, list[Any]]]:
    """Yield (event id, payload) for every fact of a series that is not retracted."""
    retracted = value["retracted"]
    for event_id, payload in value["facts"].items():
        if event_id not in retracted:
            yield event_id, payload


def empty_series() -> SeriesValue:
    """Return the value of a series that has seen nothing."""
    return {"facts": {}, "retracted": {}, "known": {}}


def known_entries(value: SeriesValue) -> dict[str, Any]:
    """Return a series' ``known`` map (empty in a value written before it existed)."""
    known: dict[str, Any] = value.get("known", {})
    return known


#: Where a record is in the events topic: (partition, offset), or None when the caller has no log.
Position = tuple[int, int] | None


def _entry(event: Event, position: Position) -> Any:
    """Return what ``known`` keeps of a record: its offset, and its knowledge day unless it is the default.

    Most facts carry no ``reported_on``: one number per fact keeps the table value small
    (a list per fact tripled the cost of encoding a series). The partition is the key's own.
    """
    day = known_on(event)
    offset = position[1] if position is not None else None
    if isinstance(event, EventRetracted) or day != first_day(event.occurred_on):
        return [day, offset]
    return offset


def _keep(known: dict[str, Any], event_id: str, entry: Any) -> None:
    if entry is None:
        known.pop(event_id, None)  # the default: known from occurred_on, no position
    else:
        known[event_id] = entry


class FoldBatch:
    """Apply events to a view of the state, collecting every changed key once.

    ``read`` returns the stored value of a key (or None); ``locate`` returns
    the stored series keys that may hold a fact id (a retraction's target);
    ``tombstones`` names the key that records retractions of an id, and
    ``rates`` the key that holds an exchange rate (both on the partition being
    folded). The caller writes ``changed`` back, one write per key per batch.
    """

    def __init__(
        self,
        router: Router,
        read: Callable[[str], SeriesValue | None],
        locate: Callable[[str], Iterable[str]],
        tombstones: Callable[[str], str],
        rates: Callable[[str], str] | None = None,
    ) -> None:
        self.router = router
        self._read = read
        self._locate = locate
        self._tombstones = tombstones
        self._rates = rates or functools.partial(rates_key, 0)
        self.changed: dict[str, SeriesValue] = {}
        self._reads: dict[str, SeriesValue | None] = {}
        self.touched: list[str] = []
        self.applied: dict[str, set[str]] = {}
        self.revisited: set[str] = set()

    def _get(self, key: str) -> SeriesValue:
        self.touched.append(key)
        value = self.changed.get(key)
        if value is None:
            stored = self._stored(key)
            value = (
                empty_series()
                if stored is None
                else {
                    "facts": dict(stored["facts"]),
                    "retracted": dict(stored["retracted"]),
                    "known": dict(stored.get("known", ())),
                }
            )
            self.changed[key] = value
            self._reads.pop(key, None)  # from now on the key is read from ``changed``: free the stored copy
        return value

    def _stored(self, key: str) -> SeriesValue | None:
        # Read once per batch: a read may decode, and a key is often peeked then written.
        if key in self._reads:
            return self._reads[key]
        value = self._reads[key] = self._read(key)
        return value

    def _peek(self, key: str) -> SeriesValue | None:
        return self.changed.get(key) or self._stored(key)

    def apply(self, event: Event, event_id: str, series: SeriesId | None = None, position: Position = None) -> Outcome:
        """Fold one event; afterwards ``touched`` lists the keys it changed.

        ``series`` is the fact's series when the caller has it already (the worker
        routes each record by it first); ``position`` is the record's (partition,
        offset) in the events topic, kept so that readers can fetch the document.
        """
        self.touched = []
        entry = _entry(event, position)
        if isinstance(event, EventRetracted):
            return self._retract(event.target_id, event_id, entry)
        if isinstance(event, FxRateReported):
            key = self._rates(event_id)
        else:
            series = series or series_of(event)
            assert series is not None
            key = self.router.table_key(series)
        payload = fact_payload(event)
        stored = self._peek(key)
        known = stored["facts"].get(event_id) if stored is not None else None
        if known is not None and known[0] == payload[0]:
            # Nothing changes, but the caller re-evaluates what depends on this series:
            # after a crash the fold may be redone while what followed it was lost.
            self.revisited.add(key)
            default = first_day(payload[1])
            # The earliest knowledge wins, so what "as of" sees never depends on arrival order.
            if entry_day(entry, default) < entry_day(known_entries(stored).get(event_id), default):  # type: ignore[arg-type]
                self._get(key)["known"][event_id] = entry
            self.touched = [key]
            return Outcome.DUPLICATE
        value = self._get(key)
        tombstones = self._peek(self._tombstones(event_id))
        if tombstones is not None and event_id in tombstones["retracted"]:
            retraction_id = value["retracted"][event_id] = tombstones["retracted"][event_id]
            retraction = known_entries(tombstones).get(retraction_id)
            if retraction is not None:
                value["known"][retraction_id] = retraction
        if known is None:
            value["facts"][event_id] = payload
            _keep(value["known"], event_id, entry)
            if not key.startswith("#"):  # a retraction finds a rate by its rates key, not an index
                self.applied.setdefault(event_id, set()).add(key)
            return Outcome.APPLIED
        if payload[0] < known[0]:
            value["facts"][event_id] = payload
            _keep(value["known"], event_id, entry)
        return Outcome.ID_CONFLICT

    def _retract(self, target_id: str, retraction_id: str, entry: Any) -> Outcome:
        tombstones_key = self._tombstones(target_id)
        stored = self._peek(tombstones_key)
        if stored is None or self._supersedes(stored, target_id, retraction_id, entry):
            self._mark(self._get(tombstones_key), target_id, retraction_id, entry)
        candidates = set(self._locate(target_id)) | self.applied.get(target_id, set())
        candidates.add(self._rates(target_id))  # the target may be an exchange rate
        for key in sorted(candidates):
            stored = self._peek(key)
            if (
                stored is not None
                and target_id in stored["facts"]
                and self._supersedes(stored, target_id, retraction_id, entry)
            ):
                self._mark(self._get(key), target_id, retraction_id, entry)
        return Outcome.RETRACTION

    @staticmethod
    def _supersedes(value: SeriesValue, target_id: str, retraction_id: str, entry: Any) -> bool:
        """Return whether this retraction is the one to record: the first, or one known earlier."""
        current = value["retracted"].get(target_id)
        if current is None:
            return True
        if current == retraction_id:
            return False
        kept = known_entries(value).get(current)
        # The earliest known retraction counts (then the smaller id), whatever the arrival order.
        return isinstance(kept, list) and (entry[0], retraction_id) < (kept[0], current)

    @staticmethod
    def _mark(value: SeriesValue, target_id: str, retraction_id: str, entry: Any) -> None:
        previous = value["retracted"].get(target_id)
        value["retracted"][target_id] = retraction_id
        value["known"][retraction_id] = entry
        if previous is not None and previous not in value["facts"] and previous not in value["retracted"].values():
            value["known"].pop(previous, None)


def tombstones_key(partition: int, event_id: str) -> str:
    """Return the key recording retractions of ``event_id`` on ``partition`` (one of TOMBSTONE_BUCKETS)."""
    return f"#{partition}/retractions/{zlib.crc32(event_id.encode()) % TOMBSTONE_BUCKETS}"


def tombstone_keys(partition: int) -> list[str]:
    """Return every key that may record retractions on ``partition``."""
    return [f"#{partition}/retractions/{bucket}" for bucket in range(TOMBSTONE_BUCKETS)]


def count_tombstones(read: Callable[[str], SeriesValue | None], partition: int) -> int:
    """Return how many retracted ids ``partition`` keeps tombstones for, whether their facts arrived or not."""
    return sum(len(value["retracted"]) for key in tombstone_keys(partition) if (value := read(key)) is not None)


class Projection:
    """The whole state folded in memory from a list of events: the reference fold."""

    def __init__(self, router: Router) -> None:
        self.router = router
        self.state: dict[str, SeriesValue] = {}
        self.outcomes: dict[Outcome, int] = dict.fromkeys(Outcome, 0)
        # The series keys holding each fact id: a retraction finds its target without a scan.
        self._holders: dict[str, set[str]] = {}

    def apply(self, event: Event) -> Outcome:
        """Fold one event into the state."""
        batch = FoldBatch(self.router, self.state.get, self._locate, lambda event_id: tombstones_key(0, event_id))
        outcome = batch.apply(event, event.event_id)
        self.state.update(batch.changed)
        for event_id, keys in batch.applied.items():
            self._holders.setdefault(event_id, set()).update(keys)
        self.outcomes[outcome] += 1
        return outcome

    def _locate(self, event_id: str) -> set[str]:
        return self._holders.get(event_id, set())

    def replay(self, events: Iterable[Event]) -> Projection:
        """Fold every event in order and return self."""
        for event in events:
            self.apply(event)
        return self
