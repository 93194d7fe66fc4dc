"""The v1 event contract: what each fact type accepts, what it refuses and why, and its id."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from tracker.core.decode import validate_event
from tracker.core.events import (
    ChipDeliveryReported,
    Event,
    EventRetracted,
    ExportRuleChanged,
    FxRateReported,
    InvestmentAnnounced,
    Quantity,
    UsageReported,
    derive_id,
)
from tracker.errors import EventValidationError

pytestmark = pytest.mark.unit

RawFactory = Callable[..., dict[str, Any]]
EventFactory = Callable[..., Event]

FACT_TYPES = ["usage.reported", "investment.announced", "chip_delivery.reported", "export_rule.changed"]
ALL_TYPES = [*FACT_TYPES, "fx_rate.reported", "event.retracted"]


def refusal(data: Any) -> list[str]:
    """Validate ``data`` and return the refusal as ``path: reason`` lines."""
    with pytest.raises(EventValidationError) as refused:
        validate_event(data)
    return [str(error) for error in refused.value.errors]


# --- the envelope -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "model"),
    [
        ("usage.reported", UsageReported),
        ("investment.announced", InvestmentAnnounced),
        ("chip_delivery.reported", ChipDeliveryReported),
        ("export_rule.changed", ExportRuleChanged),
        ("fx_rate.reported", FxRateReported),
        ("event.retracted", EventRetracted),
    ],
)
def test_each_type_is_read_as_its_own_model(event_factory: EventFactory, kind: str, model: type) -> None:
    event = event_factory(kind)

    assert isinstance(event, model)
    assert event.type == kind


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_status_defaults_to_reported(event_factory: EventFactory, kind: str) -> None:
    assert event_factory(kind).status == "reported"


@pytest.mark.parametrize("status", ["planned", "reported", "confirmed", "rumored"])
def test_every_status_of_the_contract_is_accepted(event_factory: EventFactory, status: str) -> None:
    assert event_factory("usage.reported", status=status).status == status


def test_an_unknown_status_is_refused(raw_event_factory: RawFactory) -> None:
    errors = refusal(raw_event_factory("usage.reported", status="considering"))

    assert errors == ["status: Input should be 'planned', 'reported', 'confirmed' or 'rumored'"]


@pytest.mark.parametrize("occurred_on", ["2025", "2025-12", "2025-12-04"])
def test_occurred_on_keeps_a_year_a_month_or_a_day(event_factory: EventFactory, occurred_on: str) -> None:
    event = event_factory("usage.reported", occurred_on=occurred_on)

    assert event.occurred_on == occurred_on
    assert str(event.occurred) == occurred_on


@pytest.mark.parametrize(
    ("occurred_on", "reason"),
    [
        ("2025-13", "month 13 does not exist"),
        ("2025-02-29", "day 29 does not exist in 2025-02"),
        ("1899", "year 1899 is outside 1900-2200"),
        ("25-12", "use YYYY, YYYY-MM or YYYY-MM-DD"),
        ("2025-12\n", "use YYYY, YYYY-MM or YYYY-MM-DD"),
        ("December 2025", "use YYYY, YYYY-MM or YYYY-MM-DD"),
    ],
)
def test_an_impossible_occurred_on_is_refused_at_its_field(
    raw_event_factory: RawFactory, occurred_on: str, reason: str
) -> None:
    errors = refusal(raw_event_factory("usage.reported", occurred_on=occurred_on))

    assert errors == [f"occurred_on: {reason}"]


def test_occurred_on_is_required(raw_event_factory: RawFactory) -> None:
    data = raw_event_factory("usage.reported")
    del data["occurred_on"]

    assert refusal(data) == ["occurred_on: Field required"]


def test_reported_on_must_be_a_full_day(event_factory: EventFactory, raw_event_factory: RawFactory) -> None:
    accepted = event_factory("usage.reported", reported_on="2025-12-24")

    errors = refusal(raw_event_factory("usage.reported", reported_on="2025-12"))

    assert accepted.reported_on == "2025-12-24"
    assert errors == ["reported_on: use YYYY-MM-DD"]


@pytest.mark.parametrize("url", ["https://www.ft.com/content/x", "http://example.org/a?b=c"])
def test_a_source_link_may_be_http_or_https(event_factory: EventFactory, url: str) -> None:
    event = event_factory("usage.reported", source={"name": "FT", "url": url})

    assert event.source.url == url


@pytest.mark.parametrize("url", ["ftp://ft.com/x", "javascript:alert(1)", "www.ft.com", "file:///etc"])
def test_any_other_source_link_is_refused_at_source_url(raw_event_factory: RawFactory, url: str) -> None:
    errors = refusal(raw_event_factory("usage.reported", source={"name": "FT", "url": url}))

    assert errors == ["source.url: only http:// and https:// URLs are accepted"]


@pytest.mark.parametrize("url", ["https://", "http:///path", "https://:443/x"])
def test_a_source_link_without_a_host_is_refused_at_source_url(raw_event_factory: RawFactory, url: str) -> None:
    errors = refusal(raw_event_factory("usage.reported", source={"name": "FT", "url": url}))

    assert errors == ["source.url: the URL has no host"]


def test_a_quote_holds_up_to_a_thousand_characters(event_factory: EventFactory, raw_event_factory: RawFactory) -> None:
    longest = event_factory("usage.reported", source={"name": "FT", "quote": "é" * 1000})

    errors = refusal(raw_event_factory("usage.reported", source={"name": "FT", "quote": "é" * 1001}))

    assert longest.source.quote == "é" * 1000
    assert errors == ["source.quote: String should have at most 1000 characters"]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ({}, ["source.name: Field required"]),
        ({"name": ""}, ["source.name: String should have at least 1 character"]),
        ({"name": "FT", "author": "x"}, ["source.author: Extra inputs are not permitted"]),
        ("Financial Times", ["source: Input should be a valid dictionary or instance of Source"]),
    ],
)
def test_a_source_needs_a_name_and_nothing_unknown(
    raw_event_factory: RawFactory, source: Any, expected: list[str]
) -> None:
    assert refusal(raw_event_factory("usage.reported", source=source)) == expected


def test_the_source_is_required(raw_event_factory: RawFactory) -> None:
    data = raw_event_factory("usage.reported")
    del data["source"]

    assert refusal(data) == ["source: Field required"]


@pytest.mark.parametrize("slug", ["bytedance", "us_hyperscalers", "cn-approved", "0xai", "a" * 64])
def test_an_entity_is_a_lowercase_slug(event_factory: EventFactory, slug: str) -> None:
    assert event_factory("usage.reported", entity=slug).entity == slug


@pytest.mark.parametrize("slug", ["ByteDance", "_bytedance", "-x", "byte dance", "bytédance", "a.b"])
def test_an_entity_that_is_not_a_slug_is_refused(raw_event_factory: RawFactory, slug: str) -> None:
    errors = refusal(raw_event_factory("usage.reported", entity=slug))

    assert errors == ["entity: String should match pattern '^[a-z0-9][a-z0-9_-]*$'"]


def test_an_entity_slug_is_at_most_64_characters(raw_event_factory: RawFactory) -> None:
    errors = refusal(raw_event_factory("usage.reported", entity="a" * 65))

    assert errors == ["entity: String should have at most 64 characters"]


@pytest.mark.parametrize("kind", ["usage.reported", "investment.announced", "chip_delivery.reported"])
def test_facts_about_a_company_require_the_entity(raw_event_factory: RawFactory, kind: str) -> None:
    data = raw_event_factory(kind)
    del data["entity"]

    assert refusal(data) == ["entity: Field required"]


@pytest.mark.parametrize("kind", ["export_rule.changed", "event.retracted"])
def test_export_rules_and_retractions_need_no_entity(event_factory: EventFactory, kind: str) -> None:
    assert event_factory(kind).entity is None


def test_entity_name_is_optional_free_text(event_factory: EventFactory) -> None:
    named = event_factory("usage.reported", entity_name="ByteDance (字节跳动)")

    assert named.entity_name == "ByteDance (字节跳动)"
    assert event_factory("usage.reported").entity_name is None


@pytest.mark.parametrize("kind", ALL_TYPES)
def test_an_unknown_top_level_field_is_refused(raw_event_factory: RawFactory, kind: str) -> None:
    assert refusal(raw_event_factory(kind, x=1)) == ["x: Extra inputs are not permitted"]


def test_every_problem_of_a_record_is_reported_with_its_path(raw_event_factory: RawFactory) -> None:
    data = raw_event_factory(
        "usage.reported", metric="tokens", x=1, value={"low": -1, "unit": "t"}, source={"name": "FT", "url": "ftp://a"}
    )

    errors = refusal(data)

    assert sorted(errors) == [
        "metric: Input should be 'mau', 'wau', 'dau', 'tokens_per_day' or 'tokens_per_month'",
        "source.url: only http:// and https:// URLs are accepted",
        "value.low: Input should be greater than or equal to 0",
        "x: Extra inputs are not permitted",
    ]


def test_the_message_of_a_refusal_joins_its_errors(raw_event_factory: RawFactory) -> None:
    with pytest.raises(EventValidationError) as refused:
        validate_event(raw_event_factory("usage.reported", x=1, y=2))

    assert str(refused.value) == "x: Extra inputs are not permitted; y: Extra inputs are not permitted"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ([], "expected a JSON object, got an array"),
        ("usage.reported", "expected a JSON object, got a string"),
        (3.5, "expected a JSON object, got a number"),
        (True, "expected a JSON object, got a boolean"),
        (None, "expected a JSON object, got null"),
    ],
)
def test_a_record_that_is_not_an_object_is_refused(data: Any, expected: str) -> None:
    assert refusal(data) == [expected]


def test_a_record_without_a_type_is_refused(raw_event_factory: RawFactory) -> None:
    data = raw_event_factory("usage.reported")
    del data["type"]

    assert refusal(data) == ["type: field required"]


@pytest.mark.parametrize("kind", ["usage", "Usage.Reported", 5, ["usage.reported"], None])
def test_an_unknown_type_is_refused_listing_the_known_ones(raw_event_factory: RawFactory, kind: Any) -> None:
    data = raw_event_factory("usage.reported")
    data["type"] = kind

    errors = refusal(data)

    if kind is None:
        assert errors == ["type: field required"]
    else:
        (error,) = errors
        assert error.startswith("type: unknown event type; expected one of ")
        assert sorted(error.split(" one of ")[1].split(", ")) == sorted(ALL_TYPES)


def test_numbers_are_not_read_from_strings_or_booleans(raw_event_factory: RawFactory) -> None:
    as_text = refusal(raw_event_factory("usage.reported", value={"value": "50", "unit": "t"}))
    as_bool = refusal(raw_event_factory("usage.reported", value={"value": True, "unit": "t"}))
    period = refusal(raw_event_factory("investment.announced", period="2026"))

    assert as_text == as_bool == ["value.value: Input should be a valid number"]
    assert period == ["period: Input should be a valid integer"]


def test_events_are_immutable(event_factory: EventFactory) -> None:
    event = event_factory("usage.reported")

    with pytest.raises(ValidationError):
        event.entity = "google"  # type: ignore[misc]

    assert event.entity == "bytedance"


# --- quantities -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("quantity", "point"),
    [
        ({"value": 23e9, "unit": "USD", "approx": True}, 23e9),
        ({"low": 350e9, "high": 400e9, "unit": "USD"}, 375e9),
        ({"low": 30e12, "unit": "tokens_per_day"}, 30e12),
        ({"high": 1e6, "unit": "users"}, 1e6),
        ({"value": 0, "unit": "units"}, 0.0),
        ({"low": 5, "high": 5, "unit": "units"}, 5.0),
    ],
)
def test_the_point_estimate_is_the_value_else_the_midpoint_else_the_bound(
    event_factory: EventFactory, quantity: dict[str, Any], point: float
) -> None:
    event = event_factory("usage.reported", value=quantity)

    assert isinstance(event, UsageReported)
    assert event.value.point == point


def test_a_quantity_keeps_how_it_was_reported(event_factory: EventFactory) -> None:
    event = event_factory("usage.reported", value={"low": 30e12, "unit": "tokens_per_day", "approx": True})

    assert isinstance(event, UsageReported)
    assert (event.value.value, event.value.low, event.value.high) == (None, 30e12, None)
    assert event.value.approx is True
    assert event_factory("usage.reported").value.approx is False  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("quantity", "expected"),
    [
        ({"low": 5, "high": 1, "unit": "u"}, "value: low (5) is greater than high (1)"),
        ({"value": 1, "low": 1, "unit": "u"}, "value: give either value or low/high, not both"),
        ({"value": 1, "high": 2, "unit": "u"}, "value: give either value or low/high, not both"),
        ({"unit": "u"}, "value: give value, or low and/or high"),
        ({"value": -1, "unit": "u"}, "value.value: Input should be greater than or equal to 0"),
        ({"low": -0.5, "unit": "u"}, "value.low: Input should be greater than or equal to 0"),
        ({"value": 1e19, "unit": "u"}, "value.value: Input should be less than or equal to 1000000000000000000"),
        ({"low": float("nan"), "unit": "u"}, "value.low: Input should be a finite number"),
        ({"high": float("inf"), "unit": "u"}, "value.high: Input should be a finite number"),
        ({"value": 1}, "value.unit: Field required"),
        ({"value": 1, "unit": "US D"}, "value.unit: String should match pattern '^[A-Za-z][A-Za-z_]*$'"),
        ({"value": 1, "unit": "u", "currency": "USD"}, "value.currency: Extra inputs are not permitted"),
    ],
)
def test_a_quantity_must_be_one_finite_non_negative_shape(
    raw_event_factory: RawFactory, quantity: dict[str, Any], expected: str
) -> None:
    assert refusal(raw_event_factory("usage.reported", value=quantity)) == [expected]


finite = st.floats(min_value=0, max_value=1e18, allow_nan=False, allow_infinity=False)


@given(finite, finite)
def test_the_midpoint_of_a_range_lies_inside_it(a: float, b: float) -> None:
    low, high = min(a, b), max(a, b)

    point = Quantity(low=low, high=high, unit="u").point

    assert low <= point <= high


@given(finite, st.sampled_from(["value", "low", "high"]))
def test_a_single_figure_is_its_own_point_estimate(figure: float, field: str) -> None:
    assert Quantity.model_validate({field: figure, "unit": "u"}).point == figure


# --- each fact type ---------------------------------------------------------------------


def test_an_investment_keeps_its_period_category_and_members(event_factory: EventFactory) -> None:
    event = event_factory(
        "investment.announced",
        entity="us_hyperscalers",
        members=["microsoft", "alphabet", "amazon", "meta"],
        amount={"low": 350e9, "high": 400e9, "unit": "USD"},
        period=2025,
    )

    assert isinstance(event, InvestmentAnnounced)
    assert (event.period, event.category, event.amount.point) == (2025, "ai_infrastructure", 375e9)
    assert event.members == ["microsoft", "alphabet", "amazon", "meta"]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"period": 1989}, "period: Input should be greater than or equal to 1990"),
        ({"period": 2026.0}, "period: Input should be a valid integer"),
        ({"members": ["microsoft", "Meta"]}, "members[1]: String should match pattern '^[a-z0-9][a-z0-9_-]*$'"),
        ({"category": "AI"}, "category: String should match pattern '^[a-z0-9][a-z0-9_-]*$'"),
    ],
)
def test_an_investment_field_that_breaks_the_contract_is_named(
    raw_event_factory: RawFactory, overrides: dict[str, Any], expected: str
) -> None:
    assert refusal(raw_event_factory("investment.announced", **overrides)) == [expected]


@pytest.mark.parametrize("field", ["amount", "period"])
def test_an_investment_needs_an_amount_and_a_period(raw_event_factory: RawFactory, field: str) -> None:
    data = raw_event_factory("investment.announced")
    del data[field]

    assert refusal(data) == [f"{field}: Field required"]


def test_an_investment_amount_is_kept_in_the_currency_reported(event_factory: EventFactory) -> None:
    event = event_factory("investment.announced", amount={"value": 1e12, "unit": "JPY"})

    assert isinstance(event, InvestmentAnnounced)
    assert (event.amount.point, event.amount.unit) == (1e12, "JPY")


@pytest.mark.parametrize(
    ("unit", "reason"),
    [
        ("XYZ", "unknown currency code 'XYZ': expected an ISO 4217 code such as USD, EUR, CNY"),
        ("eur", "unknown currency code 'eur': expected an ISO 4217 code such as USD, EUR, CNY; did you mean EUR?"),
        ("dollars", "unknown currency code 'dollars': expected an ISO 4217 code such as USD, EUR, CNY"),
    ],
)
def test_an_amount_in_an_unknown_currency_is_refused_at_its_unit(
    raw_event_factory: RawFactory, unit: str, reason: str
) -> None:
    data = raw_event_factory("investment.announced", amount={"value": 21e9, "unit": unit})

    assert refusal(data) == [f"amount.unit: {reason}"]


def test_a_chip_order_without_a_named_buyer_is_the_reporting_entity(event_factory: EventFactory) -> None:
    event = event_factory("chip_delivery.reported", entity="bytedance")

    assert isinstance(event, ChipDeliveryReported)
    assert event.buyer is None
    assert event.buyer_slug == "bytedance"


def test_a_chip_report_keeps_buyer_price_stage_and_expected_date(event_factory: EventFactory) -> None:
    event = event_factory(
        "chip_delivery.reported",
        entity="nvidia",
        buyer="cn_approved_customers",
        units={"low": 40000, "high": 80000, "unit": "units"},
        unit_price={"value": 20000, "unit": "USD", "approx": True},
        stage="scheduled",
        expected_on="2026-02",
    )

    assert isinstance(event, ChipDeliveryReported)
    assert (event.buyer_slug, event.stage, event.expected_on) == ("cn_approved_customers", "scheduled", "2026-02")
    assert (event.units.point, event.unit_price and event.unit_price.point) == (60000, 20000)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"stage": "shipped"}, "stage: Input should be 'ordered', 'scheduled' or 'delivered'"),
        (
            {"expected_on": "mid-February"},
            "expected_on: use YYYY, YYYY-MM or YYYY-MM-DD",
        ),
        ({"vendor": "NVIDIA"}, "vendor: String should match pattern '^[a-z0-9][a-z0-9_-]*$'"),
        ({"units": {"value": -1, "unit": "units"}}, "units.value: Input should be greater than or equal to 0"),
    ],
)
def test_a_chip_field_that_breaks_the_contract_is_named(
    raw_event_factory: RawFactory, overrides: dict[str, Any], expected: str
) -> None:
    assert refusal(raw_event_factory("chip_delivery.reported", **overrides)) == [expected]


def test_a_chip_price_in_an_unknown_currency_is_refused_at_its_unit(raw_event_factory: RawFactory) -> None:
    data = raw_event_factory("chip_delivery.reported", unit_price={"value": 150000, "unit": "RMB"})

    assert refusal(data) == [
        "unit_price.unit: unknown currency code 'RMB': expected an ISO 4217 code such as USD, EUR, CNY"
    ]


def test_an_export_rule_applies_from_effective_on_else_occurred_on(event_factory: EventFactory) -> None:
    explicit = event_factory("export_rule.changed", effective_on="2026-01-15", occurred_on="2025-12")
    implicit = event_factory("export_rule.changed", occurred_on="2025-12")

    assert isinstance(explicit, ExportRuleChanged) and isinstance(implicit, ExportRuleChanged)
    assert str(explicit.effective) == "2026-01-15"
    assert str(implicit.effective) == "2025-12"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"destination": "cn"}, "destination: String should match pattern '^[A-Z]{2}$'"),
        ({"destination": "CHN"}, "destination: String should match pattern '^[A-Z]{2}$'"),
        ({"direction": "eased"}, "direction: Input should be 'loosened' or 'tightened'"),
        ({"effective_on": "2025-12-32"}, "effective_on: day 32 does not exist in 2025-12"),
        ({"conditions": "x" * 1001}, "conditions: String should have at most 1000 characters"),
    ],
)
def test_an_export_rule_field_that_breaks_the_contract_is_named(
    raw_event_factory: RawFactory, overrides: dict[str, Any], expected: str
) -> None:
    assert refusal(raw_event_factory("export_rule.changed", **overrides)) == [expected]


@pytest.mark.parametrize("metric", ["mau", "wau", "dau", "tokens_per_day", "tokens_per_month"])
def test_every_usage_metric_of_the_contract_is_accepted(event_factory: EventFactory, metric: str) -> None:
    assert event_factory("usage.reported", metric=metric).metric == metric  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({"target_id": "has space"}, "target_id: String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.:-]*$'"),
        ({"target_id": ""}, "target_id: String should have at least 1 character"),
        ({"reason": ""}, "reason: String should have at least 1 character"),
    ],
)
def test_a_retraction_names_a_valid_target_and_a_reason(
    raw_event_factory: RawFactory, overrides: dict[str, Any], expected: str
) -> None:
    assert refusal(raw_event_factory("event.retracted", **overrides)) == [expected]


def test_a_retraction_without_a_reason_is_refused(raw_event_factory: RawFactory) -> None:
    data = raw_event_factory("event.retracted")
    del data["reason"]

    assert refusal(data) == ["reason: Field required"]


# --- ids ----------------------------------------------------------------------------------


def test_a_given_id_is_kept(event_factory: EventFactory) -> None:
    event = event_factory("usage.reported", id="seed-09-bytedance-tokens-2025-12")

    assert event.event_id == "seed-09-bytedance-tokens-2025-12"


@pytest.mark.parametrize(
    ("event_id", "reason"),
    [
        ("has space", "String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.:-]*$'"),
        ("-leading-dash", "String should match pattern '^[A-Za-z0-9][A-Za-z0-9_.:-]*$'"),
        ("x" * 129, "String should have at most 128 characters"),
    ],
)
def test_a_malformed_id_is_refused(raw_event_factory: RawFactory, event_id: str, reason: str) -> None:
    assert refusal(raw_event_factory("usage.reported", id=event_id)) == [f"id: {reason}"]


def test_a_missing_id_is_derived_from_the_content(event_factory: EventFactory) -> None:
    event = event_factory("usage.reported")

    assert event.id is None
    assert event.event_id.startswith("ev-")
    assert len(event.event_id) == len("ev-") + 24
    assert event.event_id == derive_id(event)


def test_the_derived_id_hashes_the_canonical_content_with_its_defaults() -> None:
    # Ids are persisted in the topics: changing the canonical form would make every
    # replayed fact look new, so the form is spelled out here.
    event = validate_event(
        {
            "type": "usage.reported",
            "entity": "google",
            "metric": "tokens_per_day",
            "value": {"value": 43e12, "unit": "tokens_per_day"},
            "occurred_on": "2025-12",
            "source": {"name": "Goldman Sachs"},
        }
    )
    canonical = (
        '{"entity":"google","metric":"tokens_per_day","occurred_on":"2025-12",'
        '"status":"reported","type":"usage.reported","value":{"approx":false,"high":null,'
        '"low":null,"unit":"tokens_per_day","value":43000000000000.0}}'
    )

    derived = event.event_id

    assert derived == "ev-" + hashlib.sha256(canonical.encode()).hexdigest()[:24]
    assert derived == "ev-7b1e8044fe53c3e328721097"


def test_the_same_fact_reported_twice_gets_the_same_id(raw_event_factory: RawFactory) -> None:
    first = raw_event_factory("usage.reported", value={"value": 50e12, "unit": "tokens_per_day"})
    again = dict(reversed(list(first.items())))
    again["value"] = {"unit": "tokens_per_day", "value": 50_000_000_000_000}
    again["status"] = "reported"

    assert validate_event(first).event_id == validate_event(again).event_id


@pytest.mark.parametrize(
    "change",
    [
        {"occurred_on": "2025-11"},
        {"value": {"value": 51e12, "unit": "tokens_per_day"}},
        {"value": {"value": 50e12, "unit": "tokens_per_day", "approx": True}},
        {"status": "confirmed"},
    ],
)
def test_any_change_of_content_changes_the_derived_id(event_factory: EventFactory, change: dict[str, Any]) -> None:
    assert event_factory("usage.reported", **change).event_id != event_factory("usage.reported").event_id


def test_a_given_id_does_not_take_part_in_the_derived_one(event_factory: EventFactory) -> None:
    anonymous = event_factory("usage.reported")
    named = event_factory("usage.reported", id="seed-09")

    assert derive_id(named) == anonymous.event_id
    assert named.event_id == "seed-09"


@given(st.randoms(use_true_random=False), st.sampled_from(ALL_TYPES))
def test_the_derived_id_ignores_the_order_of_fields(rng: random.Random, kind: str) -> None:
    base = {
        "usage.reported": {"entity": "doubao", "metric": "mau", "value": {"value": 159e6, "unit": "users"}},
        "investment.announced": {"entity": "bytedance", "amount": {"low": 1, "high": 2, "unit": "USD"}, "period": 2026},
        "chip_delivery.reported": {
            "entity": "bytedance",
            "vendor": "nvidia",
            "product": "h200",
            "units": {"value": 1, "unit": "u"},
            "stage": "ordered",
        },
        "export_rule.changed": {"authority": "us", "product": "h200", "destination": "CN", "direction": "loosened"},
        "fx_rate.reported": {"currency": "JPY", "usd_per_unit": 0.0064},
        "event.retracted": {"target_id": "seed-09", "reason": "wrong"},
    }[kind]
    data = {"type": kind, "occurred_on": "2025-10", "source": {"name": "QuestMobile", "quote": "q"}, **base}
    items = list(data.items())
    rng.shuffle(items)
    shuffled = {key: dict(rng.sample(list(v.items()), len(v))) if isinstance(v, dict) else v for key, v in items}

    assert validate_event(shuffled).event_id == validate_event(data).event_id


@pytest.mark.parametrize(
    "change",
    [{"source": {"name": "Reuters"}}, {"entity_name": "ByteDance"}, {"reported_on": "2025-12-24"}],
)
def test_the_same_fact_from_another_outlet_keeps_its_derived_id(
    event_factory: EventFactory, change: dict[str, Any]
) -> None:
    assert event_factory("usage.reported", **change).event_id == event_factory("usage.reported").event_id
