"""Where each fact is folded: its subject, its series, and its fold key.

A series is the state one signal family is computed from (an entity's usage
of one metric, an entity's investments, a buyer's orders of one product, one
export regime). Series that a peer ratio compares must meet on one partition,
so every subject is folded under the key of its peer group: the connected
component of the configured peer pairs, named by its smallest slug.
Retractions and exchange rates belong to no series: every partition folds
them (``tracker.core.fx``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import NamedTuple

from tracker.core.events import (
    ChipDeliveryReported,
    Event,
    EventRetracted,
    ExportRuleChanged,
    FxRateReported,
    InvestmentAnnounced,
    UsageReported,
)
from tracker.errors import ConfigurationError

__all__ = ["INVESTMENT_METRIC", "PeerPair", "Router", "SeriesId", "parse_peers"]

INVESTMENT_METRIC = "investment_usd"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
PEER_METRICS = frozenset({"mau", "wau", "dau", "tokens_per_day", "tokens_per_month", INVESTMENT_METRIC})


@dataclass(frozen=True)
class PeerPair:
    """A configured comparison: ``entity`` divided by ``peer`` on ``metric``."""

    entity: str
    peer: str
    metric: str


def parse_peers(text: str) -> tuple[PeerPair, ...]:
    """Parse ``entity:peer:metric`` pairs separated by commas; raise ConfigurationError."""
    pairs = []
    for item in filter(None, (part.strip() for part in text.split(","))):
        parts = item.split(":")
        if len(parts) != 3 or not all(parts):
            raise ConfigurationError(f"peers: {item!r} is not entity:peer:metric")
        if parts[2] not in PEER_METRICS:
            raise ConfigurationError(f"peers: metric {parts[2]!r} is not one of {sorted(PEER_METRICS)}")
        bad = [part for part in parts[:2] if not _SLUG.match(part)]
        if bad:
            raise ConfigurationError(f"peers: {bad[0]!r} in {item!r} is not a slug [a-z0-9][a-z0-9_-]*")
        if parts[0] == parts[1]:
            raise ConfigurationError(f"peers: {item!r} compares an entity with itself")
        pairs.append(PeerPair(*parts))
    return tuple(dict.fromkeys(pairs))


class SeriesId(NamedTuple):
    """The identity of a series: its kind and the labels that name it (a tuple: the fold makes one per event)."""

    kind: str
    labels: tuple[str, ...]

    @property
    def subject(self) -> str:
        """Return the entity the series is about (its first label)."""
        return self.labels[0]

    def encode(self) -> str:
        """Return the series as text, e.g. ``usage:bytedance:tokens_per_day``."""
        return ":".join((self.kind, *self.labels))

    @classmethod
    def decode(cls, text: str) -> SeriesId:
        """Parse the text form of a series."""
        kind, *labels = text.split(":")
        return cls(kind, tuple(labels))


def series_of(event: Event) -> SeriesId | None:
    """Return the series a fact belongs to; None for what every partition folds (retractions, exchange rates)."""
    match event:
        case UsageReported():
            return SeriesId("usage", (event.entity, event.metric))
        case InvestmentAnnounced():
            return SeriesId("investment", (event.entity,))
        case ChipDeliveryReported():
            return SeriesId("chip", (event.buyer_slug, event.vendor, event.product))
        case ExportRuleChanged():
            return SeriesId("export", (event.authority, event.product, event.destination))
        case FxRateReported() | EventRetracted():
            return None


class Router:
    """Map subjects to fold keys and facts to table keys, given the peer pairs."""

    def __init__(self, peers: tuple[PeerPair, ...] = ()) -> None:
        self.peers = tuple(dict.fromkeys(peers))
        parent: dict[str, str] = {}

        def find(slug: str) -> str:
            parent.setdefault(slug, slug)
            while parent[slug] != slug:
                parent[slug] = parent[parent[slug]]
                slug = parent[slug]
            return slug

        for pair in self.peers:
            a, b = find(pair.entity), find(pair.peer)
            if a != b:
                parent[max(a, b)] = min(a, b)
        self._group = {slug: find(slug) for slug in list(parent)}

    def fold_key(self, subject: str) -> str:
        """Return the key a subject is folded under: its peer group, else itself."""
        return self._group.get(subject, subject)

    def peers_in(self, fold_key: str) -> tuple[PeerPair, ...]:
        """Return the peer pairs whose both sides fold under ``fold_key``."""
        return tuple(pair for pair in self.peers if self.fold_key(pair.entity) == fold_key)

    def table_key(self, series: SeriesId) -> str:
        """Return the table key of a series: ``<fold key>/<series>``."""
        return f"{self.fold_key(series.subject)}/{series.encode()}"


# An entry holds a SeriesId, its label strings and the key: about 450 bytes. 65,536 entries
# held ~30 MB for no measurable speed; a batch's groups are split while it is evaluated.
@functools.lru_cache(maxsize=1 << 12)
def split_table_key(key: str) -> tuple[str, SeriesId]:
    """Split a table key into its fold key and its series."""
    # Rule evaluation splits the keys of every group it reads, batch after batch.
    fold_key, _, series = key.partition("/")
    return fold_key, SeriesId.decode(series)
