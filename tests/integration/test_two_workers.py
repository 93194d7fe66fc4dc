"""Two workers share the partitions: together they export every signal exactly once."""

from __future__ import annotations

import math

import pytest

from tests.conftest import SEED, free_port, run_cli
from tests.integration.helpers import scrape
from tests.integration.test_seed_pipeline import EXPECTED
from tracker.polling import wait_until

pytestmark = pytest.mark.integration


def market_samples(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {key: value for key, value in scrape(url).items() if key[0].startswith("market_")}


def test_two_workers_split_the_partitions_and_export_each_series_once(settings_factory, worker_factory):
    settings = settings_factory()
    first = worker_factory(settings, wait_for_partitions=1)
    second = worker_factory(
        settings.model_copy(update={"http_port": free_port(), "data_dir": settings.data_dir / "second"}),
        wait_for_partitions=1,
    )

    def split_evenly() -> bool:
        mine, theirs = set(first.health()["partitions"]), set(second.health()["partitions"])
        return bool(mine) and bool(theirs) and not mine & theirs and len(mine | theirs) == settings.partitions

    wait_until("both workers to own partitions", split_evenly, timeout=90)
    result = run_cli(settings, "publish", str(SEED))
    assert result.returncode == 0, result.stderr

    def union() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        a, b = market_samples(first.url), market_samples(second.url)
        merged = {**a, **b}
        # A batch writes its series before its alert evaluation (that waits for the alerts
        # topic's ack): a scrape in between sees the signals without the alerts yet.
        firing = [key for key in merged if key[0] == "market_alert_firing"]
        return merged if all(key in merged for key in EXPECTED) and len(firing) >= 3 else None

    merged = wait_until("every BRIEF signal on one of the workers", union, timeout=60)
    a, b = market_samples(first.url), market_samples(second.url)

    assert not set(a) & set(b), f"exported twice: {sorted(set(a) & set(b))[:3]}"
    for key, expected in EXPECTED.items():
        assert math.isclose(merged[key], expected, rel_tol=1e-9), key
    firing = {key for key in merged if key[0] == "market_alert_firing"}
    assert len(firing) == 3
