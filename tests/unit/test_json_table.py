"""JsonTable: values cross a Faust table as orjson bytes and are read back decoded, on the memory store."""

from __future__ import annotations

import faust
import pytest

from tracker.worker.tables import JsonTable

pytestmark = pytest.mark.unit

PARTITIONS = 4


class _Message:
    def __init__(self, partition: int) -> None:
        self.partition = partition


class _Event:
    def __init__(self, partition: int) -> None:
        self.message = _Message(partition)


def test_a_value_written_is_stored_as_json_bytes_and_read_back_decoded() -> None:
    app = faust.App("json-table-test", store="memory://", autodiscover=False)
    table = app.Table("series", default=None, partitions=PARTITIONS, key_type=str, value_type=bytes)
    sent: list[tuple[object, object]] = []
    table.on_key_set = lambda key, value: sent.append((key, value))  # type: ignore[method-assign]
    json_table = JsonTable(table, PARTITIONS)
    json_table.hold([_Event(partition) for partition in range(PARTITIONS)])

    json_table["acme/usage:acme:dau"] = {"facts": {"a": ["d", "2024", 1.5]}, "retracted": {}}

    assert table.data["acme/usage:acme:dau"] == b'{"facts":{"a":["d","2024",1.5]},"retracted":{}}'
    assert sent == [("acme/usage:acme:dau", b'{"facts":{"a":["d","2024",1.5]},"retracted":{}}')]
    assert json_table["acme/usage:acme:dau"] == {"facts": {"a": ["d", "2024", 1.5]}, "retracted": {}}
    assert "acme/usage:acme:dau" in json_table
    assert json_table.get("other/usage:other:dau") is None
    assert list(json_table) == ["acme/usage:acme:dau"]
