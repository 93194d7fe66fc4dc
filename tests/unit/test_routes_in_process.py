"""The worker's HTTP routes, served in-process: the real worker built, not started, behind aiohttp's test client.

``build_worker`` wires the Faust app, its tables, the reads and the routes
without touching Kafka until the worker starts, so every answer that does not
need the broker (refusals, authentication, an empty state, the page) is tested
here in milliseconds. Answers that need folded facts are in tests/integration.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from tracker.settings import Settings
from tracker.worker.app import build_worker

pytestmark = pytest.mark.unit

TOKEN = "in-process-test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def serve(tmp_path: Path, **settings: Any) -> TestClient:  # type: ignore[type-arg]
    """Return a started test client over a worker built with ``settings`` (memory store)."""
    worker = build_worker(Settings(store="memory", data_dir=tmp_path / "worker", **settings))
    client: TestClient = TestClient(TestServer(worker.app.web.web_app))  # type: ignore[type-arg]
    await client.start_server()
    return client


@pytest.fixture
async def open_api(tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    client = await serve(tmp_path)
    yield client
    await client.close()


@pytest.fixture
async def guarded(tmp_path: Path) -> AsyncIterator[TestClient]:  # type: ignore[type-arg]
    client = await serve(tmp_path, api_tokens=TOKEN, read_requires_token=True)
    yield client
    await client.close()


@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/v1/signals?bogus=1", "bogus"),
        ("/v1/signals?name=market_nothing", "name"),
        ("/v1/signals?entity=byte%20dance", "entity"),
        ("/v1/signals?as_of=2025-13", "as_of"),
        ("/v1/signals/history", "name"),
        ("/v1/signals/history?name=market_usage&colour=red", "colour"),
        ("/v1/facts?type=usage.guessed", "type"),
        ("/v1/facts?buyer=bytedance!", "buyer"),
        ("/v1/alerts?state=bogus", "state"),
        ("/v1/alerts?entity=x&entity=y", "entity"),
    ],
)
async def test_a_query_the_worker_cannot_answer_is_a_400_naming_the_parameter(
    open_api: TestClient,
    path: str,
    parameter: str,  # type: ignore[type-arg]
) -> None:
    response = await open_api.get(path)
    body = await response.json()

    assert response.status == 400, body
    assert body["parameter"] == parameter
    assert body["error"].startswith(f"{parameter}: ")


async def test_an_empty_worker_answers_empty_lists_and_a_404_for_an_unknown_fact(
    open_api: TestClient,  # type: ignore[type-arg]
) -> None:
    signals = await open_api.get("/v1/signals?entity=ByteDance")
    facts = await open_api.get("/v1/facts")
    missing = await open_api.get("/v1/facts/seed-99-nothing")

    assert (signals.status, await signals.json()) == (200, {"signals": []})
    assert (facts.status, await facts.json()) == (200, {"facts": [], "next_cursor": None})
    assert missing.status == 404
    assert "seed-99-nothing" in (await missing.json())["error"]


async def test_an_invalid_event_is_refused_with_the_path_and_reason_of_each_field(
    open_api: TestClient,  # type: ignore[type-arg]
) -> None:
    response = await open_api.post("/v1/events", data=b'{"type": "usage.reported", "entity": "ByteDance"}')
    body = await response.json()

    assert response.status == 422
    assert (body["accepted"], body["rejected"]) == (0, 1)
    errors = {error["path"]: error["reason"] for error in body["results"][0]["errors"]}
    assert errors["occurred_on"] == "Field required"
    assert "entity" in errors  # not a slug


async def test_with_tokens_required_nothing_is_answered_without_a_valid_one(guarded: TestClient) -> None:  # type: ignore[type-arg]
    read = await guarded.get("/v1/signals")
    write = await guarded.post("/v1/events", data=b"{}")
    wrong = await guarded.get("/v1/signals", headers={"Authorization": "Bearer not-the-token-000000000"})
    allowed = await guarded.get("/v1/signals", headers=AUTH)

    assert (read.status, write.status) == (401, 401)  # no token
    assert wrong.status == 403  # a token, not one of ours
    assert allowed.status == 200


async def test_the_page_and_the_health_check_are_served(open_api: TestClient) -> None:  # type: ignore[type-arg]
    page = await open_api.get("/")
    health = await open_api.get("/healthz")

    assert page.status == 200 and page.content_type == "text/html"
    assert "<html" in (await page.text()).lower()
    assert health.status == 200
    assert (await health.json())["records"] == 0
