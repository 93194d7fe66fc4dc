"""The layers hold: import-linter checks the contracts in pyproject.toml, and would see a break."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = str(Path(sys.executable).parent / "lint-imports")


def contracts() -> list[dict[str, object]]:
    """Return the import-linter contracts declared in pyproject.toml."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return list(config["tool"]["importlinter"]["contracts"])


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the project at ``root`` (its pyproject.toml and tracker package)."""
    return subprocess.run(
        [LINT_IMPORTS, "--no-cache"], cwd=root, capture_output=True, text=True, timeout=120, check=False
    )


def test_every_contract_is_kept() -> None:
    result = lint_imports(ROOT)

    assert result.returncode == 0, result.stdout + result.stderr
    assert f"Contracts: {len(contracts())} kept, 0 broken." in result.stdout


def test_the_core_contract_forbids_every_infrastructure_library() -> None:
    core = next(contract for contract in contracts() if contract["source_modules"] == ["tracker.core"])

    assert {"faust", "mode", "aiokafka", "prometheus_client", "aiohttp", "yaml"} <= set(core["forbidden_modules"])  # type: ignore[arg-type]


def test_a_core_module_importing_faust_through_another_module_breaks_the_contract(tmp_path: Path) -> None:
    # A copy of the project with one core module reaching Faust through tracker.worker.
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(ROOT / "tracker", tmp_path / "tracker", ignore=shutil.ignore_patterns("__pycache__", "vendor"))
    (tmp_path / "tracker" / "core" / "sneaky.py").write_text("from tracker.worker import tables\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert "tracker.core.sneaky" in result.stdout
