"""Label matchers in Alertmanager syntax: ``{entity="bytedance", severity=~"warning|critical"}``.

Regexes are RE2 (the syntax of Alertmanager's Go engine), matched in time linear
in the label value: no backtracking, so no pattern can make matching explode.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Literal, Protocol, cast

import re2

__all__ = [
    "MAX_REGEX_LENGTH",
    "MAX_REPEAT",
    "Matcher",
    "compile_regex",
    "match_all",
    "parse_matchers",
    "require_known_labels",
]

_ITEM = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
Op = Literal["=", "!=", "=~", "!~"]

#: Characters of one regex value; with MAX_REGEX_MEMORY it bounds what one matcher costs.
MAX_REGEX_LENGTH = 1000
#: The largest count of a counted repetition, RE2's and Go's limit.
MAX_REPEAT = 1000
#: Bytes one compiled regex may use, program and DFA cache (RE2's default is 8 MiB):
#: ``.{1000}`` fits, ``\pL{1000}`` does not.
MAX_REGEX_MEMORY = 1 << 20
#: Compiled regexes kept for reuse (every stream opened with a selector parses it again);
#: the worst pattern within the bounds above holds about 0.35 MiB once it has matched.
_CACHED_REGEXES = 128

_OPTIONS = re2.Options()
_OPTIONS.max_mem = MAX_REGEX_MEMORY
_OPTIONS.log_errors = False  # RE2 would print every refused pattern on stderr
# A counted repetition; RE2 reads one with a count of ten digits or more as literal
# text (Go refuses it), so those are found here. A leading zero is literal in both.
_COUNT = re.compile(r"\{([1-9][0-9]*|0)(?:,([1-9][0-9]*|0)?)?\}")
_HINTS = (
    (re.compile(r"invalid escape sequence: \\[0-9]"), "backreferences are not supported: the syntax is RE2"),
    (re.compile(r"invalid perl operator: \(\?<?[=!]"), "lookaround is not supported: the syntax is RE2"),
    (re.compile(r"pattern too large"), f"compiled, it would need more than {MAX_REGEX_MEMORY >> 20} MiB"),
)


class Regex(Protocol):
    """A compiled regex: the part of ``re2._Regexp`` matchers use."""

    def fullmatch(self, text: bytes) -> object | None:
        """Return a match object if the whole text matches, else None."""


@functools.lru_cache(maxsize=_CACHED_REGEXES)
def compile_regex(pattern: str) -> Regex:
    """Compile an RE2 pattern for anchored matching; raise ValueError naming the problem."""
    if len(pattern) > MAX_REGEX_LENGTH:
        raise ValueError(f"regular expression longer than {MAX_REGEX_LENGTH} characters ({len(pattern)})")
    for count in _counts(pattern):
        if any(len(number) > 4 or int(number) > MAX_REPEAT for number in count.groups() if number):
            raise ValueError(f"bad regular expression: repetition count {count.group()} is over {MAX_REPEAT}")
    try:
        return cast(Regex, re2.compile(pattern, _OPTIONS))
    except UnicodeEncodeError:
        raise ValueError("bad regular expression: not valid Unicode text") from None
    except re2.error as exc:
        raise ValueError(f"bad regular expression: {_reason(exc)}") from None


def _reason(exc: Exception) -> str:
    raw = exc.args[0] if exc.args else ""
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else str(raw)
    if len(text) > 80:
        text = text[:80] + "..."  # RE2 quotes the rest of the pattern: a thousand "(" after "missing )"
    hints = [hint for found, hint in _HINTS if found.search(text)]
    return f"{text} ({hints[0]})" if hints else text


def _counts(pattern: str) -> Iterator[re.Match[str]]:
    """Yield every counted repetition ``{m}``, ``{m,}``, ``{m,n}`` outside escapes and classes."""
    position, end, in_class = 0, len(pattern), False
    while position < end:
        char = pattern[position]
        if char == "\\":
            if pattern.startswith("\\Q", position):  # literal text up to \E
                stop = pattern.find("\\E", position + 2)
                position = end if stop < 0 else stop + 2
                continue
            position += 2
            continue
        if in_class:
            if pattern.startswith("[:", position):
                stop = pattern.find(":]", position + 2)
                position = end if stop < 0 else stop + 2
                continue
            in_class = char != "]"
        elif char == "[":
            in_class = True
            position += 1
            if pattern.startswith("^", position):
                position += 1
            if pattern.startswith("]", position):  # a "]" first in a class is literal
                position += 1
            continue
        elif char == "{" and (found := _COUNT.match(pattern, position)) is not None:
            yield found
        position += 1


@dataclass(frozen=True)
class Matcher:
    """One label condition: equal, not equal, regex match or regex non-match (anchored)."""

    name: str
    op: Op
    value: str
    _regex: Regex | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.op in ("=~", "!~"):
            try:
                regex = compile_regex(self.value)
            except ValueError as exc:
                raise ValueError(f"{self.name}: {exc}") from None
            object.__setattr__(self, "_regex", regex)  # compiled once, here: the dataclass is frozen

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether the labels satisfy this matcher (a missing label is the empty string)."""
        actual = labels.get(self.name, "")
        if self._regex is None:
            return (actual == self.value) is (self.op == "=")
        # Bytes, so a lone surrogate (JSON can carry one) is matched instead of raising.
        found = self._regex.fullmatch(actual.encode("utf-8", "surrogatepass")) is not None
        return found is (self.op == "=~")

    def __str__(self) -> str:
        escaped = self.value.replace("\\", "\\\\").replace('"', '\\"')
        return f'{self.name}{self.op}"{escaped}"'


def parse_matchers(text: str) -> tuple[Matcher, ...]:
    """Parse ``{name="v", other=~"re"}`` (braces optional); raise ValueError naming the problem."""
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise ValueError("missing closing brace")
        body = body[1:-1]
    matchers: list[Matcher] = []
    position = 0
    body = body.strip()
    while position < len(body):
        found = _ITEM.match(body, position)
        if found is None:
            raise ValueError(f'cannot parse matcher at {body[position : position + 30]!r}; expected name="value"')
        name, op, raw, _ = found.groups()
        value = re.sub(r"\\(.)", r"\1", raw)
        matchers.append(Matcher(name, op, value))  # type: ignore[arg-type]
        position = found.end()
    return tuple(matchers)


def match_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    """Return whether every matcher matches (no matchers match everything)."""
    return all(matcher.matches(labels) for matcher in matchers)


def require_known_labels(matchers: tuple[Matcher, ...], known: AbstractSet[str]) -> None:
    """Raise ValueError naming a matcher's label that no alert carries, with the labels alerts do carry.

    A matcher on a label no alert has compares the empty string: ``rule="x"`` would match
    nothing, silently, and ``rule!="x"`` everything.
    """
    unknown = sorted({matcher.name for matcher in matchers} - known)
    if unknown:
        names = ", ".join(repr(name) for name in unknown)
        raise ValueError(f"unknown label {names}: alerts carry only {', '.join(sorted(known))}")
