"""What the overview needs of the active alerts, kept between reads while the fold has not moved.

Listing the active alerts decodes every value of the groups table the worker
owns (0.5 s at 200,000 events and 23,000 alerts); the overview wants only the
most severe few, a count per entity and the total, and an entity page only
that entity's alerts. The digest keeps those (and, per entity, the groups-table
keys holding its alerts), not the alerts themselves, and is read again when
the fold has folded a batch or the partitions moved: alerts change only there.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracker.core.overview import ALERT_SUBJECT_LABELS, alert_counts, rank_alerts
from tracker.core.queries import MAX_LIMIT

__all__ = ["AlertDigest", "Digest"]


@dataclass(frozen=True)
class Digest:
    """The most severe alerts (at most ``MAX_LIMIT``), counts per entity, the total, and where each entity's are."""

    ranked: list[Mapping[str, Any]]
    counts: Counter[str]
    total: int
    where: dict[str, list[str]] = field(default_factory=dict)


class AlertDigest:
    """Compute the digest of the groups table's alerts, again only when ``moment`` changes."""

    def __init__(self, groups: Callable[[], Mapping[str, Any]], moment: Callable[[], Hashable]) -> None:
        self.groups = groups
        self.moment = moment
        self._at: Hashable = None
        self._digest: Digest | None = None

    def get(self) -> Digest:
        """Return the digest of the alerts active now."""
        at = self.moment()
        if self._digest is None or at != self._at:
            self._digest = self._compute()
            self._at = at
        return self._digest

    def _compute(self) -> Digest:
        alerts = []
        where: defaultdict[str, set[str]] = defaultdict(set)
        for key, group in self.groups().items():
            for entry in group["alerts"].values():
                alert = {**entry["alert"], "provenance": entry["provenance"]}
                alerts.append(alert)
                for name in ALERT_SUBJECT_LABELS:
                    if slug := alert["labels"].get(name):
                        where[slug].add(key)
        alerts.sort(key=lambda alert: (alert["rule"], alert["fingerprint"]))  # the order /v1/alerts lists
        return Digest(
            rank_alerts(alerts, MAX_LIMIT),
            alert_counts(alerts),
            len(alerts),
            {slug: sorted(keys) for slug, keys in where.items()},
        )
