"""The table index: every fact id it was given or read is located, before and after its entries are sorted."""

from __future__ import annotations

from typing import Any

import pytest

from tracker.core.fx import rates_key
from tracker.kafka.partitioning import partition_for
from tracker.worker.index import RECENT_LIMIT, TableIndex

pytestmark = pytest.mark.unit

PARTITIONS = 4


def series(*ids: str) -> dict[str, Any]:
    return {"facts": {event_id: ["digest", "2024", 1.0] for event_id in ids}, "retracted": {}}


def test_ids_read_from_the_table_and_ids_added_later_are_all_located() -> None:
    # More ids than a partition keeps unsorted, so some lookups go through the sorted array.
    read = [f"read-{n}" for n in range(RECENT_LIMIT + 10)]
    added = [f"added-{n}" for n in range(RECENT_LIMIT + 10)]
    table = {"acme/usage:acme:dau": series(*read), "#0/retractions/1": series("not-a-series")}
    index = TableIndex(table, PARTITIONS)
    home = partition_for("acme", PARTITIONS)
    index.ensure(home)

    index.add_series("acme/usage:acme:mau", added)

    found_read = [index.locate(home, event_id) for event_id in read]
    found_added = [index.locate(home, event_id) for event_id in added]
    assert all("acme/usage:acme:dau" in keys for keys in found_read)
    assert all("acme/usage:acme:mau" in keys for keys in found_added)
    # Ids are hashed to 32 bits with str's per-process seed: a read id and an added id collide
    # in about 1.6% of runs and each then also gets the other's key, which the fold rules out.
    assert sum(len(keys) > 1 for keys in found_read + found_added) <= 4
    assert index.group("acme") == {"acme/usage:acme:dau", "acme/usage:acme:mau"}


def test_an_id_held_by_two_series_locates_both_once() -> None:
    index = TableIndex({}, PARTITIONS)
    home = partition_for("acme", PARTITIONS)
    index.ensure(home)

    for _ in range(2):
        index.add_series("acme/usage:acme:dau", ["shared"])
        index.add_series("acme/usage:acme:mau", ["shared"])
    index.add_series("acme/usage:acme:wau", [f"filler-{n}" for n in range(RECENT_LIMIT)])
    index.add_series("acme/usage:acme:dau", ["shared"])

    assert sorted(index.locate(home, "shared")) == ["acme/usage:acme:dau", "acme/usage:acme:mau"]


def test_a_partition_not_indexed_yet_is_read_from_the_table_when_first_needed() -> None:
    table = {"acme/usage:acme:dau": series("old")}
    index = TableIndex(table, PARTITIONS)
    home = partition_for("acme", PARTITIONS)
    index.add_series("acme/usage:acme:dau", ["old"])
    table["acme/usage:acme:dau"] = series("old", "new")

    assert index.locate(home, "new") == ["acme/usage:acme:dau"]
    assert index.locate(home, "old") == ["acme/usage:acme:dau"]
    assert all(index.locate(p, "old") == [] for p in range(PARTITIONS) if p != home)


def test_a_group_reads_the_exchange_rates_its_partition_holds_and_no_other() -> None:
    home = partition_for("acme", PARTITIONS)
    stored, written = rates_key(home, "fx-stored"), rates_key(home, "fx-written")
    elsewhere = rates_key((home + 1) % PARTITIONS, "fx-elsewhere")
    table = {"acme/usage:acme:dau": series("a"), stored: series("fx-stored"), elsewhere: series("fx-elsewhere")}
    index = TableIndex(table, PARTITIONS)

    before = set(index.group("acme"))
    index.add_rates(written)
    table[written] = series("fx-written")

    assert before == {"acme/usage:acme:dau", stored}
    assert index.group("acme") == {"acme/usage:acme:dau", stored, written}
    index.reset()
    assert index.group("acme") == {"acme/usage:acme:dau", stored, written}
