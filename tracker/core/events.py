"""The event contract (v2): frozen pydantic models, one per fact type.

Every event shares one envelope (``type``, ``id``, ``occurred_on``, ``source``,
``status``, ``entity``); each type adds its own fields. Unknown fields are
refused. ``id`` may be omitted: it is then derived from the canonical content,
so the same fact published twice carries the same id.

Contract v2 adds money in any ISO 4217 currency, exchange rates as facts
(``fx_rate.reported``), multi-year periods and chip orders known only by their
value. Every v1 record is a valid v2 record with the same id: a field v2 added
is left out of the content while it is unset.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import urllib.parse
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PlainValidator,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from tracker.core.currencies import CURRENCY_CODES, check_currency
from tracker.core.dates import PartialDate
from tracker.core.periods import FIRST_YEAR, LAST_YEAR, Period, check_period

__all__ = [
    "DATE_PATTERN",
    "DAY_PATTERN",
    "EVENT_MODELS",
    "SLUG_MAX_LENGTH",
    "ChipDeliveryReported",
    "Event",
    "EventRetracted",
    "ExportRuleChanged",
    "FxRateReported",
    "InvestmentAnnounced",
    "Money",
    "Quantity",
    "Source",
    "UsageReported",
    "derive_id",
]

SLUG_PATTERN = r"^[a-z0-9][a-z0-9_-]*$"
SLUG_MAX_LENGTH = 64
DATE_PATTERN = r"^[0-9]{4}(-[0-9]{2}(-[0-9]{2})?)?$"
DAY_PATTERN = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"


@functools.lru_cache(maxsize=65536)
def _check_partial_date(text: str) -> str:
    # Every event carries a date or two, and a stream repeats the same few thousand.
    return str(PartialDate.parse(text))


def _check_day(text: str) -> str:
    date = PartialDate.parse(text)
    if date.day is None:
        raise ValueError("expected a full date YYYY-MM-DD")
    return str(date)


def check_http_url(text: str) -> str:
    """Accept an absolute http(s) URL with a host; raise ValueError otherwise."""
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("http", "https"):
        raise ValueError("only http:// and https:// URLs are accepted")
    if not parts.hostname:
        raise ValueError("the URL has no host")
    return text


Slug = Annotated[str, Field(pattern=SLUG_PATTERN, min_length=1, max_length=SLUG_MAX_LENGTH)]
DateText = Annotated[
    str,
    Field(pattern=DATE_PATTERN, examples=["2025", "2025-12", "2025-12-04"]),
    AfterValidator(_check_partial_date),
]
DayText = Annotated[str, Field(pattern=DAY_PATTERN), AfterValidator(_check_day)]
Amount = Annotated[float, Field(ge=0, le=1e18, allow_inf_nan=False)]
EventId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", strict=True)


class Source(_Frozen):
    """Where a fact was read: the outlet's name, a link, a short quote."""

    name: Annotated[str, Field(min_length=1, max_length=200)]
    url: Annotated[str, Field(max_length=2000), AfterValidator(check_http_url)] | None = None
    quote: Annotated[str, Field(max_length=1000)] | None = None


class Quantity(_Frozen):
    """A figure as reported: a point, a range, or a single bound, with its unit."""

    value: Amount | None = None
    low: Amount | None = None
    high: Amount | None = None
    unit: Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z_]*$", max_length=32)]
    approx: bool = False

    @model_validator(mode="after")
    def _one_shape(self) -> Quantity:
        if self.value is not None and (self.low is not None or self.high is not None):
            raise ValueError("give either value or low/high, not both")
        if self.value is None and self.low is None and self.high is None:
            raise ValueError("give value, or low and/or high")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is greater than high ({self.high:g})")
        return self

    @property
    def point(self) -> float:
        """Return the point estimate: value, else the midpoint, else the single bound."""
        if self.value is not None:
            return self.value
        if self.low is not None and self.high is not None:
            return (self.low + self.high) / 2
        bound = self.low if self.low is not None else self.high
        assert bound is not None and math.isfinite(bound)
        return bound


Currency = Annotated[
    str,
    Field(description="ISO 4217 alphabetic code", json_schema_extra={"enum": sorted(CURRENCY_CODES)}),
    AfterValidator(check_currency),
]


class Money(Quantity):
    """A quantity of money in the currency it was reported in (an ISO 4217 code)."""

    unit: Currency


Status = Literal["planned", "reported", "confirmed", "rumored"]

PeriodField = Annotated[
    int | str,
    PlainValidator(check_period),
    WithJsonSchema(
        {
            "description": "A year (integer), or an inclusive span of years as text 'YYYY-YYYY'.",
            "anyOf": [
                {"type": "integer", "minimum": FIRST_YEAR, "maximum": LAST_YEAR},
                {"type": "string", "pattern": r"^[0-9]{4}-[0-9]{4}$"},
            ],
            "examples": [2025, "2025-2029"],
        }
    ),
]


def _unset(value: object) -> bool:
    return value is None


class _Envelope(_Frozen):
    id: EventId | None = None
    occurred_on: DateText
    reported_on: DayText | None = None
    source: Source
    status: Status = "reported"
    entity_name: Annotated[str, Field(min_length=1, max_length=200)] | None = None

    @property
    def occurred(self) -> PartialDate:
        """Return ``occurred_on`` as a date with its precision."""
        return PartialDate.parse(self.occurred_on)

    @property
    def event_id(self) -> str:
        """Return the given id, or the one derived from the content."""
        return self.id if self.id is not None else derive_id(self)


