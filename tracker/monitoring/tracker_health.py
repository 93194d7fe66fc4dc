"""The "Tracker health" dashboard: the pipeline itself, per scrape job and worker."""

from __future__ import annotations

from tracker.monitoring.grafana import (
    MARKET_SIGNALS_UID,
    RATE,
    TRACKER_HEALTH_UID,
    Json,
    Query,
    Section,
    dashboard,
    link,
    query_variable,
    stat,
    timeseries,
)

__all__ = ["tracker_health"]

WORKERS = 'job=~"$job", instance=~"$instance"'
# The reject reasons whose records go to the dead-letter topic (tracker/worker/folding.py).
DEAD_LETTERED = 'reason=~"invalid_json|invalid_event"'
# A counter with no series yet has counted nothing: show 0 (on () drops the 0 once any series exists).
ZERO = " or on () vector(0)"


def _quantile(q: float, buckets: str) -> Query:
    return Query(
        f"histogram_quantile({q}, sum by (le) (rate({buckets}{{{WORKERS}}}[{RATE}])))",
        f"p{round(q * 100)}",
    )


def _workers() -> Section:
    return Section(
        "Workers",
        [
            stat(
                "Workers up",
                "Scrape targets answering now, out of all tracker targets.",
                Query(f"sum(up{{{WORKERS}}})", "up"),
                Query(f"count(up{{{WORKERS}}})", "targets"),
            ),
            stat(
                "Rebalances",
                "Consumer-group rebalances per worker since it started.",
                Query(f"sum by (instance) (tracker_rebalances_total{{{WORKERS}}})", "{{instance}}"),
            ),
            timeseries(
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
            timeseries(
                "Events folded per second, by type",
                "Events applied to the fold on their home partition.",
                Query(f"sum by (type) (rate(tracker_events_total{{{WORKERS}}}[{RATE}]))", "{{type}}"),
                unit="ops",
                width=8,
            ),
            timeseries(
                "Duplicates and re-routes per second",
                "Duplicates are no-ops (an id already folded); re-routes are records sent on to their home partition.",
                Query(f"sum(rate(tracker_events_duplicate_total{{{WORKERS}}}[{RATE}]))", "duplicates"),
                Query(f"sum(rate(tracker_events_rerouted_total{{{WORKERS}}}[{RATE}]))", "re-routed"),
                unit="ops",
                width=8,
            ),
            timeseries(
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
            timeseries(
                "Rejected records per second, by reason",
                "invalid_json and invalid_event go to the dead-letter topic; id_conflict is a reused id.",
                Query(f"sum by (reason) (rate(tracker_events_rejected_total{{{WORKERS}}}[{RATE}]))", "{{reason}}"),
                unit="ops",
            ),
            stat(
                "Rejected since worker start",
                "By reason, summed over the selected workers (counters restart with a worker); 0 when none.",
                Query(f"sum by (reason) (tracker_events_rejected_total{{{WORKERS}}}){ZERO}", "{{reason}}"),
            ),
            stat(
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
            timeseries(
                "Processing latency",
                "From a record's broker timestamp to its fold: median, 90th and 99th percentiles.",
                _quantile(0.5, latency),
                _quantile(0.9, latency),
                _quantile(0.99, latency),
                unit="s",
            ),
            timeseries(
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
            timeseries(
                "Notification outcomes per second",
                "Webhook deliveries: delivered, retried, dead_lettered, duplicate_skipped.",
                Query(f"sum by (outcome) (rate(tracker_notifications_total{{{WORKERS}}}[{RATE}]))", "{{outcome}}"),
                unit="ops",
                width=8,
            ),
            stat(
                "Notification outcomes since worker start",
                "By outcome, summed over the selected workers.",
                Query(f"sum by (outcome) (tracker_notifications_total{{{WORKERS}}}){ZERO}", "{{outcome}}"),
                width=8,
            ),
            stat(
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
        links=[link("Market signals", f"/d/{MARKET_SIGNALS_UID}")],
    )
