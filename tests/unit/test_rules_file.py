"""The rules file: the default set, and bad files refused whole with the line and the reason."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tracker.core.rules import RuleSet
from tracker.errors import ConfigurationError
from tracker.rules_file import DEFAULT_RULES, load_rules, parse_rules

pytestmark = pytest.mark.unit

GOOD_RULE = """\
  - name: good
    severity: info
    event: {type: export_rule.changed}
"""


def refusal(text: str) -> str:
    """Parse ``text`` expecting a refusal; return the error message."""
    with pytest.raises(ConfigurationError) as refused:
        parse_rules(text, origin="rules.yaml")
    return str(refused.value)


def lines_named(message: str) -> list[int]:
    """Return the line numbers an error message names."""
    return [int(found) for found in re.findall(r"line (\d+):", message)]


# --- the default set -------------------------------------------------------------------------------------


def test_the_default_rule_set_loads_when_no_path_is_given() -> None:
    # Arrange: no rules path configured.

    # Act
    rules = load_rules(None)

    # Assert
    assert [rule.name for rule in rules.rules] == [
        "export-rule-change-china",
        "peer-overtake-tokens",
        "usage-growth-stalled",
        "investment-surge",
        "large-chip-order",
    ]
    assert rules == parse_rules(DEFAULT_RULES.read_text(encoding="utf-8"))
    assert [(pair.entity, pair.peer, pair.metric) for pair in rules.peer_pairs()] == [
        ("bytedance", "google", "tokens_per_day")
    ]


def test_a_rules_file_is_loaded_from_its_path(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n" + GOOD_RULE, encoding="utf-8")

    # Act
    rules = load_rules(path)

    # Assert
    assert [rule.name for rule in rules.rules] == ["good"]


def test_a_missing_rules_file_is_a_configuration_error_naming_the_path(tmp_path: Path) -> None:
    # Arrange
    path = tmp_path / "nowhere.yaml"

    # Act
    with pytest.raises(ConfigurationError) as refused:
        load_rules(path)

    # Assert
    assert str(path) in str(refused.value)
    assert "cannot read rules file" in str(refused.value)


def test_an_empty_rules_list_is_a_valid_set_that_fires_nothing() -> None:
    # Arrange
    text = "rules: []\n"

    # Act
    rules = parse_rules(text)

    # Assert
    assert rules == RuleSet(rules=[])


# --- bad files ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "line", "path", "reason"),
    [
        pytest.param(
            "rules:\n  - name: a\n    severity: urgent\n    event: {type: export_rule.changed}\n",
            3,
            "rules.0.severity",
            "'info', 'warning' or 'critical'",
            id="bad severity",
        ),
        pytest.param(
            "rules:\n"
            + GOOD_RULE
            + "  - name: b\n    severity: info\n    peer:\n      entity: x\n      peer: y\n"
            + "      metric: revenue\n      above: 1\n",
            10,
            "rules.1.peer.metric",
            "unknown metric",
            id="unknown metric",
        ),
        pytest.param(
            "rules:\n" + GOOD_RULE + "  - name: b\n    severity: info\n    threshold:\n      signal: market_bogus\n"
            "      above: 1\n",
            8,
            "rules.1.threshold.signal",
            "unknown signal",
            id="unknown signal",
        ),
        pytest.param(
            "rules:\n  - name: a\n    severity: info\n    event:\n      type: export_rule.changed\n"
            "    threshold:\n      signal: market_usage\n      above: 1\n",
            2,
            "rules.0",
            "give exactly one condition",
            id="two conditions",
        ),
        pytest.param(
            "rules:\n  - name: a\n    severity: info\n    colour: red\n    event: {type: export_rule.changed}\n",
            4,
            "rules.0.colour",
            "Extra inputs are not permitted",
            id="unknown key",
        ),
        pytest.param(
            "rules:\n  - name: a\n    severity: info\n    threshold:\n      signal: market_usage\n"
            "      above: 10\n      resolve_below: 12\n",
            5,
            "rules.0.threshold",
            "resolve_below must not be greater than above",
            id="resolve line on the wrong side",
        ),
        pytest.param(
            "rules:\n  - severity: info\n    event: {type: export_rule.changed}\n",
            2,
            "rules.0.name",
            "Field required",
            id="no name",
        ),
        pytest.param(
            'rules:\n  - name: a\n    severity: info\n    annotations:\n      summary: "{oops"\n'
            "    event: {type: export_rule.changed}\n",
            2,
            "rules.0",
            "annotations.summary: bad template",
            id="bad template",
        ),
    ],
)
def test_a_bad_rule_is_refused_with_its_line_path_and_reason(text: str, line: int, path: str, reason: str) -> None:
    # Arrange: ``text`` has one mistake on ``line``.

    # Act
    message = refusal(text)

    # Assert: "<origin>: line N: path: reason".
    assert message.startswith(f"rules.yaml: line {line}: {path}: ")
    assert reason in message


def test_duplicate_rule_names_are_refused_at_the_line_of_the_duplicate() -> None:
    # Arrange: the second rule named "a" starts on line 5.
    text = (
        "rules:\n"
        "  - name: a\n"
        "    severity: info\n"
        "    event: {type: export_rule.changed}\n"
        "  - name: a\n"
        "    severity: info\n"
        "    event: {type: usage.reported}\n"
    )

    # Act
    message = refusal(text)

    # Assert
    assert "duplicate rule name 'a'" in message
    assert lines_named(message) == [5], message


def test_every_mistake_of_a_file_is_reported_each_with_its_line() -> None:
    # Arrange: a bad severity on line 3 and an unknown signal on line 7.
    text = (
        "rules:\n"
        "  - name: a\n"
        "    severity: urgent\n"
        "    event: {type: export_rule.changed}\n"
        "  - name: b\n"
        "    severity: info\n"
        "    threshold: {signal: market_bogus, above: 1}\n"
    )

    # Act
    message = refusal(text)

    # Assert
    assert lines_named(message) == [3, 7]
    assert "rules.0.severity" in message
    assert "rules.1.threshold.signal" in message


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        pytest.param(
            "rules:\n  - name: a\n    severity: info: warning\n", 3, "mapping values are not allowed", id="colon"
        ),
        pytest.param("rules:\n  - name: a\n    severity: info\n\tevent: {}\n", 4, "'\\t'", id="tab"),
    ],
)
def test_invalid_yaml_is_refused_with_the_line_yaml_stopped_at(text: str, line: int, problem: str) -> None:
    # Arrange: ``text`` is not YAML.

    # Act
    message = refusal(text)

    # Assert
    assert message.startswith(f"rules.yaml: line {line}: not valid YAML: ")
    assert problem in message


@pytest.mark.parametrize("text", ["", "- a\n- b\n", "just text\n"])
def test_a_document_that_is_not_a_mapping_is_refused_at_line_1(text: str) -> None:
    # Arrange: ``text`` parses, but not to a mapping.

    # Act
    message = refusal(text)

    # Assert
    assert message == "rules.yaml: line 1: expected a mapping with a `rules` list"


def test_one_bad_rule_refuses_the_whole_file_not_just_that_rule(tmp_path: Path) -> None:
    # Arrange: four good rules and one bad one.
    path = tmp_path / "rules.yaml"
    good = "".join(GOOD_RULE.replace("name: good", f"name: good-{n}") for n in range(4))
    path.write_text("rules:\n" + good + "  - name: bad\n    severity: loud\n    event: {type: usage.reported}\n")

    # Act
    with pytest.raises(ConfigurationError) as refused:
        load_rules(path)

    # Assert: the error names only the bad rule; no partial set comes back.
    message = str(refused.value)
    assert message.startswith(f"{path}: line 15: rules.4.severity: ")
    assert "good-" not in message
