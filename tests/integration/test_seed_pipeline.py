"""The seed article end to end on a real broker: CLI and HTTP ingestion, exact BRIEF values."""

from __future__ import annotations

import json
import math

import pytest

from tests.conftest import SEED, run_cli
from tests.integration.helpers import post, sample, scrape, wait_for_sample

pytestmark = pytest.mark.integration

# ../shared/BRIEF.md, "The signals those ten events must yield".
EXPECTED = {
    sample("market_usage", entity="bytedance", metric="tokens_per_day"): 5.0e13,
    sample("market_usage_growth_monthly_ratio", entity="bytedance", metric="tokens_per_day"): (5 / 3) ** 0.5 - 1,
    sample("market_usage", entity="google", metric="tokens_per_day"): 4.3e13,
    sample("market_peer_ratio", entity="bytedance", peer="google", metric="tokens_per_day"): 50 / 43,
    sample("market_usage", entity="doubao", metric="mau"): 1.59e8,
    sample("market_usage_growth_monthly_ratio", entity="doubao", metric="mau"): (159 / 157) ** 0.5 - 1,
    sample("market_investment_usd", entity="bytedance", period="2026"): 2.3e10,
    sample("market_investment_usd", entity="us_hyperscalers", period="2025"): 3.75e11,
    sample(
        "market_peer_ratio",
        entity="bytedance",
        peer="us_hyperscalers",
        metric="investment_usd",
        period="2026",
        peer_period="2025",
    ): 23 / 375,
    sample("market_chip_units", buyer="bytedance", vendor="nvidia", product="nvidia_h200", stage="ordered"): 20000,
    sample("market_chip_order_value_usd", buyer="bytedance", vendor="nvidia", product="nvidia_h200"): 4.0e8,
    sample(
        "market_chip_units", buyer="cn_approved_customers", vendor="nvidia", product="nvidia_h200", stage="scheduled"
    ): 60000,
    sample("market_export_rule_state", authority="us_government", product="nvidia_h200", destination="CN"): 1,
}


def assert_brief_values(url: str) -> None:
    wait_for_sample(url, sample("tracker_events_total", type="usage.reported"), lambda v: v >= 5)
    samples = scrape(url)
    for key, expected in EXPECTED.items():
        assert key in samples, f"missing {key}"
        assert math.isclose(samples[key], expected, rel_tol=1e-9), f"{key}: {samples[key]} != {expected}"
    # BRIEF's rounded figures, as a reader would check them.
    assert (
        round(samples[sample("market_usage_growth_monthly_ratio", entity="bytedance", metric="tokens_per_day")], 2)
        == 0.29
    )
    assert (
        round(samples[sample("market_peer_ratio", entity="bytedance", peer="google", metric="tokens_per_day")], 3)
        == 1.163
    )


def test_seed_published_through_the_cli_yields_the_brief_signals(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)

    result = run_cli(settings, "publish", str(SEED))

    assert result.returncode == 0, result.stderr
    assert "published 10, rejected 0" in result.stdout
    assert_brief_values(worker.url)


def test_seed_posted_over_http_yields_the_brief_signals(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)

    status, document = post(f"{worker.url}/v1/events", SEED.read_bytes())

    assert status == 202, document
    assert document["accepted"] == 10
    for result in document["results"]:
        assert result["status"] == "accepted"
        assert result["partition"] in range(settings.partitions)
        assert result["offset"] >= 0
    assert_brief_values(worker.url)


def test_signals_json_matches_metrics(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)
    run_cli(settings, "publish", str(SEED))
    assert_brief_values(worker.url)

    from tracker.polling import http_json

    document = http_json(f"{worker.url}/v1/signals?name=market_usage&entity=bytedance")

    assert document["signals"] == [
        {"name": "market_usage", "labels": {"entity": "bytedance", "metric": "tokens_per_day"}, "value": 5e13}
    ]


def test_retraction_resolves_the_crossing_and_republishing_restores_it(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)
    run_cli(settings, "publish", str(SEED))
    assert_brief_values(worker.url)
    ratio = sample("market_peer_ratio", entity="bytedance", peer="google", metric="tokens_per_day")
    retraction = {
        "type": "event.retracted",
        "target_id": "seed-09-bytedance-tokens-2025-12",
        "reason": "figure misread",
        "occurred_on": "2025-12",
        "source": {"name": "desk"},
    }

    result = run_cli(settings, "publish", "-", stdin=json.dumps(retraction).encode())

    assert result.returncode == 0, result.stderr
    assert wait_for_sample(worker.url, ratio, lambda v: v < 1) == pytest.approx(30 / 43)
    usage = scrape(worker.url)[sample("market_usage", entity="bytedance", metric="tokens_per_day")]
    assert usage == 3.0e13

    event_9 = json.loads(SEED.read_text().splitlines()[8])
    event_9["id"] = "seed-09-bytedance-tokens-2025-12-again"
    run_cli(settings, "publish", "-", stdin=json.dumps(event_9).encode())

    assert wait_for_sample(worker.url, ratio, lambda v: v > 1) == pytest.approx(50 / 43)
