"""Label matchers in Alertmanager syntax: parsing, anchored regexes, escapes and errors."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.core.matchers import Matcher, match_all, parse_matchers

pytestmark = pytest.mark.unit

laws = settings(max_examples=200, deadline=None)

LABELS = {"alertname": "peer-overtake-tokens", "severity": "warning", "entity": "bytedance"}


def matches(text: str, labels: dict[str, str] = LABELS) -> bool:
    """Parse ``text`` and return whether it matches ``labels``."""
    return match_all(parse_matchers(text), labels)


# --- parsing ---------------------------------------------------------------------------------------------


def test_the_four_operators_parse_into_matchers() -> None:
    # Arrange
    text = '{entity="bytedance", severity!="info", alertname=~"peer-.*", team!~"policy|legal"}'

    # Act
    parsed = parse_matchers(text)

    # Assert
    assert parsed == (
        Matcher("entity", "=", "bytedance"),
        Matcher("severity", "!=", "info"),
        Matcher("alertname", "=~", "peer-.*"),
        Matcher("team", "!~", "policy|legal"),
    )


@pytest.mark.parametrize("text", ["", "{}", "  ", "{ }"])
def test_no_matchers_match_every_alert(text: str) -> None:
    # Arrange: an empty selector.

    # Act
    parsed = parse_matchers(text)

    # Assert
    assert parsed == ()
    assert match_all(parsed, LABELS)
    assert match_all(parsed, {})


def test_braces_and_whitespace_are_optional() -> None:
    # Arrange
    spaced = ' {  entity = "bytedance" ,severity=~"warning|critical"  } '
    bare = 'entity="bytedance",severity=~"warning|critical"'

    # Act
    parsed = [parse_matchers(spaced), parse_matchers(bare)]

    # Assert
    assert parsed[0] == parsed[1]
    assert matches(spaced)


def test_escaped_quotes_and_backslashes_are_part_of_the_value() -> None:
    # Arrange
    text = r'{summary="said \"hi\" \\ then left"}'

    # Act
    (matcher,) = parse_matchers(text)

    # Assert
    assert matcher.value == 'said "hi" \\ then left'
    assert matcher.matches({"summary": 'said "hi" \\ then left'})
    assert str(matcher) == text[1:-1]


# --- matching --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{entity="bytedance"}', True),
        ('{entity="byte"}', False),
        ('{entity!="google"}', True),
        ('{entity!="bytedance"}', False),
        ('{severity=~"warning|critical"}', True),
        ('{severity=~"warn"}', False),
        ('{entity=~"byte"}', False),
        ('{entity=~".*dance"}', True),
        ('{entity!~"byte"}', True),
        ('{entity!~"byte.*"}', False),
        ('{entity="bytedance", severity="critical"}', False),
    ],
)
def test_operators_compare_whole_values_and_regexes_are_anchored(text: str, expected: bool) -> None:
    # Arrange: the labels of a bytedance warning.

    # Act
    outcome = matches(text)

    # Assert
    assert outcome is expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{team=""}', True),
        ('{team!=""}', False),
        ('{team=~".*"}', True),
        ('{team!~".+"}', True),
        ('{team="policy"}', False),
    ],
)
def test_a_missing_label_is_the_empty_string(text: str, expected: bool) -> None:
    # Arrange: the alert has no "team" label.

    # Act
    outcome = matches(text)

    # Assert
    assert outcome is expected


# --- errors ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{entity="bytedance"', "missing closing brace"),
        ('{entity=~"(unclosed"}', "entity: bad regular expression"),
        ('{entity!~"*"}', "entity: bad regular expression"),
        ('{entity="bytedance" severity="warning"}', "cannot parse matcher"),
        ("{entity=bytedance}", "cannot parse matcher"),
        ('{entity=="bytedance"}', "cannot parse matcher"),
        ('{1entity="bytedance"}', "cannot parse matcher"),
        ('{entity="unterminated}', "cannot parse matcher"),
        ('{entity~"x"}', "cannot parse matcher"),
    ],
)
def test_a_bad_selector_is_refused_with_the_problem(text: str, reason: str) -> None:
    # Arrange: ``text`` is malformed.

    # Act
    with pytest.raises(ValueError) as refused:
        parse_matchers(text)

    # Assert
    assert reason in str(refused.value)


# --- laws ------------------------------------------------------------------------------------------------

names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)
values = st.text(max_size=20)
operators = st.sampled_from(["=", "!="])


@laws
@given(st.lists(st.tuples(names, operators, values), max_size=4))
def test_printing_matchers_and_parsing_them_back_gives_the_same_matchers(
    items: list[tuple[str, str, str]],
) -> None:
    # Arrange
    matchers = tuple(Matcher(name, op, value) for name, op, value in items)  # type: ignore[arg-type]
    text = "{" + ", ".join(str(matcher) for matcher in matchers) + "}"

    # Act
    parsed = parse_matchers(text)

    # Assert
    assert parsed == matchers


@laws
@given(names, values, values)
def test_a_matcher_and_its_negation_disagree_on_every_label_value(name: str, wanted: str, actual: str) -> None:
    # Arrange
    literal = re.escape(wanted)
    pairs = [(Matcher(name, "=", wanted), Matcher(name, "!=", wanted))]
    pairs.append((Matcher(name, "=~", literal), Matcher(name, "!~", literal)))

    # Act
    outcomes = [(yes.matches({name: actual}), no.matches({name: actual})) for yes, no in pairs]

    # Assert: the escaped regex behaves like equality; each negation is the opposite.
    assert all(yes != no for yes, no in outcomes)
    assert outcomes[0] == outcomes[1]
