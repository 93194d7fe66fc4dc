"""Where facts are folded: peer groups, fold keys, series and table keys, and the peers setting."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracker.core.events import Event
from tracker.core.routing import PeerPair, Router, SeriesId, parse_peers, series_of, split_table_key
from tracker.errors import ConfigurationError

pytestmark = pytest.mark.unit

EventFactory = Callable[..., Event]


# --- the peers setting ------------------------------------------------------------------------


def test_peer_pairs_are_read_in_order() -> None:
    pairs = parse_peers("bytedance:google:tokens_per_day,bytedance:us_hyperscalers:investment_usd")

    assert pairs == (
        PeerPair("bytedance", "google", "tokens_per_day"),
        PeerPair("bytedance", "us_hyperscalers", "investment_usd"),
    )


@pytest.mark.parametrize("text", ["", " ", ",", " , ,"])
def test_an_empty_setting_configures_no_pairs(text: str) -> None:
    assert parse_peers(text) == ()


def test_blanks_around_pairs_and_a_trailing_comma_are_tolerated() -> None:
    assert parse_peers(" doubao:chatgpt:mau , ") == (PeerPair("doubao", "chatgpt", "mau"),)


@pytest.mark.parametrize("metric", ["mau", "wau", "dau", "tokens_per_day", "tokens_per_month", "investment_usd"])
def test_every_comparable_metric_is_accepted(metric: str) -> None:
    assert parse_peers(f"a:b:{metric}") == (PeerPair("a", "b", metric),)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bytedance:google", "peers: 'bytedance:google' is not entity:peer:metric"),
        ("bytedance:google:mau:extra", "peers: 'bytedance:google:mau:extra' is not entity:peer:metric"),
        ("bytedance::mau", "peers: 'bytedance::mau' is not entity:peer:metric"),
        (":google:mau", "peers: ':google:mau' is not entity:peer:metric"),
        ("a:b:mau,broken", "peers: 'broken' is not entity:peer:metric"),
        ("bytedance:bytedance:mau", "peers: 'bytedance:bytedance:mau' compares an entity with itself"),
    ],
)
def test_a_malformed_pair_is_a_configuration_error_naming_it(text: str, message: str) -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse_peers(text)

    assert str(refused.value) == message


def test_a_metric_that_cannot_be_compared_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError) as refused:
        parse_peers("bytedance:google:revenue")

    assert str(refused.value).startswith("peers: metric 'revenue' is not one of ")
    assert "'tokens_per_day'" in str(refused.value)


@pytest.mark.parametrize("peer", ["Google", "0/x", " google", "goo gle"])
def test_a_pair_naming_something_that_is_not_a_slug_is_a_configuration_error(peer: str) -> None:
    # No event can carry such an entity, so the pair could never match; "0/x" would even
    # become a fold key holding the table-key separator.
    with pytest.raises(ConfigurationError):
        parse_peers(f"bytedance:{peer}:tokens_per_day")


# --- peer groups and fold keys ------------------------------------------------------------------


def test_a_subject_without_peers_is_folded_under_itself() -> None:
    router = Router(parse_peers("bytedance:google:tokens_per_day"))

    assert router.fold_key("doubao") == "doubao"
    assert Router().fold_key("doubao") == "doubao"


def test_peers_fold_under_the_smallest_slug_of_their_group() -> None:
    router = Router(parse_peers("google:bytedance:tokens_per_day,bytedance:us_hyperscalers:investment_usd"))

    keys = {slug: router.fold_key(slug) for slug in ("bytedance", "google", "us_hyperscalers")}

    assert keys == {"bytedance": "bytedance", "google": "bytedance", "us_hyperscalers": "bytedance"}


def test_groups_join_through_a_shared_member() -> None:
    router = Router(parse_peers("zhipu:moonshot:mau,moonshot:deepseek:mau,openai:anthropic:mau"))

    assert {router.fold_key(slug) for slug in ("zhipu", "moonshot", "deepseek")} == {"deepseek"}
    assert {router.fold_key(slug) for slug in ("openai", "anthropic")} == {"anthropic"}


def test_a_group_lists_its_own_pairs_only() -> None:
    pairs = parse_peers("zhipu:moonshot:mau,openai:anthropic:mau,moonshot:deepseek:dau")
    router = Router(pairs)

    assert router.peers_in("deepseek") == (pairs[0], pairs[2])
    assert router.peers_in("anthropic") == (pairs[1],)
    assert router.peers_in("doubao") == ()


slugs = st.sampled_from(["alibaba", "bytedance", "deepseek", "google", "meta", "openai", "tencent", "zhipu"])
pairs = st.lists(
    st.tuples(slugs, slugs).filter(lambda pair: pair[0] != pair[1]).map(lambda pair: PeerPair(*pair, "mau")),
    max_size=8,
)


@given(pairs, st.randoms(use_true_random=False))
def test_fold_keys_name_connected_groups_whatever_the_order_of_pairs(configured: list[PeerPair], rng: Any) -> None:
    shuffled = list(configured)
    rng.shuffle(shuffled)
    router, reordered = Router(tuple(configured)), Router(tuple(shuffled))

    for pair in configured:
        assert router.fold_key(pair.entity) == router.fold_key(pair.peer)
    for slug in ("alibaba", "bytedance", "deepseek", "google", "meta", "openai", "tencent", "zhipu", "x"):
        key = router.fold_key(slug)
        assert key <= slug
        assert router.fold_key(key) == key
        assert reordered.fold_key(slug) == key


# --- series and table keys ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "overrides", "expected"),
    [
        ("usage.reported", {"entity": "doubao", "metric": "mau"}, SeriesId("usage", ("doubao", "mau"))),
        ("investment.announced", {"entity": "us_hyperscalers"}, SeriesId("investment", ("us_hyperscalers",))),
        (
            "chip_delivery.reported",
            {"entity": "nvidia", "buyer": "bytedance"},
            SeriesId("chip", ("bytedance", "nvidia", "nvidia_h200")),
        ),
        ("chip_delivery.reported", {"entity": "bytedance"}, SeriesId("chip", ("bytedance", "nvidia", "nvidia_h200"))),
        (
            "export_rule.changed",
            {"authority": "us_government", "destination": "CN"},
            SeriesId("export", ("us_government", "nvidia_h200", "CN")),
        ),
    ],
)
def test_each_fact_belongs_to_the_series_of_its_subject(
    event_factory: EventFactory, kind: str, overrides: dict[str, Any], expected: SeriesId
) -> None:
    series = series_of(event_factory(kind, **overrides))

    assert series == expected
    assert series is not None and series.subject == expected.labels[0]


def test_a_retraction_belongs_to_no_series(event_factory: EventFactory) -> None:
    assert series_of(event_factory("event.retracted")) is None


def test_a_table_key_is_the_fold_key_then_the_series() -> None:
    router = Router(parse_peers("bytedance:google:tokens_per_day"))
    series = SeriesId("usage", ("google", "tokens_per_day"))

    key = router.table_key(series)

    assert key == "bytedance/usage:google:tokens_per_day"
    assert split_table_key(key) == ("bytedance", series)


@given(
    st.sampled_from(["usage", "investment", "chip", "export"]),
    st.lists(st.from_regex(r"[a-z0-9][a-z0-9_-]{0,10}", fullmatch=True), min_size=1, max_size=3),
)
def test_a_series_survives_its_text_form(kind: str, labels: list[str]) -> None:
    series = SeriesId(kind, tuple(labels))

    assert SeriesId.decode(series.encode()) == series
    assert split_table_key(Router().table_key(series)) == (labels[0], series)
