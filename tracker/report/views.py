"""The API's answers as reports: signals, a signal's history, facts, one fact, alerts, subscriptions."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracker.report.numbers import human_number, quantity_text, signal_text, signal_unit
from tracker.report.render import Report, render

__all__ = [
    "alerts_report",
    "fact_detail",
    "fact_text",
    "facts_report",
    "history_report",
    "labels_text",
    "signals_report",
    "subscriptions_report",
]


def labels_text(labels: Mapping[str, str], separator: str = " ") -> str:
    """Return labels as ``k=v`` pairs in a stable order."""
    return separator.join(f"{key}={value}" for key, value in sorted(labels.items()))


def signals_report(document: Mapping[str, Any], empty: str) -> Report:
    """Return ``GET /v1/signals`` as a report, sorted by family and labels."""
    signals = sorted(document.get("signals", []), key=lambda s: (s["name"], sorted(s["labels"].items())))
    return Report(
        headers=("signal", "labels", "value"),
        rows=[(s["name"], labels_text(s["labels"]), signal_text(s["name"], s["labels"], s["value"])) for s in signals],
        raw_headers=("signal", "labels", "value", "unit"),
        raw=[
            (s["name"], labels_text(s["labels"], ";"), s["value"], signal_unit(s["name"], s["labels"])) for s in signals
        ],
        empty=empty,
        document=document,
        right=frozenset({"value"}),
    )


def history_report(document: Mapping[str, Any], empty: str) -> Report:
    """Return ``GET /v1/signals/history`` as one row per point, in event-time order within each series."""
    rows: list[tuple[str, ...]] = []
    raw: list[tuple[Any, ...]] = []
    for series in document.get("series", []):
        name, labels = series["name"], series["labels"]
        for point in series.get("points", []):
            facts = " ".join(point.get("facts", []))
            rows.append((labels_text(labels), point["date"], signal_text(name, labels, point["value"]), facts))
            raw.append(
                (name, labels_text(labels, ";"), point["date"], point["value"], signal_unit(name, labels), facts)
            )
    return Report(
        headers=("labels", "date", "value", "facts"),
        rows=rows,
        raw_headers=("signal", "labels", "date", "value", "unit", "facts"),
        raw=raw,
        empty=empty,
        document=document,
        right=frozenset({"value"}),
    )


def _subject(fact: Mapping[str, Any]) -> str:
    return str(fact.get("entity") or fact.get("buyer") or fact.get("authority") or fact.get("currency") or "")


def fact_text(fact: Mapping[str, Any]) -> str:
    """Return what a fact says in one line: ``tokens_per_day 50 T tokens/day``, ``about 23 B USD for 2026``."""
    try:
        return _fact_text(fact)
    except (KeyError, TypeError):
        return ""  # a fact folded before the worker kept whole documents: only its series fields are known


def _fact_text(fact: Mapping[str, Any]) -> str:
    kind = fact.get("type")
    if kind == "usage.reported":
        return f"{fact['metric']} {quantity_text(fact['value'])}"
    if kind == "investment.announced":
        amount = quantity_text(fact["amount"]) if "amount" in fact else "?"
        return f"{amount} for {fact.get('period')}"
    if kind == "chip_delivery.reported":
        parts = [quantity_text(fact["units"]) if fact.get("units") else "", fact.get("product", "")]
        if fact.get("order_value"):
            parts.append(f"worth {quantity_text(fact['order_value'])}")
        if fact.get("unit_price"):
            parts.append(f"at {quantity_text(fact['unit_price'])} each")
        parts.append(f"from {fact.get('vendor')}, {fact.get('stage')}")
        return " ".join(part for part in parts if part)
    if kind == "export_rule.changed":
        return f"{fact.get('direction')} {fact.get('product')} to {fact.get('destination')}"
    if kind == "fx_rate.reported":
        return f"1 {fact.get('currency')} = {fact.get('usd_per_unit')} USD"
    if kind == "event.retracted":
        return f"retracts {fact.get('target_id')}: {fact.get('reason')}"
    return ""


def _retracted(fact: Mapping[str, Any]) -> str:
    by = fact.get("retracted_by")
    return f"retracted by {by['id']} ({by['known_on']})" if by else ""


def facts_report(document: Mapping[str, Any], empty: str) -> Report:
    """Return ``GET /v1/facts`` as one row per fact, with its source and whether it was retracted."""
    facts = document.get("facts", [])
    rows: list[tuple[str, ...]] = [
        (
            f["occurred_on"],
            f["id"],
            f["type"],
            _subject(f),
            fact_text(f),
            f.get("status", ""),
            (f.get("source") or {}).get("name", ""),
            _retracted(f),
        )
        for f in facts
    ]
    raw = [
        (
            f["occurred_on"],
            f.get("known_on"),
            f["id"],
            f["type"],
            _subject(f),
            fact_text(f),
            f.get("status"),
            (f.get("source") or {}).get("name"),
            (f.get("source") or {}).get("url"),
            (f.get("retracted_by") or {}).get("id"),
        )
        for f in facts
    ]
    headers: tuple[str, ...] = ("occurred", "id", "type", "subject", "fact", "status", "source", "retracted")
    # A page of facts without any retracted one needs no empty column.
    if not any(row[-1] for row in rows):
        headers, rows = headers[:-1], [row[:-1] for row in rows]
    return Report(
        headers=headers,
        rows=rows,
        raw_headers=("occurred", "known", "id", "type", "subject", "fact", "status", "source", "url", "retracted_by"),
        raw=raw,
        empty=empty,
        document=document,
    )


def fact_detail(document: Mapping[str, Any]) -> str:
    """Return ``GET /v1/facts/{id}`` as text: the fact, its source and quote, the signals and alerts it feeds."""
    fact = document["fact"]
    source = fact.get("source") or {}
    lines = [
        f"{fact['id']}  ({fact['type']}, {fact.get('status', '')})",
        f"  fact:      {_subject(fact)} {fact_text(fact)}",
        f"  occurred:  {fact['occurred_on']}",
        f"  known:     {fact.get('known_on', '')}",
        f"  source:    {source.get('name', '')}" + (f" <{source['url']}>" if source.get("url") else ""),
    ]
    if source.get("quote"):
        lines.append(f"  quote:     “{source['quote']}”")
    if fact.get("retracted_by"):
        lines.append(f"  {_retracted(fact)}")
    signals = document.get("signals", [])
    lines.append("")
    lines.append(render(signals_report({"signals": signals}, ""), "table") if signals else "feeds no signal now")
    alerts = document.get("alerts", [])
    if alerts:
        lines.append("")
        lines.append(render(alerts_report({"alerts": alerts}, ""), "table"))
    return "\n".join(lines)


def _own_labels(labels: Mapping[str, str]) -> dict[str, str]:
    """Return an alert's labels but those its own columns show (alertname is the rule)."""
    return {key: value for key, value in labels.items() if key not in ("alertname", "severity")}


