"""The worker's table: encoded values per partition, writes kept until taken, partitions loaded and dropped."""

from __future__ import annotations

import orjson
import pytest

from tracker.kafka.partitioning import partition_for
from tracker.worker.state import StateTable

pytestmark = pytest.mark.unit

PARTITIONS = 4


def test_a_value_reads_back_equal_and_is_kept_encoded() -> None:
    table = StateTable("series", PARTITIONS)
    value = {"facts": {"ev-1": ["d", "2024-05", 1.5]}, "retracted": {}}

    table["acme/usage/tokens_per_day"] = value

    assert table["acme/usage/tokens_per_day"] == value
    assert table.raw("acme/usage/tokens_per_day") == orjson.dumps(value)
    assert table.get("other") is None
    assert "acme/usage/tokens_per_day" in table and "other" not in table


def test_writes_are_grouped_by_the_partition_of_their_fold_key_and_taken_once() -> None:
    table = StateTable("series", PARTITIONS)
    table["acme/a"] = {"n": 1}
    table["acme/b"] = {"n": 2}
    table["acme/a"] = {"n": 3}
    table["#2/retractions/7"] = {"n": 4}

    writes = table.take_writes()

    home = partition_for("acme", PARTITIONS)
    assert writes[home]["acme/a"] == orjson.dumps({"n": 3})
    assert set(writes[home]) >= {"acme/a", "acme/b"}
    assert writes[2]["#2/retractions/7"] == orjson.dumps({"n": 4})
    assert table.take_writes() == {}


def test_a_deleted_key_is_written_as_a_tombstone() -> None:
    table = StateTable("groups", PARTITIONS)
    table["acme/group"] = {"alerts": {}}
    table.take_writes()

    del table["acme/group"]

    assert "acme/group" not in table
    assert table.take_writes() == {partition_for("acme", PARTITIONS): {"acme/group": None}}


def test_owned_returns_only_the_given_partitions_and_drop_forgets_one() -> None:
    table = StateTable("series", PARTITIONS)
    keys = [f"entity-{n}/usage" for n in range(40)]
    for key in keys:
        table[key] = {"key": key}
    partition = partition_for(keys[0], PARTITIONS)

    owned = table.owned({partition})

    assert owned and all(partition_for(key, PARTITIONS) == partition for key in owned)
    assert len(table) == len(keys)
    table.drop(partition)
    assert partition not in table.held()
    assert len(table) == len(keys) - len(owned)
    assert keys[0] not in table


def test_load_replaces_a_partition_and_discards_its_unsent_writes() -> None:
    table = StateTable("series", PARTITIONS)
    partition = partition_for("acme", PARTITIONS)
    table["acme/stale"] = {"n": 1}

    table.load(partition, {"acme/fresh": orjson.dumps({"n": 2})})

    assert dict(table.items()) == {"acme/fresh": {"n": 2}}
    assert table.take_writes() == {}
