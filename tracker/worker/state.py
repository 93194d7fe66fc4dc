"""What a worker has folded, read for the partitions it owns now: its two tables, their index, the rules.

The read side (``Reads``, the HTTP routes, the Prometheus collectors) needs the
tables and which partitions are this worker's, not the Faust app that fills
them: ownership is a callable, which the wiring (``tracker.worker.app``) answers
from Faust's assignor and a test answers from plain dicts folded in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from tracker.core.catalogue import Signal
from tracker.core.fold import count_tombstones
from tracker.core.knowledge import known_state
from tracker.core.routing import Router
from tracker.core.rules import RuleSet
from tracker.core.signals import derive_signals
from tracker.kafka.partitioning import partition_for
from tracker.settings import Settings
from tracker.worker.index import TableIndex
from tracker.worker.metrics import owned_state

__all__ = ["WorkerState"]


@dataclass
class WorkerState:
    """The series and groups tables of one worker, their index, and the partitions it owns now."""

    settings: Settings
    router: Router
    rules: RuleSet
    table: Mapping[str, Any]
    groups: Mapping[str, Any]
    index: TableIndex
    owned_partitions: Callable[[], set[int]]
    progress: Callable[[], dict[str, int | bool]] = field(default=dict)

    def signals(self, entity: str | None = None, as_of: str | None = None) -> list[Signal]:
        """Derive the signals of the keys this worker owns (only ``entity``'s fold group), as known on ``as_of``."""
        if entity is None:
            owned = owned_state(self.table, self.owned_partitions(), self.settings.partitions)
            return derive_signals(self.router, known_state(owned, as_of))
        fold_key = self.router.fold_key(entity)
        if partition_for(fold_key, self.settings.partitions) not in self.owned_partitions():
            return []
        return derive_signals(self.router, known_state(self.group_state(fold_key), as_of))

    def group_state(self, fold_key: str) -> dict[str, Any]:
        """Return the stored series of one fold group (its partition must be one this worker holds)."""
        return {key: value for key in self.index.group(fold_key) if (value := self.table.get(key)) is not None}

    def tombstones(self) -> dict[int, int]:
        """Return, per owned partition, how many retracted ids it keeps tombstones for."""
        return {partition: count_tombstones(self.table.get, partition) for partition in self.owned_partitions()}

    def alerts(self) -> list[dict[str, Any]]:
        """Return the pending and firing alerts (with provenance) of the groups this worker owns."""
        owned = owned_state(self.groups, self.owned_partitions(), self.settings.partitions)
        entries = [entry for group in owned.values() for entry in group["alerts"].values()]
        return sorted(entries, key=lambda entry: (entry["alert"]["rule"], entry["alert"]["fingerprint"]))
