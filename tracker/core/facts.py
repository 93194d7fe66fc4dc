"""The facts of a state, listed in event-time order and filtered, as /v1/facts shows them.

The state keeps what signals need of each fact (its payload), when it became
known and its offset in the events topic; the document itself (source, quote,
status ...) stays in the log, where a reader fetches it by position. So a
listing first filters on what the state knows (``candidates``), then the
caller fetches the documents of a page and filters on the rest
(``matches_document``), then builds each answer (``fact_document``).

A table key names its series (``<fold key>/<kind>:<labels>``), so the type and
the labelled fields of a query are decided on keys before any value is read
(``key_may_hold``), and a query naming the subject of every type it can match
reads one fold group (``fact_subjects``).
"""

from __future__ import annotations

import functools
import heapq
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, NamedTuple

from tracker.core.dates import PartialDate
from tracker.core.fx import is_rates_key
from tracker.core.knowledge import entry_offset, fact_known_on, first_day, known_state, retraction_known_on
from tracker.core.periods import Period
from tracker.core.queries import FACT_TYPES, FactQuery
from tracker.core.routing import split_table_key

__all__ = [
    "FactEntry",
    "candidates",
    "fact_document",
    "fact_entries",
    "fact_subjects",
    "find_fact",
    "iter_candidates",
    "key_may_hold",
    "matches_document",
    "positions",
    "state_document",
]

SeriesValue = dict[str, Any]

_KIND_TYPE = {
    "usage": "usage.reported",
    "investment": "investment.announced",
    "chip": "chip_delivery.reported",
    "export": "export_rule.changed",
    "fx": "fx_rate.reported",
}
#: The fields a series' labels give, by kind (a chip's buyer is the reporter when none is named).
_LABEL_FIELDS = {
    "usage": ("entity", "metric"),
    "investment": ("entity",),
    "chip": ("buyer", "vendor", "product"),
    "export": ("authority", "product", "destination"),
    "fx": ("currency",),
}


class FactEntry(NamedTuple):
    """One fact as the state holds it: where it is, when it applies and became known, whether retracted."""

    order: tuple[float, int]
    event_id: str
    type: str
    series: str
    key: str
    occurred_on: str
    known_on: str
    offset: int | None
    retracted_by: tuple[str, str] | None
    payload: list[Any]

    @property
    def labels(self) -> dict[str, str]:
        """Return the fields the series names, e.g. {"entity": "bytedance", "metric": "tokens_per_day"}."""
        kind, *values = self.series.split(":")
        return dict(zip(_LABEL_FIELDS[kind], values, strict=True))


@functools.lru_cache(maxsize=65536)
def _order(text: str) -> tuple[float, int]:
    return PartialDate.parse(text).sort_key()


def _entry(key: str, value: SeriesValue, event_id: str, payload: list[Any]) -> FactEntry:
    series = f"fx:{payload[2]}" if is_rates_key(key) else split_table_key(key)[1].encode()
    retracted_by = None
    retraction_id = value["retracted"].get(event_id)
    if retraction_id is not None:
        retracted_by = (retraction_id, retraction_known_on(value, event_id) or "")
    return FactEntry(
        order=_order(payload[1]),
        event_id=event_id,
        type=_KIND_TYPE[series.partition(":")[0]],
        series=series,
        key=key,
        occurred_on=payload[1],
        known_on=fact_known_on(value, event_id),
        offset=entry_offset(value.get("known", {}).get(event_id)),
        retracted_by=retracted_by,
        payload=payload,
    )


def fact_entries(state: Mapping[str, SeriesValue]) -> list[FactEntry]:
    """Return every fact of a state (retracted ones too), in event-time order then by id.

    Exchange rates are kept on every partition: each id is listed once.
    """
    seen: set[str] = set()
    out: list[FactEntry] = []
    for key in sorted(state):
        if key.startswith("#") and not is_rates_key(key):
            continue  # tombstones: retractions, not facts
        value = state[key]
        for event_id, payload in value["facts"].items():
            if event_id in seen:
                continue
            seen.add(event_id)
            out.append(_entry(key, value, event_id, payload))
    out.sort(key=lambda entry: (entry.order, entry.event_id))
    return out


