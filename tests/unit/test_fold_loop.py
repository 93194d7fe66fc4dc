"""A fold that dies stops its worker; a fold that is cancelled (a clean stop) does not."""

from __future__ import annotations

import asyncio
import signal

import pytest

from tracker.worker import fold_loop

pytestmark = pytest.mark.unit


def finished(coroutine_function: object) -> asyncio.Task[None]:
    async def main() -> asyncio.Task[None]:
        task = asyncio.create_task(coroutine_function())  # type: ignore[operator]
        await asyncio.sleep(0)
        if not task.done():
            task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return task

    return asyncio.run(main())


def test_a_fold_that_failed_stops_the_process(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int] = []
    monkeypatch.setattr(fold_loop.os, "kill", lambda pid, sig: sent.append(sig))

    async def fails() -> None:
        raise RuntimeError("broken batch")

    fold_loop._stop_process_if_failed(finished(fails))

    assert sent == [signal.SIGTERM]


def test_a_cancelled_fold_leaves_the_process_alone(monkeypatch: pytest.MonkeyPatch) -> None:
    sent: list[int] = []
    monkeypatch.setattr(fold_loop.os, "kill", lambda pid, sig: sent.append(sig))

    async def runs() -> None:
        await asyncio.sleep(60)

    fold_loop._stop_process_if_failed(finished(runs))

    assert sent == []
