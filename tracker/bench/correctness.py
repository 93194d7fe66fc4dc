"""The answer a fold must give: the signals of the pure fold of a workload, and a comparison with a worker's.

The benchmark gives no throughput for a wrong answer: each fold it times, in a worker
process or in this process, is checked against these first.
"""

from __future__ import annotations

import contextlib
import math
from typing import Any

from tracker.bench.workload import Workload
from tracker.core.decode import decode_event
from tracker.core.fold import Projection
from tracker.core.routing import Router
from tracker.core.signals import derive_signals
from tracker.errors import EventValidationError

__all__ = ["expected_signals", "same_signals"]


def expected_signals(router: Router, workload: Workload) -> list[tuple[str, tuple[tuple[str, str], ...], float]]:
    """Return the signals of the pure fold of a workload, sorted: what a fold must show."""
    projection = Projection(router)
    for raw in workload.records:
        with contextlib.suppress(EventValidationError):
            projection.apply(decode_event(raw))
    return sorted((s.name, s.labels, s.value) for s in derive_signals(router, projection.state))


def same_signals(expected: list[Any], actual: list[dict[str, Any]]) -> str | None:
    """Return how a worker's served signals differ from ``expected`` (the first difference), or None."""
    got = sorted((s["name"], tuple(s["labels"].items()), s["value"]) for s in actual)
    got = [(name, tuple(sorted(labels)), value) for name, labels, value in got]
    want = [(name, tuple(sorted(labels)), value) for name, labels, value in expected]
    if len(got) != len(want):
        got_keys = {(name, labels) for name, labels, _ in got}
        want_keys = {(name, labels) for name, labels, _ in want}
        missing = sorted(want_keys - got_keys)[:3]
        extra = sorted(got_keys - want_keys)[:3]
        return f"{len(got)} signals from the worker, {len(want)} from the pure fold; missing {missing}, extra {extra}"
    for (gn, gl, gv), (wn, wl, wv) in zip(sorted(got), sorted(want), strict=True):
        if gn != wn or gl != wl or not math.isclose(gv, wv, rel_tol=1e-9, abs_tol=1e-12):
            return f"first difference: worker {gn}{dict(gl)}={gv}, pure fold {wn}{dict(wl)}={wv}"
    return None
