"""The benchmark in its small mode, as CI runs it: it must agree with the pure fold (no timing asserted)."""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_cli

pytestmark = pytest.mark.integration


def test_the_quick_benchmark_folds_the_same_signals_as_the_pure_fold(settings_factory, tmp_path):
    settings = settings_factory()
    report = tmp_path / "bench.json"

    # A small memory size too: that stage also restarts a worker with empty state and checks
    # it serves the same signals once its tables are rebuilt from the changelogs.
    result = run_cli(settings, "bench", "--events", "20000", "--quick", "--memory-sizes", "2000", "--json", str(report))

    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(report.read_text())["figures"]
    assert figures["correctness: signals equal the pure fold"] is True
    assert figures["events generated"] == 20000
    assert figures["fold: one worker from offset 0 (records/s)"] > 0
    assert figures["fold without alert rules (records/s)"] > 0
    assert figures["memory: peak RSS at N=2,000 (MB)"] > 0
    assert figures["recovery at N=2,000: tables rebuilt from changelogs (s)"] > 0
