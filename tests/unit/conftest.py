"""Shared fixtures for the pure unit tests: the seed article's events and event factories."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tracker.core.decode import split_records, validate_event
from tracker.core.events import Event
from tracker.core.routing import Router, parse_peers

SEED = Path(__file__).resolve().parents[2] / "events" / "samples" / "seed.jsonl"
BRIEF_PEERS = "bytedance:google:tokens_per_day,bytedance:us_hyperscalers:investment_usd"

RawFactory = Callable[..., dict[str, Any]]
EventFactory = Callable[..., Event]


@pytest.fixture(scope="session")
def seed_text() -> str:
    """Return the seed article's ten events as JSON Lines (read once per session)."""
    return SEED.read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def seed_events(seed_text: str) -> tuple[Event, ...]:
    """Return the seed events, failing loudly if any of them breaks the contract."""
    records = list(split_records(seed_text))
    refused = [(record.line, record.errors) for record in records if record.event is None]
    assert refused == []
    return tuple(record.event for record in records if record.event is not None)


@pytest.fixture(scope="session")
def router() -> Router:
    """Return a router with the brief's two peer pairs."""
    return Router(parse_peers(BRIEF_PEERS))


_DEFAULTS: dict[str, dict[str, Any]] = {
    "usage.reported": {
        "entity": "bytedance",
        "metric": "tokens_per_day",
        "value": {"value": 50e12, "unit": "tokens_per_day"},
        "occurred_on": "2025-12",
    },
    "investment.announced": {
        "entity": "bytedance",
        "amount": {"value": 23e9, "unit": "USD"},
        "period": 2026,
        "occurred_on": "2025-12",
    },
    "chip_delivery.reported": {
        "entity": "bytedance",
        "vendor": "nvidia",
        "product": "nvidia_h200",
        "units": {"value": 20000, "unit": "units"},
        "stage": "ordered",
        "occurred_on": "2025-12",
    },
    "export_rule.changed": {
        "authority": "us_government",
        "product": "nvidia_h200",
        "destination": "CN",
        "direction": "loosened",
        "occurred_on": "2025-12",
    },
    "fx_rate.reported": {
        "currency": "CNY",
        "usd_per_unit": 0.1404,
        "occurred_on": "2025-12",
    },
    "event.retracted": {
        "target_id": "seed-09-bytedance-tokens-2025-12",
        "reason": "misreported",
        "occurred_on": "2025-12",
    },
}


@pytest.fixture(scope="session")
def raw_event_factory() -> RawFactory:
    """Return a builder of valid event dicts of one type, with fields overridden by keyword."""

    def build(kind: str, **overrides: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"type": kind, "source": {"name": "Financial Times"}}
        data.update(_DEFAULTS[kind])
        data.update(overrides)
        return {key: value for key, value in data.items() if value is not None}

    return build


@pytest.fixture(scope="session")
def event_factory(raw_event_factory: RawFactory) -> EventFactory:
    """Return a builder of validated events (see ``raw_event_factory``)."""

    def build(kind: str, **overrides: Any) -> Event:
        return validate_event(raw_event_factory(kind, **overrides))

    return build
