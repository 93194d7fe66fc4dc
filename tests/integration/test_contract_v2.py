"""Contract v2 on a real broker: yuan and yen, multi-year plans, an order by value, rates that come late and go."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.integration.helpers import post, sample, scrape, wait_for_sample

pytestmark = pytest.mark.integration

SAMPLES = Path(__file__).resolve().parents[2] / "events" / "samples"
FACTS, RATES = SAMPLES / "contract-v2.jsonl", SAMPLES / "fx-rates.jsonl"

ALIBABA = {"entity": "alibaba", "period": "2025-2027"}
JAPAN = {"entity": "japan_government", "period": "2024-2030"}
ORDER = {"buyer": "cn_internet_majors", "vendor": "nvidia", "product": "nvidia_a800"}
CNY_FEB, CNY_JAN, JPY_OCT, JPY_NOV = 0.13729663, 0.13704825, 0.00668137, 0.00650491

#: The figures as reported: there before any rate is known.
NATIVE = {
    sample("market_investment", currency="CNY", **ALIBABA): 380e9,
    sample("market_investment", currency="JPY", **JAPAN): 10e12,
    sample("market_chip_order_value", currency="USD", **ORDER): 1e9,
    sample("market_chip_order_value_usd", **ORDER): 1e9,  # reported in dollars: no rate needed
}
#: With the rates file: each figure at the rate for its own date.
CONVERTED = {
    sample("market_investment_usd", **ALIBABA): 380e9 * CNY_FEB,
    sample("market_investment_usd_per_year", **ALIBABA): 380e9 * CNY_FEB / 3,
    # Announced on 11 November 2024: November's monthly average (mid-month) is later; October's applies.
    sample("market_investment_usd", **JAPAN): 10e12 * JPY_OCT,
    sample("market_investment_usd_per_year", **JAPAN): 10e12 * JPY_OCT / 7,
    sample("market_fx_usd_per_unit", currency="CNY"): CNY_FEB,
    sample("market_fx_usd_per_unit", currency="JPY"): JPY_NOV,
}


def assert_samples(url: str, expected: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> None:
    samples = scrape(url)
    for key, value in expected.items():
        assert key in samples, f"missing {key}"
        assert math.isclose(samples[key], value, rel_tol=1e-12), f"{key}: {samples[key]} != {value}"


def test_one_fact_of_each_v2_shape_folds_into_the_exact_signals_and_follows_its_rates(settings_factory, worker_factory):
    settings = settings_factory()
    worker = worker_factory(settings)

    # The facts first, over HTTP: no rate is known yet.
    status, document = post(f"{worker.url}/v1/events", FACTS.read_bytes())
    assert status == 202, document
    wait_for_sample(worker.url, sample("market_investment", currency="JPY", **JAPAN))
    wait_for_sample(worker.url, sample("market_chip_order_value_usd", **ORDER))
    assert_samples(worker.url, NATIVE)
    before = scrape(worker.url)
    assert sample("market_investment_usd", **ALIBABA) not in before  # never the yuan figure as dollars
    assert sample("market_investment_usd_per_year", **JAPAN) not in before

    # The rates arrive late, through the CLI: each is copied to every partition.
    published = run_cli(settings, "publish", str(RATES))
    assert published.returncode == 0, published.stderr
    assert "published 4, rejected 0" in published.stdout
    wait_for_sample(worker.url, sample("market_investment_usd_per_year", **JAPAN))
    wait_for_sample(worker.url, sample("market_fx_usd_per_unit", currency="CNY"), lambda v: v == CNY_FEB)
    assert_samples(worker.url, {**NATIVE, **CONVERTED})

    # February's yuan rate retracted: Alibaba's plan falls back to January's.
    retraction = {
        "type": "event.retracted",
        "target_id": "fx-cny-2025-02",
        "reason": "wrong month",
        "occurred_on": "2025-03",
        "source": {"name": "desk"},
    }
    retracted = run_cli(settings, "publish", "-", stdin=json.dumps(retraction).encode())
    assert retracted.returncode == 0, retracted.stderr
    usd = wait_for_sample(worker.url, sample("market_investment_usd", **ALIBABA), lambda v: v != 380e9 * CNY_FEB)
    assert usd == pytest.approx(380e9 * CNY_JAN, rel=1e-12)
    assert scrape(worker.url)[sample("market_fx_usd_per_unit", currency="CNY")] == CNY_JAN
