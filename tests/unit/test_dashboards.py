"""The committed Grafana dashboards are the generator's output, and every query names something real."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.metric_catalog import grouping_labels, known_labels, known_metrics, metric_names
from tracker.core.catalogue import SIGNAL_HELP
from tracker.monitoring.dashboards import DASHBOARDS, render_dashboards, stale_dashboards
from tracker.monitoring.grafana import BUILTIN_VARIABLES, DATASOURCE_UID, GRID_WIDTH, substitute, targets

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD_DIR = ROOT / "deploy" / "grafana" / "dashboards"
DATASOURCES = ROOT / "deploy" / "grafana" / "provisioning" / "datasources" / "datasources.yml"
BOARDS = {name: build() for name, build in DASHBOARDS.items()}


def exprs(board: dict[str, Any]) -> list[str]:
    return [target["expr"] for _, target in targets(board)]


def test_committed_dashboards_are_up_to_date() -> None:
    stale = stale_dashboards(DASHBOARD_DIR)

    assert stale == [], f"run `python -m tracker.monitoring`: {stale} differ from the generator"


def test_a_changed_dashboard_file_is_reported_stale(tmp_path: Path) -> None:
    for name, text in render_dashboards().items():
        (tmp_path / name).write_text(text)
    (tmp_path / "tracker-health.json").write_text("{}")

    assert stale_dashboards(tmp_path) == ["tracker-health.json"]


def test_the_dashboards_are_the_two_the_issue_asks_for() -> None:
    titles = {board["title"] for board in BOARDS.values()}

    assert titles == {"Market signals", "Tracker health"}
    assert len({board["uid"] for board in BOARDS.values()}) == len(BOARDS)


def test_every_query_uses_the_provisioned_prometheus_datasource() -> None:
    provisioned = yaml.safe_load(DATASOURCES.read_text())["datasources"]
    (prometheus,) = [source for source in provisioned if source["type"] == "prometheus"]

    assert prometheus["uid"] == DATASOURCE_UID
    for board in BOARDS.values():
        for item, target in targets(board):
            assert item["datasource"] == {"type": "prometheus", "uid": prometheus["uid"]}, item["title"]
            assert target["datasource"] == item["datasource"], item["title"]
        for variable in board["templating"]["list"]:
            if variable["type"] == "query":
                assert variable["datasource"]["uid"] == prometheus["uid"]


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_variable_a_query_uses_is_defined(name: str) -> None:
    board = BOARDS[name]
    defined = {variable["name"] for variable in board["templating"]["list"]} | BUILTIN_VARIABLES

    for expr in exprs(board):
        substitute(expr, dict.fromkeys(defined, "x"))


def test_metric_names_skips_functions_labels_and_strings() -> None:
    expr = 'histogram_quantile(0.9, sum by (le) (rate(a_bucket{x=~"b_c"}[$__rate_interval]))) / on (job) c or d:e:f'

    assert metric_names(expr) == {"a_bucket", "c", "d:e:f"}


def test_substitute_replaces_both_forms_and_refuses_unknown_names() -> None:
    assert substitute('up{a=~"$a", b="${b}"}[$__rate_interval]', {"a": "1", "b": "2", "__rate_interval": "5m"}) == (
        'up{a=~"1", b="2"}[5m]'
    )
    with pytest.raises(KeyError):
        substitute("up{a=~'$missing'}", {})


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_every_metric_a_query_selects_exists(name: str) -> None:
    known = known_metrics()

    used = {metric for expr in exprs(BOARDS[name]) for metric in metric_names(expr)}

    assert used, name
    assert used - known == set()


@pytest.mark.parametrize("name", sorted(BOARDS))
def test_panels_have_unique_ids_and_do_not_overlap(name: str) -> None:
    panels = BOARDS[name]["panels"]
    cells: dict[tuple[int, int], str] = {}

    assert len({item["id"] for item in panels}) == len(panels)
    for item in panels:
        grid = item["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= GRID_WIDTH, item["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{item['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = item["title"]


def test_market_signals_has_the_entity_and_metric_variables_and_every_signal() -> None:
    board = BOARDS["market-signals.json"]
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    used = {metric for expr in exprs(board) for metric in metric_names(expr)}

    assert {"entity", "metric"} <= set(variables)
    assert all(variables[name]["multi"] and variables[name]["includeAll"] for name in ("entity", "metric"))
    # The one family left out: it has no data until an entity announces two periods (not in the seed).
    assert set(SIGNAL_HELP) - {"market_investment_growth_ratio"} <= used | {"market_signal_observed_timestamp_seconds"}
    assert "market_alert_firing" in used


def test_market_signals_shows_export_rules_as_states_and_alerts_as_a_linked_table() -> None:
    panels = {item["title"]: item for item in BOARDS["market-signals.json"]["panels"]}

    export = panels["Export-rule state"]
    alerts = panels["Active alerts"]

    assert export["type"] == "state-timeline"
    assert {"loosened", "tightened"} <= {
        option["text"]
        for mapping in export["fieldConfig"]["defaults"]["mappings"]
        for option in mapping["options"].values()
    }
    assert alerts["type"] == "table"
    assert all(target["instant"] and target["format"] == "table" for target in alerts["targets"])
    links = [
        link for override in alerts["fieldConfig"]["overrides"] for p in override["properties"] for link in p["value"]
    ]
    assert any("var-entity=" in link["url"] for link in links)
    assert any(link["url"].startswith("${api}/v1/alerts") for link in links)


def test_tracker_health_covers_ingest_rejects_latency_lag_and_notifications() -> None:
    joined = "\n".join(exprs(BOARDS["tracker-health.json"]))

    for needle in (
        "rate(tracker_events_total",
        "rate(tracker_records_read_total",
        "tracker_events_rejected_total",
        "histogram_quantile(0.99, sum by (le) (rate(tracker_processing_latency_seconds_bucket",
        "tracker_consumer_lag",
        "tracker_notifications_total",
        'outcome="dead_lettered"',
    ):
        assert needle in joined, needle


def test_dashboard_files_are_valid_json_with_a_trailing_newline() -> None:
    for name, text in render_dashboards().items():
        assert text.endswith("}\n"), name
        assert json.loads(text)["schemaVersion"] >= 39


@pytest.mark.parametrize("name", ["tracker-health.json"])
def test_a_query_on_one_pipeline_metric_groups_and_names_only_labels_it_has(name: str) -> None:
    labels = known_labels()
    checked = 0

    for _, target in targets(BOARDS[name]):
        selected = metric_names(target["expr"]) & set(labels)
        if len(selected) != 1 or metric_names(target["expr"]) - set(labels):
            continue  # several metrics, or recorded series: their labels are the rules' business
        (metric,) = selected
        checked += 1
        used = grouping_labels(target["expr"], target.get("legendFormat", ""))
        assert used <= labels[metric], f"{target['expr']}: {sorted(used - labels[metric])} not on {metric}"

    assert checked, name
