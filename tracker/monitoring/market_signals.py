"""The "Market signals" dashboard: what the fact log says, by entity and metric.

Signals are aggregated with ``max by (...)`` across workers: each series lives on
one worker at a time, but two scrapes on either side of a rebalance can both hold it.
"""

from __future__ import annotations

from tracker.monitoring.grafana import (
    MARKET_SIGNALS_UID,
    TRACKER_HEALTH_UID,
    Json,
    Query,
    Section,
    column_links,
    dashboard,
    link,
    panel,
    query_variable,
    table,
    textbox_variable,
    timeseries,
)

__all__ = ["market_signals"]

ENTITY = 'entity=~"$entity"'
ENTITY_METRIC = 'entity=~"$entity", metric=~"$metric"'

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


def _investment() -> Section:
    return Section(
        "Investment",
        [
            timeseries(
                "Announced AI spending by entity and period",
                "Latest announced AI-infrastructure spending for each period (range midpoints, approximations kept).",
                Query(f"max by (entity, period) (market_investment_usd{{{ENTITY}}})", "{{entity}} {{period}}"),
                unit="currencyUSD",
                width=16,
            ),
            table(
                "Spending: latest figures",
                "One row per entity and period, in USD.",
                Query(f"max by (entity, period) (market_investment_usd{{{ENTITY}}})", instant=True),
                unit="currencyUSD",
                width=8,
            ),
            timeseries(
                "Announced AI spending per year",
                "Spending for each period in USD, spread evenly over the years of a multi-year period "
                "(a plan for 2025-2027 counts a third of its total per year).",
                Query(f"max by (entity, period) (market_investment_usd_per_year{{{ENTITY}}})", "{{entity}} {{period}}"),
                unit="currencyUSD",
                width=8,
            ),
            table(
                "Spending as reported",
                "Latest announced spending for each period in the currency reported; the USD panels convert it "
                "at the exchange rate for the announcement's date.",
                Query(f"max by (entity, period, currency) (market_investment{{{ENTITY}}})", instant=True),
                width=8,
            ),
            timeseries(
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
            timeseries(
                "Latest usage",
                "Newest usage figure by event time (occurred_on), never by arrival.",
                Query(f"max by (entity, metric) (market_usage{{{ENTITY_METRIC}}})", "{{entity}} {{metric}}"),
            ),
            timeseries(
                "Monthly usage growth",
                "Compounded monthly growth between the two newest figures of a series.",
                Query(
                    f"max by (entity, metric) (market_usage_growth_monthly_ratio{{{ENTITY_METRIC}}})",
                    "{{entity}} {{metric}}",
                ),
                unit="percentunit",
            ),
            timeseries(
                "Tokens per day (tokens per month normalised)",
                "Recording rule entity:market_tokens_per_day:max: tokens_per_day where reported, "
                "else tokens_per_month over an average month.",
                Query(f"max by (entity) (entity:market_tokens_per_day:max{{{ENTITY}}})", "{{entity}}"),
            ),
            table(
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
            timeseries(
                "Peer ratios",
                "Entity's latest figure divided by its peer's, for the configured peer pairs; above 1 it leads.",
                Query(
                    # An investment ratio names the periods it compares (per-year dollars of each).
                    f"max by (entity, peer, metric, period, peer_period) (market_peer_ratio{{{ENTITY_METRIC}}})",
                    "{{entity}} / {{peer}} {{metric}} {{period}} {{peer_period}}",
                ),
                width=8,
            ),
            timeseries(
                "Share of the pair",
                "Recording rule entity_peer_metric:market_peer_share:ratio: entity / (entity + peer).",
                Query(
                    f"max by (entity, peer, metric) (entity_peer_metric:market_peer_share:ratio{{{ENTITY_METRIC}}})",
                    "{{entity}} of {{entity}}+{{peer}} {{metric}}",
                ),
                unit="percentunit",
                width=8,
            ),
            timeseries(
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
            timeseries(
                "Chip units by stage",
                "Units summed over distinct live reports, by buyer, product and stage (ordered, scheduled, ...).",
                Query(
                    'max by (buyer, vendor, product, stage) (market_chip_units{buyer=~"$entity"})',
                    "{{buyer}} {{product}} {{stage}}",
                ),
            ),
            timeseries(
                "Chip order value",
                "Ordered chips in USD: the order value reported, else units times unit price.",
                Query(
                    'max by (buyer, vendor, product) (market_chip_order_value_usd{buyer=~"$entity"})',
                    "{{buyer}} {{product}}",
                ),
                unit="currencyUSD",
            ),
            table(
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
            table(
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
            table(
                "Active alerts",
                "Alerts the tracker's rules fire on event time (deploy/rules/default.yaml), one row each. "
                "Links: the entity's signals, and the alert's provenance from the worker API.",
                Query("max without (instance, job) (market_alert_firing)", instant=True),
                width=24,
                hide=("Time", "Value", "__name__"),
                overrides=(
                    column_links(
                        "entity",
                        link(
                            "Signals of ${__value.raw}",
                            f"/d/{MARKET_SIGNALS_UID}?var-entity=${{__value.raw}}&${{__url_time_range}}",
                        ),
                    ),
                    column_links(
                        "alertname",
                        link("Provenance (worker API)", "${api}/v1/alerts?state=firing"),
                    ),
                ),
            ),
            timeseries(
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
        links=[link("Tracker health", f"/d/{TRACKER_HEALTH_UID}")],
        # Facts arrive a few a month: a month of history shows a change, six hours a flat line.
        time_from="now-30d",
    )
