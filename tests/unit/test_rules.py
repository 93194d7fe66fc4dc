"""Alert rules as data: one condition each, thresholds with hysteresis, globs, versions, templates."""

from __future__ import annotations

import string
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from tracker.core.routing import PeerPair
from tracker.core.rules import Bounds, Rule, RuleSet, render_template

pytestmark = pytest.mark.unit

laws = settings(max_examples=200, deadline=None)


def rule(**fields: Any) -> Rule:
    """Return a valid rule (an export event rule) with ``fields`` overridden."""
    data: dict[str, Any] = {
        "name": "export-change",
        "severity": "warning",
        "event": {"type": "export_rule.changed", "match": {"destination": "CN"}},
    }
    data.update(fields)
    return Rule.model_validate({key: value for key, value in data.items() if value is not None})


# --- one rule ------------------------------------------------------------------------------------------


def test_a_rule_exposes_its_one_condition() -> None:
    # Arrange
    threshold = {"signal": "market_chip_order_value_usd", "above": 1e9}

    # Act
    built = rule(event=None, threshold=threshold)

    # Assert
    assert built.condition is built.threshold
    assert built.condition.describe() == "> 1e+09"


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"event": None}, "give exactly one condition"),
        ({"peer": {"entity": "a", "peer": "b", "metric": "mau", "above": 1}}, "give exactly one condition"),
        ({"severity": "urgent"}, "severity"),
        ({"name": "Export Change"}, "name"),
        ({"labels": {"bad-label": "x"}}, "labels"),
        ({"annotations": {"summary": "{unclosed"}}, "annotations.summary: bad template"),
        ({"colour": "red"}, "colour"),
        ({"event": {"type": "export_rule.changed", "match": {"vendor": "nvidia"}}}, "cannot be matched"),
        ({"event": {"type": "rumour.heard"}}, "type: expected one of"),
    ],
)
def test_a_malformed_rule_is_refused_with_the_reason(fields: dict[str, Any], reason: str) -> None:
    # Arrange: ``fields`` break one part of an otherwise valid rule.

    # Act
    with pytest.raises(ValidationError) as refused:
        rule(**fields)

    # Assert
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("condition", "reason"),
    [
        ({"signal": "market_usage"}, "give exactly one of above or below"),
        ({"signal": "market_usage", "above": 1, "below": 2}, "give exactly one of above or below"),
        ({"signal": "market_usage", "above": 10, "resolve_below": 12}, "resolve_below must not be greater"),
        ({"signal": "market_usage", "below": 10, "resolve_above": 8}, "resolve_above must not be less"),
        ({"signal": "market_usage", "above": 10, "resolve_above": 12}, "use resolve_below"),
        ({"signal": "market_usage", "below": 10, "resolve_below": 8}, "use resolve_above"),
        ({"signal": "market_usage", "above": 1, "for_months": -1}, "greater than or equal to 0"),
        ({"signal": "market_revenue", "above": 1}, "unknown signal"),
    ],
)
def test_a_threshold_must_point_one_way_with_a_resolve_line_on_the_safe_side(
    condition: dict[str, Any], reason: str
) -> None:
    # Arrange: ``condition`` is an inconsistent threshold.

    # Act
    with pytest.raises(ValidationError) as refused:
        rule(event=None, threshold=condition)

    # Assert
    assert reason in str(refused.value)


def test_a_peer_rule_accepts_only_the_metrics_a_peer_ratio_exists_for() -> None:
    # Arrange
    peer = {"entity": "bytedance", "peer": "google", "metric": "revenue", "above": 1}

    # Act
    with pytest.raises(ValidationError) as refused:
        rule(event=None, peer=peer)

    # Assert
    assert "unknown metric" in str(refused.value)


def test_a_growth_rule_reads_the_growth_signal_of_usage_or_investment() -> None:
    # Arrange
    usage = rule(event=None, growth={"of": "usage", "below": 0.01})
    spend = rule(event=None, growth={"of": "investment", "above": 0.25})

    # Act
    signals = [usage.growth.signal, spend.growth.signal]  # type: ignore[union-attr]

    # Assert
    assert signals == ["market_usage_growth_monthly_ratio", "market_investment_growth_ratio"]


def test_a_hysteresis_threshold_fires_past_one_line_and_resolves_past_the_other() -> None:
    # Arrange
    bounds = Bounds(below=150e6, resolve_above=155e6)

    # Act
    fires = [bounds.fires(value) for value in (149e6, 150e6, 152e6, 156e6)]
    resolves = [bounds.resolves(value) for value in (149e6, 150e6, 152e6, 156e6)]

    # Assert: between the lines neither fires nor resolves.
    assert fires == [True, False, False, False]
    assert resolves == [False, False, False, True]


