"""Label matchers in Alertmanager syntax: parsing, anchored regexes, escapes and errors."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.core.matchers import Matcher, match_all, parse_matchers, require_known_labels

pytestmark = pytest.mark.unit

laws = settings(max_examples=200, deadline=None)

LABELS = {"alertname": "peer-overtake-tokens", "severity": "warning", "entity": "bytedance"}


def matches(text: str, labels: dict[str, str] = LABELS) -> bool:
    """Parse ``text`` and return whether it matches ``labels``."""
    return match_all(parse_matchers(text), labels)


def regex_selector(name: str, pattern: str) -> str:
    """Return the selector ``{name=~"pattern"}`` with the pattern quoted."""
    quoted = pattern.replace("\\", "\\\\").replace('"', '\\"')
    return f'{{{name}=~"{quoted}"}}'


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
        ('{entity=~"\udc80"}', "entity: bad regular expression: not valid Unicode text"),
    ],
)
def test_a_bad_selector_is_refused_with_the_problem(text: str, reason: str) -> None:
    # Arrange: ``text`` is malformed.

    # Act
    with pytest.raises(ValueError) as refused:
        parse_matchers(text)

    # Assert
    assert reason in str(refused.value)


# --- hostile patterns (issue 14: a backtracking engine froze the worker; some patterns crashed the parser) ---

#: Nested stars: a backtracking engine tries every way to split the value between them,
#: about 3.5 times more work per character; "export-rule-change-china" alone took 7.4 s.
CATASTROPHIC = '{alertname=~"export-ru(.*.*)*x"}'


@pytest.mark.timeout(10)
def test_a_catastrophic_pattern_against_a_long_label_value_returns() -> None:
    # Arrange: a value 40 times longer than the one that took 7.4 s.
    (matcher,) = parse_matchers(CATASTROPHIC)
    labels = {"alertname": "export-rule-change-china" * 40}

    # Act
    outcome = matcher.matches(labels)

    # Assert
    assert outcome is False
    assert matcher.matches({"alertname": "export-rule-change-china" * 40 + "x"}) is True


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(a)\1", "backreferences are not supported"),
        ("(?=a)a", "lookaround is not supported"),
        ("(?!b)a", "lookaround is not supported"),
        ("(?<=a)b", "lookaround is not supported"),
        ("(?<!a)b", "lookaround is not supported"),
    ],
)
def test_regexes_are_re2_so_backreferences_and_lookaround_are_refused(pattern: str, reason: str) -> None:
    # Arrange: features a backtracking engine needs and RE2 (like Alertmanager's Go engine) lacks.
    text = regex_selector("entity", pattern)

    # Act
    with pytest.raises(ValueError) as refused:
        parse_matchers(text)

    # Assert
    assert str(refused.value).startswith("entity: bad regular expression")
    assert reason in str(refused.value)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("a{4294967296}", "repetition count {4294967296} is over 1000"),
        ("a{2,99999999999}", "repetition count {2,99999999999} is over 1000"),
        ("a{1001}", "repetition count {1001} is over 1000"),
        ("a{1000}{1000}", "bad repetition operator"),
        ("(" * 1000, "missing )"),
        (r"\pL{1000}", "too large"),
        (".{1000}" * 20, "too large"),
        ("a" * 1001, "longer than 1000 characters"),
        ("(" * 1000 + ")" * 1000, "longer than 1000 characters"),
    ],
)
def test_a_pattern_too_large_or_too_deep_is_refused_naming_the_problem(pattern: str, reason: str) -> None:
    # Arrange: patterns that overflowed, recursed or would compile to a huge program.
    text = regex_selector("alertname", pattern)

    # Act
    with pytest.raises(ValueError) as refused:
        parse_matchers(text)

    # Assert
    assert str(refused.value).startswith("alertname: ")
    assert reason in str(refused.value)
    assert len(str(refused.value)) < 300


@pytest.mark.parametrize(
    "pattern",
    ["a" * 1000, "(" * 500 + ")" * 500, "a{1000}", r"[{]{2}\{99999999999}", r"\Q{4294967296}\E", "x{01}"],
)
def test_a_pattern_at_the_bounds_is_accepted(pattern: str) -> None:
    # Arrange: 1,000 characters, 500 nested groups, the largest count, braces that are not counts.
    text = regex_selector("alertname", pattern)

    # Act
    (matcher,) = parse_matchers(text)

    # Assert
    assert matcher.value == pattern
    assert matcher.matches({"alertname": ""}) is (pattern == "(" * 500 + ")" * 500)


def test_a_regex_matcher_is_compiled_when_made_so_a_bad_one_cannot_be_made() -> None:
    # Arrange: a matcher built directly, without parse_matchers.

    # Act
    with pytest.raises(ValueError) as refused:
        Matcher("entity", "=~", "(unclosed")

    # Assert
    assert "entity: bad regular expression" in str(refused.value)


def test_dot_does_not_match_a_newline_as_in_alertmanager() -> None:
    # Arrange
    labels = {"summary": "first line\nsecond line"}

    # Act
    outcomes = [matches('{summary=~".*"}', labels), matches('{summary=~"(?s).*"}', labels)]

    # Assert
    assert outcomes == [False, True]


def test_a_label_value_that_is_not_valid_unicode_is_matched_without_error() -> None:
    # Arrange: a lone surrogate, which JSON can carry and UTF-8 cannot encode.
    labels = {"entity": "byte\udc80dance"}

    # Act
    outcomes = [matches('{entity=~"byte.*"}', labels), matches('{entity!~"byte.*"}', labels)]

    # Assert
    assert outcomes == [True, False]


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


# --- labels no alert carries -------------------------------------------------------------------------


def test_a_matcher_on_a_label_no_alert_carries_is_refused_naming_it_and_the_known_labels() -> None:
    # Arrange: before issue 16, market_alert_firing labelled the rule "rule"; alerts call it alertname.
    parsed = parse_matchers('{rule="peer-overtake-tokens", entity="bytedance"}')

    # Act
    with pytest.raises(ValueError) as raised:
        require_known_labels(parsed, frozenset(LABELS))

    # Assert
    assert str(raised.value) == "unknown label 'rule': alerts carry only alertname, entity, severity"


@pytest.mark.parametrize("text", ["{}", '{alertname="x"}', '{entity!~"a|b", severity="warning"}'])
def test_matchers_on_known_labels_pass(text: str) -> None:
    # Arrange, act, assert: no error.
    require_known_labels(parse_matchers(text), frozenset(LABELS))
