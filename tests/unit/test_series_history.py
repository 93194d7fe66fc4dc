"""A series' history (what alert rules walk back through) is, point by point, the signals of the facts known then."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.core.catalogue import Signal
from tracker.core.dates import PartialDate
from tracker.core.fold import SeriesValue
from tracker.core.fx import Rates, rates_key
from tracker.core.history import signal_history
from tracker.core.queries import HISTORY_FAMILIES, SignalQuery
from tracker.core.routing import Router
from tracker.core.series_kinds import series_history, series_signals
from tracker.core.signals import derive_signals
from tracker.rules_file import build_router
from tracker.settings import Settings

pytestmark = pytest.mark.unit

laws = settings(max_examples=300, deadline=None)

# A few dates of mixed precision, so that facts share dates and sort keys.
DATES = ["2023", "2023-06", "2023-06-15", "2024", "2024-03", "2025-01", "2025-01-20", "2025-12"]
KEYS = {
    "investment": "bytedance/investment:bytedance",
    "usage": "bytedance/usage:bytedance:tokens_per_day",
    "chip": "bytedance/chip:bytedance:nvidia:h200",
    "export": "us-bis/export:us-bis:h200:cn",
}
RATES = Rates([("fx-1", ["d", "2023-01", "EUR", 1.1]), ("fx-2", ["d", "2025-01", "EUR", 1.05])])

amounts = st.floats(min_value=1.0, max_value=1e11, allow_nan=False)
payloads = {
    "investment": st.tuples(
        st.sampled_from(DATES),
        st.sampled_from([2022, 2023, 2024, 2025, "2024-2025", "2026-2027"]),
        amounts,
        st.sampled_from([[], ["EUR"], ["JPY"]]),
    ).map(lambda t: ["d", t[0], t[1], t[2], *t[3]]),
    "usage": st.tuples(st.sampled_from(DATES), amounts).map(lambda t: ["d", t[0], t[1]]),
    "chip": st.tuples(
        st.sampled_from(DATES),
        st.sampled_from(["ordered", "delivered"]),
        st.one_of(st.none(), st.integers(1, 10**6)),
        st.one_of(st.none(), amounts),
        st.sampled_from([[], ["EUR", None, None], ["JPY", None, None], ["USD", 2e9, "EUR"]]),
    ).map(lambda t: ["d", t[0], t[1], t[2], t[3], *t[4]]),
    "export": st.tuples(st.sampled_from(DATES), st.sampled_from(DATES), st.sampled_from([1, -1])).map(
        lambda t: ["d", t[0], t[1], t[2]]
    ),
}


def series(kind: str) -> st.SearchStrategy[SeriesValue]:
    """Draw a series value of ``kind``: up to 30 facts, some retracted."""
    facts = st.dictionaries(st.text("abcdef0123", min_size=1, max_size=4), payloads[kind], max_size=30)
    return facts.flatmap(
        lambda drawn: st.sets(st.sampled_from(sorted(drawn)) if drawn else st.nothing()).map(
            lambda gone: {"facts": drawn, "retracted": {key: ["r"] for key in gone}, "known": {}}
        )
    )


def known_at(value: SeriesValue, date: PartialDate) -> SeriesValue:
    """Return the series restricted to its facts dated ``date`` or earlier (by sort key)."""
    limit = date.sort_key()
    facts = {i: p for i, p in value["facts"].items() if PartialDate.parse(p[1]).sort_key() <= limit}
    return {"facts": facts, "retracted": value["retracted"], "known": {}}


def check(kind: str, value: SeriesValue) -> None:
    key = KEYS[kind]
    history = list(series_history(key, value, RATES))
    live = [payload for event_id, payload in value["facts"].items() if event_id not in value["retracted"]]
    dates = sorted({PartialDate.parse(payload[1]).sort_key() for payload in live})

    assert [date.sort_key() for date, _ in history] == dates[::-1]
    for date, signals in history:
        assert signals == series_signals(key, known_at(value, date), RATES), date


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_each_point_of_a_history_is_the_signals_of_the_facts_dated_then_or_earlier(kind: str) -> None:
    @laws
    @given(series(kind))
    def law(value: Any) -> None:
        check(kind, value)

    law()


def by_prefix(router: Router, state: dict[str, SeriesValue], signal: Signal) -> list[tuple[str, float]]:
    """Return (date, value) where the signal appears or changes, deriving every prefix of the facts anew."""
    (key,) = [k for k in state if not k.startswith("#")]
    live = [payload for event_id, payload in state[key]["facts"].items() if event_id not in state[key]["retracted"]]
    points: list[tuple[str, float]] = []
    for date in sorted({PartialDate.parse(payload[1]) for payload in live}, key=lambda date: date.sort_key()):
        prefix = {**state, key: known_at(state[key], date)}
        value = next((s.value for s in derive_signals(router, prefix) if s[:2] == signal[:2]), None)
        if value is not None and (not points or points[-1][1] != value):
            points.append((str(date), value))
    return points


@pytest.mark.parametrize("kind", sorted(KEYS))
def test_the_history_api_of_one_series_equals_deriving_each_date_anew(kind: str) -> None:
    router = build_router(Settings())
    rates = rates_key(0, "fx-1")

    @laws
    @given(series(kind))
    def law(value: Any) -> None:
        state = {KEYS[kind]: value, rates: {"facts": {"fx-1": ["d", "2023-01", "EUR", 1.1]}, "retracted": {}}}
        for signal in derive_signals(router, state, trailing=False):
            if signal.name not in HISTORY_FAMILIES or signal.name == "market_fx_usd_per_unit":
                continue
            (history,) = signal_history(router, state, SignalQuery(signal.name, dict(signal.labels)))
            assert [(p.date, p.value) for p in history.points] == by_prefix(router, state, signal)

    law()
