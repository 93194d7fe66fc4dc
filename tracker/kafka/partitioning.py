"""How record and table keys map to partitions.

A key is ``<fold key>/<rest>``: only the part before the first ``/`` is
hashed (Kafka's murmur2, as the Java client and aiokafka do), so every table
key of a fold key lands on the partition its events were routed to. A key
``#<n>/<rest>`` names partition ``n`` outright: per-partition records such as
retraction tombstones use it. The same function partitions the events topic,
the tables' changelogs and every other record the app sends.
"""

from __future__ import annotations

import functools
import json
import random
from collections.abc import Sequence

from aiokafka.partitioner import murmur2

__all__ = ["broadcast_key", "partition_for", "partitioner"]


def partition_for(key: str | bytes, partitions: int) -> int:
    """Return the partition of a key among ``partitions``."""
    if isinstance(key, str) and not key.startswith(('"', "#")):
        return _hashed_text(key.partition("/")[0], partitions)  # table keys: the common case
    raw = key.encode() if isinstance(key, str) else key
    if raw.startswith(b'"'):
        # Faust serializes a table's str keys as JSON strings; hash the text inside.
        raw = json.loads(raw).encode()
    if raw.startswith(b"#"):
        head = raw[1:].partition(b"/")[0]
        if head.isdigit():
            return int(head) % partitions
    return _hashed(raw.partition(b"/")[0], partitions)


@functools.lru_cache(maxsize=1 << 16)
def _hashed(head: bytes, partitions: int) -> int:
    # murmur2 is pure Python in aiokafka; scrapes and folds ask for the same fold keys again and again.
    return int(murmur2(head) & 0x7FFFFFFF) % partitions


@functools.lru_cache(maxsize=1 << 16)
def _hashed_text(head: str, partitions: int) -> int:
    return _hashed(head.encode(), partitions)


def broadcast_key(partition: int, rest: str) -> str:
    """Return a key that lands on ``partition`` whatever the partition count."""
    return f"#{partition}/{rest}"


def partitioner(key: bytes | None, all_partitions: Sequence[int], available: Sequence[int]) -> int:
    """Pick a partition for a record; unkeyed records go to any available partition."""
    if key is None:
        return random.choice(list(available or all_partitions))
    return all_partitions[partition_for(key, len(all_partitions))]
