"""The tracker's Grafana dashboards, "Market signals" and "Tracker health", generated from code.

``deploy/grafana/dashboards/*.json`` is the output of ``render_dashboards``;
a test fails when the committed files differ. Signals are aggregated with
``max by (...)`` across workers: each series lives on one worker at a time,
but two scrapes on either side of a rebalance can both hold it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from tracker.monitoring.grafana import (
    Json,
    Query,
    Section,
    dashboard,
    panel,
    query_variable,
    textbox_variable,
)

__all__ = [
    "DASHBOARDS",
    "MARKET_SIGNALS_UID",
    "TRACKER_HEALTH_UID",
    "market_signals",
    "render_dashboards",
    "stale_dashboards",
    "tracker_health",
    "write_dashboards",
]

MARKET_SIGNALS_UID = "tracker-market-signals"
TRACKER_HEALTH_UID = "tracker-health"
RATE = "$__rate_interval"
ENTITY = 'entity=~"$entity"'
ENTITY_METRIC = 'entity=~"$entity", metric=~"$metric"'
WORKERS = 'job=~"$job", instance=~"$instance"'
# The reject reasons whose records go to the dead-letter topic (tracker/worker/folding.py).
DEAD_LETTERED = 'reason=~"invalid_json|invalid_event"'
# A counter with no series yet has counted nothing: show 0 (on () drops the 0 once any series exists).
ZERO = " or on () vector(0)"

_EXPORT_STATES: Json = {
    "mappings": [
        {
            "options": {
                "-1": {"color": "red", "index": 1, "text": "tightened"},
                "1": {"color": "green", "index": 0, "text": "loosened"},
            },
            "type": "value",
        }
    ],
    "color": {"mode": "thresholds"},
    "thresholds": {"mode": "absolute", "steps": [{"color": "text", "value": None}]},
}


def _link(title: str, url: str) -> Json:
    return {"targetBlank": False, "title": title, "url": url}


def _column_links(column: str, *links: Json) -> Json:
    return {"matcher": {"id": "byName", "options": column}, "properties": [{"id": "links", "value": list(links)}]}


def _timeseries(title: str, description: str, *queries: Query, unit: str = "short", width: int = 12) -> Json:
    return panel("timeseries", title, description, *queries, unit=unit, width=width)


def _stat(title: str, description: str, *queries: Query, unit: str = "short", width: int = 6) -> Json:
    options: Json = {"reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False}, "textMode": "auto"}
    return panel("stat", title, description, *queries, unit=unit, width=width, height=6, options=options)


def _table(
    title: str,
    description: str,
    query: Query,
    unit: str = "short",
    width: int = 12,
    hide: tuple[str, ...] = ("Time",),
    overrides: tuple[Json, ...] = (),
) -> Json:
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


def _quantile(q: float, buckets: str) -> Query:
    return Query(
        f"histogram_quantile({q}, sum by (le) (rate({buckets}{{{WORKERS}}}[{RATE}])))",
        f"p{round(q * 100)}",
    )


def _investment() -> Section:
    return Section(
        "Investment",
        [
            _timeseries(
                "Announced AI spending by entity and period",
                "Latest announced AI-infrastructure spending for each period (range midpoints, approximations kept).",
                Query(f"max by (entity, period) (market_investment_usd{{{ENTITY}}})", "{{entity}} {{period}}"),
                unit="currencyUSD",
                width=16,
            ),
            _table(
                "Spending: latest figures",
                "One row per entity and period, in USD.",
                Query(f"max by (entity, period) (market_investment_usd{{{ENTITY}}})", instant=True),
                unit="currencyUSD",
                width=8,
            ),
            _timeseries(
                "Announced AI spending per year",
                "Spending for each period in USD, spread evenly over the years of a multi-year period "
                "(a plan for 2025-2027 counts a third of its total per year).",
                Query(f"max by (entity, period) (market_investment_usd_per_year{{{ENTITY}}})", "{{entity}} {{period}}"),
                unit="currencyUSD",
                width=8,
            ),
            _table(
                "Spending as reported",
                "Latest announced spending for each period in the currency reported; the USD panels convert it "
                "at the exchange rate for the announcement's date.",
                Query(f"max by (entity, period, currency) (market_investment{{{ENTITY}}})", instant=True),
                width=8,
            ),
            _timeseries(
                "Exchange rates",
                "Newest fx_rate.reported fact per currency by event time: US dollars for one unit.",
                Query("max by (currency) (market_fx_usd_per_unit)", "{{currency}}"),
                unit="currencyUSD",
                width=8,
            ),
        ],
    )


def _usage() -> Section:
    return Section(
        "Usage and growth",
        [
            _timeseries(
                "Latest usage",
                "Newest usage figure by event time (occurred_on), never by arrival.",
                Query(f"max by (entity, metric) (market_usage{{{ENTITY_METRIC}}})", "{{entity}} {{metric}}"),
            ),
            _timeseries(
                "Monthly usage growth",
                "Compounded monthly growth between the two newest figures of a series.",
                Query(
                    f"max by (entity, metric) (market_usage_growth_monthly_ratio{{{ENTITY_METRIC}}})",
                    "{{entity}} {{metric}}",
                ),
                unit="percentunit",
            ),
            _timeseries(
                "Tokens per day (tokens per month normalised)",
                "Recording rule entity:market_tokens_per_day:max: tokens_per_day where reported, "
                "else tokens_per_month over an average month.",
                Query(f"max by (entity) (entity:market_tokens_per_day:max{{{ENTITY}}})", "{{entity}}"),
            ),
            _table(
                "Days since the last observation",
                "Event time of each signal's newest fact, and its age in days (the stale-signal alert fires past 90).",
                Query(
                    f"max by (entity, metric) (entity_metric:market_signal_age:days{{{ENTITY_METRIC}}})",
                    instant=True,
                ),
                unit="d",
            ),
        ],
    )


def _peers() -> Section:
    return Section(
        "Peers",
        [
            _timeseries(
                "Peer ratios",
                "Entity's latest figure divided by its peer's, for the configured peer pairs; above 1 it leads.",
                Query(
                    # An investment ratio names the periods it compares (per-year dollars of each).
                    f"max by (entity, peer, metric, period, peer_period) (market_peer_ratio{{{ENTITY_METRIC}}})",
                    "{{entity}} / {{peer}} {{metric}} {{period}} {{peer_period}}",
                ),
                width=8,
            ),
            _timeseries(
                "Share of the pair",
                "Recording rule entity_peer_metric:market_peer_share:ratio: entity / (entity + peer).",
                Query(
                    f"max by (entity, peer, metric) (entity_peer_metric:market_peer_share:ratio{{{ENTITY_METRIC}}})",
                    "{{entity}} of {{entity}}+{{peer}} {{metric}}",
                ),
                unit="percentunit",
                width=8,
            ),
            _timeseries(
                "Share of the tracked total",
                "Recording rule entity_metric:market_usage_share:ratio: the entity's latest figure over the sum "
                "of every tracked entity's, per usage metric.",
                Query(
                    f"max by (entity, metric) (entity_metric:market_usage_share:ratio{{{ENTITY_METRIC}}})",
                    "{{entity}} {{metric}}",
                ),
                unit="percentunit",
                width=8,
            ),
        ],
    )


def _chips() -> Section:
    return Section(
        "Chip orders",
        [
            _timeseries(
                "Chip units by stage",
                "Units summed over distinct live reports, by buyer, product and stage (ordered, scheduled, ...).",
                Query(
                    'max by (buyer, vendor, product, stage) (market_chip_units{buyer=~"$entity"})',
                    "{{buyer}} {{product}} {{stage}}",
                ),
            ),
            _timeseries(
                "Chip order value",
                "Ordered chips in USD: the order value reported, else units times unit price.",
                Query(
                    'max by (buyer, vendor, product) (market_chip_order_value_usd{buyer=~"$entity"})',
                    "{{buyer}} {{product}}",
                ),
                unit="currencyUSD",
            ),
            _table(
                "Chip order value as reported",
                "Ordered chips in the currency of each report, one row per currency.",
                Query(
                    'max by (buyer, vendor, product, currency) (market_chip_order_value{buyer=~"$entity"})',
                    instant=True,
                ),
                width=24,
            ),
        ],
    )


def _export_rules() -> Section:
    return Section(
        "Export regimes",
        [
            panel(
                "state-timeline",
                "Export-rule state",
                "Latest change by effective date, per authority, product and destination: loosened +1, tightened -1.",
                Query(
                    "max by (authority, product, destination) (market_export_rule_state)",
                    "{{authority}} {{product}} to {{destination}}",
                ),
                width=16,
                options={"mergeValues": True, "showValue": "auto", "rowHeight": 0.8},
                defaults=_EXPORT_STATES,
            ),
            _table(
                "Export rules: effective since",
                "Effective date of the latest change of each regime.",
                Query(
                    "max by (authority, product, destination) (market_export_rule_changed_timestamp_seconds) * 1000",
                    instant=True,
                ),
                unit="dateTimeAsIsoNoDateIfToday",
                width=8,
            ),
        ],
    )


def _alerts() -> Section:
    return Section(
        "Alerts",
        [
            _table(
                "Active alerts",
                "Alerts the tracker's rules fire on event time (deploy/rules/default.yaml), one row each. "
                "Links: the entity's signals, and the alert's provenance from the worker API.",
                Query("max without (instance, job) (market_alert_firing)", instant=True),
                width=24,
                hide=("Time", "Value", "__name__"),
                overrides=(
                    _column_links(
                        "entity",
                        _link(
                            "Signals of ${__value.raw}",
                            f"/d/{MARKET_SIGNALS_UID}?var-entity=${{__value.raw}}&${{__url_time_range}}",
                        ),
                    ),
                    _column_links(
                        "alertname",
                        _link("Provenance (worker API)", "${api}/v1/alerts?state=firing"),
                    ),
                ),
            ),
            _timeseries(
                "Facts in trailing windows",
                "Live events per entity and type in the 90 and 365 days before the entity's newest fact.",
                Query(
                    f"max by (entity, type, window) (market_events_trailing{{{ENTITY}}})",
                    "{{entity}} {{type}} {{window}}",
                ),
                width=24,
            ),
        ],
    )


def market_signals() -> Json:
    """Return the "Market signals" dashboard."""
    return dashboard(
        MARKET_SIGNALS_UID,
        "Market signals",
        "Signals folded from the fact log: spending, usage and growth, peers, chip orders, export regimes, alerts.",
        [
            query_variable(
                "entity",
                "Entity",
                "label_values(market_events_trailing, entity)",
                "Entities with live facts (chip panels filter buyers, export panels show every regime).",
            ),
            query_variable(
                "metric",
                "Metric",
                "label_values(market_signal_observed_timestamp_seconds, metric)",
                "Usage metrics, and investment_usd for spending peers.",
            ),
            textbox_variable(
                "api",
                "Worker API",
                "http://127.0.0.1:6066",
                "Base URL of a worker's HTTP API, for the alert provenance links.",
            ),
        ],
        [_investment(), _usage(), _peers(), _chips(), _export_rules(), _alerts()],
        links=[_link("Tracker health", f"/d/{TRACKER_HEALTH_UID}")],
        # Facts arrive a few a month: a month of history shows a change, six hours a flat line.
        time_from="now-30d",
    )


def _workers() -> Section:
    return Section(
        "Workers",
        [
            _stat(
                "Workers up",
                "Scrape targets answering now, out of all tracker targets.",
                Query(f"sum(up{{{WORKERS}}})", "up"),
                Query(f"count(up{{{WORKERS}}})", "targets"),
            ),
            _stat(
                "Rebalances",
                "Consumer-group rebalances per worker since it started.",
                Query(f"sum by (instance) (tracker_rebalances_total{{{WORKERS}}})", "{{instance}}"),
            ),
            _timeseries(
                "Records read by the fold per second, by topic",
                "Events read by the fold, and changelog records applied to its tables (recovery, standbys).",
                Query(f"sum by (topic) (rate(tracker_records_read_total{{{WORKERS}}}[{RATE}]))", "{{topic}}"),
                unit="ops",
            ),
        ],
    )


def _ingest() -> Section:
    return Section(
        "Ingest and fold",
        [
            _timeseries(
                "Events folded per second, by type",
                "Events applied to the fold on their home partition.",
                Query(f"sum by (type) (rate(tracker_events_total{{{WORKERS}}}[{RATE}]))", "{{type}}"),
                unit="ops",
                width=8,
            ),
            _timeseries(
                "Duplicates and re-routes per second",
                "Duplicates are no-ops (an id already folded); re-routes are records sent on to their home partition.",
                Query(f"sum(rate(tracker_events_duplicate_total{{{WORKERS}}}[{RATE}]))", "duplicates"),
                Query(f"sum(rate(tracker_events_rerouted_total{{{WORKERS}}}[{RATE}]))", "re-routed"),
                unit="ops",
                width=8,
            ),
            _timeseries(
                "Records per fold batch",
                "Mean and 99th percentile of the batch size; the fold writes each changed table key once per batch.",
                Query(
                    f"sum(rate(tracker_fold_batch_records_sum{{{WORKERS}}}[{RATE}])) "
                    f"/ sum(rate(tracker_fold_batch_records_count{{{WORKERS}}}[{RATE}]))",
                    "mean",
                ),
                _quantile(0.99, "tracker_fold_batch_records_bucket"),
                width=8,
            ),
        ],
    )


def _rejects() -> Section:
    return Section(
        "Rejects and dead letters",
        [
            _timeseries(
                "Rejected records per second, by reason",
                "invalid_json and invalid_event go to the dead-letter topic; id_conflict is a reused id.",
                Query(f"sum by (reason) (rate(tracker_events_rejected_total{{{WORKERS}}}[{RATE}]))", "{{reason}}"),
                unit="ops",
            ),
            _stat(
                "Rejected since worker start",
                "By reason, summed over the selected workers (counters restart with a worker); 0 when none.",
                Query(f"sum by (reason) (tracker_events_rejected_total{{{WORKERS}}}){ZERO}", "{{reason}}"),
            ),
            _stat(
                "Dead-lettered since worker start",
                "Records sent to <prefix>market-events-dlq (invalid records) and <prefix>notifications-dlq "
                "(notifications out of attempts).",
                Query(
                    f"sum(tracker_events_rejected_total{{{DEAD_LETTERED}, {WORKERS}}}){ZERO}",
                    "invalid events",
                ),
                Query(
                    f'sum(tracker_notifications_total{{outcome="dead_lettered", {WORKERS}}}){ZERO}',
                    "notifications",
                ),
            ),
        ],
    )


def _latency() -> Section:
    latency = "tracker_processing_latency_seconds_bucket"
    return Section(
        "Latency and lag",
        [
            _timeseries(
                "Processing latency",
                "From a record's broker timestamp to its fold: median, 90th and 99th percentiles.",
                _quantile(0.5, latency),
                _quantile(0.9, latency),
                _quantile(0.99, latency),
                unit="s",
            ),
            _timeseries(
                "Consumer lag, by topic and partition",
                "Recording rule instance_topic_partition:tracker_consumer_lag:records: the partition's end offset, "
                "asked of the broker every few seconds, minus the fold's committed offset.",
                Query(
                    f"max by (topic, partition) (instance_topic_partition:tracker_consumer_lag:records{{{WORKERS}}})",
                    "{{topic}}/{{partition}}",
                ),
            ),
        ],
    )


def _notifications() -> Section:
    return Section(
        "Alerts and notifications",
        [
            _timeseries(
                "Notification outcomes per second",
                "Webhook deliveries: delivered, retried, dead_lettered, duplicate_skipped.",
                Query(f"sum by (outcome) (rate(tracker_notifications_total{{{WORKERS}}}[{RATE}]))", "{{outcome}}"),
                unit="ops",
                width=8,
            ),
            _stat(
                "Notification outcomes since worker start",
                "By outcome, summed over the selected workers.",
                Query(f"sum by (outcome) (tracker_notifications_total{{{WORKERS}}}){ZERO}", "{{outcome}}"),
                width=8,
            ),
            _stat(
                "Alert transitions since worker start",
                "Transitions the rules published to the alerts topic, by rule (alertname) and state.",
                Query(
                    f"sum by (alertname, state) (tracker_alert_transitions_total{{{WORKERS}}}){ZERO}",
                    "{{alertname}} {{state}}",
                ),
                width=8,
            ),
        ],
    )


def tracker_health() -> Json:
    """Return the "Tracker health" dashboard."""
    return dashboard(
        TRACKER_HEALTH_UID,
        "Tracker health",
        "The pipeline itself: workers, ingest and fold rates, rejects and dead letters, latency, lag, notifications.",
        [
            query_variable(
                "job",
                "Job",
                "label_values(tracker_events_duplicate_total, job)",
                "Scrape jobs that export tracker metrics.",
            ),
            query_variable(
                "instance",
                "Worker",
                'label_values(tracker_events_duplicate_total{job=~"$job"}, instance)',
                "Workers of the selected jobs.",
            ),
        ],
        [_workers(), _ingest(), _rejects(), _latency(), _notifications()],
        links=[_link("Market signals", f"/d/{MARKET_SIGNALS_UID}")],
    )


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
