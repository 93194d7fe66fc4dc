"""The core stays pure: no stream, broker, metrics, HTTP or YAML library, not even indirectly."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

PACKAGE_ROOT = Path(__file__).resolve().parents[2] / "tracker"
CORE = PACKAGE_ROOT / "core"
FORBIDDEN = frozenset({"faust", "mode", "aiokafka", "prometheus_client", "aiohttp", "httpx", "yaml"})


def module_name(path: Path) -> str:
    """Return the dotted name of a module file under the package root."""
    parts = path.relative_to(PACKAGE_ROOT.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(source: str, name: str, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """Yield (line, absolute module name) for every import in ``source``, dynamic ones included."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:
                yield node.lineno, f"{target}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if called in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
                yield node.lineno, node.args[0].value


def source_of(module: str) -> tuple[Path, bool] | None:
    """Return the file of a ``tracker`` module and whether it is a package, or None."""
    relative = Path(*module.split(".")[1:])
    for path, is_package in ((PACKAGE_ROOT / relative / "__init__.py", True), (PACKAGE_ROOT / f"{relative}.py", False)):
        if path.is_file():
            return path, is_package
    return None


def forbidden_imports(path: Path) -> list[str]:
    """Return every forbidden import reachable from ``path``, following ``tracker`` modules."""
    found, seen, todo = [], set(), [(path, path.name == "__init__.py", module_name(path))]
    while todo:
        current, is_package, name = todo.pop()
        if current in seen:
            continue
        seen.add(current)
        for line, imported in imported_modules(current.read_text(encoding="utf-8"), name, is_package):
            top = imported.split(".")[0]
            if top in FORBIDDEN:
                found.append(f"{current.relative_to(PACKAGE_ROOT.parent)}:{line} imports {imported}")
            elif top == "tracker" and (located := source_of(imported)) is not None:
                todo.append((*located, imported))
    return sorted(set(found))


CORE_MODULES = sorted(CORE.rglob("*.py"))


def test_the_core_has_modules_to_check() -> None:
    names = {path.stem for path in CORE_MODULES}

    assert {"dates", "events", "decode", "routing", "fold", "signals"} <= names


@pytest.mark.parametrize("path", CORE_MODULES, ids=lambda path: path.stem)
def test_a_core_module_imports_no_infrastructure_library(path: Path) -> None:
    assert forbidden_imports(path) == []


@pytest.mark.parametrize(
    "source",
    [
        "import faust",
        "import faust.app as app",
        "from aiokafka import AIOKafkaProducer",
        "from prometheus_client.core import GaugeMetricFamily",
        "import yaml as y",
        "def load():\n    import httpx\n",
        "from mode import Service",
        "import importlib\nimportlib.import_module('aiohttp.web')",
        "__import__('yaml')",
    ],
)
def test_the_checker_sees_every_way_of_importing(source: str) -> None:
    tops = {module.split(".")[0] for _, module in imported_modules(source, "tracker.core.x")}

    assert tops & FORBIDDEN


def test_the_checker_resolves_relative_imports() -> None:
    source = "from ..worker import app\nfrom . import fold"

    imported = {module for _, module in imported_modules(source, "tracker.core.x")}

    assert {"tracker.worker", "tracker.worker.app", "tracker.core", "tracker.core.fold"} <= imported


def test_the_checker_ignores_lookalike_names() -> None:
    source = "import modeling\nfrom tracker.core import mode_of\nimport yamlish\nimport faustian"

    tops = {module.split(".")[0] for _, module in imported_modules(source, "tracker.core.x")}

    assert not tops & FORBIDDEN
