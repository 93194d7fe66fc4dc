"""The page at / in a real browser: headless Chromium reads a worker fed with the seed article.

Each test asserts what a person sees (text, table rows, the points a chart
drew) and that the console stayed free of errors. The tests share one seeded
worker and run in file order; the retraction test changes the log, so it is last.
Set TRACKER_PAGE_SCREENSHOTS to a directory (``make screenshots``: docs/) to
save the screenshots the README shows.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SEED, RunningWorker, launch_worker, run_cli, unique_settings
from tests.integration.browser import Chromium, Tab
from tracker.polling import http_json, wait_until

pytestmark = pytest.mark.integration

SCREENSHOTS = os.environ.get("TRACKER_PAGE_SCREENSHOTS")
PHONE = (390, 844)


@pytest.fixture(scope="module")
def seeded(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningWorker]:
    """One worker that folded the seed article's ten events."""
    started: list[RunningWorker] = []
    settings = unique_settings(kafka_bootstrap, tmp_path_factory.mktemp("page"))
    try:
        worker = launch_worker(settings, started)
        published = run_cli(settings, "publish", str(SEED))
        assert published.returncode == 0, published.stderr
        wait_until(
            "the seed's three alerts", lambda: len(http_json(f"{worker.url}/v1/alerts")["alerts"]) == 3, timeout=60
        )
        yield worker
    finally:
        for worker in started:
            worker.stop()
            print(f"--- {worker.log}\n{worker.log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    """Debian's chromium, headless, for the module."""
    chromium = Chromium()
    yield chromium
    chromium.close()


@pytest.fixture
def tab(browser: Chromium) -> Iterator[Tab]:
    """A fresh tab at 1280 px."""
    page = browser.open_tab()
    yield page
    page.close()


def save(tab: Tab, name: str, width: int = 1280) -> None:
    if SCREENSHOTS:
        tab.screenshot(Path(SCREENSHOTS) / name, width)


def chart_points(tab: Tab, metric: str) -> list[dict[str, Any]]:
    """Return the points Chart.js drew on a usage chart: their date label, value, and whether they are in view."""
    return list(
        tab.evaluate(
            f"""(() => {{
              const canvas = document.querySelector('[data-metric="{metric}"] canvas');
              if (!canvas) return [];
              const chart = Chart.getChart(canvas);
              const area = chart.chartArea;
              return chart.data.datasets.flatMap((dataset, i) => chart.getDatasetMeta(i).data.map((point, j) => ({{
                date: dataset.data[j].label,
                value: dataset.data[j].y,
                inView: point.x >= area.left && point.x <= area.right && point.y >= area.top && point.y <= area.bottom,
              }})));
            }})()"""
        )
    )


def fact_rows(tab: Tab) -> dict[str, dict[str, Any]]:
    """Return the fact rows on the page by fact id: their cells' text and whether they read as retracted."""
    return dict(
        tab.evaluate(
            """Object.fromEntries([...document.querySelectorAll('tr[data-fact-id]')].map(row => [row.dataset.factId, {
                 cells: Object.fromEntries([...row.cells].map(c => [c.dataset.label, c.innerText.trim()])),
                 retracted: row.classList.contains('retracted'),
                 sourceLink: row.querySelector('td[data-label=Source] a')?.href ?? null,
               }]))"""
        )
    )


def alert_rows(tab: Tab) -> list[dict[str, str]]:
    return list(
        tab.evaluate(
            """[...document.querySelectorAll('tr[data-rule]')].map(row =>
                 Object.fromEntries([...row.cells].map(c => [c.dataset.label, c.innerText.trim()])))"""
        )
    )


def test_the_overview_lists_the_three_seed_alerts_and_the_entities(seeded: RunningWorker, tab: Tab) -> None:
    tab.goto(f"{seeded.url}/")

    alerts = alert_rows(tab)
    assert [(row["Severity"].lower(), row["Rule"]) for row in alerts] == [
        ("critical", "export-rule-change-china"),
        ("warning", "peer-overtake-tokens"),
        ("warning", "usage-growth-stalled"),
    ]
    assert alerts[0]["Alert"] == "us_government loosened exports of nvidia_h200 to CN"
    assert alerts[1]["Alert"] == "bytedance overtook google on tokens_per_day (ratio 1.163)"
    entities = tab.evaluate("[...document.querySelectorAll('tr[data-entity]')].map(r => r.dataset.entity)")
    assert {"bytedance", "google", "doubao", "us_hyperscalers", "cn_approved_customers", "us_government"} <= set(
        entities
    )
    bytedance = tab.evaluate("document.querySelector('tr[data-entity=bytedance]').innerText")
    assert "50 T tokens/day" in bytedance
    assert "23 B USD" in bytedance
    assert tab.console_errors == []
    save(tab, "page-overview.png")


def test_the_keyboard_reaches_the_as_of_control_and_opens_an_entity(seeded: RunningWorker, tab: Tab) -> None:
    tab.goto(f"{seeded.url}/")
    focused: list[str] = []
    for _ in range(14):
        tab.press("Tab")
        now = tab.evaluate("document.activeElement.textContent.trim() || document.activeElement.id")
        if not focused or focused[-1] != now:  # Tab also steps through the date field's day, month and year
            focused.append(now)
    assert focused[:5] == ["Skip to the content", "AI-infrastructure tracker", "as-of", "Show", "Now"]
    assert "bytedance" in focused

    while tab.evaluate("document.activeElement.textContent.trim()") != "bytedance":
        tab.press("Tab")
    tab.evaluate("document.body.dataset.state = 'navigating'")
    tab.press("Enter")
    tab.wait_drawn()

    assert tab.evaluate("location.hash") == "#/entity/bytedance"
    assert tab.evaluate("document.querySelector('h1').textContent") == "ByteDance"
    assert tab.console_errors == []


def test_the_bytedance_tokens_chart_has_the_two_figures_by_event_time(seeded: RunningWorker, tab: Tab) -> None:
    tab.goto(f"{seeded.url}/#/entity/bytedance")

    points = chart_points(tab, "tokens_per_day")
    assert points == [
        {"date": "Oct 2025", "value": 30e12, "inView": True},
        {"date": "Dec 2025", "value": 50e12, "inView": True},
    ]
    label = tab.evaluate("document.querySelector('[data-metric=tokens_per_day] canvas').getAttribute('aria-label')")
    assert "Oct 2025: over 30 T tokens/day; Dec 2025: 50 T tokens/day" in label
    rows = fact_rows(tab)
    assert rows["seed-08-bytedance-tokens-2025-10"]["cells"]["Fact"] == "over 30 T tokens/day"
    assert rows["seed-09-bytedance-tokens-2025-12"]["cells"]["Date"] == "Dec 2025"
    assert rows["seed-01-bytedance-capex-2026"]["cells"]["Fact"] == "about 23 B USD for 2026"
    assert tab.console_errors == []
    save(tab, "page-bytedance.png")


def test_the_h200_order_shows_its_quote_and_source(seeded: RunningWorker, tab: Tab) -> None:
    tab.goto(f"{seeded.url}/#/entity/bytedance")

    order = fact_rows(tab)["seed-03-bytedance-h200-test-order"]

    assert order["cells"]["Quote"] == "ByteDance envisagerait notamment une commande test de 20 000 processeurs H200"
    assert order["cells"]["Source"] == "Financial Times"
    assert order["cells"]["Fact"] == "20,000 units of nvidia_h200 from nvidia, ordered, about 20,000 USD each"
    assert order["cells"]["Status"] == "planned"
    regime = fact_rows(tab)["seed-04-us-h200-cn-loosened"]["cells"]["Fact"]
    assert regime == "us_government loosened nvidia_h200 to CN (approved customers), effective Dec 2025"
    assert tab.console_errors == []


def test_at_phone_width_nothing_overflows_sideways(seeded: RunningWorker, tab: Tab) -> None:
    tab.resize(*PHONE)
    tab.goto(f"{seeded.url}/#/entity/bytedance")

    assert tab.evaluate("document.documentElement.scrollWidth") <= PHONE[0]
    widths = tab.evaluate("[...document.querySelectorAll('canvas')].map(c => c.getBoundingClientRect().right)")
    assert widths and max(widths) <= PHONE[0]
    assert len(chart_points(tab, "tokens_per_day")) == 2
    assert tab.console_errors == []
    if SCREENSHOTS:
        tab.screenshot(Path(SCREENSHOTS) / "page-bytedance-phone.png", PHONE[0])


def test_as_of_mid_november_leaves_out_the_december_facts(seeded: RunningWorker, tab: Tab) -> None:
    tab.goto(f"{seeded.url}/#/entity/bytedance")

    tab.evaluate("document.getElementById('as-of').value = '2025-11-15'")
    tab.evaluate("document.body.dataset.state = 'navigating'; document.querySelector('#as-of-form button').click()")
    tab.wait_drawn()

    assert tab.evaluate("location.hash") == "#/entity/bytedance?as_of=2025-11-15"
    assert chart_points(tab, "tokens_per_day") == [{"date": "Oct 2025", "value": 30e12, "inView": True}]
    rows = fact_rows(tab)
    assert "seed-08-bytedance-tokens-2025-10" in rows
    assert [row["cells"]["Date"] for row in rows.values() if "Dec 2025" in row["cells"]["Date"]] == []
    assert tab.evaluate("document.getElementById('as-of-note').textContent").startswith("As of 15 Nov 2025")

    tab.goto(f"{seeded.url}/#/?as_of=2025-11-15")

    assert [row["Rule"] for row in alert_rows(tab)] == ["usage-growth-stalled"]
    assert tab.console_errors == []


def test_retracting_the_december_figure_leaves_one_point_and_shows_the_retraction(
    seeded: RunningWorker, tab: Tab
) -> None:
    retraction = {
        "type": "event.retracted",
        "target_id": "seed-09-bytedance-tokens-2025-12",
        "reason": "figure misread",
        "occurred_on": "2025-12",
        "source": {"name": "desk"},
    }
    published = run_cli(seeded.settings, "publish", "-", stdin=json.dumps(retraction).encode())
    assert published.returncode == 0, published.stderr
    wait_until(
        "the crossing alert to resolve",
        lambda: len(http_json(f"{seeded.url}/v1/alerts")["alerts"]) == 2,
        timeout=60,
    )

    tab.goto(f"{seeded.url}/#/entity/bytedance")

    assert chart_points(tab, "tokens_per_day") == [{"date": "Oct 2025", "value": 30e12, "inView": True}]
    december = fact_rows(tab)["seed-09-bytedance-tokens-2025-12"]
    assert december["retracted"]
    assert december["cells"]["Status"].startswith("retracted")
    assert tab.console_errors == []
