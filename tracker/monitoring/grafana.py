"""Build Grafana dashboard JSON: queries, panels, template variables, and a grid layout.

Only what the tracker's dashboards use, as plain dicts in the shape Grafana
11 provisions (schema version 39). Every panel and query points at one
Prometheus datasource by uid, the one ``deploy/grafana/provisioning`` defines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "BUILTIN_VARIABLES",
    "DATASOURCE",
    "DATASOURCE_UID",
    "MARKET_SIGNALS_UID",
    "RATE",
    "TRACKER_HEALTH_UID",
    "Json",
    "Query",
    "Section",
    "column_links",
    "dashboard",
    "link",
    "panel",
    "query_variable",
    "stat",
    "substitute",
    "table",
    "targets",
    "textbox_variable",
    "timeseries",
]

Json = dict[str, Any]

DATASOURCE_UID = "tracker-prometheus"
DATASOURCE: Json = {"type": "prometheus", "uid": DATASOURCE_UID}
# The two dashboards' uids: each links to the other.
MARKET_SIGNALS_UID = "tracker-market-signals"
TRACKER_HEALTH_UID = "tracker-health"
# Grafana's rate window, at least four scrape intervals of the selected range.
RATE = "$__rate_interval"
SCHEMA_VERSION = 39
GRID_WIDTH = 24
# Grafana fills these in itself; a test run needs a value for each.
BUILTIN_VARIABLES = frozenset({"__rate_interval", "__interval", "__range"})
_VARIABLE = re.compile(r"\$\{(\w+)\}|\$(\w+)")


@dataclass(frozen=True)
class Query:
    """One PromQL target of a panel."""

    expr: str
    legend: str = ""
    instant: bool = False

    def target(self, ref_id: str, table: bool) -> Json:
        """Return the Grafana target for this query."""
        return {
            "datasource": DATASOURCE,
            "editorMode": "code",
            "expr": self.expr,
            "format": "table" if table else "time_series",
            "instant": self.instant,
            "legendFormat": self.legend or "__auto",
            "range": not self.instant,
            "refId": ref_id,
        }


@dataclass(frozen=True)
class Section:
    """A titled row of panels, laid out left to right."""

    title: str
    panels: Sequence[Json] = field(default_factory=tuple)


def panel(
    kind: str,
    title: str,
    description: str,
    *queries: Query,
    unit: str = "short",
    width: int = 12,
    height: int = 8,
    options: Json | None = None,
    defaults: Json | None = None,
    overrides: Sequence[Json] = (),
    transformations: Sequence[Json] = (),
) -> Json:
    """Return a panel of type ``kind`` (timeseries, stat, table, ...) with its queries as targets A, B, ..."""
    table = kind == "table"
    return {
        "datasource": DATASOURCE,
        "description": description,
        "fieldConfig": {"defaults": {"unit": unit, **(defaults or {})}, "overrides": list(overrides)},
        "gridPos": {"h": height, "w": width, "x": 0, "y": 0},
        "options": options or {},
        "targets": [query.target(chr(ord("A") + index), table) for index, query in enumerate(queries)],
        "title": title,
        "transformations": list(transformations),
        "type": kind,
    }


def link(title: str, url: str) -> Json:
    """Return a link to ``url`` that opens in the same tab."""
    return {"targetBlank": False, "title": title, "url": url}


def column_links(column: str, *links: Json) -> Json:
    """Return a field override giving a table column's cells these links."""
    return {"matcher": {"id": "byName", "options": column}, "properties": [{"id": "links", "value": list(links)}]}


def timeseries(title: str, description: str, *queries: Query, unit: str = "short", width: int = 12) -> Json:
    """Return a time series panel."""
    return panel("timeseries", title, description, *queries, unit=unit, width=width)


def stat(title: str, description: str, *queries: Query, unit: str = "short", width: int = 6) -> Json:
    """Return a stat panel showing each series' last value."""
    options: Json = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "textMode": "auto"}
    return panel("stat", title, description, *queries, unit=unit, width=width, height=6, options=options)


def table(
    title: str,
    description: str,
    query: Query,
    unit: str = "short",
    width: int = 12,
    hide: tuple[str, ...] = ("Time",),
    overrides: tuple[Json, ...] = (),
) -> Json:
    """Return a table panel of one instant query, the ``hide`` columns left out."""
    organize = {"id": "organize", "options": {"excludeByName": dict.fromkeys(hide, True), "renameByName": {}}}
    options: Json = {"cellHeight": "sm", "showHeader": True}
    return panel(
        "table",
        title,
        description,
        query,
        unit=unit,
        width=width,
        options=options,
        overrides=overrides,
        transformations=[organize],
    )


def query_variable(name: str, label: str, definition: str, description: str) -> Json:
    """Return a multi-value query variable, "All" by default, whose All value is the regex ``.*``."""
    return {
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "datasource": DATASOURCE,
        "definition": definition,
        "description": description,
        "includeAll": True,
        "label": label,
        "multi": True,
        "name": name,
        "options": [],
        "query": definition,
        # 2: refresh the values whenever the time range changes.
        "refresh": 2,
        "regex": "",
        "sort": 1,
        "type": "query",
    }


def textbox_variable(name: str, label: str, default: str, description: str) -> Json:
    """Return a free-text variable (used in links, never in queries)."""
    return {
        "current": {"selected": False, "text": default, "value": default},
        "description": description,
        "hide": 0,
        "label": label,
        "name": name,
        "options": [{"selected": True, "text": default, "value": default}],
        "query": default,
        "type": "textbox",
    }


def dashboard(
    uid: str,
    title: str,
    description: str,
    variables: Sequence[Json],
    sections: Sequence[Section],
    links: Sequence[Json] = (),
    time_from: str = "now-6h",
) -> Json:
    """Return a dashboard: sections become rows, panels get ids and grid positions."""
    panels: list[Json] = []
    y = 0
    for section in sections:
        panels.append(
            {
                "collapsed": False,
                "gridPos": {"h": 1, "w": GRID_WIDTH, "x": 0, "y": y},
                "panels": [],
                "title": section.title,
                "type": "row",
            }
        )
        y += 1
        x, row_height = 0, 0
        for item in section.panels:
            width, height = item["gridPos"]["w"], item["gridPos"]["h"]
            if x + width > GRID_WIDTH:
                x, y, row_height = 0, y + row_height, 0
            panels.append({**item, "gridPos": {"h": height, "w": width, "x": x, "y": y}})
            x += width
            row_height = max(row_height, height)
        y += row_height
    for number, item in enumerate(panels, start=1):
        item["id"] = number
    return {
        "annotations": {"list": []},
        "description": description,
        "editable": False,
        "graphTooltip": 1,
        "links": list(links),
        "panels": panels,
        "refresh": "30s",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["ai-infra-tracker"],
        "templating": {"list": list(variables)},
        "time": {"from": time_from, "to": "now"},
        "timepicker": {},
        "timezone": "utc",
        "title": title,
        "uid": uid,
        "version": 1,
    }


def targets(board: Json) -> Iterator[tuple[Json, Json]]:
    """Yield (panel, target) for every query of every panel of ``board``."""
    for item in board["panels"]:
        for target in item.get("targets", []):
            yield item, target


def substitute(expr: str, values: dict[str, str]) -> str:
    """Replace ``$name`` and ``${name}`` as Grafana would, from ``values``; raise KeyError for unknown names."""
    return _VARIABLE.sub(lambda match: values[match.group(1) or match.group(2)], expr)
