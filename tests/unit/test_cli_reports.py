"""The report commands in-process, against the worker's real routes served on 127.0.0.1 over the seed in memory.

``main`` runs in a thread (the CLI's HTTP client blocks) with its own
environment and output streams; the routes run on the test's event loop.
"""

from __future__ import annotations

import asyncio
import io
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp.test_utils import TestServer

from tests.unit.inprocess_worker import InProcessWorker
from tracker.cli import main
from tracker.settings import Settings

pytestmark = pytest.mark.unit

TOKEN = "cli-reports-token-0123456789"
TOKENS = ["--label", "entity=bytedance", "--label", "metric=tokens_per_day"]


@dataclass(frozen=True)
class Run:
    """What one command did: its exit status and what it printed."""

    code: int
    out: str
    err: str


@dataclass
class Cli:
    """Run ``tracker`` commands in-process against one served worker."""

    env: dict[str, str]

    async def __call__(self, *argv: str, **extra: str) -> Run:
        out, err = io.StringIO(), io.StringIO()
        code = await asyncio.to_thread(main, list(argv), env={**self.env, **extra}, stdout=out, stderr=err)
        return Run(code, out.getvalue(), err.getvalue())


async def served(seed_text: str, tmp_path: Path, **env: str) -> tuple[TestServer, dict[str, str]]:
    """Serve a seeded in-process worker; return the server and the environment that points the CLI at it."""
    base = {"TRACKER_PARTITIONS": "2", "TRACKER_DATA_DIR": str(tmp_path), **env}
    worker = InProcessWorker.create(Settings.from_env(base))
    await worker.fold(line.encode() for line in seed_text.splitlines())
    server = TestServer(worker.application(), host="127.0.0.1")
    await server.start_server()
    return server, {**base, "TRACKER_WORKER_URL": f"http://127.0.0.1:{server.port}"}


@pytest.fixture
async def cli(seed_text: str, tmp_path: Path) -> AsyncIterator[Cli]:
    server, env = await served(seed_text, tmp_path)
    yield Cli(env)
    await server.close()


async def test_signals_print_the_figure_with_its_unit_now_and_as_of_a_date(cli: Cli) -> None:
    now = await cli("signals", "market_usage", *TOKENS)
    november = await cli("signals", "market_usage", *TOKENS, "--as-of", "2025-11-15")

    assert now.code == 0 and november.code == 0
    assert now.out.splitlines()[1].endswith("50 T tokens/day")
    assert november.out.splitlines()[1].endswith("30 T tokens/day")


async def test_history_prints_the_readme_table(cli: Cli) -> None:
    run = await cli("history", "market_usage", *TOKENS)

    rows = [line.split() for line in run.out.splitlines()]
    assert run.code == 0
    assert rows[0] == ["labels", "date", "value", "facts"]
    assert rows[1][2] == "2025-10" and "seed-08-bytedance-tokens-2025-10" in rows[1]
    assert rows[2][2] == "2025-12" and "seed-09-bytedance-tokens-2025-12" in rows[2]


async def test_facts_print_a_row_per_fact_and_csv_keeps_every_one(cli: Cli) -> None:
    doubao = await cli("facts", "--entity", "doubao")
    every = await cli("facts", "--format", "csv")

    assert doubao.code == 0
    assert [line for line in doubao.out.splitlines()[1:] if line.strip()] and "QuestMobile" in doubao.out
    assert "seed-06-doubao-mau-2025-08" in doubao.out and "seed-07-doubao-mau-2025-10" in doubao.out
    assert every.code == 0 and len(every.out.strip().splitlines()) == 1 + 10


async def test_one_fact_prints_its_source_and_quote_and_an_unknown_one_is_exit_1(cli: Cli) -> None:
    known = await cli("fact", "seed-03-bytedance-h200-test-order")
    unknown = await cli("fact", "no-such-fact")

    assert known.code == 0
    assert "Financial Times" in known.out and "commande test de 20 000 processeurs H200" in known.out
    assert unknown.code == 1
    assert unknown.err.strip() == "no fact no-such-fact is known to the worker"


async def test_alerts_print_the_seed_three_and_a_wrong_state_names_the_accepted_ones(cli: Cli) -> None:
    listed = await cli("alerts")
    refused = await cli("alerts", "--state", "bogus")

    assert listed.code == 0
    for rule in ("export-rule-change-china", "peer-overtake-tokens", "usage-growth-stalled"):
        assert rule in listed.out
    assert refused.code == 1 and refused.out == ""
    assert refused.err.splitlines()[0].startswith("state: ")
    assert refused.err.splitlines()[1] == "accepted: pending, firing"


async def test_a_date_the_worker_cannot_read_is_exit_1_naming_as_of(cli: Cli) -> None:
    run = await cli("signals", "--as-of", "2025-13")

    assert run.code == 1
    assert run.err.startswith("as_of: ")


async def test_argument_errors_are_exit_2_with_the_usage_and_reach_no_worker(cli: Cli) -> None:
    no_value = await cli("history", "market_usage", "--label", "bytedance")
    no_command = await cli()
    unknown_format = await cli("signals", "--format", "xml")

    assert no_value.code == 2 and "expected NAME=VALUE, not 'bytedance'" in no_value.err
    assert no_command.code == 2 and no_command.err.startswith("usage: tracker")
    assert unknown_format.code == 2 and "invalid choice: 'xml'" in unknown_format.err
    assert no_value.out == no_command.out == unknown_format.out == ""


async def test_an_invalid_setting_is_exit_64_naming_it(cli: Cli) -> None:
    run = await cli("signals", TRACKER_PARTITIONS="zero")

    assert run.code == 64
    assert "invalid settings" in run.err and "partitions" in run.err


async def test_closed_reads_need_the_cli_token(seed_text: str, tmp_path: Path) -> None:
    server, env = await served(seed_text, tmp_path, TRACKER_API_TOKENS=TOKEN, TRACKER_READ_REQUIRES_TOKEN="true")
    cli = Cli(env)
    try:
        anonymous = await cli("alerts")
        allowed = await cli("alerts", TRACKER_API_TOKEN=TOKEN)
    finally:
        await server.close()

    assert anonymous.code == 1 and anonymous.err.strip() == "missing bearer token"
    assert allowed.code == 0 and "peer-overtake-tokens" in allowed.out


def test_settings_from_an_environment_equal_those_read_from_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    env = {"TRACKER_HTTP_PORT": "7001", "TRACKER_READ_REQUIRES_TOKEN": "true", "tracker_partitions": "3"}
    env |= {"TRACKER_API_TOKENS": TOKEN, "TRACKER_DATA_DIR": "/tmp/x", "OTHER": "ignored"}
    for name in [name for name in os.environ if name.upper().startswith("TRACKER_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)

    given = Settings.from_env(env)

    assert given == Settings()
    assert (given.http_port, given.partitions, given.read_requires_token) == (7001, 3, True)
    assert given.model_fields_set == Settings().model_fields_set
