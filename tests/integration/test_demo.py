"""`tracker demo` (what `make demo` runs) on the session's broker: the seed's signals and three alerts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import run_cli
from tracker.settings import Settings

pytestmark = pytest.mark.integration

TOKEN = "demo-token-for-the-test"


def test_the_demo_prints_the_seed_signals_and_alerts_even_with_reads_closed(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory(api_tokens=TOKEN, api_token=TOKEN, read_requires_token=True)
    try:
        result = run_cli(settings, "demo")
    finally:
        stopped = run_cli(settings, "demo", "--stop")

    assert result.returncode == 0, result.stderr[-3000:]
    assert "active alerts (3):" in result.stdout, result.stdout[-3000:]
    for rule in ("export-rule-change-china", "peer-overtake-tokens", "usage-growth-stalled"):
        assert rule in result.stdout
    assert "market_usage" in result.stdout
    assert TOKEN not in result.stdout + result.stderr
    assert stopped.returncode == 0, stopped.stderr[-2000:]
