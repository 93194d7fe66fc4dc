"""Bad input on a real broker: what HTTP, the CLI, the topics and /metrics show a user.

Records reach the events topic three ways: POST /v1/events, ``tracker publish``,
and any other Kafka client. The first two refuse invalid records before Kafka
and say which field is wrong; the worker dead-letters what other clients write
that is not an event, re-routes facts written to the wrong partition and
broadcasts retractions that were written to a single one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import run_cli
from tests.integration.helpers import post, sample, scrape, wait_for_sample
from tests.integration.kafka_helpers import Raw, end_offsets, produce_raw, read_topic
from tracker.kafka.partitioning import partition_for

pytestmark = pytest.mark.integration

SLUG_REASON = "String should match pattern '^[a-z0-9][a-z0-9_-]*$'"
BROADCAST = ("tracker-route", b"broadcast")


def usage(entity: str, figure: float, occurred_on: str, **extra: Any) -> dict[str, Any]:
    """Return a raw usage.reported record (monthly users); ``extra`` adds or replaces fields."""
    return {
        "type": "usage.reported",
        "entity": entity,
        "metric": "mau",
        "value": {"value": figure, "unit": "users"},
        "occurred_on": occurred_on,
        "source": {"name": "desk"},
        **extra,
    }


def ndjson(*records: dict[str, Any] | str) -> bytes:
    """Join records (or literal lines) into a JSON Lines body."""
    lines = [item if isinstance(item, str) else json.dumps(item) for item in records]
    return ("\n".join(lines) + "\n").encode()


def mau(entity: str) -> tuple[str, frozenset[tuple[str, str]]]:
    return sample("market_usage", entity=entity, metric="mau")


def home_partition(entity: str, partitions: int) -> int:
    """Return the partition a fact about ``entity`` (in no peer group) is folded on."""
    return partition_for(entity, partitions)


def other_partition(entity: str, partitions: int) -> int:
    """Return a partition that is not the home of ``entity``."""
    return (home_partition(entity, partitions) + 1) % partitions


# -- POST /v1/events ----------------------------------------------------------------------


def test_post_accepts_the_valid_lines_and_names_the_field_of_each_refused_one(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)
    body = ndjson(
        usage("acme", 1e6, "2025-03", id="ok-acme"),
        usage("acme", 2e6, "2025-04", x=1),
        usage("acme", 3e6, "2025-04", value={"low": 5e12, "high": 1e12, "unit": "users"}),
        "",
        usage("beta", 7e6, "2025-05", id="ok-beta"),
        usage("beta", 8e6, "2025-13"),
        usage("Not A Slug", 9e6, "2025-05"),
    )

    status, document = post(f"{worker.url}/v1/events", body)

    assert status == 202, document
    assert (document["accepted"], document["rejected"], document["failed"]) == (2, 4, 0)
    results = document["results"]
    assert [(result["line"], result["status"]) for result in results] == [
        (1, "accepted"),
        (2, "rejected"),
        (3, "rejected"),
        (5, "accepted"),
        (6, "rejected"),
        (7, "rejected"),
    ]
    assert results[1]["errors"] == [{"path": "x", "reason": "Extra inputs are not permitted"}]
    assert results[2]["errors"] == [{"path": "value", "reason": "low (5e+12) is greater than high (1e+12)"}]
    assert results[4]["errors"] == [{"path": "occurred_on", "reason": "month 13 does not exist"}]
    assert results[5]["errors"] == [{"path": "entity", "reason": SLUG_REASON}]
    accepted = {result["id"]: result for result in results if result["status"] == "accepted"}
    assert set(accepted) == {"ok-acme", "ok-beta"}

    # Only the two accepted records are on the topic, where the receipts say.
    records = read_topic(settings, settings.events_topic, at_least=2)
    assert {(r.partition, r.offset): json.loads(r.value)["id"] for r in records} == {
        (result["partition"], result["offset"]): event_id for event_id, result in accepted.items()
    }
    # And both fold.
    wait_for_sample(worker.url, sample("tracker_events_total", type="usage.reported"), lambda v: v >= 2)
    samples = scrape(worker.url)
    assert samples[sample("tracker_events_total", type="usage.reported")] == 2
    assert samples[mau("acme")] == 1e6
    assert samples[mau("beta")] == 7e6
    assert {dict(labels)["entity"] for name, labels in samples if name == "market_usage"} == {"acme", "beta"}


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b'[{"type": "usage.reported"},', "not JSON: "),
        (b'{"type": "usage.reported", "entity": "\xff"}', "not UTF-8: invalid byte at position 38"),
        (b"  \n ", "empty input: expected a JSON object, a JSON array or JSON Lines"),
    ],
    ids=["broken-array", "not-utf8", "empty"],
)
def test_a_body_that_cannot_be_parsed_at_all_is_refused_with_400(settings_factory, worker_factory, body, error):
    settings = settings_factory()
    worker = worker_factory(settings)

    status, document = post(f"{worker.url}/v1/events", body)

    assert status == 400, document
    assert str(document["error"]).startswith(error)
    assert set(document) == {"error"}
    assert sum(end_offsets(settings, settings.events_topic).values()) == 0

    # The worker keeps serving.
    status, document = post(f"{worker.url}/v1/events", ndjson(usage("acme", 5.0, "2025-01")))
    assert status == 202, document
    assert wait_for_sample(worker.url, mau("acme")) == 5.0


def test_a_body_of_only_invalid_records_is_refused_with_422_and_publishes_nothing(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)
    # A line of plain text is one refused JSON Lines record, not an unparsable body.
    body = ndjson(usage("acme", 1.0, "2025-13"), "not json", {"type": "chip.sold"})

    status, document = post(f"{worker.url}/v1/events", body)

    assert status == 422, document
    assert (document["accepted"], document["rejected"], document["failed"]) == (0, 3, 0)
    errors = [(result["line"], result["status"], result["errors"]) for result in document["results"]]
    assert errors[0] == (1, "rejected", [{"path": "occurred_on", "reason": "month 13 does not exist"}])
    assert errors[1][:2] == (2, "rejected")
    assert [error["path"] for error in errors[1][2]] == [""]
    assert errors[1][2][0]["reason"].startswith("not JSON: ")
    assert errors[2][:2] == (3, "rejected")
    assert [error["path"] for error in errors[2][2]] == ["type"]
    assert sum(end_offsets(settings, settings.events_topic).values()) == 0

    status, document = post(f"{worker.url}/v1/events", ndjson(usage("acme", 5.0, "2025-01")))
    assert status == 202, document
    assert wait_for_sample(worker.url, mau("acme")) == 5.0


def test_a_body_over_the_limit_is_refused_with_413_and_one_at_the_limit_is_accepted(settings_factory, worker_factory):
    settings = settings_factory(max_body_bytes=2048)
    worker = worker_factory(settings)
    line = json.dumps(usage("fits", 42.0, "2025-01"))
    at_limit = line.encode() + b"\n" + b" " * (2048 - len(line) - 1)
    too_large = ndjson(*[usage("oversize", float(n), "2025-01") for n in range(1, 25)])
    assert len(at_limit) == 2048 < len(too_large)

    status, document = post(f"{worker.url}/v1/events", too_large)

    assert status == 413, document
    assert document == {"error": "request body is larger than 2048 bytes"}
    assert sum(end_offsets(settings, settings.events_topic).values()) == 0

    status, document = post(f"{worker.url}/v1/events", at_limit)

    assert status == 202, document
    assert document["accepted"] == 1
    assert wait_for_sample(worker.url, mau("fits")) == 42.0
    assert mau("oversize") not in scrape(worker.url)
    assert sum(end_offsets(settings, settings.events_topic).values()) == 1


# -- tracker publish ----------------------------------------------------------------------


def write_mixed_file(path: Path) -> Path:
    """Write a JSON Lines file: valid lines 1 and 5, a blank line 3, invalid lines 2, 4, 6, 7."""
    path.write_bytes(
        ndjson(
            usage("acme", 1e6, "2025-03"),
            usage("acme", 2e6, "2025-04", x=1),
            "",
            usage("acme", 3e6, "2025-04", value={"low": 5e12, "high": 1e12, "unit": "users"}),
            usage("beta", 7e6, "2025-05"),
            usage("beta", 8e6, "2025-13"),
            usage("Not A Slug", 9e6, "2025-05"),
        )
    )
    return path


def test_publish_lists_every_invalid_line_exits_1_and_publishes_the_valid_ones(
    settings_factory, worker_factory, tmp_path
):
    settings = settings_factory()
    worker = worker_factory(settings)
    events = write_mixed_file(tmp_path / "mixed.jsonl")

    result = run_cli(settings, "publish", str(events))

    assert result.returncode == 1, result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("line ")] == [
        "line 2: x: Extra inputs are not permitted",
        "line 4: value: low (5e+12) is greater than high (1e+12)",
        "line 6: occurred_on: month 13 does not exist",
        f"line 7: entity: {SLUG_REASON}",
    ]
    assert f"published 2, rejected 4, failed 0 -> {settings.events_topic}" in result.stdout
    wait_for_sample(worker.url, sample("tracker_events_total", type="usage.reported"), lambda v: v >= 2)
    samples = scrape(worker.url)
    assert samples[sample("tracker_events_total", type="usage.reported")] == 2
    assert (samples[mau("acme")], samples[mau("beta")]) == (1e6, 7e6)
    assert sum(end_offsets(settings, settings.events_topic).values()) == 2


def test_publish_strict_publishes_nothing_when_one_line_is_invalid(settings_factory, worker_factory, tmp_path):
    settings = settings_factory()
    worker = worker_factory(settings)
    events = tmp_path / "one-bad.jsonl"
    events.write_bytes(ndjson(usage("acme", 1e6, "2025-03"), usage("acme", 2e6, "2025-04", x=1)))

    result = run_cli(settings, "publish", "--strict", str(events))

    assert result.returncode == 1, result.stderr
    assert "line 2: x: Extra inputs are not permitted" in result.stderr.splitlines()
    assert "--strict: 1 invalid record(s), nothing published" in result.stderr
    assert "published" not in result.stdout
    assert end_offsets(settings, settings.events_topic) == dict.fromkeys(range(settings.partitions), 0)
    assert scrape(worker.url).get(sample("tracker_events_total", type="usage.reported"), 0) == 0


# -- records written by other Kafka clients ------------------------------------------------


def test_foreign_records_that_are_not_events_are_dead_lettered_and_the_events_around_them_fold(
    settings_factory, worker_factory
):
    settings = settings_factory()
    worker = worker_factory(settings)
    # Everything on the home partition of acme, in order: valid, three invalid, valid.
    home = home_partition("acme", settings.partitions)
    records = [
        Raw(json.dumps(usage("acme", 100.0, "2025-01")).encode(), b"acme", home),
        Raw(b"not json", None, home),
        Raw(b'{"type":"usage.reported"}', b"acme", home),
        Raw(b"\xff\xfe", None, home),
        Raw(json.dumps(usage("acme", 121.0, "2025-03")).encode(), b"acme", home),
    ]

    placed = produce_raw(settings, settings.events_topic, records)

    letters = [json.loads(r.value) for r in read_topic(settings, settings.dead_letter_topic, 3)]
    by_offset = {letter["offset"]: letter for letter in letters}
    assert len(letters) == 3
    assert {(letter["topic"], letter["partition"]) for letter in letters} == {(settings.events_topic, home)}
    assert sorted(by_offset) == [offset for _, offset in placed[1:4]]
    not_json, incomplete, not_utf8 = (by_offset[offset] for _, offset in placed[1:4])
    assert not_json["reason"] == "invalid_json"
    assert not_json["value"] == "not json"
    assert [error["path"] for error in not_json["errors"]] == [""]
    assert not_json["errors"][0]["reason"].startswith("not JSON: ")
    assert incomplete["reason"] == "invalid_event"
    assert incomplete["value"] == '{"type":"usage.reported"}'
    assert sorted((e["path"], e["reason"]) for e in incomplete["errors"]) == [
        (field, "Field required") for field in ("entity", "metric", "occurred_on", "source", "value")
    ]
    assert not_utf8["reason"] == "invalid_json"
    assert not_utf8["value"] == "\ufffd\ufffd"
    assert not_utf8["errors"] == [{"path": "", "reason": "not UTF-8: invalid byte at position 0"}]

    rejected_json = sample("tracker_events_rejected_total", reason="invalid_json")
    assert wait_for_sample(worker.url, rejected_json, lambda v: v >= 2) == 2
    samples = scrape(worker.url)
    assert samples[sample("tracker_events_rejected_total", reason="invalid_event")] == 1
    # The valid records on either side folded: latest figure and the growth between them.
    assert wait_for_sample(worker.url, mau("acme"), lambda v: v == 121.0) == 121.0
    growth = sample("market_usage_growth_monthly_ratio", entity="acme", metric="mau")
    assert scrape(worker.url)[growth] == pytest.approx(0.1)
    assert scrape(worker.url)[sample("tracker_events_total", type="usage.reported")] == 2


def test_a_record_with_no_value_is_dead_lettered_and_does_not_stop_the_fold(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)
    home = home_partition("acme", settings.partitions)
    records = [
        Raw(None, b"acme", home),
        Raw(json.dumps(usage("acme", 7.0, "2025-01")).encode(), b"acme", home),
    ]

    placed = produce_raw(settings, settings.events_topic, records)

    assert wait_for_sample(worker.url, mau("acme"), timeout=30) == 7.0
    letters = [json.loads(r.value) for r in read_topic(settings, settings.dead_letter_topic, 1)]
    assert [(letter["partition"], letter["offset"]) for letter in letters] == [placed[0]]
    assert letters[0]["topic"] == settings.events_topic
    assert letters[0]["reason"] and letters[0]["errors"]


def test_a_fact_written_to_the_wrong_partition_is_rerouted_home_and_folded_once(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)
    unkeyed = usage("acme", 11.0, "2025-02", id="stray-unkeyed")
    miskeyed = usage("beta", 22.0, "2025-02", id="stray-miskeyed")
    wrong = {
        "acme": other_partition("acme", settings.partitions),
        "beta": other_partition("beta", settings.partitions),
    }

    produce_raw(
        settings,
        settings.events_topic,
        [
            Raw(json.dumps(unkeyed).encode(), None, wrong["acme"]),
            Raw(json.dumps(miskeyed).encode(), b"whatever", wrong["beta"]),
        ],
    )

    assert wait_for_sample(worker.url, mau("acme")) == 11.0
    assert wait_for_sample(worker.url, mau("beta")) == 22.0
    samples = scrape(worker.url)
    assert samples[sample("tracker_events_rerouted_total")] == 2
    assert samples[sample("tracker_events_total", type="usage.reported")] == 2
    assert samples[sample("tracker_events_duplicate_total")] == 0
    # On the topic: each original where it was written, and one copy on its home partition.
    copies: dict[str, list[tuple[int, bytes | None]]] = {}
    for record in read_topic(settings, settings.events_topic, at_least=4):
        copies.setdefault(json.loads(record.value)["id"], []).append((record.partition, record.key))
    assert sorted(copies["stray-unkeyed"]) == sorted(
        [(wrong["acme"], None), (home_partition("acme", settings.partitions), b"acme")]
    )
    assert sorted(copies["stray-miskeyed"], key=str) == sorted(
        [(wrong["beta"], b"whatever"), (home_partition("beta", settings.partitions), b"beta")],
        key=str,
    )


def test_a_retraction_written_to_one_partition_is_broadcast_and_removes_the_fact(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)
    facts = ndjson(
        usage("acme", 100.0, "2025-01", id="acme-jan"),
        usage("acme", 400.0, "2025-03", id="acme-mar"),
    )
    assert run_cli(settings, "publish", "-", stdin=facts).returncode == 0
    assert wait_for_sample(worker.url, mau("acme"), lambda v: v == 400.0) == 400.0
    growth = sample("market_usage_growth_monthly_ratio", entity="acme", metric="mau")
    assert scrape(worker.url)[growth] == pytest.approx(1.0)
    retraction = {
        "type": "event.retracted",
        "target_id": "acme-mar",
        "reason": "figure misread",
        "occurred_on": "2025-04",
        "source": {"name": "desk"},
    }

    # No key, no broadcast header, and not the partition the fact lives on.
    produce_raw(
        settings,
        settings.events_topic,
        [Raw(json.dumps(retraction).encode(), None, other_partition("acme", settings.partitions))],
    )

    assert wait_for_sample(worker.url, mau("acme"), lambda v: v == 100.0) == 100.0
    samples = scrape(worker.url)
    assert growth not in samples
    assert samples[sample("tracker_events_rerouted_total")] >= 1
    broadcast = [
        record.partition
        for record in read_topic(settings, settings.events_topic, at_least=3 + settings.partitions)
        if BROADCAST in list(record.headers)
    ]
    assert sorted(broadcast) == list(range(settings.partitions))