def alerts_report(document: Mapping[str, Any], empty: str) -> Report:
    """Return ``GET /v1/alerts`` as one row per alert, most severe first."""
    order = {"critical": 0, "warning": 1, "info": 2}
    alerts = sorted(document.get("alerts", []), key=lambda a: (order.get(a.get("severity", ""), 9), a["rule"]))
    rows = [
        (
            a.get("severity", ""),
            a["rule"],
            a.get("state", ""),
            a.get("since", ""),
            a.get("annotations", {}).get("summary", ""),
            labels_text(_own_labels(a.get("labels", {}))),
        )
        for a in alerts
    ]
    raw = [
        (*row[:5], labels_text(a.get("labels", {}), ";"), a.get("value"), " ".join(a.get("cause_ids", [])))
        for row, a in zip(rows, alerts, strict=True)
    ]
    return Report(
        headers=("severity", "rule", "state", "since", "summary", "labels"),
        rows=rows,
        raw_headers=("severity", "rule", "state", "since", "summary", "labels", "value", "facts"),
        raw=raw,
        empty=empty,
        document=document,
    )


def subscriptions_report(document: Mapping[str, Any], empty: str) -> Report:
    """Return ``GET /v1/subscriptions`` as one row per subscription (secrets are never in the answer)."""
    subs = document.get("subscriptions", [])
    rows = [
        (
            s["id"],
            s["owner"],
            s.get("matchers", ""),
            s["channel"]["type"],
            s["channel"].get("url", ""),
            "yes" if s.get("send_resolved", True) else "no",
            human_number(s.get("repeat_interval", 0)) + " s" if s.get("repeat_interval") else "",
        )
        for s in subs
    ]
    raw = [
        (*row[:5], s.get("send_resolved", True), s.get("repeat_interval", 0)) for row, s in zip(rows, subs, strict=True)
    ]
    return Report(
        headers=("id", "owner", "matchers", "channel", "target", "resolved", "repeat"),
        rows=rows,
        raw_headers=("id", "owner", "matchers", "channel", "target", "send_resolved", "repeat_interval_seconds"),
        raw=raw,
        empty=empty,
        document=document,
    )
