"""The fold's Faust tables: JSON values encoded once, read from their own partition's database.

The fold writes about one table key per record it folds and reads each key it
touches, so Faust's per-access machinery was a large share of a worker's time
(py-spy, while the fold ran): a value went through Faust's codec registry
twice per write (the store and the changelog), a read through it again, and a
read on a RocksDB store looked for its key in every partition's database
unless the key was among the 1,000 last seen (``table_key_index_size``).

``JsonTable`` keeps Faust's table, changelog, recovery and standbys, and
changes only how values cross it: the table is declared with raw values (``value_type=bytes``),
written as ``orjson`` bytes (the changelog holds the same JSON as before), and
a read goes to the database of the key's partition (our partitioner puts
every key of a fold group on its events' partition, in the changelog and in
the store) and is decoded by ``orjson``.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import faust
import orjson
from faust.stores.rocksdb import Store as RocksDBStore

from tracker.kafka.partitioning import partition_for
from tracker.worker.faust_fixes import PartitionedWrites

__all__ = ["ROCKSDB_OPTIONS", "JsonTable", "RecordedTable"]

#: Per database: a worker opens one per table and partition, standbys included (two tables and
#: 8 partitions make 16 to 32). Faust's defaults give each up to three 64 MB memtables and a
#: 2 GB block cache, so a worker's memory grew with the number of databases, not with its state.
ROCKSDB_OPTIONS = {
    "write_buffer_size": 4 * 1024 * 1024,
    "max_write_buffer_number": 2,
    "block_cache_size": 8 * 1024 * 1024,
}


class RecordedTable(faust.Table):  # type: ignore[type-arg]
    """A Faust table that counts the changelog records its recovery (active or standby) applies."""

    records_read: Any = None  # the metric child to increment, set after construction

    def apply_changelog_batch(self, batch: Any) -> None:
        """Apply changelog records to the local store, counting them."""
        events = list(batch)
        if self.records_read is not None:
            self.records_read.inc(len(events))
        super().apply_changelog_batch(events)


class JsonTable(MutableMapping[str, Any]):
    """A Faust table of JSON values (declared with ``value_type=bytes``: raw values), keyed by str."""

    def __init__(self, table: faust.Table, partitions: int) -> None:  # type: ignore[type-arg]
        self.table = table
        self.partitions = partitions
        self.writes = PartitionedWrites(table, partitions)

    def hold(self, events: Any) -> None:
        """Remember one event of each partition of the batch being folded (see PartitionedWrites)."""
        self.writes.hold(events)

    def raw(self, key: str) -> bytes | None:
        """Return the encoded value of ``key``, or None."""
        store = self.table.data
        if isinstance(store, RocksDBStore):
            # The store's own lookup asks each partition's database in turn for a key it has not
            # seen lately; the key's partition is known. Keys are slugs, so JSON-encoded alike
            # by orjson and by Faust's codec.
            db = store._dbs.get(partition_for(key, self.partitions))
            return None if db is None else db.get(orjson.dumps(key))
        value: bytes | None = store.get(key)
        return value

    def __getitem__(self, key: str) -> Any:
        raw = self.raw(key)
        if raw is None:
            raise KeyError(key)
        return orjson.loads(raw)

    def get(self, key: str, default: Any = None) -> Any:
        """Return the decoded value of ``key``, or ``default``."""
        raw = self.raw(key)
        return default if raw is None else orjson.loads(raw)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.raw(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(self.table.data)

    def __len__(self) -> int:
        return len(self.table.data)

    def __setitem__(self, key: str, value: Any) -> None:
        self.writes[key] = orjson.dumps(value)

    def __delitem__(self, key: str) -> None:
        del self.writes[key]
