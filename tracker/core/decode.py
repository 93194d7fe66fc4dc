"""Turn raw bytes into events, or into errors that name the field and the reason."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from tracker.core.events import EVENT_MODELS, Event
from tracker.errors import EventValidationError, FieldError, InputFormatError

__all__ = ["Record", "decode_event", "field_errors", "parse_json", "split_records", "validate_event"]

MAX_DEPTH = 32


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


def field_errors(exc: ValidationError, tags: frozenset[str] = frozenset()) -> list[FieldError]:
    """Turn a pydantic error into field-path errors; ``tags`` are union tags to drop from paths."""
    return [
        FieldError(
            _path(tuple(part for part in error["loc"] if part not in tags)),
            error["msg"].removeprefix("Value error, "),
        )
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


def split_records(text: str | bytes) -> Iterator[Record]:
    """Split a body into records: a JSON object, a JSON array, or JSON Lines (NDJSON)."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputFormatError(f"not UTF-8: invalid byte at position {exc.start}") from None
    stripped = text.lstrip()
    if not stripped:
        raise InputFormatError("empty input: expected a JSON object, a JSON array or JSON Lines")
    if stripped.startswith("["):
        data = parse_json(text)
        if not isinstance(data, list):
            raise InputFormatError("expected a JSON array")
        for index, item in enumerate(data, start=1):
            yield _record(index, item)
        return
    if stripped.startswith("{"):
        # One object, possibly pretty-printed over several lines.
        try:
            data = parse_json(text)
        except InputFormatError:
            pass
        else:
            yield _record(1, data)
            return
    # JSON Lines: split on "\n" only; U+2028 and friends are legal inside JSON strings.
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            yield _record_from_text(number, line.rstrip("\r"))


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
