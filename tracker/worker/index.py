"""An in-memory index of the series table: which key holds each fact, which keys each fold group has.

The table is the state; this index only saves scanning it. A partition is
indexed from the table the first time it is needed (after recovery, so the
table holds it whole), kept current as batches are written, and forgotten
when partitions move (``reset``).
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet

from tracker.core.fold import SeriesValue
from tracker.kafka.partitioning import partition_for

__all__ = ["TableIndex"]


class TableIndex:
    """Fact ids and group members of the series table, per indexed partition."""

    def __init__(self, table: Mapping[str, SeriesValue], partitions: int) -> None:
        self.table = table
        self.partitions = partitions
        # By the id's hash (an int is half the memory of the id: a million facts, ~30 MB less);
        # one key per hash, a tuple when a hand-set id was reused across series or two ids
        # collide. A candidate is only a candidate: the fold checks the series holds the id.
        self._ids: dict[int, str | tuple[str, ...]] = {}
        self._groups: dict[str, set[str]] = {}
        self._indexed: set[int] = set()

    def partition_of(self, key: str) -> int:
        """Return the partition of a table key."""
        return partition_for(key, self.partitions)

    def ensure(self, partition: int) -> None:
        """Index one partition from the table unless it is indexed already."""
        if partition in self._indexed:
            return
        for key, value in list(self.table.items()):
            if not key.startswith("#") and self.partition_of(key) == partition:
                self.add_series(key, value["facts"])
        self._indexed.add(partition)

    def locate(self, partition: int, event_id: str) -> list[str]:
        """Return the keys on ``partition`` that may hold ``event_id``."""
        self.ensure(partition)
        found = self._ids.get(hash(event_id))
        if found is None:
            return []
        keys = [found] if isinstance(found, str) else list(found)
        # Each partition's copy of a retraction marks only the series of its own partition:
        # a batch of another partition must never write (a stale copy of) this one's keys.
        return [key for key in keys if self.partition_of(key) == partition]

    def group(self, fold_key: str) -> AbstractSet[str]:
        """Return the series keys of a fold group (the index's own set: read it, do not keep it)."""
        self.ensure(self.partition_of(fold_key))
        return self._groups.get(fold_key, frozenset())

    def add_series(self, key: str, event_ids: object) -> None:
        """Record a series key and the fact ids it holds."""
        self._groups.setdefault(key.partition("/")[0], set()).add(key)
        for event_id in event_ids:  # type: ignore[attr-defined]
            slot = hash(event_id)
            known = self._ids.get(slot)
            if known is None or known == key:
                self._ids[slot] = key
            elif isinstance(known, str):
                self._ids[slot] = (known, key)
            elif key not in known:
                self._ids[slot] = (*known, key)

    def reset(self) -> None:
        """Forget everything (partitions were assigned or revoked)."""
        self._ids.clear()
        self._groups.clear()
        self._indexed.clear()