def test_rule_globs_match_labels_and_a_missing_label_is_empty() -> None:
    # Arrange
    built = rule()

    # Act
    outcomes = [
        built.matches({"product": "nvidia_h200"}, {"product": "nvidia_*"}),
        built.matches({"product": "amd_mi308"}, {"product": "nvidia_*"}),
        built.matches({"product": "NVIDIA_H200"}, {"product": "nvidia_*"}),
        built.matches({}, {"product": "*"}),
        built.matches({}, {"product": "?*"}),
        built.matches({"product": "x"}, {}),
    ]

    # Assert: globs are case-sensitive; no glob matches everything.
    assert outcomes == [True, False, False, True, False, True]


def test_the_rule_version_changes_with_the_definition_and_only_with_it() -> None:
    # Arrange
    original, same, edited = rule(), rule(), rule(severity="critical")

    # Act
    versions = [original.version, same.version, edited.version]

    # Assert
    assert versions[0] == versions[1]
    assert versions[0] != versions[2]
    assert len(versions[0]) == 12


# --- a rule set ----------------------------------------------------------------------------------------


def test_rule_names_must_be_unique_in_a_set() -> None:
    # Arrange
    rules = [rule().model_dump(), rule(severity="critical").model_dump()]

    # Act
    with pytest.raises(ValidationError) as refused:
        RuleSet.model_validate({"rules": rules})

    # Assert
    assert "rule names must be unique: ['export-change']" in str(refused.value)


def test_a_rule_set_lists_the_peer_pairs_its_rules_compare() -> None:
    # Arrange
    rules = RuleSet(
        rules=[
            rule(),
            rule(name="crossing", event=None, peer={"entity": "a", "peer": "b", "metric": "mau", "above": 1}),
        ]
    )

    # Act
    pairs = rules.peer_pairs()

    # Assert
    assert pairs == (PeerPair("a", "b", "mau"),)


# --- templates -----------------------------------------------------------------------------------------


def test_a_template_fills_labels_and_the_formatted_value() -> None:
    # Arrange
    template = "{entity} overtook {peer} (ratio {value:.3f})"

    # Act
    text = render_template(template, {"entity": "bytedance", "peer": "google"}, 50 / 43)

    # Assert
    assert text == "bytedance overtook google (ratio 1.163)"


def test_a_value_format_applied_to_no_value_says_there_is_none() -> None:
    # Arrange: an event alert has no value, nor a signal whose facts were all retracted.
    template = "{entity} ratio {value:.3f}"

    # Act
    text = render_template(template, {"entity": "bytedance"}, None)

    # Assert: the labels are filled in all the same.
    assert text == "bytedance ratio no value"


def test_unknown_placeholders_are_kept_as_written() -> None:
    # Arrange
    template = "{entity} vs {nobody}"

    # Act
    text = render_template(template, {"entity": "bytedance"}, 1.0)

    # Assert
    assert text == "bytedance vs {nobody}"


# --- laws ----------------------------------------------------------------------------------------------

figures = st.floats(-1e15, 1e15, allow_nan=False)


@st.composite
def bounds(draw: st.DrawFn) -> Bounds:
    """Draw a valid threshold: either direction, with or without a resolve line on the safe side."""
    line = draw(figures)
    gap = draw(st.none() | st.floats(0, 1e6, allow_nan=False))
    if draw(st.booleans()):
        return Bounds(above=line, resolve_below=None if gap is None else line - gap)
    return Bounds(below=line, resolve_above=None if gap is None else line + gap)


@laws
@given(bounds(), figures)
def test_no_value_both_fires_and_resolves_a_threshold(threshold: Bounds, value: float) -> None:
    # Arrange: any valid threshold, any value.

    # Act
    fires, resolves = threshold.fires(value), threshold.resolves(value)

    # Assert
    assert not (fires and resolves)


@laws
@given(bounds(), figures)
def test_without_a_resolve_line_resolving_is_not_firing(threshold: Bounds, value: float) -> None:
    # Arrange
    plain = Bounds(above=threshold.above, below=threshold.below)

    # Act
    fires, resolves = plain.fires(value), plain.resolves(value)

    # Assert
    assert resolves == (not fires)


names = st.from_regex(r"[a-z][a-z_]{0,8}", fullmatch=True)
plain_text = st.text(alphabet=st.characters(exclude_characters="{}", exclude_categories=["Cs"]), max_size=20)


@laws
@given(st.dictionaries(names, plain_text, max_size=4), st.lists(names, max_size=4), plain_text)
def test_a_template_fills_known_labels_and_keeps_unknown_placeholders(
    labels: dict[str, str], placeholders: list[str], prefix: str
) -> None:
    # Arrange
    assume("value" not in labels and "value" not in placeholders)
    template = prefix + " ".join("{" + name + "}" for name in placeholders)

    # Act
    text = render_template(template, labels, 1.0)

    # Assert
    expected = prefix + " ".join(labels.get(name, "{" + name + "}") for name in placeholders)
    assert text == expected
    assert [field for _, field, _, _ in string.Formatter().parse(text) if field] == [
        name for name in placeholders if name not in labels
    ]