class InvestmentAnnounced(_Envelope):
    """A company (or group) announced or plans AI-infrastructure spending for a period."""

    type: Literal["investment.announced"]
    entity: Slug
    amount: Money
    period: PeriodField
    category: Slug = "ai_infrastructure"
    members: Annotated[list[Slug], Field(max_length=100)] | None = None

    @property
    def span(self) -> Period:
        """Return the period as an inclusive span of years (one year for ``2025``)."""
        return Period.of(self.period)


class ExportRuleChanged(_Envelope):
    """An authority loosened or tightened the export of a product to a destination."""

    type: Literal["export_rule.changed"]
    entity: Slug | None = None
    authority: Slug
    product: Slug
    destination: Annotated[str, Field(pattern=r"^[A-Z]{2}$")]
    direction: Literal["loosened", "tightened"]
    conditions: Annotated[str, Field(max_length=1000)] | None = None
    effective_on: DateText | None = None

    @property
    def effective(self) -> PartialDate:
        """Return the date the change applies from: ``effective_on``, else ``occurred_on``."""
        return PartialDate.parse(self.effective_on or self.occurred_on)


class ChipDeliveryReported(_Envelope):
    """Chips were ordered, scheduled or delivered: a unit count, an order value, or both."""

    type: Literal["chip_delivery.reported"]
    entity: Slug
    buyer: Slug | None = None
    vendor: Slug
    product: Slug
    # Declared before ``units`` so that the check on ``units`` sees it (pydantic validates in
    # declaration order); left out of the content while unset, so v1 ids stay as they were.
    order_value: Annotated[Money | None, Field(exclude_if=_unset)] = None
    units: Annotated[Quantity | None, Field(validate_default=True)] = None
    unit_price: Money | None = None
    stage: Literal["ordered", "scheduled", "delivered"]
    expected_on: DateText | None = None

    @field_validator("units")
    @classmethod
    def _units_or_value(cls, units: Quantity | None, info: ValidationInfo) -> Quantity | None:
        # An invalid order_value is missing from info.data: its own error is enough.
        if units is None and "order_value" in info.data and info.data["order_value"] is None:
            raise ValueError("give units, order_value, or both")
        return units

    @property
    def buyer_slug(self) -> str:
        """Return the buyer, or the reporting entity when no buyer is named."""
        return self.buyer or self.entity


UsageMetric = Literal["mau", "wau", "dau", "tokens_per_day", "tokens_per_month"]


class UsageReported(_Envelope):
    """A usage milestone: monthly users, tokens per day, and so on."""

    type: Literal["usage.reported"]
    entity: Slug
    metric: UsageMetric
    value: Quantity


class FxRateReported(_Envelope):
    """An exchange rate: what one unit of a currency was worth in US dollars at ``occurred_on``."""

    type: Literal["fx_rate.reported"]
    currency: Currency
    usd_per_unit: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]

    @field_validator("currency")
    @classmethod
    def _not_usd(cls, currency: str) -> str:
        if currency == "USD":
            raise ValueError("USD needs no rate: a dollar is a dollar")
        return currency


class EventRetracted(_Envelope):
    """A fact published earlier was wrong; its contribution is removed everywhere."""

    type: Literal["event.retracted"]
    entity: Slug | None = None
    target_id: EventId
    reason: Annotated[str, Field(min_length=1, max_length=1000)]


Event = InvestmentAnnounced | ExportRuleChanged | ChipDeliveryReported | UsageReported | FxRateReported | EventRetracted

EVENT_MODELS: dict[str, type[Event]] = {
    "investment.announced": InvestmentAnnounced,
    "export_rule.changed": ExportRuleChanged,
    "chip_delivery.reported": ChipDeliveryReported,
    "usage.reported": UsageReported,
    "fx_rate.reported": FxRateReported,
    "event.retracted": EventRetracted,
}


#: Where and when a fact was read, not what it says: two outlets reporting the
#: same fact yield the same id, so the second report is a no-op.
PROVENANCE_FIELDS = frozenset({"id", "source", "reported_on", "entity_name"})
_PROVENANCE_EXCLUDE = set(PROVENANCE_FIELDS)


def canonical_content(event: BaseModel) -> dict[str, Any]:
    """Return what the fact says (no id, source or report date), defaults included, as JSON data."""
    return event.model_dump(mode="json", exclude=set(PROVENANCE_FIELDS))


def derive_id(event: BaseModel) -> str:
    """Derive a stable id from the canonical content (sorted keys, compact separators)."""
    text = json.dumps(canonical_content(event), sort_keys=True, separators=(",", ":"))
    return "ev-" + hashlib.sha256(text.encode()).hexdigest()[:24]


def content_digest(event: BaseModel) -> str:
    """Return a digest of the content, to tell two events that share an id apart.

    Only ever compared with digests made by this function, so unlike the id it may
    use the fastest stable encoding: pydantic's own, fields in declaration order
    (events have no free-form mappings whose key order could vary).
    """
    text = event.__pydantic_serializer__.to_json(event, exclude=_PROVENANCE_EXCLUDE)
    return hashlib.sha256(text).hexdigest()[:16]
