"""The read API's questions, parsed: which parameters, families, labels and values exist.

A query that names something unknown is refused with ``QueryRefused`` naming the
parameter and listing what is accepted: a typo never answers with nothing.
Slugs are matched case-insensitively (``ByteDance`` finds ``bytedance``); the
two upper-case fields, ``destination`` and ``currency``, are upper-cased.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from tracker.core.catalogue import SIGNAL_LABELS
from tracker.core.dates import PartialDate
from tracker.core.events import SLUG_MAX_LENGTH, SLUG_PATTERN
from tracker.core.knowledge import parse_as_of
from tracker.errors import QueryRefused

__all__ = [
    "ALERT_STATES",
    "FACT_FIELDS",
    "FACT_TYPES",
    "HISTORY_FAMILIES",
    "AlertQuery",
    "FactQuery",
    "OverviewQuery",
    "SignalQuery",
    "alert_query",
    "as_of_query",
    "decode_cursor",
    "encode_cursor",
    "encode_entity_cursor",
    "fact_query",
    "overview_query",
    "signal_query",
]

#: Families with a history by event time; the other two are about the newest event, not a value.
HISTORY_FAMILIES = tuple(
    name for name in SIGNAL_LABELS if name not in ("market_signal_observed_timestamp_seconds", "market_events_trailing")
)
#: Fact types /v1/facts lists (retractions are not facts: they show as ``retracted_by``).
FACT_TYPES = (
    "investment.announced",
    "export_rule.changed",
    "chip_delivery.reported",
    "usage.reported",
    "fx_rate.reported",
)
#: The slug and choice fields of the fact types that /v1/facts filters on.
FACT_FIELDS = (
    "entity",
    "metric",
    "buyer",
    "vendor",
    "product",
    "authority",
    "destination",
    "currency",
    "category",
    "stage",
    "direction",
)
_CHOICES = {
    "metric": ("mau", "wau", "dau", "tokens_per_day", "tokens_per_month"),
    "stage": ("ordered", "scheduled", "delivered"),
    "direction": ("loosened", "tightened"),
    "status": ("planned", "reported", "confirmed", "rumored"),
}
ALERT_STATES = ("pending", "firing")
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
#: Active alerts /v1/overview lists by default, most severe first (it counts the others).
DEFAULT_OVERVIEW_ALERTS = 50
_UPPER = frozenset({"destination", "currency"})


#: Filters whose values are slugs: a value no slug can be is refused, not answered with nothing.
_SLUGS = frozenset({"entity", "peer", "metric", "buyer", "vendor", "product", "authority"})
_SLUG = re.compile(SLUG_PATTERN)


def normalize(name: str, value: str) -> str:
    """Return a filter value as stored: upper case for destination and currency, else lower case.

    Slugs are compared in lower case (``ByteDance`` finds ``bytedance``); a value that
    is no slug even then (``byte dance``) is refused with what a slug is made of.
    """
    value = value.strip()
    if name in _UPPER:
        return value.upper()
    value = value.lower()
    if name in _SLUGS and (not _SLUG.match(value) or len(value) > SLUG_MAX_LENGTH):
        raise QueryRefused(
            name,
            f"{value!r} is not a slug: up to {SLUG_MAX_LENGTH} lower-case letters, digits, '-' and '_',"
            " starting with a letter or digit (for example 'bytedance')",
        )
    return value


def _single(params: Iterable[tuple[str, str]], accepted: Iterable[str]) -> dict[str, str]:
    allowed = list(accepted)
    found: dict[str, str] = {}
    for name, value in params:
        if name not in allowed:
            raise QueryRefused(name, "unknown query parameter", allowed)
        if name in found:
            raise QueryRefused(name, "given more than once; give it once", allowed)
        found[name] = value
    return found


def _as_of(found: dict[str, str]) -> str | None:
    text = found.get("as_of")
    return None if text is None else _date(text, "as_of", parse_as_of)


def _date(text: str, parameter: str, convert: object) -> str:
    try:
        return convert(text)  # type: ignore[operator,no-any-return]
    except ValueError as exc:
        reason = str(exc) if "use YYYY" in str(exc) else f"{exc}: use YYYY, YYYY-MM or YYYY-MM-DD"
        raise QueryRefused(parameter, f"{text!r} is not a date ({reason})") from None


def _choice(found: dict[str, str], name: str, choices: Iterable[str]) -> str | None:
    if name not in found:
        return None
    value = normalize(name, found[name])
    accepted = list(choices)
    if value not in accepted:
        raise QueryRefused(name, f"{found[name]!r} is not one of the accepted values", accepted)
    return value


@dataclass(frozen=True)
class SignalQuery:
    """Which signals: a family (or all), label values, and the knowledge date."""

    name: str | None
    labels: dict[str, str] = field(default_factory=dict)
    as_of: str | None = None


def signal_query(params: Iterable[tuple[str, str]], history: bool = False) -> SignalQuery:
    """Parse /v1/signals (or, with ``history``, /v1/signals/history) query parameters."""
    pairs = list(params)
    families = HISTORY_FAMILIES if history else tuple(SIGNAL_LABELS)
    name = dict(pairs).get("name")
    if name is None and history:
        raise QueryRefused("name", "a history is of one signal family: give name", families)
    if name is not None and name not in families:
        raise QueryRefused("name", f"{name!r} is not a signal family{' with a history' if history else ''}", families)
    labels = (
        SIGNAL_LABELS[name] if name is not None else sorted({label for ls in SIGNAL_LABELS.values() for label in ls})
    )
    found = _single(pairs, ("name", "as_of", *labels))
    wanted = {key: normalize(key, value) for key, value in found.items() if key not in ("name", "as_of")}
    return SignalQuery(name, wanted, _as_of(found))


@dataclass(frozen=True)
class FactQuery:
    """Which facts: type, field values, event-time range, status, retracted or not, knowledge date, page."""

    type: str | None = None
    fields: dict[str, str] = field(default_factory=dict)
    occurred_from: str | None = None
    occurred_to: str | None = None
    status: str | None = None
    include_retracted: bool = False
    as_of: str | None = None
    limit: int = DEFAULT_LIMIT
    after: tuple[str, str] | None = None
    descending: bool = False


_FACT_PARAMETERS = (
    "type",
    *FACT_FIELDS,
    "occurred_from",
    "occurred_to",
    "status",
    "include_retracted",
    "as_of",
    "limit",
    "cursor",
    "order",
)


def fact_query(params: Iterable[tuple[str, str]]) -> FactQuery:
    """Parse /v1/facts query parameters."""
    found = _single(params, _FACT_PARAMETERS)
    kind = found.get("type")
    if kind is not None and kind.strip().lower() not in FACT_TYPES:
        raise QueryRefused("type", f"{kind!r} is not a fact type", FACT_TYPES)
    fields: dict[str, str] = {}
    for name in FACT_FIELDS:
        if name in found:
            fields[name] = normalize(name, found[name])
            if name in _CHOICES:
                _choice(found, name, _CHOICES[name])
    retracted = found.get("include_retracted", "false").strip().lower()
    if retracted not in ("true", "false"):
        raise QueryRefused("include_retracted", f"{found['include_retracted']!r} is not a boolean", ["true", "false"])
    return FactQuery(
        type=kind.strip().lower() if kind is not None else None,
        fields=fields,
        occurred_from=_date(found["occurred_from"], "occurred_from", _first) if "occurred_from" in found else None,
        occurred_to=_date(found["occurred_to"], "occurred_to", _last) if "occurred_to" in found else None,
        status=_choice(found, "status", _CHOICES["status"]),
        include_retracted=retracted == "true",
        as_of=_as_of(found),
        limit=_limit(found.get("limit")),
        after=decode_cursor(found["cursor"]) if "cursor" in found else None,
        descending=_choice(found, "order", ("asc", "desc")) == "desc",
    )


def _first(text: str) -> str:
    return PartialDate.parse(text).start.isoformat()


def _last(text: str) -> str:
    return PartialDate.parse(text).end.isoformat()


def _limit(text: str | None, parameter: str = "limit", default: int = DEFAULT_LIMIT) -> int:
    if text is None:
        return default
    if not text.strip().isdigit() or not 1 <= int(text) <= MAX_LIMIT:
        raise QueryRefused(parameter, f"{text!r} is not a whole number from 1 to {MAX_LIMIT}")
    return int(text)


def encode_cursor(occurred_on: str, event_id: str) -> str:
    """Return the opaque cursor that resumes a listing after one fact."""
    return base64.urlsafe_b64encode(json.dumps([occurred_on, event_id]).encode()).decode().rstrip("=")


def decode_cursor(text: str) -> tuple[str, str]:
    """Return the (occurred_on, id) a cursor resumes after; raise QueryRefused if it was not ours."""
    try:
        data = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        occurred_on, event_id = data
        PartialDate.parse(occurred_on)
        if not isinstance(event_id, str):
            raise TypeError
    except (ValueError, TypeError, binascii.Error):
        raise QueryRefused("cursor", "not a cursor this API gave (pass next_cursor back as it is)") from None
    return occurred_on, event_id


@dataclass(frozen=True)
class AlertQuery:
    """Which alerts: a state (or every active one), an entity they name (or any), and the knowledge date."""

    state: str | None = None
    as_of: str | None = None
    entity: str | None = None


def alert_query(params: Iterable[tuple[str, str]]) -> AlertQuery:
    """Parse /v1/alerts query parameters."""
    found = _single(params, ("state", "entity", "as_of"))
    entity = normalize("entity", found["entity"]) if "entity" in found else None
    return AlertQuery(_choice(found, "state", ALERT_STATES), _as_of(found), entity)


def as_of_query(params: Iterable[tuple[str, str]]) -> str | None:
    """Parse a query that takes only ``as_of`` (/v1/facts/{id})."""
    return _as_of(_single(params, ("as_of",)))


@dataclass(frozen=True)
class OverviewQuery:
    """Which entities (a slug substring, a page) and how many alerts, as known on a date."""

    q: str = ""
    limit: int = DEFAULT_LIMIT
    after: str | None = None
    alerts: int = DEFAULT_OVERVIEW_ALERTS
    as_of: str | None = None


def overview_query(params: Iterable[tuple[str, str]]) -> OverviewQuery:
    """Parse /v1/overview query parameters."""
    found = _single(params, ("q", "limit", "cursor", "alerts", "as_of"))
    after = None
    if "cursor" in found:
        try:
            after = base64.urlsafe_b64decode(found["cursor"] + "=" * (-len(found["cursor"]) % 4)).decode()
        except (ValueError, binascii.Error):
            raise QueryRefused("cursor", "not a cursor this API gave (pass next_cursor back as it is)") from None
    return OverviewQuery(
        q=found.get("q", "").strip().lower(),
        limit=_limit(found.get("limit")),
        after=after,
        alerts=_limit(found.get("alerts"), "alerts", DEFAULT_OVERVIEW_ALERTS),
        as_of=_as_of(found),
    )


def encode_entity_cursor(slug: str) -> str:
    """Return the opaque cursor that resumes the overview's entities after ``slug``."""
    return base64.urlsafe_b64encode(slug.encode()).decode().rstrip("=")
