"""A small Chrome DevTools Protocol client for the end-to-end tests: start Debian's headless Chromium, drive one
page over its DevTools websocket (aiohttp's websocket client; no browser download, no extra dependency).

    async with Browser.launch() as b:
        page = await b.page()
        await page.navigate("http://127.0.0.1:8188/")
        await page.eval("1 + 1")                     # -> 2
        await page.screenshot("shot.png")
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from typing import Any

import aiohttp

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--disable-extensions", "--mute-audio", "--hide-scrollbars",
                  "--no-default-browser-check", "--disable-dev-shm-usage",
                  # no name resolution at all: the page can reach loopback addresses only
                  "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1"]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    return None


class CDPError(RuntimeError):
    pass


class Page:
    """One page target: ``call`` a CDP method, ``eval`` JavaScript, collect events."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future] = {}
        self.events: list[tuple[str, dict]] = []
        self._waiters: list[tuple[str, Any, asyncio.Future]] = []
        self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        async for msg in self.ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = json.loads(msg.data)
            if "id" in data:
                fut = self._pending.pop(data["id"], None)
                if fut is not None and not fut.done():
                    if "error" in data:
                        fut.set_exception(CDPError(f"{data['error']}"))
                    else:
                        fut.set_result(data.get("result", {}))
            elif "method" in data:
                params = data.get("params", {})
                self.events.append((data["method"], params))
                for w in list(self._waiters):
                    if w[0] == data["method"] and (w[1] is None or w[1](params)) and not w[2].done():
                        w[2].set_result(params)
                        self._waiters.remove(w)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(CDPError("DevTools connection closed"))

    async def call(self, method: str, params: dict | None = None, timeout: float = 60) -> dict:
        mid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._pending[mid] = fut
        await self.ws.send_str(json.dumps({"id": mid, "method": method, "params": params or {}}))
        return await asyncio.wait_for(fut, timeout)

    def wait_event(self, method: str, predicate: Any = None) -> asyncio.Future:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((method, predicate, fut))
        return fut

    async def eval(self, expression: str, timeout: float = 60) -> Any:
        """Evaluate JavaScript (awaiting promises); return its JSON value, raise on an exception."""
        r = await self.call("Runtime.evaluate", {"expression": expression, "awaitPromise": True,
                                                 "returnByValue": True, "userGesture": True}, timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            raise CDPError(f"JavaScript error: {text}")
        return r.get("result", {}).get("value")

    async def wait_for(self, expression: str, timeout: float = 60, interval: float = 0.25) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value."""
        deadline = time.monotonic() + timeout
        last_error = None
        while time.monotonic() < deadline:
            try:
                value = await self.eval(expression, timeout=max(1.0, deadline - time.monotonic()))
                if value:
                    return value
            except CDPError as e:
                last_error = e
            await asyncio.sleep(interval)
        raise TimeoutError(f"timed out waiting for {expression!r}" + (f" (last error: {last_error})"
                                                                      if last_error else ""))

    async def navigate(self, url: str, timeout: float = 60) -> None:
        loaded = self.wait_event("Page.loadEventFired")
        await self.call("Page.navigate", {"url": url})
        await asyncio.wait_for(loaded, timeout)

    async def screenshot(self, path: str, fmt: str = "png", clip: dict | None = None) -> bytes:
        params: dict[str, Any] = {"format": fmt}
        if clip:
            params["clip"] = {**clip, "scale": clip.get("scale", 1)}
        data = base64.b64decode((await self.call("Page.captureScreenshot", params))["data"])
        with open(path, "wb") as f:
            f.write(data)
        return data

    async def close(self) -> None:
        self._reader.cancel()
        await self.ws.close()


class Browser:
    """A headless Chromium process with a fresh profile; ``async with Browser.launch() as b``."""

    def __init__(self, binary: str, width: int = 1600, height: int = 1000) -> None:
        self.binary, self.width, self.height = binary, width, height
        self.profile = tempfile.mkdtemp(prefix="cdp-profile-")
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None
        self.session: aiohttp.ClientSession | None = None
        self.pages: list[Page] = []

    @classmethod
    def launch(cls, binary: str | None = None, **kw: Any) -> Browser:
        binary = binary or find_chromium()
        if binary is None:
            raise FileNotFoundError("chromium not found")
        return cls(binary, **kw)

    async def __aenter__(self) -> Browser:
        args = [self.binary, *CHROMIUM_FLAGS, f"--user-data-dir={self.profile}", "--remote-debugging-port=0",
                "--remote-debugging-address=127.0.0.1", f"--window-size={self.width},{self.height}", "about:blank"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        port_file = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chromium exited with status {self.proc.returncode}")
            try:
                with open(port_file) as f:
                    self.port = int(f.readline().strip())
                break
            except (OSError, ValueError):
                await asyncio.sleep(0.1)
        if self.port is None:
            await self.close()
            raise TimeoutError("chromium did not open its DevTools port")
        self.session = aiohttp.ClientSession()
        return self

    async def page(self) -> Page:
        assert self.session is not None
        async with self.session.get(f"http://127.0.0.1:{self.port}/json/list") as r:
            targets = await r.json()
        target = next(t for t in targets if t.get("type") == "page")
        ws = await self.session.ws_connect(target["webSocketDebuggerUrl"], max_msg_size=0)
        page = Page(ws)
        self.pages.append(page)
        for domain in ("Page", "Runtime", "Network", "Log"):
            await page.call(f"{domain}.enable")
        await page.call("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                               "deviceScaleFactor": 1, "mobile": False})
        return page

    async def close(self) -> None:
        for p in self.pages:
            try:
                await p.close()
            except Exception:  # noqa: BLE001
                pass
        if self.session is not None:
            await self.session.close()
        if self.proc is not None and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)  # its own session: only the processes it started
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        shutil.rmtree(self.profile, ignore_errors=True)

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()
