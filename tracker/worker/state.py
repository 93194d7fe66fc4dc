"""A worker's table: the latest value of each key, held encoded, per partition, with its unsent writes.

A value lives in memory as the JSON bytes its changelog record carries:
about a third of the memory of the decoded value, and the bytes to send are
ready when the fold writes a key. A read decodes (orjson: a few microseconds
for a busy series). Keys belong to the partition ``partition_for`` gives, the
same partition as the events they come from, so a partition's state can be
loaded from its changelog partition or dropped when it moves to another worker.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import orjson

from tracker.kafka.partitioning import partition_for

__all__ = ["StateTable"]


class StateTable(MutableMapping[str, Any]):
    """Encoded values, with the keys of each partition; every write is also kept until ``take_writes``."""

    def __init__(self, name: str, partitions: int) -> None:
        self.name = name
        self.partitions = partitions
        self._values: dict[str, bytes] = {}
        # The partitions with state here. Which keys a partition has is computed when asked
        # (a rebalance, a read of everything owned): a set of keys per partition held a
        # pointer and a hash per key, ~60 bytes per key (5 MB at 200,000 events).
        self._held: set[int] = set()
        # None: the key was deleted (a tombstone in the changelog).
        self._writes: dict[int, dict[str, bytes | None]] = {}

    def partition_of(self, key: str) -> int:
        """Return the partition of a key."""
        return partition_for(key, self.partitions)

    def raw(self, key: str) -> bytes | None:
        """Return the encoded value of ``key``, or None."""
        return self._values.get(key)

    def __getitem__(self, key: str) -> Any:
        return orjson.loads(self._values[key])

    def get(self, key: str, default: Any = None) -> Any:
        """Return the decoded value of ``key``, or ``default`` (the fold asks this most)."""
        raw = self._values.get(key)
        return default if raw is None else orjson.loads(raw)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._values))

    def __len__(self) -> int:
        return len(self._values)

    def __setitem__(self, key: str, value: Any) -> None:
        partition = self.partition_of(key)
        # orjson hands back its whole output buffer (4 KB at least): keep an exact-size copy.
        raw = bytes(memoryview(orjson.dumps(value)))
        self._held.add(partition)
        self._values[key] = raw
        self._writes.setdefault(partition, {})[key] = raw

    def __delitem__(self, key: str) -> None:
        partition = self.partition_of(key)
        del self._values[key]
        self._writes.setdefault(partition, {})[key] = None

    def partition_items(self, partition: int) -> Iterator[tuple[str, Any]]:
        """Yield the decoded (key, value) pairs of one partition."""
        for key in self._keys_of({partition}):
            raw = self._values.get(key)
            if raw is not None:
                yield key, orjson.loads(raw)

    def owned(self, partitions: set[int]) -> dict[str, Any]:
        """Return the decoded entries of the given partitions."""
        return {key: orjson.loads(self._values[key]) for key in self._keys_of(partitions)}

    def _keys_of(self, partitions: set[int]) -> list[str]:
        if self._held <= partitions:
            return list(self._values)  # the common case: a worker holds what it owns
        return [key for key in list(self._values) if self.partition_of(key) in partitions]

    def take_writes(self) -> dict[int, dict[str, bytes | None]]:
        """Return the writes made since the last call, per partition, and forget them."""
        writes, self._writes = self._writes, {}
        return writes

    def load(self, partition: int, values: dict[str, bytes]) -> None:
        """Replace a partition's state (read back from its changelog)."""
        self.drop(partition)
        self._values.update(values)
        self._held.add(partition)

    def drop(self, partition: int) -> None:
        """Forget a partition (it moved to another worker)."""
        if partition in self._held:
            for key in self._keys_of({partition}):
                del self._values[key]
            self._held.discard(partition)
        self._writes.pop(partition, None)

    def held(self) -> set[int]:
        """Return the partitions whose state is in memory."""
        return set(self._held)
