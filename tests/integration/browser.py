"""Headless Chromium driven over the DevTools protocol, for tests that assert what a person sees.

Debian's ``chromium`` runs with ``--remote-debugging-port=0``; its WebSocket is
read with aiohttp on an event loop in a thread of its own, so tests call plain
methods. Every console error, uncaught exception and failed load of a tab is
kept in ``Tab.console_errors``.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import aiohttp

__all__ = ["Chromium", "Tab", "chromium_binary"]

INSTALL = Path(__file__).resolve().parents[2] / "deploy" / "page" / "install-chromium.sh"
COMMAND_TIMEOUT = 30.0


def chromium_binary() -> str:
    """Return the path of Debian's chromium, installing it first when it is missing."""
    found = shutil.which("chromium")
    if found is None:
        subprocess.run(["bash", str(INSTALL)], check=True, timeout=900)
        found = shutil.which("chromium")
    assert found is not None, "chromium is still missing after deploy/page/install-chromium.sh"
    return found


class Chromium:
    """One headless browser process with a DevTools connection; ``open_tab`` gives pages."""

    def __init__(self) -> None:
        self._profile = Path(tempfile.mkdtemp(prefix="tracker-chromium-"))
        self._process = subprocess.Popen(
            [
                chromium_binary(),
                "--headless=new",
                "--no-sandbox",  # the tests run as root, where the sandbox refuses to start
                "--disable-gpu",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-extensions",
                "--hide-scrollbars",
                "--font-render-hinting=none",
                "--remote-debugging-port=0",
                f"--user-data-dir={self._profile}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._tabs: dict[str, Tab] = {}
        self._session: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None
        self.run(self._connect(self._endpoint()))

    def _endpoint(self) -> str:
        # Chromium writes the port it chose, and the browser's WebSocket path, into the profile.
        active = self._profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode}")
            if active.is_file():
                lines = active.read_text().split()
                if len(lines) == 2:
                    return f"ws://127.0.0.1:{lines[0]}{lines[1]}"
            time.sleep(0.1)
        raise TimeoutError("chromium did not open its DevTools port within 30 s")

    def run(self, coroutine: Coroutine[Any, Any, Any], timeout: float = COMMAND_TIMEOUT) -> Any:
        """Run a coroutine on the browser's event loop and return its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    async def _connect(self, url: str) -> None:
        self._session = aiohttp.ClientSession()
        self._socket = await self._session.ws_connect(url, max_msg_size=0)
        self._loop.create_task(self._read())

    async def _read(self) -> None:
        assert self._socket is not None
        async for message in self._socket:
            if message.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(message.data)
            if "id" in data:
                future = self._pending.pop(data["id"], None)
                if future is not None and not future.done():
                    future.set_result(data)
            elif (tab := self._tabs.get(data.get("sessionId", ""))) is not None:
                tab.on_event(data["method"], data.get("params", {}))

    async def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> Any:
        """Send one DevTools command and return its result; raise on a protocol error."""
        assert self._socket is not None
        number = next(self._ids)
        future: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._pending[number] = future
        message: dict[str, Any] = {"id": number, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        await self._socket.send_str(json.dumps(message))
        answer = await asyncio.wait_for(future, COMMAND_TIMEOUT)
        if "error" in answer:
            raise RuntimeError(f"{method}: {answer['error']}")
        return answer.get("result", {})

    def open_tab(self, width: int = 1280, height: int = 900) -> Tab:
        """Open a blank tab with a viewport of ``width`` x ``height`` CSS pixels."""

        async def open_() -> Tab:
            target = await self.send("Target.createTarget", {"url": "about:blank"})
            attached = await self.send("Target.attachToTarget", {"targetId": target["targetId"], "flatten": True})
            tab = Tab(self, attached["sessionId"], target["targetId"])
            self._tabs[tab.session] = tab
            for domain in ("Page", "Runtime", "Log"):
                await self.send(f"{domain}.enable", session=tab.session)
            return tab

        tab: Tab = self.run(open_())
        tab.resize(width, height)
        return tab

    def close(self) -> None:
        """Stop the browser and its event loop; delete its profile."""

        async def close_() -> None:
            if self._socket is not None:
                await self._socket.close()
            if self._session is not None:
                await self._session.close()

        try:
            self.run(close_(), timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait(timeout=10)
            shutil.rmtree(self._profile, ignore_errors=True)


class Tab:
    """One page of the browser: navigate, read, type, screenshot."""

    def __init__(self, browser: Chromium, session: str, target: str) -> None:
        self.browser = browser
        self.session = session
        self.target = target
        self.console_errors: list[str] = []

    def on_event(self, method: str, params: dict[str, Any]) -> None:
        """Keep what a developer would see in red in the console."""
        if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            text = " ".join(str(arg.get("value", arg.get("description", ""))) for arg in params.get("args", []))
            self.console_errors.append(f"console.{params['type']}: {text}")
        elif method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            description = details.get("exception", {}).get("description") or details.get("text", "")
            self.console_errors.append(f"uncaught: {description}")
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            self.console_errors.append(f"{entry.get('source')}: {entry.get('text')} {entry.get('url', '')}".strip())

    def send(self, method: str, params: dict[str, Any] | None = None) -> Any:
        """Send one DevTools command to this tab."""
        return self.browser.run(self.browser.send(method, params, session=self.session))

    def evaluate(self, expression: str) -> Any:
        """Evaluate JavaScript in the page (awaiting a promise) and return its JSON value."""
        result = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression[:80]}...: {result['exceptionDetails']}")
        return result["result"].get("value")

    def resize(self, width: int, height: int) -> None:
        """Set the viewport, as a window of that size would be (``mobile`` below 600 px)."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600},
        )

    def goto(self, url: str, timeout: float = 60) -> None:
        """Load ``url`` (a fragment change too) and wait until the page says it is drawn."""
        self.evaluate("document.body && (document.body.dataset.state = 'navigating')")
        self.send("Page.navigate", {"url": url})
        self.wait_drawn(timeout)

    def wait_drawn(self, timeout: float = 60) -> str:
        """Wait until the page's state is ``ready`` or ``error`` and return it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            state = self.evaluate("document.body ? document.body.dataset.state || '' : ''")
            if state in ("ready", "error"):
                # Two frames: Chart.js draws in the frame after it sizes its canvas.
                self.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
                return str(state)
            time.sleep(0.05)
        raise TimeoutError(f"the page was not drawn within {timeout} s")

    def press(self, key: str) -> None:
        """Press and release one key (``Tab``, ``Enter``) in the focused element."""
        codes = {"Tab": 9, "Enter": 13}
        down: dict[str, Any] = {"type": "keyDown", "key": key, "code": key, "windowsVirtualKeyCode": codes[key]}
        if key == "Enter":
            down["text"] = "\r"
        self.send("Input.dispatchKeyEvent", down)
        self.send("Input.dispatchKeyEvent", {**down, "type": "keyUp", "text": ""})

    def screenshot(self, path: Path, width: int) -> None:
        """Save a PNG of the whole page at ``width`` CSS pixels."""
        self.resize(width, 900)
        self.evaluate("new Promise(r => setTimeout(r, 300))")  # charts follow the resize
        height = int(self.evaluate("Math.ceil(document.documentElement.scrollHeight)"))
        self.resize(width, height)
        self.evaluate("new Promise(r => setTimeout(r, 300))")
        shot = self.send("Page.captureScreenshot", {"format": "png"})
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
        self.resize(width, 900)

    def close(self) -> None:
        """Close the tab."""
        self.browser.run(self.browser.send("Target.closeTarget", {"targetId": self.target}))
