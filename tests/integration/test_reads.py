"""The read side on a real broker: facts with sources, histories by event time, "as of", refusals by name."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import pytest

from tests.conftest import SEED, run_cli
from tests.integration.helpers import sample, wait_for_sample
from tracker.polling import http_json, wait_until

pytestmark = pytest.mark.integration

H200_ORDER = "seed-03-bytedance-h200-test-order"
DECEMBER = "seed-09-bytedance-tokens-2025-12"
TOKENS = {"name": "market_usage", "entity": "bytedance", "metric": "tokens_per_day"}


def get(url: str, path: str, **params: str) -> Any:
    """GET a read endpoint with query parameters and decode its JSON."""
    return http_json(f"{url}{path}?{urllib.parse.urlencode(params)}" if params else f"{url}{path}")


def refusal(url: str, path: str, **params: str) -> tuple[int, dict[str, Any]]:
    """GET a read endpoint expected to refuse; return its status and JSON body."""
    try:
        http_json(f"{url}{path}?{urllib.parse.urlencode(params)}")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    raise AssertionError(f"{path}?{params} was answered")


def points(document: dict[str, Any]) -> list[tuple[str, float, list[str]]]:
    (series,) = document["series"]
    return [(p["date"], p["value"], p["facts"]) for p in series["points"]]


@pytest.fixture
def seeded(settings_factory, start_worker) -> str:
    settings = settings_factory()
    worker = start_worker(settings)
    assert run_cli(settings, "publish", str(SEED)).returncode == 0
    wait_for_sample(worker.url, sample("tracker_events_total", type="usage.reported"), lambda v: v >= 5)
    return worker.url


def test_history_of_tokens_per_day_and_what_was_known_in_mid_november(seeded: str) -> None:
    history = get(seeded, "/v1/signals/history", **TOKENS)
    november = get(seeded, "/v1/signals/history", **TOKENS, as_of="2025-11-15")
    signals = get(seeded, "/v1/signals", name="market_usage", entity="ByteDance", as_of="2025-11-15")
    now = wait_until("the seed's alerts", lambda: len(a := get(seeded, "/v1/alerts")["alerts"]) == 3 and a, timeout=30)
    alerts_then = get(seeded, "/v1/alerts", as_of="2025-11-15")["alerts"]

    assert points(history) == [
        ("2025-10", 3.0e13, ["seed-08-bytedance-tokens-2025-10"]),
        ("2025-12", 5.0e13, [DECEMBER]),
    ]
    assert points(november) == [("2025-10", 3.0e13, ["seed-08-bytedance-tokens-2025-10"])]
    assert signals["signals"] == [
        {"name": "market_usage", "labels": {"entity": "bytedance", "metric": "tokens_per_day"}, "value": 3.0e13}
    ]
    assert sorted(a["rule"] for a in now) == [
        "export-rule-change-china",
        "peer-overtake-tokens",
        "usage-growth-stalled",
    ]
    # On 15 November neither December's figures nor the export change were known: only doubao's stall.
    assert [a["rule"] for a in alerts_then] == ["usage-growth-stalled"]
    causes = {p["id"] for p in alerts_then[0]["provenance"]}
    assert causes and causes <= {"seed-06-doubao-mau-2025-08", "seed-07-doubao-mau-2025-10"}


def test_facts_list_the_seed_with_sources_filters_and_one_fact_with_what_it_feeds(seeded: str) -> None:
    first = get(seeded, "/v1/facts", limit="4")
    rest = get(seeded, "/v1/facts", cursor=first["next_cursor"])
    planned_chips = get(seeded, "/v1/facts", type="chip_delivery.reported", status="planned", vendor="NVIDIA")
    doubao = get(seeded, "/v1/facts", entity="doubao", occurred_from="2025-09")
    known_in_november = get(seeded, "/v1/facts", metric="tokens_per_day", as_of="2025-11")
    one = get(seeded, f"/v1/facts/{H200_ORDER}")
    status, missing = refusal(seeded, "/v1/facts/no-such-fact")

    facts = first["facts"] + rest["facts"]
    assert len(first["facts"]) == 4 and len(facts) == 10 and rest["next_cursor"] is None
    assert [f["id"] for f in facts[:2]] == ["seed-02-us-hyperscalers-capex-2025", "seed-06-doubao-mau-2025-08"]
    assert facts[-1]["id"] == "seed-10-google-tokens-2025-12"
    assert all(f["source"]["name"] for f in facts)
    by_id = {fact["id"]: fact for fact in facts}
    order = by_id[H200_ORDER]
    assert order["source"] == {
        "name": "Financial Times",
        "url": None,
        "quote": "ByteDance envisagerait notamment une commande test de 20 000 processeurs H200",
    }
    assert order["status"] == "planned"
    assert order["known_on"] == "2025-12-01"
    assert order["series"] == "chip:bytedance:nvidia:nvidia_h200"
    assert order["retracted_by"] is None
    assert order["position"]["offset"] >= 0
    assert by_id["seed-10-google-tokens-2025-12"]["source"]["name"] == "Goldman Sachs"
    assert sorted(f["id"] for f in planned_chips["facts"]) == [H200_ORDER, "seed-05-cn-approved-h200-first-batch"]
    assert [f["id"] for f in doubao["facts"]] == ["seed-07-doubao-mau-2025-10"]
    assert [f["id"] for f in known_in_november["facts"]] == ["seed-08-bytedance-tokens-2025-10"]
    assert one["fact"]["source"]["quote"] == order["source"]["quote"]
    fed = {(s["name"], s["labels"].get("stage")): s["value"] for s in one["signals"]}
    assert fed[("market_chip_units", "ordered")] == 20000
    assert fed[("market_chip_order_value_usd", None)] == 4.0e8
    assert status == 404 and "no-such-fact" in missing["error"]


REFUSED = [
    ("/v1/signals", {"as_of": "2025-13"}, "as_of", None),
    ("/v1/signals", {"name": "market_usage", "entity": "bytedance", "colour": "red"}, "colour", "metric"),
    ("/v1/signals", {"name": "market_usages"}, "name", "market_usage"),
    ("/v1/signals/history", {"name": "market_usage", "peer": "google"}, "peer", "entity"),
    ("/v1/signals/history", {"entity": "bytedance"}, "name", "market_usage"),
    ("/v1/facts", {"since": "2025"}, "since", "occurred_from"),
    ("/v1/facts", {"status": "likely"}, "status", "planned"),
    ("/v1/facts", {"occurred_to": "December"}, "occurred_to", None),
    ("/v1/facts", {"limit": "5000"}, "limit", None),
    ("/v1/facts", {"cursor": "abc"}, "cursor", None),
    ("/v1/facts/" + H200_ORDER, {"entity": "bytedance"}, "entity", "as_of"),
    ("/v1/alerts", {"state": "bogus"}, "state", "firing"),
]


def test_wrong_queries_are_refused_by_name_never_answered_empty(seeded: str) -> None:
    answers = [(refusal(seeded, path, **params), parameter, accepted) for path, params, parameter, accepted in REFUSED]

    for (status, body), parameter, accepted in answers:
        assert status == 400, body
        assert body["parameter"] == parameter, body
        assert body["error"].startswith(f"{parameter}: "), body
        assert accepted is None or accepted in body["accepted"], body


def test_a_retraction_marks_the_fact_removes_it_from_history_and_resolves_its_alert(seeded: str) -> None:
    wait_until("the crossing alert", lambda: get(seeded, "/v1/alerts", state="firing")["alerts"], timeout=30)
    before = get(seeded, f"/v1/facts/{DECEMBER}")
    retraction = {
        "type": "event.retracted",
        "id": "retract-09",
        "target_id": DECEMBER,
        "reason": "figure misread",
        "occurred_on": "2026-01",
        "source": {"name": "desk"},
    }
    request = urllib.request.Request(f"{seeded}/v1/events", json.dumps(retraction).encode(), method="POST")
    urllib.request.urlopen(request, timeout=10).close()

    after = wait_until(
        "the retraction", lambda: (f := get(seeded, f"/v1/facts/{DECEMBER}"))["fact"]["retracted_by"] and f, timeout=60
    )
    history = get(seeded, "/v1/signals/history", **TOKENS)
    listed = get(seeded, "/v1/facts", metric="tokens_per_day", entity="bytedance")
    with_retracted = get(seeded, "/v1/facts", metric="tokens_per_day", entity="bytedance", include_retracted="true")
    as_of_december = get(seeded, "/v1/signals/history", **TOKENS, as_of="2025-12-31")

    assert [a["relation"] for a in before["alerts"]] == ["caused"]
    assert before["alerts"][0]["rule"] == "peer-overtake-tokens"
    assert after["fact"]["retracted_by"] == {"id": "retract-09", "known_on": "2026-01-01"}
    assert after["signals"] == []
    assert [(a["relation"], a["state"]) for a in after["alerts"]] == [("caused", "resolved")]
    assert [p[0] for p in points(history)] == ["2025-10"]
    assert [f["id"] for f in listed["facts"]] == ["seed-08-bytedance-tokens-2025-10"]
    assert [f["id"] for f in with_retracted["facts"]] == ["seed-08-bytedance-tokens-2025-10", DECEMBER]
    assert [p[0] for p in points(as_of_december)] == ["2025-10", "2025-12"]


def test_the_overview_pages_entities_and_alerts_and_facts_list_newest_first(seeded: str) -> None:
    wait_until("the seed's alerts", lambda: len(get(seeded, "/v1/alerts")["alerts"]) == 3, timeout=30)

    first = get(seeded, "/v1/overview", limit="2", alerts="1")
    rest = get(seeded, "/v1/overview", cursor=first["next_cursor"])
    filtered = get(seeded, "/v1/overview", q="BYTE")
    bytedance_alerts = get(seeded, "/v1/alerts", entity="bytedance")
    newest = get(seeded, "/v1/facts", order="desc", limit="2")
    older = get(seeded, "/v1/facts", order="desc", cursor=newest["next_cursor"])
    status, body = refusal(seeded, "/v1/overview", alerts="0")

    slugs = [e["entity"] for e in first["entities"] + rest["entities"]]
    assert slugs == sorted(slugs) and first["entities_total"] == len(slugs) and rest["next_cursor"] is None
    assert {"bytedance", "google", "doubao", "us_government", "cn_approved_customers"} <= set(slugs)
    assert [a["rule"] for a in first["alerts"]] == ["export-rule-change-china"] and first["alerts_total"] == 3
    assert first["alerts"][0]["provenance"][0]["id"] == "seed-04-us-h200-cn-loosened"
    (bytedance,) = filtered["entities"]
    figures = {(s["name"], s["labels"].get("metric")): s["value"] for s in bytedance["signals"]}
    assert figures[("market_usage", "tokens_per_day")] == 5.0e13
    assert bytedance["alerts"] == 1
    assert [a["rule"] for a in bytedance_alerts["alerts"]] == ["peer-overtake-tokens"]
    assert status == 400 and body["parameter"] == "alerts"
    listed = [f["id"] for f in newest["facts"] + older["facts"]]
    assert listed[0] == "seed-10-google-tokens-2025-12" and listed[-1] == "seed-02-us-hyperscalers-capex-2025"
    assert len(listed) == 10
