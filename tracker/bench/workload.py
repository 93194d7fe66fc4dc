"""A synthetic but realistic workload: all four fact types, dated over five years, with noise.

The mix follows what a newsroom feed looks like: usage figures dominate,
investments and chip reports are rarer, export-rule changes rarer still. A
fixed share of records are exact duplicates, retractions of earlier facts, or
invalid. The generator is deterministic for a seed.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Workload", "generate"]

USAGE_METRICS = ("mau", "dau", "tokens_per_day")
STAGES = ("ordered", "scheduled", "delivered")
AUTHORITIES = ("us_bis", "us_government", "cn_mofcom", "eu_commission")
PRODUCTS = ("nvidia_h200", "nvidia_b200", "amd_mi350", "huawei_910c")
COUNTRIES = ("CN", "AE", "SA", "IN", "MY", "VN")


@dataclass
class Workload:
    """Generated records (JSON bytes, in publish order) and how many of each kind."""

    records: list[bytes] = field(default_factory=list)
    valid: int = 0
    duplicates: int = 0
    retractions: int = 0
    invalid: int = 0


def _date(rng: random.Random) -> str:
    year = rng.randint(2021, 2025)
    month = rng.randint(1, 12)
    roll = rng.random()
    if roll < 0.1:
        return f"{year}"
    if roll < 0.8:
        return f"{year}-{month:02d}"
    return f"{year}-{month:02d}-{rng.randint(1, 28):02d}"


def _fact(rng: random.Random, index: int, entities: int) -> dict[str, Any]:
    entity = f"entity-{rng.randrange(entities):05d}"
    base: dict[str, Any] = {"id": f"bench-{index:08d}", "occurred_on": _date(rng), "source": {"name": "bench"}}
    roll = rng.random()
    if roll < 0.6:
        metric = rng.choice(USAGE_METRICS)
        return {
            **base,
            "type": "usage.reported",
            "entity": entity,
            "metric": metric,
            "value": {"value": float(rng.randint(1, 10**6) * 1e6), "unit": metric},
        }
    if roll < 0.8:
        amount = float(rng.randint(1, 500)) * 1e9
        quantity = (
            {"value": amount, "unit": "USD"}
            if rng.random() < 0.7
            else {"low": amount, "high": amount * 1.2, "unit": "USD"}
        )
        return {
            **base,
            "type": "investment.announced",
            "entity": entity,
            "amount": quantity,
            "period": rng.randint(2021, 2026),
            "status": "planned",
        }
    if roll < 0.97:
        record = {
            **base,
            "type": "chip_delivery.reported",
            "entity": entity,
            "vendor": "nvidia",
            "product": rng.choice(PRODUCTS),
            "units": {"value": float(rng.randint(100, 100_000)), "unit": "units"},
            "stage": rng.choice(STAGES),
        }
        if rng.random() < 0.5:
            record["unit_price"] = {"value": float(rng.randint(5_000, 40_000)), "unit": "USD", "approx": True}
        return record
    return {
        **base,
        "type": "export_rule.changed",
        "authority": rng.choice(AUTHORITIES),
        "product": rng.choice(PRODUCTS),
        "destination": rng.choice(COUNTRIES),
        "direction": rng.choice(("loosened", "tightened")),
    }


_INVALID = (
    b"not json at all",
    b'{"type": "usage.reported", "entity": "Bad Slug", "metric": "mau", "value": {"value": 1, "unit": "users"},'
    b' "occurred_on": "2025-13", "source": {"name": "bench"}}',
    b'{"type": "usage.reported", "entity": "x", "metric": "mau", "value": {"low": 5, "high": 1, "unit": "u"},'
    b' "occurred_on": "2025", "source": {"name": "bench"}}',
    b'{"type": "teleport.reported"}',
)


def generate(n: int, entities: int = 10_000, seed: int = 1) -> Workload:
    """Return ``n`` records: facts, 2% duplicates, 0.5% retractions, 1% invalid."""
    rng = random.Random(seed)
    workload = Workload()
    facts: list[bytes] = []
    for index in range(n):
        roll = rng.random()
        if roll < 0.01:
            workload.records.append(rng.choice(_INVALID))
            workload.invalid += 1
        elif roll < 0.015 and facts:
            target = json.loads(rng.choice(facts))["id"]
            retraction = {
                "type": "event.retracted",
                "id": f"bench-r-{index:08d}",
                "target_id": target,
                "reason": "bench",
                "occurred_on": "2025",
                "source": {"name": "bench"},
            }
            workload.records.append(json.dumps(retraction).encode())
            workload.retractions += 1
        elif roll < 0.035 and facts:
            workload.records.append(rng.choice(facts))
            workload.duplicates += 1
        else:
            record = json.dumps(_fact(rng, index, entities), separators=(",", ":")).encode()
            facts.append(record)
            workload.records.append(record)
            workload.valid += 1
    return workload
