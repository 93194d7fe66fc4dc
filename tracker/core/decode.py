"""Turn raw bytes into events, or into errors that name the field and the reason."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from tracker.core.events import DATE_PATTERN, DAY_PATTERN, EVENT_MODELS, Event
from tracker.errors import EventValidationError, FieldError, InputFormatError, TooManyRecords

__all__ = ["Record", "decode_event", "field_errors", "parse_json", "split_records", "validate_event"]

MAX_DEPTH = 32
#: Most errors listed for one record; past it the record gets one error saying how many (a record with a
#: million unknown keys had a million errors). 100 covers a members list of 100 wrong items.
MAX_RECORD_ERRORS = 100
#: JSON's whitespace (json.loads skips these between tokens, no other).
_JSON_SPACE = re.compile(r"[ \t\n\r]*")
#: What makes a line of JSON Lines worth a record (str.strip()'s whitespace is re's \s).
_CONTENT = re.compile(r"\S")


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


#: json.loads builds a decoder per call when given parse_constant; this one is built once.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)

#: Every event type, told apart by ``type``: pydantic parses and validates a record in one pass
#: (no intermediate dicts). It accepts exactly what parse_json + validate_event accept
#: (tests/unit/test_decode.py checks both agree); its errors are not used, they do not name
#: the field as validate_event does, so a record it refuses is decoded again the slow way.
_EVENT_JSON: TypeAdapter[Event] = TypeAdapter(Annotated[Event, Field(discriminator="type")])


def parse_json(text: str | bytes) -> Any:
    """Parse strict JSON (no NaN or Infinity); raise InputFormatError with the position."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputFormatError(f"not UTF-8: invalid byte at position {exc.start}") from None
    try:
        if text.startswith("\ufeff"):  # what json.loads refuses before decoding
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
        data = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise InputFormatError(f"not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except ValueError as exc:
        raise InputFormatError(str(exc)) from None
    except RecursionError:
        raise InputFormatError("JSON nested too deeply") from None
    # Nesting is at most the number of opening brackets: most texts need no walk.
    if text.count("{") + text.count("[") > MAX_DEPTH and _depth(data) > MAX_DEPTH:
        raise InputFormatError(f"JSON nested deeper than {MAX_DEPTH} levels")
    return data


def _depth(data: Any) -> int:
    """Return how many containers deep ``data`` goes, counting no further than MAX_DEPTH + 1."""
    depth, level = 0, [data]
    while depth <= MAX_DEPTH:
        containers = [item for item in level if isinstance(item, dict | list)]
        if not containers:
            break
        depth += 1
        level = [child for item in containers for child in (item.values() if isinstance(item, dict) else item)]
    return depth


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


#: Patterns whose regular expression tells a reader nothing, and what to say instead.
_PATTERN_HINTS = {DATE_PATTERN: "use YYYY, YYYY-MM or YYYY-MM-DD", DAY_PATTERN: "use YYYY-MM-DD"}


def _reason(error: Any) -> str:
    """Return pydantic's message for one error, in words a reader can act on."""
    kind, context = error["type"], error.get("ctx") or {}
    if kind == "string_pattern_mismatch" and context.get("pattern") in _PATTERN_HINTS:
        return _PATTERN_HINTS[context["pattern"]]
    # A SecretStr's length is checked as a sequence's: pydantic says "items", and "not N" would tell its length.
    if kind == "too_short" and isinstance(error.get("input"), str):
        return f"at least {context['min_length']} characters"
    if kind == "too_long" and isinstance(error.get("input"), str):
        return f"at most {context['max_length']} characters"
    return str(error["msg"]).removeprefix("Value error, ")


def field_errors(exc: ValidationError, tags: frozenset[str] = frozenset()) -> list[FieldError]:
    """Turn a pydantic error into field-path errors; ``tags`` are union tags to drop from paths."""
    return [
        FieldError(_path(tuple(part for part in error["loc"] if part not in tags)), _reason(error))
        for error in exc.errors(include_url=False)
    ]


def validate_event(data: Any) -> Event:
    """Validate one decoded JSON value against the contract; raise EventValidationError."""
    if not isinstance(data, dict):
        raise EventValidationError([FieldError("", f"expected a JSON object, got {_kind(data)}")])
    kind = data.get("type")
    if kind is None:
        raise EventValidationError([FieldError("type", "field required")])
    model = EVENT_MODELS.get(kind) if isinstance(kind, str) else None
    if model is None:
        allowed = ", ".join(EVENT_MODELS)
        raise EventValidationError([FieldError("type", f"unknown event type; expected one of {allowed}")])
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        count = exc.error_count()  # cheap; listing them is not (half a second for 300,000)
        if count > MAX_RECORD_ERRORS:
            reason = f"{count} errors, too many to list (at most {MAX_RECORD_ERRORS}): not an event"
            raise EventValidationError([FieldError("", reason)]) from None
        raise EventValidationError(field_errors(exc)) from None


def decode_event(raw: bytes) -> Event:
    """Decode and validate one Kafka record value."""
    event = _valid_event_or_none(raw)
    if event is not None:
        return event
    try:
        data = parse_json(raw)
    except InputFormatError as exc:
        raise EventValidationError([FieldError("", str(exc))]) from None
    return validate_event(data)


def _valid_event_or_none(text: str | bytes) -> Event | None:
    """Return the event ``text`` holds if it is a valid one, else None (the caller finds out why)."""
    try:
        return _EVENT_JSON.validate_json(text)
    except ValidationError:
        return None


def _kind(data: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(type(data), "a number")


@dataclass(frozen=True)
class Record:
    """One record of an input batch: where it was, and the event or the errors."""

    line: int
    event: Event | None
    errors: tuple[FieldError, ...] = ()


def split_records(text: str | bytes, max_records: int | None = None) -> Iterator[Record]:
    """Split a body into records: a JSON object, a JSON array, or JSON Lines (NDJSON).

    Records are decoded one at a time as they are taken; past ``max_records`` of
    them TooManyRecords is raised before the next one is decoded. An error of the
    body as a whole (InputFormatError) may come after some records were yielded.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputFormatError(f"not UTF-8: invalid byte at position {exc.start}") from None
    stripped = text.lstrip()
    if not stripped:
        raise InputFormatError("empty input: expected a JSON object, a JSON array or JSON Lines")
    if stripped.startswith("["):
        for index, item in enumerate(_array_items(text), start=1):
            if max_records is not None and index > max_records:
                raise TooManyRecords(max_records)
            yield _record(index, item)
        return
    if stripped.startswith("{"):
        # One object, possibly pretty-printed over several lines.
        try:
            data = parse_json(text)
        except InputFormatError:
            if "\n" not in text.strip():
                raise  # one document that does not parse: the body as a whole, not a record, is refused
        else:
            yield _record(1, data)
            return
    # JSON Lines: split on "\n" only; U+2028 and friends are legal inside JSON strings.
    for count, (number, line) in enumerate(_content_lines(text), start=1):
        if max_records is not None and count > max_records:
            raise TooManyRecords(max_records)
        yield _record_from_text(number, line.rstrip("\r"))


def _array_items(text: str) -> Iterator[Any]:
    """Yield the items of the JSON array ``text`` one at a time; refuse it as parse_json would.

    Items are decoded as they are taken, so a caller that stops early never
    builds the rest (16 MiB of ``[{},{},...]`` are five million dicts).
    """
    position = _space_after(text, 0)
    if not text.startswith("[", position):
        raise _broken(text)
    position = _space_after(text, position + 1)
    if text.startswith("]", position):
        if _space_after(text, position + 1) != len(text):
            raise _broken(text)
        return
    while True:
        start = position
        try:
            item, position = _DECODER.raw_decode(text, position)
        except (ValueError, RecursionError):
            raise _broken(text) from None
        # The array is one level: an item may nest one level less. Counting brackets first spares most walks.
        brackets = text.count("{", start, position) + text.count("[", start, position)
        if brackets >= MAX_DEPTH and _depth(item) >= MAX_DEPTH:
            raise InputFormatError(f"JSON nested deeper than {MAX_DEPTH} levels")
        yield item
        position = _space_after(text, position)
        if text.startswith(",", position):
            position = _space_after(text, position + 1)
        elif text.startswith("]", position) and _space_after(text, position + 1) == len(text):
            return
        else:
            raise _broken(text)


def _space_after(text: str, position: int) -> int:
    """Return the position of the first character at or after ``position`` that is not JSON whitespace."""
    found = _JSON_SPACE.match(text, position)
    assert found is not None  # the pattern matches the empty string
    return found.end()


def _broken(text: str) -> InputFormatError:
    """Return the error parse_json gives for a text found broken (it stops where the scan did)."""
    try:
        parse_json(text)
    except InputFormatError as exc:
        return exc
    raise AssertionError("the array scan refused what parse_json accepts")  # pragma: no cover


def _content_lines(text: str) -> Iterator[tuple[int, str]]:
    """Yield (line number, line) for each line of ``text`` holding more than whitespace, lines split on "\n".

    Blank stretches are skipped by one regex search, not line by line (16 MiB of newlines are 16 million lines).
    """
    start, number = 0, 1  # start: the beginning of line ``number``
    while (found := _CONTENT.search(text, start)) is not None:
        newline = text.rfind("\n", start, found.start())
        begin = start if newline < 0 else newline + 1
        number += text.count("\n", start, begin)
        end = text.find("\n", found.start())
        if end < 0:
            yield number, text[begin:]
            return
        yield number, text[begin:end]
        start, number = end + 1, number + 1


def _record_from_text(line: int, text: str) -> Record:
    event = _valid_event_or_none(text)
    if event is not None:
        return Record(line, event)
    try:
        data = parse_json(text)
    except InputFormatError as exc:
        return Record(line, None, (FieldError("", str(exc)),))
    return _record(line, data)


def _record(line: int, data: Any) -> Record:
    try:
        return Record(line, validate_event(data))
    except EventValidationError as exc:
        return Record(line, None, exc.errors)
