"""An in-memory index of the series table: which key holds each fact, which keys each fold group has.

The table is the state; this index only saves scanning it. A partition is
indexed from the table the first time it is needed (after recovery, so the
table holds it whole), kept current as batches are written, and forgotten
when partitions move (``reset``).

A million facts is a million index entries, so an entry is one 64-bit number
in a sorted array: the top half a hash of the fact id, the bottom half the
number of the series key holding it. A dict from id hashes to key strings
took about 220 bytes per fact (an int object, a dict slot and a copy of the
key string per fact: 42 MB at 200,000 events); the array takes 8, in one
block rather than millions of small objects scattered between each batch's
short-lived ones.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from itertools import chain

from tracker.core.fold import SeriesValue
from tracker.core.fx import is_rates_key
from tracker.kafka.partitioning import partition_for

__all__ = ["RECENT_LIMIT", "TableIndex"]

#: Entries a partition keeps in a dict before they are sorted into its array. Re-sorting costs
#: a pass over the array (a few milliseconds for 100,000 facts), so it must not happen per fact.
RECENT_LIMIT = 8192

_KEY_BITS = 32
_KEY_MASK = (1 << _KEY_BITS) - 1


def _slot(event_id: str) -> int:
    # 32 bits of the id's hash: a million ids on a partition give a lookup a spurious
    # candidate about once in four thousand, which the fold then reads and rules out.
    return hash(event_id) & _KEY_MASK


class _FactIds:
    """One partition's fact ids: (id hash, key number) pairs, sorted in an array, plus recent ones."""

    def __init__(self) -> None:
        self.packed = array("Q")
        self.recent: dict[int, int | tuple[int, ...]] = {}

    def add(self, slot: int, number: int) -> None:
        """Record that key ``number`` holds an id hashing to ``slot``."""
        known = self.recent.get(slot)
        if known is None or known == number:
            self.recent[slot] = number
        elif isinstance(known, int):
            self.recent[slot] = (known, number)
        elif number not in known:
            self.recent[slot] = (*known, number)
        if len(self.recent) >= RECENT_LIMIT:
            self._merge()

    def numbers(self, slot: int) -> list[int]:
        """Return the key numbers recorded for ``slot`` (perhaps twice: callers deduplicate)."""
        low = bisect_left(self.packed, slot << _KEY_BITS)
        high = bisect_left(self.packed, (slot + 1) << _KEY_BITS, low)
        found = [packed & _KEY_MASK for packed in self.packed[low:high]]
        recent = self.recent.get(slot)
        if isinstance(recent, int):
            found.append(recent)
        elif recent is not None:
            found.extend(recent)
        return found

    def _merge(self) -> None:
        recent = (
            (slot << _KEY_BITS) | number
            for slot, numbers in self.recent.items()
            for number in (numbers if isinstance(numbers, tuple) else (numbers,))
        )
        # The array is one sorted run: sorting it with the new entries is a merge, done in C.
        self.packed = array("Q", sorted(chain(self.packed, recent)))
        self.recent.clear()


class TableIndex:
    """Fact ids and group members of the series table, per indexed partition."""

    def __init__(self, table: Mapping[str, SeriesValue], partitions: int) -> None:
        self.table = table
        self.partitions = partitions
        self._facts: dict[int, _FactIds] = {}
        # Each series key has a number, stored in the fact entries, and one string kept here.
        self._numbers: dict[str, int] = {}
        self._keys: list[str] = []
        self._homes: list[_FactIds] = []
        # A set per fold group: alert evaluation asks whether a key is a member, group after group.
        self._groups: dict[str, set[str]] = {}
        # The fold keys of each indexed partition: a read lists a partition's keys without hashing every group's.
        self._partition_groups: dict[int, set[str]] = {}
        # The rates keys each indexed partition holds: asking the store per group read was 12%
        # of a worker's CPU (a RocksDB lookup for each of the 16 buckets).
        self._rates: dict[int, set[str]] = {}

    def partition_of(self, key: str) -> int:
        """Return the partition of a table key."""
        return partition_for(key, self.partitions)

    def ensure(self, partition: int) -> None:
        """Index one partition from the table unless it is indexed already."""
        if partition in self._facts:
            return
        self._facts[partition] = _FactIds()
        self._rates[partition] = set()
        self._partition_groups[partition] = set()
        for key in list(self.table):
            if key.startswith("#"):
                if is_rates_key(key) and self.partition_of(key) == partition:
                    self._rates[partition].add(key)
            elif self.partition_of(key) == partition:
                # One value decoded at a time: a partition's whole state decoded at once is
                # several times its encoded size.
                value = self.table.get(key)
                if value is not None:
                    self.add_series(key, value["facts"])

    def locate(self, partition: int, event_id: str) -> list[str]:
        """Return the keys on ``partition`` that may hold ``event_id``.

        A candidate is only a candidate (ids whose hashes collide share entries):
        the fold checks that the series holds the id.
        """
        self.ensure(partition)
        numbers = self._facts[partition].numbers(_slot(event_id))
        return [self._keys[number] for number in dict.fromkeys(numbers)]

    def group(self, fold_key: str) -> AbstractSet[str]:
        """Return the keys a fold group's signals read: its series, and its partition's exchange rates.

        Without rates this is the index's own set: read it, do not keep it.
        """
        partition = self.partition_of(fold_key)
        self.ensure(partition)
        keys: AbstractSet[str] = self._groups.get(fold_key, frozenset())
        rates = self._rates[partition]
        return keys | rates if rates else keys

    def fold_keys(self, partition: int) -> list[str]:
        """Return the fold groups with series on ``partition``."""
        self.ensure(partition)
        return [fold_key for fold_key in self._groups if self.partition_of(fold_key) == partition]

    def keys(self, partition: int) -> list[str]:
        """Return the series keys and rates keys of ``partition`` (not its tombstones)."""
        self.ensure(partition)
        groups = self._partition_groups[partition]
        return [key for fold_key in groups for key in self._groups[fold_key]] + sorted(self._rates[partition])

    def add_rates(self, key: str) -> None:
        """Record that a rates key holds exchange rates now."""
        rates = self._rates.get(self.partition_of(key))
        if rates is not None:  # else the partition is read whole from the table when first needed
            rates.add(key)

    def add_series(self, key: str, event_ids: Iterable[str]) -> None:
        """Record a series key and the fact ids it holds.

        Nothing is recorded for a partition not indexed yet: it is read whole from
        the table when first needed, and the table holds what is written here.
        """
        number = self._numbers.get(key)
        if number is None:
            partition = self.partition_of(key)
            if partition not in self._facts:
                return
            number = self._numbers[key] = len(self._keys)
            self._keys.append(key)
            self._homes.append(self._facts[partition])
            fold_key = key.partition("/")[0]
            self._groups.setdefault(fold_key, set()).add(key)
            self._partition_groups[partition].add(fold_key)
        facts = self._homes[number]
        for event_id in event_ids:
            facts.add(_slot(event_id), number)

    def reset(self) -> None:
        """Forget everything (partitions were assigned or revoked)."""
        self._facts.clear()
        self._numbers.clear()
        self._keys.clear()
        self._homes.clear()
        self._groups.clear()
        self._partition_groups.clear()
        self._rates.clear()