def find_fact(state: Mapping[str, SeriesValue], event_id: str) -> FactEntry | None:
    """Return one fact of a state by id, or None."""
    for key in sorted(state):
        if key.startswith("#") and not is_rates_key(key):
            continue
        value = state[key]
        payload = value["facts"].get(event_id)
        if payload is not None:
            return _entry(key, value, event_id, payload)
    return None


def _known_value(entry: FactEntry, name: str) -> str | None:
    """Return a field's value if the state knows it, else None (the document must say)."""
    if name in entry.labels:
        return entry.labels[name]
    kind = entry.series.partition(":")[0]
    if kind == "chip" and name == "stage":
        return str(entry.payload[2])
    if kind == "export" and name == "direction":
        return "loosened" if entry.payload[3] > 0 else "tightened"
    return None


def candidates(state: Mapping[str, SeriesValue], query: FactQuery) -> list[FactEntry]:
    """Return the facts that may match ``query``, as known on its ``as_of``, after its cursor, in order (or reversed).

    Fields the state does not keep (status, a chip's reporting entity ...) are left
    to ``matches_document``.
    """
    return list(iter_candidates(state, query))


def iter_candidates(state: Mapping[str, SeriesValue], query: FactQuery) -> Iterator[FactEntry]:
    """Yield ``candidates`` one at a time: a page builds only the entries it takes, not every fact's."""
    after = None if query.after is None else (_order(query.after[0]), query.after[1])
    known = known_state({key: value for key, value in state.items() if key_may_hold(key, query)}, query.as_of)
    seen: set[str] = set()
    heap: list[tuple[tuple[float, int], str, str]] = []
    for key in sorted(known):
        value = known[key]
        retracted = value["retracted"]
        for event_id, payload in value["facts"].items():
            if event_id in seen:
                continue  # exchange rates are kept on every partition: each id is listed once
            seen.add(event_id)
            order = _order(payload[1])
            if after is not None and ((order, event_id) >= after if query.descending else (order, event_id) <= after):
                continue
            if event_id in retracted and not query.include_retracted:
                continue
            start = first_day(payload[1])
            if query.occurred_from is not None and start < query.occurred_from:
                continue
            if query.occurred_to is not None and start > query.occurred_to:
                continue
            heap.append((order, event_id, key))
    for _, event_id, key in _in_order(heap, query.descending):
        value = known[key]
        entry = _entry(key, value, event_id, value["facts"][event_id])
        if query.type is not None and entry.type != query.type:
            continue
        if any(_field_mismatch(entry, name, wanted) for name, wanted in query.fields.items()):
            continue
        yield entry


def _in_order(items: list[tuple[tuple[float, int], str, str]], descending: bool) -> Iterator[tuple[Any, str, str]]:
    """Yield ``items`` smallest first (or largest first), sorting only as far as the caller reads."""
    if descending:
        yield from sorted(items, reverse=True)  # rare (the newest of a few thousand): a plain sort
        return
    heapq.heapify(items)  # linear; each fact taken costs a pop, so a page of 100 never sorts 200,000
    while items:
        yield heapq.heappop(items)


def key_may_hold(key: str, query: FactQuery) -> bool:
    """Return whether a table key may hold facts of ``query``'s type and labelled fields, without its value."""
    # String operations only: a read asks this of every key it owns (80,000 at 200,000 events), and
    # split_table_key's cache is sized for the fold's working set, not for a pass over the whole table.
    if key.startswith("#"):
        if not is_rates_key(key):
            return False  # tombstones: retractions, not facts
        kind, text = "fx", ""
    else:
        kind, _, text = key.partition("/")[2].partition(":")
    fact_type = _KIND_TYPE[kind]
    if query.type is not None and query.type != fact_type:
        return False
    if not query.fields:
        return True
    # A rates key names no currency: each rate's currency is in its payload.
    labels = {} if kind == "fx" else dict(zip(_LABEL_FIELDS[kind], text.split(":"), strict=True))
    for name, wanted in query.fields.items():
        if name in labels:
            if labels[name] != wanted:
                return False
        elif name not in _TYPE_FIELDS[fact_type]:
            return False
    return True


