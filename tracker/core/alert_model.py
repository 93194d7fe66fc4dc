"""What an alert is: its record, its identity, and how a rule's match becomes one.

Shared by signal rules (``tracker.core.alerts``) and event rules
(``tracker.core.event_rules``).
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from json.encoder import encode_basestring_ascii as _quoted
from typing import Any, Literal, NamedTuple

from tracker.core.dates import PartialDate
from tracker.core.rules import Rule, render_template

__all__ = ["MAX_CAUSE_IDS", "Alert", "Transition", "event_date", "fingerprint", "make_alert", "render_annotations"]

#: Cause ids an alert lists (the first in sorted order); ``cause_count`` says how many there are.
#: Many facts of one date can start an alert together: its record stays small however many.
MAX_CAUSE_IDS = 20


@functools.lru_cache(maxsize=65536)
def event_date(text: str) -> PartialDate:
    """Return the partial date an event date's text says (cached: few distinct texts)."""
    return PartialDate.parse(text)


class Alert(NamedTuple):
    """An active alert: pending or firing, since an event date, caused by some facts.

    A tuple: evaluation builds one per firing unit, batch after batch.
    """

    fingerprint: str
    rule: str
    severity: str
    state: Literal["pending", "firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str]
    since: str
    value: float | None
    cause_ids: tuple[str, ...]
    rule_version: str
    unit: str = ""
    #: How many facts caused the alert; ``cause_ids`` lists at most MAX_CAUSE_IDS of them.
    #: 0 in entries written before the count existed: there, every cause is listed.
    cause_count: int = 0
    #: A resolved alert's event date at which its condition stopped holding (``endsAt``); "" while active.
    until: str = ""

    @property
    def causes_listed(self) -> bool:
        """Return whether ``cause_ids`` lists every cause."""
        return self.cause_count <= len(self.cause_ids)

    def to_json(self) -> dict[str, Any]:
        """Return the alert as plain JSON data."""
        data = self._asdict()
        data.update(labels=dict(self.labels), annotations=dict(self.annotations), cause_ids=list(self.cause_ids))
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Alert:
        """Rebuild an alert from ``to_json`` data."""
        return cls(**{**data, "cause_ids": tuple(data["cause_ids"])})


@dataclass(frozen=True)
class Transition:
    """An alert that started firing, or stopped."""

    status: Literal["firing", "resolved"]
    alert: Alert


def fingerprint(labels: Mapping[str, str]) -> str:
    """Return the identity of an alert: a digest of its sorted labels.

    The digested text is ``json.dumps`` of the sorted (name, value) pairs, written
    out with the JSON encoder's own string escaping (json.dumps itself took half of
    building an alert).
    """
    text = "[" + ", ".join(f"[{_quoted(name)}, {_quoted(value)}]" for name, value in sorted(labels.items())) + "]"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def make_alert(
    rule: Rule,
    labels: dict[str, str],
    state: Literal["pending", "firing", "resolved"],
    since: PartialDate,
    value: float | None,
    causes: Iterable[str],
    unit: str,
) -> Alert:
    """Return the alert of ``rule`` with ``labels``, in ``state`` since ``since``, caused by ``causes``."""
    full = {"alertname": rule.name, "severity": rule.severity, **rule.labels, **labels}
    annotations = render_annotations(rule.annotations, full, value)
    ids = sorted(set(causes))
    return Alert(
        fingerprint(full),
        rule.name,
        rule.severity,
        state,
        full,
        annotations,
        str(since),
        value,
        tuple(ids[:MAX_CAUSE_IDS]),
        rule.version,
        unit,
        len(ids),
    )


def render_annotations(templates: Mapping[str, str], labels: Mapping[str, str], value: float | None) -> dict[str, str]:
    """Return annotation templates filled with an alert's labels and value."""
    return {name: render_template(text, labels, value) for name, text in templates.items()}
