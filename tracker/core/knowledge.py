"""Knowledge time: when a fact became known, and the state as it was known on a date.

A fact is known from its ``reported_on`` day, else from the first day of its
``occurred_on`` period (``2025-10`` is known from 2025-10-01, ``2025`` from
2025-01-01). A retraction counts from its own knowledge time, computed the
same way. An answer "as of" a date D uses the facts known on or before D and
the retractions known on or before D; an ``as_of`` given as a month or a year
stands for its last day (everything known during it).

Knowledge dates are ISO day strings (``YYYY-MM-DD``): they compare as text.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tracker.core.dates import PartialDate

if TYPE_CHECKING:
    from tracker.core.events import Event

__all__ = [
    "entry_day",
    "entry_offset",
    "fact_known_on",
    "first_day",
    "known_by",
    "known_on",
    "known_state",
    "parse_as_of",
    "retraction_known_on",
]

SeriesValue = dict[str, Any]


@functools.lru_cache(maxsize=65536)
def first_day(text: str) -> str:
    """Return the first day of a ``YYYY[-MM[-DD]]`` period as ``YYYY-MM-DD``."""
    # The fold asks this of every record; a stream repeats the same few thousand dates.
    return PartialDate.parse(text).start.isoformat()


def known_on(event: Event) -> str:
    """Return the day an event became known: ``reported_on``, else its ``occurred_on`` period's first day."""
    return event.reported_on or first_day(event.occurred_on)


def entry_day(entry: Any, default: str) -> str:
    """Return the knowledge day a ``known`` entry records (``default`` when it records only an offset)."""
    return str(entry[0]) if isinstance(entry, list) else default


def entry_offset(entry: Any) -> int | None:
    """Return the events-topic offset a ``known`` entry records, or None."""
    offset = entry[1] if isinstance(entry, list) else entry
    return offset if isinstance(offset, int) else None


def parse_as_of(text: str) -> str:
    """Return the last day an ``as_of`` date stands for; raise ValueError saying what is accepted."""
    try:
        return PartialDate.parse(text).end.isoformat()
    except ValueError as exc:
        raise ValueError(f"{exc}: use YYYY, YYYY-MM or YYYY-MM-DD") from None


def fact_known_on(value: Mapping[str, Any], event_id: str) -> str:
    """Return when a fact of a series became known (from its ``occurred_on`` in a value written before)."""
    return entry_day(value.get("known", {}).get(event_id), first_day(value["facts"][event_id][1]))


def retraction_known_on(value: Mapping[str, Any], event_id: str) -> str | None:
    """Return when the retraction of a fact became known; None if the fact is not retracted.

    A value written before knowledge was recorded has no date for it: the retraction
    then counts from the fact's own knowledge date, as if it had always been known.
    """
    retraction_id = value["retracted"].get(event_id)
    if retraction_id is None:
        return None
    entry = value.get("known", {}).get(retraction_id)
    return str(entry[0]) if isinstance(entry, list) else fact_known_on(value, event_id)


def known_by(value: SeriesValue, as_of: str) -> SeriesValue:
    """Return a series value holding only the facts and retractions known on or before ``as_of``."""
    facts = {
        event_id: payload for event_id, payload in value["facts"].items() if fact_known_on(value, event_id) <= as_of
    }
    retracted = {}
    for event_id, retraction_id in value["retracted"].items():
        if event_id not in value["facts"]:
            continue  # a tombstone for a fact this series does not hold: nothing to hide
        when = retraction_known_on(value, event_id)
        if when is not None and when <= as_of:
            retracted[event_id] = retraction_id
    return {"facts": facts, "retracted": retracted, "known": value.get("known", {})}


def known_state(state: Mapping[str, SeriesValue], as_of: str | None) -> dict[str, SeriesValue]:
    """Return ``state`` as it was known on ``as_of`` (the state itself when None); tombstone keys are kept."""
    if as_of is None:
        return dict(state)
    return {key: value if _is_tombstones(key) else known_by(value, as_of) for key, value in state.items()}


def _is_tombstones(key: str) -> bool:
    return key.startswith("#") and "/retractions/" in key
