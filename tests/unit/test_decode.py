"""Raw bytes to events: strict JSON, record splitting with line numbers, and decoding errors."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.hostile.corpus import hostile_records
from tracker.core.decode import MAX_DEPTH, decode_event, parse_json, split_records, validate_event
from tracker.core.events import Event, UsageReported
from tracker.errors import EventValidationError, FieldError, InputFormatError

pytestmark = pytest.mark.unit

RawFactory = Callable[..., dict[str, Any]]
EventFactory = Callable[..., Event]


def nested(depth: int) -> str:
    """Return a JSON array nested ``depth`` levels deep around a number."""
    return "[" * depth + "1" + "]" * depth


# --- strict JSON ----------------------------------------------------------------------------


def test_plain_json_parses_to_python_values() -> None:
    assert parse_json('{"a": [1, 2.5, "x", true, null]}') == {"a": [1, 2.5, "x", True, None]}


def test_bytes_are_read_as_utf8() -> None:
    assert parse_json('{"name": "Financial Times — «IA»"}'.encode()) == {"name": "Financial Times — «IA»"}


@pytest.mark.parametrize(("raw", "position"), [(b"\xff", 0), (b'{"a": "\xc3"}', 7), (b'{"a": "caf\xe9"}', 10)])
def test_bytes_that_are_not_utf8_are_refused_with_the_position(raw: bytes, position: int) -> None:
    with pytest.raises(InputFormatError) as refused:
        parse_json(raw)

    assert str(refused.value) == f"not UTF-8: invalid byte at position {position}"


@pytest.mark.parametrize(
    ("text", "constant"),
    [
        ("NaN", "NaN"),
        ('{"value": NaN}', "NaN"),
        ('{"value": Infinity}', "Infinity"),
        ('{"value": [1, -Infinity]}', "-Infinity"),
    ],
)
def test_nan_and_infinity_are_not_json(text: str, constant: str) -> None:
    with pytest.raises(InputFormatError) as refused:
        parse_json(text)

    assert str(refused.value) == f"{constant} is not valid JSON"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ('{"a": 1,}', "line 1 column 9"),
        ('{\n  "a": tru\n}', "line 2 column 8"),
        ("", "line 1 column 1"),
        ('{"a": 1} {"b": 2}', "line 1 column 10"),
    ],
)
def test_broken_json_is_refused_with_line_and_column(text: str, where: str) -> None:
    with pytest.raises(InputFormatError) as refused:
        parse_json(text)

    assert str(refused.value).startswith("not JSON: ")
    assert str(refused.value).endswith(f"at {where}")


def test_nesting_up_to_the_limit_is_accepted() -> None:
    assert parse_json(nested(MAX_DEPTH)) is not None


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 500])
def test_nesting_beyond_the_limit_is_refused(depth: int) -> None:
    with pytest.raises(InputFormatError) as refused:
        parse_json(nested(depth))

    assert str(refused.value) == f"JSON nested deeper than {MAX_DEPTH} levels"


def test_nesting_deep_enough_to_exhaust_the_stack_is_refused_too() -> None:
    with pytest.raises(InputFormatError) as refused:
        parse_json(nested(200_000))

    assert "nested" in str(refused.value)


# --- decoding one Kafka record ----------------------------------------------------------------


def test_a_record_value_decodes_to_its_event(raw_event_factory: RawFactory) -> None:
    raw = json.dumps(raw_event_factory("usage.reported", entity="google")).encode()

    event = decode_event(raw)

    assert isinstance(event, UsageReported)
    assert event.entity == "google"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe{}", "not UTF-8: invalid byte at position 0"),
        (b'{"value": NaN}', "NaN is not valid JSON"),
        (b"{", "not JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        (nested(MAX_DEPTH + 8).encode(), f"JSON nested deeper than {MAX_DEPTH} levels"),
    ],
    ids=["utf8", "nan", "broken", "deep"],
)
def test_an_undecodable_record_is_a_validation_error_without_a_path(raw: bytes, reason: str) -> None:
    with pytest.raises(EventValidationError) as refused:
        decode_event(raw)

    assert refused.value.errors == (FieldError("", reason),)


def test_a_decoded_record_is_validated_against_the_contract(raw_event_factory: RawFactory) -> None:
    raw = json.dumps(raw_event_factory("usage.reported", value={"low": 5, "high": 1, "unit": "u"})).encode()

    with pytest.raises(EventValidationError) as refused:
        decode_event(raw)

    assert str(refused.value) == "value: low (5) is greater than high (1)"


# --- splitting a body into records ----------------------------------------------------------


def test_a_single_object_is_one_record_on_line_one(raw_event_factory: RawFactory) -> None:
    body = json.dumps(raw_event_factory("usage.reported"))

    records = list(split_records(body))

    assert [(record.line, record.errors) for record in records] == [(1, ())]
    assert isinstance(records[0].event, UsageReported)


def test_a_pretty_printed_object_is_one_record(raw_event_factory: RawFactory) -> None:
    body = json.dumps(raw_event_factory("usage.reported"), indent=2)

    records = list(split_records(body))

    assert [(record.line, record.errors) for record in records] == [(1, ())]


def test_a_json_array_is_split_into_records_numbered_by_position(raw_event_factory: RawFactory) -> None:
    body = json.dumps(
        [raw_event_factory("usage.reported"), {"type": "nope"}, raw_event_factory("export_rule.changed")],
        indent=2,
    )

    records = list(split_records(body))

    assert [record.line for record in records] == [1, 2, 3]
    assert [record.event is not None for record in records] == [True, False, True]
    assert records[1].errors[0].path == "type"


def test_an_empty_array_has_no_records() -> None:
    assert list(split_records("  []  ")) == []


def test_a_broken_array_refuses_the_whole_body() -> None:
    with pytest.raises(InputFormatError):
        list(split_records('[{"type": "usage.reported"},'))


def test_json_lines_are_numbered_by_line_and_blank_lines_are_skipped(raw_event_factory: RawFactory) -> None:
    good = json.dumps(raw_event_factory("usage.reported"))
    body = "\n".join([good, "", "{not json", "  ", json.dumps({**raw_event_factory("usage.reported"), "x": 1}), good])

    records = list(split_records(body))

    assert [record.line for record in records] == [1, 3, 5, 6]
    assert [record.event is not None for record in records] == [True, False, False, True]
    assert records[1].errors[0].reason.startswith("not JSON: ")
    assert records[2].errors == (FieldError("x", "Extra inputs are not permitted"),)


def test_json_lines_accept_windows_line_endings(raw_event_factory: RawFactory) -> None:
    good = json.dumps(raw_event_factory("usage.reported"))

    records = list(split_records(f"{good}\r\n{good}\r\n"))

    assert [(record.line, record.errors) for record in records] == [(1, ()), (2, ())]


def test_a_line_with_nan_is_refused_and_the_others_kept(raw_event_factory: RawFactory) -> None:
    good = json.dumps(raw_event_factory("usage.reported"))
    body = f'{good}\n{{"value": NaN}}\n{good}'

    records = list(split_records(body))

    assert [(record.line, record.errors) for record in records] == [
        (1, ()),
        (2, (FieldError("", "NaN is not valid JSON"),)),
        (3, ()),
    ]


def test_a_single_line_that_is_not_an_object_is_one_refused_record() -> None:
    records = list(split_records('"usage.reported"'))

    assert [(record.line, record.event, record.errors) for record in records] == [
        (1, None, (FieldError("", "expected a JSON object, got a string"),))
    ]


def test_a_single_broken_object_is_a_body_that_cannot_be_read() -> None:
    # One document: the body as a whole does not parse (HTTP 400), as the README promises.
    with pytest.raises(InputFormatError) as refused:
        list(split_records('{"type": "usage.reported",'))

    assert str(refused.value).startswith("not JSON: ")


def test_a_broken_line_among_json_lines_is_one_refused_record() -> None:
    records = list(split_records('{"type": "usage.reported",\n{"type": "usage.reported"}'))

    assert len(records) == 2
    assert records[0].event is None
    assert records[0].errors[0].reason.startswith("not JSON: ")


@pytest.mark.parametrize("body", ["", "   \n\t ", b"", b"\n"])
def test_an_empty_body_is_refused(body: str | bytes) -> None:
    with pytest.raises(InputFormatError) as refused:
        list(split_records(body))

    assert str(refused.value) == "empty input: expected a JSON object, a JSON array or JSON Lines"


def test_a_body_that_is_not_utf8_is_refused() -> None:
    with pytest.raises(InputFormatError) as refused:
        list(split_records(b'{"type": "usage.reported", "entity": "\xff"}'))

    assert str(refused.value) == "not UTF-8: invalid byte at position 38"


def test_a_utf8_body_splits_like_its_text(seed_text: str) -> None:
    from_bytes = list(split_records(seed_text.encode()))

    assert from_bytes == list(split_records(seed_text))
    assert len(from_bytes) == 10


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_a_quote_holding_a_unicode_line_separator_stays_one_record(
    raw_event_factory: RawFactory, separator: str
) -> None:
    # JSON allows these characters unescaped inside strings; JSON Lines splits on "\n" only.
    event = raw_event_factory("usage.reported", source={"name": "FT", "quote": f"first{separator}second"})
    line = json.dumps(event, ensure_ascii=False)

    single = list(split_records(line))
    several = list(split_records(f"{line}\n{line}"))

    assert [(record.line, record.errors) for record in single] == [(1, ())]
    assert [(record.line, record.errors) for record in several] == [(1, ()), (2, ())]


# --- properties -----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=20,
)


@given(json_values)
def test_what_json_dumps_writes_parse_json_reads_back(value: Any) -> None:
    assert parse_json(json.dumps(value)) == value


@given(
    st.lists(
        st.tuples(st.sampled_from(["usage", "broken", "other"]), st.integers(min_value=0, max_value=2)),
        min_size=2,
        max_size=12,
    )
)
def test_json_lines_keep_every_line_number(lines: list[tuple[str, int]]) -> None:
    event = {
        "type": "usage.reported",
        "entity": "doubao",
        "metric": "mau",
        "value": {"value": 159e6, "unit": "users"},
        "occurred_on": "2025-10",
        "source": {"name": "QuestMobile"},
    }
    text = {"usage": json.dumps(event), "broken": "{", "other": '{"type": "x"}'}
    body, expected, number = [], [], 0
    for kind, blanks_after in lines:
        number += 1
        body.append(text[kind])
        expected.append((number, kind == "usage"))
        body.extend([""] * blanks_after)
        number += blanks_after

    records = list(split_records("\n".join(body)))

    assert [(record.line, record.event is not None) for record in records] == expected
    assert all(bool(record.errors) == (record.event is None) for record in records)


def test_validate_event_and_decode_event_agree(raw_event_factory: RawFactory) -> None:
    data = raw_event_factory("chip_delivery.reported")

    assert decode_event(json.dumps(data).encode()) == validate_event(data)


# --- one-pass decoding agrees with parse_json + validate_event --------------------------------

#: Fields, nested ones dotted, whose values the property below replaces or removes.
FIELDS = {
    "usage.reported": ["id", "entity", "metric", "value.value", "value.low", "value.unit", "occurred_on", "extra"],
    "investment.announced": ["amount.value", "amount.unit", "amount.approx", "period", "members", "source.url"],
    "chip_delivery.reported": ["units.value", "units.high", "unit_price", "buyer", "stage", "reported_on"],
    "export_rule.changed": ["destination", "direction", "effective_on", "conditions", "source.quote", "type"],
    "event.retracted": ["target_id", "reason", "status", "entity_name", "source.name", "source"],
}
#: JSON number texts json.dumps never writes, spliced in where the placeholder string stood.
NUMBER_TEXTS = ["1e400", "-0", "1E3", "2.024e3", "NaN", "-Infinity", "05", "1.", "9" * 30, "2024.0", "1e-7"]
field_values = (
    json_values
    | st.floats(min_value=0, max_value=1e-3)
    | st.sampled_from(["2025-13", "2025-02-30", "https://x", "ftp://x", "US", "loosened", "a\ud800", "é\u2028"])
    | st.sampled_from(["5", "2024", "true", 0, 1, 2024, 1.0, {"value": 1, "unit": "USD"}, ["a", "b"]])  # lax-only
    | st.sampled_from(NUMBER_TEXTS).map(lambda text: f"<{text}>")
)


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    head, _, rest = path.partition(".")
    if rest and isinstance(data.get(head), dict):
        _set(data[head], rest, value)
    elif value is _REMOVE:
        data.pop(head, None)
    else:
        data[head] = value


_REMOVE = object()


def _slowly(text: str | bytes) -> Event | tuple[FieldError, ...]:
    try:
        return validate_event(parse_json(text))
    except InputFormatError as exc:
        return (FieldError("", str(exc)),)
    except EventValidationError as exc:
        return exc.errors


@given(
    kind=st.sampled_from(sorted(FIELDS)),
    changes=st.lists(st.tuples(st.integers(0, 7), field_values | st.just(_REMOVE)), max_size=3),
    ascii_only=st.booleans(),
)
def test_decoding_in_one_pass_agrees_with_parse_json_and_validate_event(
    kind: str, changes: list[tuple[int, Any]], ascii_only: bool, raw_event_factory: RawFactory
) -> None:
    data = json.loads(json.dumps(raw_event_factory(kind)))
    fields = FIELDS[kind]
    for index, value in changes:
        _set(data, fields[index % len(fields)], value)
    text = json.dumps(data, ensure_ascii=ascii_only)
    for number in NUMBER_TEXTS:
        text = text.replace(f'"<{number}>"', number)
    raw = text.encode("utf-8", "surrogatepass")  # a lone surrogate makes bytes that are not UTF-8

    try:
        decoded: Event | tuple[FieldError, ...] = decode_event(raw)
    except EventValidationError as exc:
        decoded = exc.errors
    records = list(split_records(f"{text}\n{text}"))

    # repr tells 5 from 5.0: the same event, field for field and type for type.
    assert repr(decoded) == repr(_slowly(raw))
    for record in records:
        assert repr(record.event if record.event is not None else record.errors) == repr(_slowly(text))


# --- drawn hostile records (the corpus of tests/integration/test_hostile_input.py) ---------


@settings(max_examples=1000, deadline=None)
@given(hostile_records())
def test_every_drawn_hostile_record_is_refused_naming_its_field(drawn: tuple[dict[str, Any], str]) -> None:
    record, path = drawn
    body = json.dumps(record, ensure_ascii=False).encode() + b"\n"

    (result,) = split_records(body)

    assert result.event is None
    assert path in {error.path for error in result.errors}, result.errors
