"""Label matchers in Alertmanager syntax: ``{entity="bytedance", severity=~"warning|critical"}``."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["Matcher", "match_all", "parse_matchers"]

_ITEM = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*(,|$)')
Op = Literal["=", "!=", "=~", "!~"]


@dataclass(frozen=True)
class Matcher:
    """One label condition: equal, not equal, regex match or regex non-match (anchored)."""

    name: str
    op: Op
    value: str

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Return whether the labels satisfy this matcher (a missing label is the empty string)."""
        actual = labels.get(self.name, "")
        if self.op == "=":
            return actual == self.value
        if self.op == "!=":
            return actual != self.value
        found = re.fullmatch(self.value, actual) is not None
        return found if self.op == "=~" else not found

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
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"{name}: bad regular expression: {exc}") from None
        matchers.append(Matcher(name, op, value))  # type: ignore[arg-type]
        position = found.end()
    return tuple(matchers)


def match_all(matchers: tuple[Matcher, ...], labels: Mapping[str, str]) -> bool:
    """Return whether every matcher matches (no matchers match everything)."""
    return all(matcher.matches(labels) for matcher in matchers)
