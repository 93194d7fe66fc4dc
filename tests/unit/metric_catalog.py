"""Every metric name a dashboard or a Prometheus rule may select, and a PromQL name extractor."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from faust.sensors.prometheus import FaustMetrics
from prometheus_client import CollectorRegistry

from tracker.core.catalogue import SIGNAL_HELP
from tracker.worker.metrics import PipelineMetrics

__all__ = ["RULES_DIR", "grouping_labels", "known_labels", "known_metrics", "metric_names", "recorded_names"]

RULES_DIR = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "rules"
SAMPLE_SUFFIXES = ("", "_total", "_bucket", "_sum", "_count")
KEYWORDS = frozenset({"and", "or", "unless", "offset", "bool"})
# Collected at scrape time by AlertCollector and LagCollector (tracker/worker/metrics.py);
# up and ALERTS come from Prometheus.
OTHER_NAMES = frozenset({"market_alert_firing", "tracker_consumer_lag", "up", "ALERTS"})
#: Labels every scraped sample gets from Prometheus.
TARGET_LABELS = frozenset({"job", "instance"})


def _names(registry: CollectorRegistry) -> set[str]:
    return {f"{family.name}{suffix}" for family in registry.collect() for suffix in SAMPLE_SUFFIXES}


def recorded_names() -> set[str]:
    """Return the names of the recording rules in deploy/prometheus/rules."""
    return {
        rule["record"]
        for path in sorted(RULES_DIR.glob("*.yml"))
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def known_metrics() -> set[str]:
    """Return the names a query may select: signals, pipeline and Faust metrics, recorded series."""
    pipeline, faust = CollectorRegistry(), CollectorRegistry()
    PipelineMetrics.create(pipeline)
    # The worker registers Faust's sensor with name_prefix "faust" (tracker/worker/app.py).
    FaustMetrics.create(faust, app_name="faust")
    return set(SIGNAL_HELP) | OTHER_NAMES | _names(pipeline) | _names(faust) | recorded_names()


def metric_names(expr: str) -> set[str]:
    """Return the metric names a PromQL expression selects: identifiers that are not functions or labels."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', "", expr)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", text)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", "", text)
    names = re.findall(r"(?<![\w$.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text)
    return set(names) - KEYWORDS


def known_labels() -> dict[str, frozenset[str]]:
    """Return the label names of each pipeline metric's samples (scrape labels included)."""
    registry = CollectorRegistry()
    metrics = PipelineMetrics.create(registry, rules=("a-rule",))
    metrics.records_read.labels(topic="events")  # the one labelled family create() leaves without a child
    labels: dict[str, frozenset[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            labels[sample.name] = labels.get(sample.name, frozenset()) | set(sample.labels) | TARGET_LABELS
    return labels


def grouping_labels(expr: str, legend: str = "") -> set[str]:
    """Return the labels an expression groups by (``by (...)``) and its legend names (``{{label}}``)."""
    grouped = {
        name.strip() for found in re.findall(r"\bby\s*\(([^)]*)\)", expr) for name in found.split(",") if name.strip()
    }
    return grouped | set(re.findall(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}", legend))
