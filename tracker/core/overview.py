"""The overview: entities with their latest figures, and the active alerts most severe first, a page at a time.

An entity is the subject of a series (a usage figure's or an investment's
entity, a chip order's buyer, an export rule's authority): its slug is in the
series' table key, so the list of entities is read from keys, and only the
entities of one page have their signals derived.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from tracker.core.catalogue import Signal

__all__ = [
    "ALERT_SUBJECT_LABELS",
    "SUMMARY_FAMILIES",
    "alert_counts",
    "alert_is_about",
    "entities_page",
    "entity_summary",
    "key_subject",
    "rank_alerts",
]

#: The families an entity's row shows: its latest figures, not their history.
SUMMARY_FAMILIES = frozenset(
    {
        "market_usage",
        "market_usage_growth_monthly_ratio",
        "market_investment_usd",
        "market_chip_units",
        "market_chip_order_value_usd",
        "market_peer_ratio",
        "market_export_rule_state",
    }
)
#: The labels that name the entity a signal or an alert is about, first found first.
_ENTITY_LABELS = ("entity", "buyer", "authority")
#: The labels that make an alert one of an entity's, on its page: a peer is concerned too.
ALERT_SUBJECT_LABELS = (*_ENTITY_LABELS, "peer")
SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}


def key_subject(key: str) -> str | None:
    """Return the subject of a series key (``<fold key>/<kind>:<subject>:...``); None for other keys."""
    if key.startswith("#"):
        return None
    return key.partition("/")[2].split(":", 2)[1]


def entities_page(subjects: Iterable[str], q: str, after: str | None, limit: int) -> tuple[list[str], int, int]:
    """Return the slugs containing ``q`` after ``after`` (sorted, at most ``limit``), their count, how many follow."""
    matching = sorted({slug for slug in subjects if q in slug})
    start = 0 if after is None else bisect_right(matching, after)
    page = matching[start : start + limit]
    return page, len(matching), len(matching) - start - len(page)


def entity_summary(signals: Iterable[Signal], slug: str) -> list[dict[str, Any]]:
    """Return the summary signals about ``slug`` (its entity, buyer or authority label) as JSON."""
    out = []
    for signal in signals:
        labels = dict(signal.labels)
        about = next((labels[name] for name in _ENTITY_LABELS if name in labels), None)
        if signal.name in SUMMARY_FAMILIES and about == slug:
            out.append({"name": signal.name, "labels": labels, "value": signal.value})
    return out


def alert_counts(alerts: Iterable[Mapping[str, Any]]) -> Counter[str]:
    """Return how many alerts name each slug as entity, buyer or authority."""
    counts: Counter[str] = Counter()
    for alert in alerts:
        counts.update([alert["labels"][name] for name in _ENTITY_LABELS if alert["labels"].get(name)])
    return counts


def rank_alerts(alerts: Iterable[Mapping[str, Any]], limit: int) -> list[Mapping[str, Any]]:
    """Return the ``limit`` most severe alerts, the most recent first within a severity."""
    newest = sorted(alerts, key=lambda alert: str(alert.get("since")), reverse=True)
    return sorted(newest, key=lambda alert: SEVERITY_ORDER.get(str(alert.get("severity")), 9))[:limit]


def alert_is_about(alert: Mapping[str, Any], slug: str) -> bool:
    """Return whether an alert names ``slug`` as its entity, buyer, authority or peer."""
    return any(alert["labels"].get(name) == slug for name in ALERT_SUBJECT_LABELS)
