"""Load a rules file (YAML): all of it or nothing, errors with the line and the reason."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tracker.core.routing import Router
from tracker.core.rules import RuleSet
from tracker.errors import ConfigurationError
from tracker.settings import Settings

__all__ = ["DEFAULT_RULES", "build_router", "load_rules", "parse_rules"]

DEFAULT_RULES = Path(__file__).resolve().parent.parent / "deploy" / "rules" / "default.yaml"


class _LineLoader(yaml.SafeLoader):
    """A safe loader that remembers the line of every mapping."""


def _mapping_with_line(loader: _LineLoader, node: yaml.MappingNode) -> dict[str, Any]:
    mapping: dict[str, Any] = {str(key): value for key, value in loader.construct_mapping(node, deep=True).items()}
    mapping["__line__"] = node.start_mark.line + 1
    mapping["__lines__"] = {key.value: key.start_mark.line + 1 for key, _ in node.value}
    return mapping


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_with_line)


def _strip_lines(data: Any) -> Any:
    if isinstance(data, dict):
        return {key: _strip_lines(value) for key, value in data.items() if key not in ("__line__", "__lines__")}
    if isinstance(data, list):
        return [_strip_lines(item) for item in data]
    return data


def _line_of(data: Any, loc: tuple[int | str, ...]) -> int | None:
    line = data.get("__line__") if isinstance(data, dict) else None
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node.get("__lines__", {}):
            line = node["__lines__"][part]
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            break
        if isinstance(node, dict) and "__line__" in node:
            line = node["__line__"]
    return line


def _refuse_duplicate_names(data: dict[str, Any], origin: str) -> None:
    seen: set[str] = set()
    for index, rule in enumerate(data.get("rules") or []):
        name = rule.get("name") if isinstance(rule, dict) else None
        if isinstance(name, str) and name in seen:
            line = rule.get("__lines__", {}).get("name", rule.get("__line__"))
            raise ConfigurationError(f"{origin}: line {line}: rules.{index}.name: duplicate rule name {name!r}")
        if isinstance(name, str):
            seen.add(name)


def parse_rules(text: str, origin: str = "<rules>") -> RuleSet:
    """Parse and validate a rules document; raise ConfigurationError naming line and reason."""
    try:
        data = yaml.load(text, Loader=_LineLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else "somewhere"
        raise ConfigurationError(f"{origin}: {where}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(data, dict):
        raise ConfigurationError(f"{origin}: line 1: expected a mapping with a `rules` list")
    _refuse_duplicate_names(data, origin)
    try:
        return RuleSet.model_validate(_strip_lines(data))
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
            line = _line_of(data, loc)
            path = ".".join(str(part) for part in loc)
            message = error["msg"].removeprefix("Value error, ")
            problems.append(f"{origin}: line {line}: {path}: {message}")
        raise ConfigurationError("\n".join(problems)) from None


def load_rules(path: Path | None) -> RuleSet:
    """Load the rules file at ``path`` (the default set when None)."""
    source = path or DEFAULT_RULES
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"{source}: cannot read rules file: {exc.strerror}") from None
    return parse_rules(text, str(source))


def build_router(settings: Settings, rules: RuleSet | None = None) -> Router:
    """Return the router for the configured peer pairs plus those the rules compare (read unless given)."""
    rules = rules if rules is not None else load_rules(settings.rules_path)
    return Router(tuple(dict.fromkeys(settings.peer_pairs + rules.peer_pairs())))
