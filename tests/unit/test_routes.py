"""The worker's HTTP routes in-process: the real handlers and guard over the seed folded in memory, no broker."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tests.unit.inprocess_worker import InProcessWorker
from tracker.settings import Settings

pytestmark = pytest.mark.unit

TOKEN = "routes-test-token-0123456789"
DECEMBER = "seed-09-bytedance-tokens-2025-12"
H200_ORDER = "seed-03-bytedance-h200-test-order"
TOKENS = {"name": "market_usage", "entity": "bytedance", "metric": "tokens_per_day"}
SEED_RULES = ["export-rule-change-china", "peer-overtake-tokens", "usage-growth-stalled"]

RawFactory = Callable[..., dict[str, Any]]
Serve = Callable[..., Awaitable[tuple[InProcessWorker, TestClient[Any, Any]]]]


@pytest.fixture
async def serve(seed_text: str, tmp_path: Path) -> AsyncIterator[Serve]:
    """Return a starter of in-process workers seeded with the article, settings from the given variables only."""
    clients: list[TestClient[Any, Any]] = []

    async def start(**env: str) -> tuple[InProcessWorker, TestClient[Any, Any]]:
        settings = Settings.from_env({"TRACKER_PARTITIONS": "2", "TRACKER_DATA_DIR": str(tmp_path), **env})
        worker = InProcessWorker.create(settings)
        await worker.fold(line.encode() for line in seed_text.splitlines())
        client: TestClient[Any, Any] = TestClient(TestServer(worker.application()))
        await client.start_server()
        clients.append(client)
        return worker, client

    yield start
    for client in clients:
        await client.close()


@pytest.fixture
async def seeded(serve: Serve) -> TestClient[Any, Any]:
    _, client = await serve()
    return client


async def get(client: TestClient[Any, Any], path: str, expect: int = 200, **params: str) -> Any:
    """GET ``path`` with query ``params`` and return its JSON, failing unless the status is ``expect``."""
    response = await client.get(path, params=params)
    document = await response.json()
    assert response.status == expect, document
    return document


def points(document: dict[str, Any]) -> list[tuple[str, float]]:
    (series,) = document["series"]
    return [(point["date"], point["value"]) for point in series["points"]]


# --- signals and history ---------------------------------------------------------------------------------


async def test_signals_are_filtered_by_family_and_labels_now_and_as_of_a_date(seeded: TestClient[Any, Any]) -> None:
    now = await get(seeded, "/v1/signals", name="market_usage", entity="ByteDance", metric="tokens_per_day")
    november = await get(seeded, "/v1/signals", **TOKENS, as_of="2025-11-15")
    chips = await get(seeded, "/v1/signals", name="market_chip_units", stage="scheduled")

    assert now["signals"] == [
        {"name": "market_usage", "labels": {"entity": "bytedance", "metric": "tokens_per_day"}, "value": 5.0e13}
    ]
    assert [s["value"] for s in november["signals"]] == [3.0e13]
    assert [(s["labels"]["buyer"], s["value"]) for s in chips["signals"]] == [("cn_approved_customers", 60000)]


async def test_an_unknown_signal_parameter_is_a_400_naming_it_and_what_is_accepted(
    seeded: TestClient[Any, Any],
) -> None:
    refused = await get(seeded, "/v1/signals", 400, name="market_usage", colour="red")

    assert refused["parameter"] == "colour"
    assert refused["error"].startswith("colour: ")
    assert "metric" in refused["accepted"]


async def test_history_lists_values_by_event_time_and_as_of_cuts_what_was_not_known(
    seeded: TestClient[Any, Any],
) -> None:
    history = await get(seeded, "/v1/signals/history", **TOKENS)
    november = await get(seeded, "/v1/signals/history", **TOKENS, as_of="2025-11-15")
    nameless = await get(seeded, "/v1/signals/history", 400, entity="bytedance")

    assert points(history) == [("2025-10", 3.0e13), ("2025-12", 5.0e13)]
    assert history["series"][0]["points"][1]["facts"] == [DECEMBER]
    assert points(november) == [("2025-10", 3.0e13)]
    assert nameless["parameter"] == "name"


# --- facts -----------------------------------------------------------------------------------------------


async def test_facts_page_through_the_seed_with_sources_and_filters(seeded: TestClient[Any, Any]) -> None:
    first = await get(seeded, "/v1/facts", limit="4")
    rest = await get(seeded, "/v1/facts", cursor=first["next_cursor"])
    planned_chips = await get(seeded, "/v1/facts", type="chip_delivery.reported", status="planned")
    doubao = await get(seeded, "/v1/facts", entity="doubao", occurred_from="2025-09")

    facts = first["facts"] + rest["facts"]
    assert len(first["facts"]) == 4 and len(facts) == 10 and rest["next_cursor"] is None
    assert facts[0]["id"] == "seed-02-us-hyperscalers-capex-2025" and facts[-1]["id"] == "seed-10-google-tokens-2025-12"
    assert all(fact["source"]["name"] for fact in facts)
    assert sorted(f["id"] for f in planned_chips["facts"]) == [H200_ORDER, "seed-05-cn-approved-h200-first-batch"]
    assert [f["id"] for f in doubao["facts"]] == ["seed-07-doubao-mau-2025-10"]


async def test_one_fact_comes_with_its_quote_and_the_signals_it_feeds(seeded: TestClient[Any, Any]) -> None:
    one = await get(seeded, f"/v1/facts/{H200_ORDER}")

    # The quote is in the record only: the document was read back from the (in-memory) log.
    assert one["fact"]["source"]["quote"].startswith("ByteDance envisagerait")
    assert one["fact"]["position"]["offset"] >= 0
    fed = {(s["name"], s["labels"].get("stage")): s["value"] for s in one["signals"]}
    assert fed[("market_chip_units", "ordered")] == 20000
    assert fed[("market_chip_order_value_usd", None)] == 4.0e8


async def test_an_unknown_fact_is_a_404_naming_it(seeded: TestClient[Any, Any]) -> None:
    missing = await get(seeded, "/v1/facts/no-such-fact", 404)

    assert "no-such-fact" in missing["error"]


@pytest.mark.parametrize(
    "path",
    ["/v1/signals", "/v1/signals/history?name=market_usage", "/v1/facts", f"/v1/facts/{H200_ORDER}", "/v1/alerts"],
)
@pytest.mark.parametrize("as_of", ["2025-13", "yesterday"])
async def test_an_invalid_as_of_is_a_400_naming_as_of_on_every_read(
    seeded: TestClient[Any, Any], path: str, as_of: str
) -> None:
    response = await seeded.get(path, params={"as_of": as_of})
    refused = await response.json()

    assert response.status == 400, refused
    assert refused["parameter"] == "as_of"
    assert refused["error"].startswith("as_of: ")


# --- alerts ----------------------------------------------------------------------------------------------


async def test_the_seed_fires_its_three_alerts_with_provenance(seeded: TestClient[Any, Any]) -> None:
    alerts = (await get(seeded, "/v1/alerts"))["alerts"]
    firing = (await get(seeded, "/v1/alerts", state="firing"))["alerts"]
    pending = (await get(seeded, "/v1/alerts", state="pending"))["alerts"]
    november = (await get(seeded, "/v1/alerts", as_of="2025-11-15"))["alerts"]

    assert sorted(alert["rule"] for alert in alerts) == SEED_RULES
    assert all(alert["provenance"] for alert in alerts)
    assert sorted(alert["rule"] for alert in firing) == SEED_RULES and pending == []
    assert [alert["rule"] for alert in november] == ["usage-growth-stalled"]


async def test_an_unknown_alert_state_is_a_400_listing_the_states(seeded: TestClient[Any, Any]) -> None:
    refused = await get(seeded, "/v1/alerts", 400, state="bogus")

    assert refused["parameter"] == "state"
    assert set(refused["accepted"]) == {"pending", "firing"}


# --- ingestion -------------------------------------------------------------------------------------------


async def test_a_posted_record_missing_a_field_is_a_422_naming_it_and_nothing_is_published(serve: Serve) -> None:
    worker, client = await serve()
    record = {"type": "usage.reported", "entity": "doubao", "occurred_on": "2025-11", "source": {"name": "x"}}

    response = await client.post("/v1/events", data=json.dumps(record))
    answer = await response.json()

    assert response.status == 422
    (result,) = answer["results"]
    assert result["status"] == "rejected"
    assert {"metric", "value"} <= {error["path"] for error in result["errors"]}
    assert worker.publisher.published == []


async def test_a_posted_retraction_is_published_and_once_folded_resolves_the_crossing(
    serve: Serve, raw_event_factory: RawFactory
) -> None:
    worker, client = await serve()
    retraction = raw_event_factory("event.retracted", id="retract-09", target_id=DECEMBER, occurred_on="2026-01")

    response = await client.post("/v1/events", data=json.dumps(retraction))
    answer = await response.json()
    await worker.fold_published()

    assert response.status == 202 and answer["accepted"] == 1
    fact = await get(client, f"/v1/facts/{DECEMBER}")
    assert fact["fact"]["retracted_by"] == {"id": "retract-09", "known_on": "2026-01-01"}
    assert [(a["relation"], a["state"]) for a in fact["alerts"]] == [("caused", "resolved")]
    assert points(await get(client, "/v1/signals/history", **TOKENS)) == [("2025-10", 3.0e13)]
    rules = sorted(alert["rule"] for alert in (await get(client, "/v1/alerts"))["alerts"])
    assert rules == ["export-rule-change-china", "usage-growth-stalled"]


# --- tokens, health, the page ----------------------------------------------------------------------------


async def test_with_a_token_configured_writes_need_it_and_reads_stay_open(
    serve: Serve, raw_event_factory: RawFactory
) -> None:
    worker, client = await serve(TRACKER_API_TOKENS=TOKEN)
    body = json.dumps(raw_event_factory("usage.reported", id="bytedance-tokens-2026-01", occurred_on="2026-01"))

    anonymous = await client.post("/v1/events", data=body)
    wrong = await client.post("/v1/events", data=body, headers={"Authorization": "Bearer not-the-token-at-all"})
    allowed = await client.post("/v1/events", data=body, headers={"Authorization": f"Bearer {TOKEN}"})
    read = await client.get("/v1/signals")

    assert anonymous.status == 401 and anonymous.headers["WWW-Authenticate"] == 'Bearer realm="tracker"'
    assert wrong.status == 403
    assert allowed.status == 202
    assert [event.event_id for event in worker.publisher.published] == ["bytedance-tokens-2026-01"]
    assert read.status == 200


async def test_closed_reads_need_the_token_but_health_stays_open(serve: Serve) -> None:
    _, client = await serve(TRACKER_API_TOKENS=TOKEN, TRACKER_READ_REQUIRES_TOKEN="true")

    anonymous = await client.get("/v1/facts")
    allowed = await client.get("/v1/facts", headers={"Authorization": f"Bearer {TOKEN}"})
    health = await client.get("/healthz")

    assert anonymous.status == 401
    assert allowed.status == 200 and len((await allowed.json())["facts"]) == 10
    assert health.status == 200


async def test_health_reports_the_owned_partitions_and_that_notifications_are_not_started(
    seeded: TestClient[Any, Any],
) -> None:
    health = await get(seeded, "/healthz")

    assert health["status"] == "ok"
    assert health["partitions"] == [0, 1]
    assert health["notifications_ready"] is False


async def test_the_page_is_served_with_an_etag_and_a_repeat_is_304(seeded: TestClient[Any, Any]) -> None:
    page = await seeded.get("/")
    again = await seeded.get("/", headers={"If-None-Match": page.headers["ETag"]})

    assert page.status == 200 and page.headers["Content-Type"].startswith("text/html")
    assert again.status == 304
