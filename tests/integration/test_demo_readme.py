"""The README's analyst path after `tracker demo`, on the real broker: publish a fact, see it, its history, retract it.

After the demo, the commands run with no TRACKER_* setting but the data dir: they must find the
demo's topics and worker by themselves, as a new user's would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT, run_cli
from tracker.polling import wait_until
from tracker.settings import Settings

pytestmark = pytest.mark.integration

MY_FACT = {
    "type": "usage.reported",
    "id": "readme-doubao-mau-2025-11",
    "entity": "doubao",
    "metric": "mau",
    "value": {"value": 161e6, "unit": "users"},
    "occurred_on": "2025-11",
    "source": {"name": "QuestMobile", "quote": "Doubao reached 161 million monthly users in November"},
}
BYTEDANCE_TOKENS = ["market_usage", "--label", "entity=bytedance", "--label", "metric=tokens_per_day"]


def tracker(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `tracker` as a user after `make demo`: no TRACKER_* variable but where the demo keeps its data."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TRACKER_")}
    env["TRACKER_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [sys.executable, "-m", "tracker", *args], env=env, capture_output=True, text=True, timeout=120, cwd=ROOT
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    """Return the output of a command that must succeed."""
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout


def rows_with(output: str, *words: str) -> list[str]:
    """Return the lines of a table holding every one of ``words``."""
    return [line for line in output.splitlines() if all(word in line for word in words)]


@pytest.fixture
def demo(settings_factory: Callable[..., Settings]) -> Iterator[Settings]:
    """Run `tracker demo` (what `make demo` runs) on the session's broker; stop it after the test."""
    settings = settings_factory()
    try:
        ok(run_cli(settings, "demo"))
        yield settings
    finally:
        run_cli(settings, "demo", "--stop")


def test_the_readme_path_publish_see_history_retract_and_a_rerun_keeps_it(demo: Settings, tmp_path: Path) -> None:
    data_dir = demo.data_dir
    record = json.loads((data_dir / "demo.json").read_text())

    # The seed's history by event time, now and as known on 2025-11-15.
    history = ok(tracker(data_dir, "history", *BYTEDANCE_TOKENS))
    assert rows_with(history, "2025-10", "30 T tokens/day") and rows_with(history, "2025-12", "50 T tokens/day")
    as_of = ok(tracker(data_dir, "history", *BYTEDANCE_TOKENS, "--as-of", "2025-11-15"))
    assert rows_with(as_of, "2025-10", "30 T tokens/day") and not rows_with(as_of, "2025-12")
    latest = ok(tracker(data_dir, "signals", *BYTEDANCE_TOKENS, "--as-of", "2025-11-15"))
    assert rows_with(latest, "market_usage", "30 T tokens/day")

    # Publish a fact: it goes to the demo's topic, and the worker shows it.
    fact_file = tmp_path / "my-fact.jsonl"
    fact_file.write_text(json.dumps(MY_FACT) + "\n")
    published = ok(tracker(data_dir, "publish", str(fact_file)))
    assert f"published 1, rejected 0, failed 0 -> {record['topic_prefix']}market-events" in published
    wait_until(
        "the published fact to show",
        lambda: rows_with(ok(tracker(data_dir, "facts", "--entity", "doubao")), MY_FACT["id"], "161 M users"),
        timeout=30,
    )
    doubao = ok(tracker(data_dir, "history", "market_usage", "--label", "entity=doubao", "--label", "metric=mau"))
    assert rows_with(doubao, "2025-11", "161 M users", MY_FACT["id"])
    shown = ok(tracker(data_dir, "fact", MY_FACT["id"]))
    assert "QuestMobile" in shown and "Doubao reached 161 million" in shown

    # Retract it: it leaves the facts and the history, and stays listed as retracted.
    retracted = tracker(data_dir, "retract", MY_FACT["id"], "--reason", "misread figure", "--source", "desk")
    assert ok(retracted).startswith(f"retracted {MY_FACT['id']}: published ")
    assert "warning" not in retracted.stderr
    wait_until(
        "the retraction to fold",
        lambda: not rows_with(ok(tracker(data_dir, "facts", "--entity", "doubao")), MY_FACT["id"]),
        timeout=30,
    )
    listed = ok(tracker(data_dir, "facts", "--entity", "doubao", "--include-retracted"))
    assert rows_with(listed, MY_FACT["id"], "retracted by")
    assert not rows_with(ok(tracker(data_dir, "history", "market_usage", "--label", "entity=doubao")), "2025-11")

    # An id the worker does not know: a warning, not a refusal.
    unknown = tracker(data_dir, "retract", "no-such-fact", "--reason", "test", "--source", "desk")
    assert unknown.returncode == 0 and "warning: the worker does not know no-such-fact" in unknown.stderr

    # Running the demo again with a new setting keeps the topics and what was published, without re-seeding.
    rerun = ok(run_cli(demo.model_copy(update={"webhook_allow": "127.0.0.1,10.0.0.0/8"}), "demo"))
    assert f"resumed the demo on {record['topic_prefix']}market-events" in rerun
    assert "published 1" not in rerun  # the seed is not published a second time
    assert rows_with(ok(tracker(data_dir, "facts", "--include-retracted")), MY_FACT["id"], "retracted by")
    assert len(rows_with(ok(tracker(data_dir, "facts", "--type", "usage.reported")), "seed-09")) == 1
