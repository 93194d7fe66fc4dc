"""Start a ``tracker worker`` process, wait until it is ready, stop or kill it.

The demo runs a worker in the background, the benchmark times workers it starts
and restarts, and the integration tests start, SIGKILL and restart workers. They
all start it the same way: its settings alone in its environment (an inherited
``TRACKER_*`` variable must not override them), its output in a log file, a
process group of its own (a signal reaches Faust's threads and children too).

The process behaviour is covered by the integration tests that use it; the pure
parts (environment, readiness, the address to poll) by unit tests.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracker.errors import InfrastructureError, TrackerError
from tracker.polling import http_json, wait_until
from tracker.settings import Settings

__all__ = [
    "WorkerProcess",
    "free_port",
    "is_ready",
    "log_tail",
    "start_worker",
    "stop_detached",
    "worker_env",
    "worker_url",
]

#: Seconds a worker has to stop after SIGTERM before it is SIGKILLed: it leaves its
#: consumer group and closes RocksDB in a few seconds, unless something is stuck.
STOP_GRACE_SECONDS = 20.0

#: Seconds to wait for the process to be gone after SIGKILL (the kernel reaps it at once).
KILL_WAIT_SECONDS = 10.0

#: Characters of the log quoted in an error: the traceback that ended the worker.
LOG_TAIL_CHARS = 3000


def worker_env(settings: Settings, environ: Mapping[str, str]) -> dict[str, str]:
    """Return the environment of a tracker child process run with ``settings``.

    Inherited ``TRACKER_*`` variables are dropped: the child must run with these settings
    and nothing else (a variable the parent's settings left unset would otherwise win).
    """
    env = {key: value for key, value in environ.items() if not key.startswith("TRACKER_")}
    env.update(settings.as_env())
    return env


def worker_url(settings: Settings) -> str:
    """Return the base URL where a worker run with ``settings`` answers on this machine."""
    host = settings.http_host
    if host in ("", "0.0.0.0", "::"):  # listening on every address: loopback is one of them
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{settings.http_port}"


def is_ready(health: Mapping[str, Any], partitions: int, recovered: bool = False) -> bool:
    """Say whether a worker's /healthz shows it owns ``partitions`` (and has rebuilt its tables if ``recovered``)."""
    if len(health.get("partitions") or ()) < partitions:
        return False
    return not (recovered and health.get("recovering"))


def log_tail(log: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """Return the end of a worker's log, or a note that there is none."""
    try:
        return log.read_text(errors="replace")[-chars:]
    except OSError as exc:
        return f"(no log: {exc})"


def free_port() -> int:
    """Return a loopback TCP port nobody listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class WorkerProcess:
    """A ``tracker worker`` process this process started, with its settings and log."""

    settings: Settings
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def url(self) -> str:
        """Return the worker's base URL."""
        return worker_url(self.settings)

    @property
    def pid(self) -> int:
        """Return the process id (also its process group's)."""
        return self.process.pid

    def health(self, timeout: float = 5.0) -> dict[str, Any]:
        """Return the worker's /healthz document."""
        return dict(http_json(f"{self.url}/healthz", timeout=timeout))

    def check_running(self) -> None:
        """Raise InfrastructureError, with the log's tail, if the process has exited."""
        code = self.process.poll()
        if code is not None:
            raise InfrastructureError(f"the worker exited with {code} (log: {self.log}):\n{log_tail(self.log)}")

    def wait_ready(
        self,
        partitions: int | None = None,
        *,
        recovered: bool = False,
        timeout: float = 90.0,
        interval: float = 0.25,
    ) -> dict[str, Any]:
        """Wait until the worker owns ``partitions`` (all by default); return its /healthz.

        ``recovered`` waits also until Faust has read the changelogs into the tables.
        Raise InfrastructureError with the log's tail if the process exits or the time is up.
        """
        want = self.settings.partitions if partitions is None else partitions

        def ready() -> dict[str, Any] | None:
            self.check_running()
            health = self.health()
            return health if is_ready(health, want, recovered) else None

        what = f"the worker to own {want} partition{'s' if want != 1 else ''}"
        try:
            return dict(wait_until(what, ready, timeout=timeout, interval=interval))
        except InfrastructureError:
            raise  # it exited: the message has the log already
        except TrackerError as exc:  # the time is up
            raise InfrastructureError(f"{exc} (log: {self.log}):\n{log_tail(self.log)}") from exc

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> None:
        """Stop the worker: SIGTERM, then SIGKILL if it is still there after ``grace`` seconds."""
        if self.process.poll() is not None:
            return  # reaped already: its pid may belong to another process by now
        _stop_group(self.pid, grace, self._exited_within)

    def kill(self) -> None:
        """SIGKILL the worker at once (a crash, for the fault tests) and reap it."""
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        self.process.wait(timeout=KILL_WAIT_SECONDS)

    def peak_rss_mb(self) -> float:
        """Return the process's peak resident set (VmHWM) in MB, NaN if unknown."""
        try:
            status = Path(f"/proc/{self.pid}/status").read_text()
        except OSError:
            return math.nan
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return math.nan

    def _exited_within(self, seconds: float) -> bool:
        try:
            self.process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return False
        return True


def start_worker(settings: Settings, log: Path) -> WorkerProcess:
    """Start ``tracker worker`` with ``settings``, its output appended to ``log``; do not wait."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as output:  # the child holds its own copy of the descriptor
        process = subprocess.Popen(
            [sys.executable, "-m", "tracker", "worker"],
            env=worker_env(settings, os.environ),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: signals reach the whole worker
        )
    return WorkerProcess(settings, process, log)


def stop_detached(pid: int, grace: float = STOP_GRACE_SECONDS) -> bool:
    """Stop a worker started by an earlier process (the demo's) by its pid; return whether it was running."""

    def gone_within(seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.1)
        return False

    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    _stop_group(pid, grace, gone_within)
    return True


def _stop_group(pid: int, grace: float, exited_within: Callable[[float], bool]) -> None:
    """SIGTERM the process group of ``pid``; SIGKILL it if it has not exited after ``grace`` seconds."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        exited_within(0)  # already gone: reap it
        return
    if exited_within(grace):
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)
    exited_within(KILL_WAIT_SECONDS)
