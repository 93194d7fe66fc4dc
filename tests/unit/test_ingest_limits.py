"""Limits of ingestion (issue 14 finding 4): records per request, errors per answer, a loop that keeps turning.

``split_records`` decodes a body one record at a time and stops past a cap;
``ingest_body`` answers with every count exact but lists only the first
rejections, and decodes in slices so the event loop serves other requests.
The publisher is a fake at the project's own port.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.unit.inprocess_worker import RecordingPublisher
from tracker.core.decode import MAX_RECORD_ERRORS, Record, parse_json, split_records, validate_event
from tracker.errors import EventValidationError, InputFormatError, TooManyRecords
from tracker.settings import Settings
from tracker.worker.api import LISTED_REJECTIONS, Ingestion, ingest_body

pytestmark = pytest.mark.unit

USAGE = {
    "type": "usage.reported",
    "entity": "doubao",
    "metric": "mau",
    "value": {"value": 159e6, "unit": "users"},
    "occurred_on": "2025-10",
    "source": {"name": "QuestMobile"},
}


def usage(number: int) -> dict[str, Any]:
    return {**USAGE, "id": f"usage-{number}"}


def ingestion(cap: int = 10_000, fail: bool = False) -> Ingestion:
    return Ingestion(Settings(max_records_per_request=cap), RecordingPublisher(fail))


def expected_records(text: str) -> list[Record]:
    """Return the records of a JSON array text as the whole-body parse made them (the old way)."""
    records = []
    for index, item in enumerate(parse_json(text), start=1):
        try:
            records.append(Record(index, validate_event(item)))
        except EventValidationError as exc:
            records.append(Record(index, None, exc.errors))
    return records


def outcome(text: str) -> list[Record] | str:
    try:
        return list(split_records(text))
    except InputFormatError as exc:
        return f"refused: {exc}"


def old_outcome(text: str) -> list[Record] | str:
    try:
        return expected_records(text)
    except InputFormatError as exc:
        return f"refused: {exc}"


# --- records per request ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "[" + ",".join(["1"] * 6) + "]",
        "\n".join(["1"] * 6),
        "\n\n".join(json.dumps(usage(n)) for n in range(6)),
    ],
    ids=["array", "lines", "objects on lines"],
)
def test_a_body_past_the_cap_is_refused_before_its_next_record_is_decoded(body: str) -> None:
    assert len(list(split_records(body, max_records=6))) == 6

    with pytest.raises(TooManyRecords) as refused:
        list(split_records(body, max_records=5))

    assert str(refused.value) == "more than 5 records"
    assert refused.value.limit == 5


def test_a_huge_array_is_refused_at_the_cap_without_decoding_the_rest() -> None:
    body = "[" + "{}," * (5 * 1024 * 1024) + "{}]"  # 16 MiB: five million dicts if decoded
    started = time.perf_counter()

    with pytest.raises(TooManyRecords):
        list(split_records(body, max_records=10_000))

    assert time.perf_counter() - started < 1.0  # the whole array took 9 s and 2 GB


def test_a_broken_array_past_the_cap_is_still_refused_for_the_cap() -> None:
    with pytest.raises(TooManyRecords):
        list(split_records("[1, 1, 1, 1 oops", max_records=3))


# --- the array scan agrees with the whole-body parse ----------------------------------------------------------

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=5),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=8,
)
_spaces = st.text(alphabet=" \t\n\r", max_size=2)


@st.composite
def _array_texts(draw: st.DrawFn) -> str:
    items = draw(st.lists(_json | st.just(USAGE), max_size=5))
    text = draw(_spaces) + "[" + ",".join(draw(_spaces) + json.dumps(item) + draw(_spaces) for item in items) + "]"
    text += draw(_spaces)
    if draw(st.booleans()):  # break it: cut it, or put a character somewhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(["", ",", "]", "[", "x", '"', "NaN", "\u00a0", " 1"])) + text[at + 1 :]
    return text


@given(_array_texts())
def test_an_array_splits_as_the_whole_body_parse_did(text: str) -> None:
    if not text.lstrip().startswith("["):
        return  # not an array any more: another branch of split_records

    assert outcome(text) == old_outcome(text)


@pytest.mark.parametrize(
    "text",
    [
        "[",
        "[]x",
        "[1,]",
        "[,1]",
        "[1 2]",
        "[1,,2]",
        "[NaN]",
        "[1]]",
        '["a]',
        "[\u00a01]",
        "[1e999999]",
        "[" + "9" * 5000 + "]",
    ],
)
def test_a_broken_array_gets_the_message_the_whole_body_parse_gave(text: str) -> None:
    assert outcome(text) == old_outcome(text)


def test_an_item_nested_too_deep_refuses_the_body() -> None:
    deep = "[" * 32 + "1" + "]" * 32

    assert outcome(f"[{'[' * 31}1{']' * 31}]") == old_outcome(f"[{'[' * 31}1{']' * 31}]")
    assert outcome(f"[1, {deep}]") == "refused: JSON nested deeper than 32 levels"


# --- JSON Lines ---------------------------------------------------------------------------------------------


@given(st.lists(st.sampled_from(["1", "", " ", "\r", "\t", "\u2028", "\u00a0", "\x0b", " 1 ", "1\r"]), max_size=12))
def test_json_lines_number_and_skip_lines_as_str_split_and_strip_did(lines: list[str]) -> None:
    text = "\n".join(["1", *lines])  # starts with a record: neither an array nor an object

    numbers = [record.line for record in split_records(text)]

    assert numbers == [number for number, line in enumerate(text.split("\n"), start=1) if line.strip()]


def test_sixteen_million_blank_lines_are_skipped_in_one_search() -> None:
    started = time.perf_counter()

    records = list(split_records("1" + "\n" * (16 * 1024 * 1024) + "1"))

    assert [record.line for record in records] == [1, 16 * 1024 * 1024 + 1]
    assert time.perf_counter() - started < 1.0


# --- errors per record --------------------------------------------------------------------------------------


def test_a_record_with_too_many_errors_gets_one_error_saying_how_many() -> None:
    record = {**USAGE, **{f"k{n}": 1 for n in range(300_000)}}
    started = time.perf_counter()

    [refused] = split_records(json.dumps(record))

    assert [(error.path, error.reason) for error in refused.errors] == [
        ("", "300000 errors, too many to list (at most 100): not an event")
    ]
    assert time.perf_counter() - started < 1.5  # listing them took 1.75 s


def test_up_to_the_limit_every_error_is_listed() -> None:
    record = {**USAGE, **{f"k{n}": 1 for n in range(MAX_RECORD_ERRORS)}}

    [refused] = split_records(json.dumps(record))

    assert [(error.path, error.reason) for error in refused.errors] == [
        (f"k{n}", "Extra inputs are not permitted") for n in range(MAX_RECORD_ERRORS)
    ]


# --- the answer -------------------------------------------------------------------------------------------------


async def test_a_body_past_the_cap_is_413_naming_the_setting() -> None:
    status, document = await ingest_body(ingestion(cap=10), ("[" + ",".join(["1"] * 11) + "]").encode())

    assert status == 413
    assert document == {
        "error": "more than 10 records in one request (TRACKER_MAX_RECORDS_PER_REQUEST): send fewer at a time"
    }


async def test_rejections_past_the_first_hundred_are_counted_not_listed() -> None:
    body = "\n".join(["1"] * 10_000).encode()

    status, document = await ingest_body(ingestion(), body)

    assert status == 422
    assert (document["accepted"], document["rejected"], document["failed"], document["omitted"]) == (
        0,
        10_000,
        0,
        9_900,
    )
    assert [result["line"] for result in document["results"]] == list(range(1, LISTED_REJECTIONS + 1))
    assert len(json.dumps(document)) < 20_000  # 1 MB before, 56 MB for 1 MiB of [1,1,...]


async def test_accepted_and_failed_records_are_always_listed() -> None:
    lines = ["1"] * 150 + [json.dumps(usage(n)) for n in range(10)]
    body = "\n".join(lines).encode()

    accepted_status, accepted = await ingest_body(ingestion(), body)
    failed_status, failed = await ingest_body(ingestion(fail=True), body)

    assert accepted_status == 202
    assert (accepted["accepted"], accepted["rejected"], accepted["omitted"]) == (10, 150, 50)
    assert [r["line"] for r in accepted["results"] if r["status"] == "accepted"] == list(range(151, 161))
    assert len(accepted["results"]) == 110
    assert failed_status == 503
    assert (failed["failed"], failed["rejected"], failed["omitted"]) == (10, 150, 50)
    assert [r["id"] for r in failed["results"] if r["status"] == "failed"] == [f"usage-{n}" for n in range(10)]


async def test_an_answer_without_rejections_omits_nothing() -> None:
    status, document = await ingest_body(ingestion(), json.dumps(usage(1)).encode())

    assert status == 202
    assert document["omitted"] == 0
    assert document["results"][0]["line"] == 1 and document["results"][0]["status"] == "accepted"


async def test_decoding_a_large_body_lets_the_event_loop_turn() -> None:
    body = ("[" + ",".join(["1"] * 200_000) + "]").encode()  # about 1.4 s of decoding in one go before
    gaps: list[float] = []
    done = asyncio.Event()

    async def tick() -> None:
        last = time.perf_counter()
        while not done.is_set():
            await asyncio.sleep(0)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    ticker = asyncio.create_task(tick())
    status, document = await ingest_body(ingestion(cap=200_000), body)
    done.set()
    await ticker

    assert (status, document["rejected"]) == (422, 200_000)
    assert max(gaps) < 0.25
