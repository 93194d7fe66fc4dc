"""The tracker's Grafana dashboards, "Market signals" and "Tracker health", generated from code.

``deploy/grafana/dashboards/*.json`` is the output of ``render_dashboards``;
a test fails when the committed files differ. Each dashboard has its module
(``market_signals``, ``tracker_health``), built from the panels of ``grafana``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tracker.monitoring.grafana import Json
from tracker.monitoring.market_signals import market_signals
from tracker.monitoring.tracker_health import tracker_health

__all__ = ["DASHBOARDS", "render_dashboards", "stale_dashboards", "write_dashboards"]

#: File name under deploy/grafana/dashboards -> the function that builds it.
DASHBOARDS: dict[str, Callable[[], Json]] = {
    "market-signals.json": market_signals,
    "tracker-health.json": tracker_health,
}


def render_dashboards() -> dict[str, str]:
    """Return file name -> dashboard JSON text."""
    return {name: json.dumps(build(), indent=2, sort_keys=True) + "\n" for name, build in DASHBOARDS.items()}


def write_dashboards(directory: Path) -> list[Path]:
    """Write every dashboard into ``directory``; return the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, text in render_dashboards().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def stale_dashboards(directory: Path) -> list[str]:
    """Return the dashboard files in ``directory`` that differ from the generator."""
    return [
        name
        for name, text in render_dashboards().items()
        if not (directory / name).exists() or (directory / name).read_text(encoding="utf-8") != text
    ]