#: The field naming the subject a fact is folded under, by type (exchange rates have none).
_SUBJECT_FIELD = {
    "usage.reported": "entity",
    "investment.announced": "entity",
    "chip_delivery.reported": "buyer",
    "export_rule.changed": "authority",
}


def fact_subjects(query: FactQuery) -> frozenset[str] | None:
    """Return the subjects whose series hold every fact ``query`` can match; None when any series may.

    ``entity`` names the subject of usage figures and investments only: on a chip
    delivery it is the reporter, on an export rule an optional field, both in the
    document, so ``entity`` alone does not pin chips or export rules to a group.
    """
    types = [query.type] if query.type is not None else list(FACT_TYPES)
    subjects = set()
    for fact_type in types:
        if any(name not in _TYPE_FIELDS[fact_type] for name in query.fields):
            continue  # no fact of this type has every field asked for
        field = _SUBJECT_FIELD.get(fact_type)
        if field is None or field not in query.fields:
            return None
        subjects.add(query.fields[field])
    return frozenset(subjects)


def _field_mismatch(entry: FactEntry, name: str, wanted: str) -> bool:
    known = _known_value(entry, name)
    if known is not None:
        return known != wanted
    return name not in _TYPE_FIELDS[entry.type]


#: The filter fields each type has: a fact without the field never matches it.
_TYPE_FIELDS = {
    "usage.reported": {"entity", "metric"},
    "investment.announced": {"entity", "category"},
    "chip_delivery.reported": {"entity", "buyer", "vendor", "product", "stage"},
    "export_rule.changed": {"entity", "authority", "product", "destination", "direction"},
    "fx_rate.reported": {"currency"},
}


def matches_document(document: Mapping[str, Any], query: FactQuery) -> bool:
    """Return whether a fact's document matches the filters the state could not decide."""
    if query.status is not None and document.get("status") != query.status:
        return False
    for name, wanted in query.fields.items():
        value = document.get(name)
        if name == "buyer" and value is None:
            value = document.get("entity")  # a chip order names its reporter as the buyer
        if value is None or str(value) != wanted:
            return False
    return True


def state_document(entry: FactEntry) -> dict[str, Any]:
    """Return what the state alone says of a fact, for a fact whose record cannot be read."""
    document: dict[str, Any] = {"type": entry.type, "id": entry.event_id, "occurred_on": entry.occurred_on}
    document.update(entry.labels)
    if entry.type == "investment.announced":
        document["period"] = str(Period.of(entry.payload[2]))
    if entry.type == "chip_delivery.reported":
        document["stage"] = entry.payload[2]
    return document


def fact_document(entry: FactEntry, document: Mapping[str, Any] | None, topic: str, partition: int) -> dict[str, Any]:
    """Return a fact as /v1/facts shows it: its document plus knowledge time, position, retraction, series."""
    out = dict(document) if document is not None else state_document(entry)
    out["id"] = entry.event_id
    out.update(
        known_on=entry.known_on,
        position=None if entry.offset is None else {"topic": topic, "partition": partition, "offset": entry.offset},
        retracted_by=None
        if entry.retracted_by is None
        else {"id": entry.retracted_by[0], "known_on": entry.retracted_by[1]},
        series=entry.series,
    )
    return out


def positions(entries: Iterable[FactEntry], partition_of: Any) -> list[tuple[int, int]]:
    """Return the (partition, offset) of every entry that has one."""
    return [(partition_of(entry.key), entry.offset) for entry in entries if entry.offset is not None]
