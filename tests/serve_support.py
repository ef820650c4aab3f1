"""Helpers of the server tests: a PromptServer on a free loopback port in a background thread, raw HTTP, and a
WebSocket client that collects the messages of one client id. Import only after ``pytest.importorskip("aiohttp")``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import time
import uuid
from typing import Any

import aiohttp

from collage_engine.server import BackgroundServer, PromptServer


def raw(url: str, method: str, path: str, body: bytes | str | None = None,
        headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request with the path sent exactly as given (no client-side normalisation of '..' or %-escapes)."""
    host, port = url.split("//", 1)[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True,
                        skip_host=any(k.lower() == "host" for k in (headers or {})))
        data = body.encode() if isinstance(body, str) else body
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if data is not None:
            conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def get_json(url: str, path: str) -> tuple[int, Any]:
    status, _, body = raw(url, "GET", path)
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, body.decode("utf-8", "replace")


def post_json(url: str, path: str, obj: Any) -> tuple[int, Any]:
    status, _, body = raw(url, "POST", path, json.dumps(obj), {"Content-Type": "application/json"})
    try:
        return status, json.loads(body) if body else None
    except ValueError:
        return status, body.decode("utf-8", "replace")


class Client:
    """An editor-like client: a websocket with its client id, and prompt submission (async)."""

    def __init__(self, url: str, client_id: str | None = None) -> None:
        self.url, self.client_id = url, client_id or uuid.uuid4().hex
        self.messages: list[dict] = []
        self.session: aiohttp.ClientSession | None = None
        self.ws: aiohttp.ClientWebSocketResponse | None = None
        self._reader: asyncio.Task | None = None
        self._changed = asyncio.Event()

    async def __aenter__(self) -> Client:
        self.session = aiohttp.ClientSession()
        self.ws = await self.session.ws_connect(f"{self.url}/ws?clientId={self.client_id}")
        self._reader = asyncio.get_running_loop().create_task(self._read())
        await self.wait_for(lambda m: m["type"] == "status")
        return self

    async def _read(self) -> None:
        assert self.ws is not None
        async for msg in self.ws:
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.messages.append(json.loads(msg.data))
                self._changed.set()

    async def wait_for(self, pred: Any, timeout: float = 30.0) -> dict:
        """The first collected message for which ``pred(message)`` is true (waiting for it)."""
        deadline = time.monotonic() + timeout
        while True:
            for m in self.messages:
                if pred(m):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no such message; got {[m['type'] for m in self.messages]}")
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), left)
            except asyncio.TimeoutError:
                pass

    async def done(self, prompt_id: str, timeout: float = 60.0) -> dict:
        """The terminal message (success, error or interrupted) of a prompt."""
        return await self.wait_for(lambda m: m["type"] in ("execution_success", "execution_error",
                                                          "execution_interrupted")
                                   and m["data"].get("prompt_id") == prompt_id, timeout)

    def of(self, prompt_id: str, kind: str | None = None) -> list[dict]:
        return [m for m in self.messages if isinstance(m.get("data"), dict) and m["data"].get("prompt_id") == prompt_id
                and (kind is None or m["type"] == kind)]

    async def queue(self, prompt: dict, **extra: Any) -> tuple[int, dict]:
        assert self.session is not None
        async with self.session.post(f"{self.url}/api/prompt", json={"prompt": prompt, "client_id": self.client_id,
                                                                     **extra}) as r:
            return r.status, await r.json()

    async def __aexit__(self, *exc: Any) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            self._reader.cancel()
            try:
                await self._reader
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
        if self.session is not None:
            await self.session.close()


async def post_form(url: str, path: str, form: aiohttp.FormData) -> tuple[int, Any]:
    """POST a multipart form; ``(status, JSON body or text)``."""
    async with aiohttp.ClientSession() as s:
        async with s.post(url + path, data=form) as r:
            try:
                return r.status, await r.json()
            except (aiohttp.ContentTypeError, ValueError):
                return r.status, await r.text()


def start(server: PromptServer) -> BackgroundServer:
    return BackgroundServer(server, "127.0.0.1", 0).start()


def rss_bytes() -> int:
    """Resident memory of this process (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0
