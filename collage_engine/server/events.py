"""The WebSocket side of the server: the ``/ws`` endpoint and the fan-out of events to clients.

:class:`EventHub` is one part of :class:`~collage_engine.server.PromptServer`, usable alone: :meth:`~EventHub.post`
may be called from any thread (the queue calls it for engine events); the send loop (started with the app)
delivers to the client that queued the prompt, or to every client when it gave no ``client_id``, with the server's
paths taken out (``redact``).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable
from typing import Any

from aiohttp import WSMsgType, web

from .protocol import _now_ms, dumps, log


class EventHub:
    """WebSocket clients, the outbox and its send loop. ``status()`` is what a new client is told first;
    ``running()`` the queue item that runs now (its client also gets ``execution_start`` on connecting);
    ``features`` answers a client's ``feature_flags``; ``redact(bytes) -> bytes`` cleans every message."""

    def __init__(self, status: Callable[[], dict], running: Callable[[], Any], features: dict,
                 redact: Callable[[bytes], bytes] = lambda b: b) -> None:
        self.status, self.running, self.features, self.redact = status, running, features, redact
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: asyncio.Queue | None = None
        self._sender: asyncio.Task | None = None

    async def start(self) -> None:
        """Start the send loop on the running event loop."""
        self._loop = asyncio.get_running_loop()
        self._outbox = asyncio.Queue()
        self._sender = self._loop.create_task(self._send_loop())

    async def close_clients(self) -> None:
        for ws in list(self._sockets.values()):
            await ws.close(code=1001, message=b"server shutdown")
        self._sockets.clear()

    async def stop(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            try:
                await self._sender
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._sender = None

    # -- websocket ------------------------------------------------------------------------------------------------
    def post(self, event: str, data: Any, sid: str | None = None) -> None:
        """Send ``{"type": event, "data": data}`` to client ``sid`` (all clients if None); any thread."""
        loop, box = self._loop, self._outbox
        if loop is None or box is None or loop.is_closed():
            return
        try:
            loop.call_soon_threadsafe(box.put_nowait, (event, data, sid))
        except RuntimeError:  # loop closed while shutting down
            pass

    async def _send_loop(self) -> None:
        assert self._outbox is not None
        while True:
            event, data, sid = await self._outbox.get()
            if sid is not None and sid not in self._sockets:
                continue
            targets = [(sid, self._sockets[sid])] if sid is not None else list(self._sockets.items())
            if not targets:
                continue
            text = self.redact(dumps({"type": event, "data": data}).encode()).decode()  # no server paths
            for key, ws in targets:
                try:
                    await asyncio.wait_for(ws.send_str(text), 10)
                except (asyncio.TimeoutError, ConnectionError, RuntimeError, OSError) as e:
                    log.info("dropping websocket client %s: %s", key, e)
                    if self._sockets.get(key) is ws:
                        del self._sockets[key]
                    try:
                        await ws.close()
                    except Exception:  # noqa: BLE001
                        pass

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        """The ``/ws`` route."""
        ws = web.WebSocketResponse(heartbeat=30, max_msg_size=1 << 20)
        await ws.prepare(request)
        sid = request.query.get("clientId", "")
        if not sid or len(sid) > 128:
            sid = uuid.uuid4().hex
        old = self._sockets.pop(sid, None)
        if old is not None and old is not ws:
            await old.close()
        self._sockets[sid] = ws
        try:
            await ws.send_str(dumps({"type": "status", "data": {"status": self.status(), "sid": sid}}))
            item = self.running()
            if item is not None and item.client_id == sid:
                await ws.send_str(dumps({"type": "execution_start", "data": {"prompt_id": item.prompt_id,
                                                                            "timestamp": _now_ms()}}))
            first = True
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        body = json.loads(msg.data)
                    except ValueError:
                        continue
                    if first and isinstance(body, dict) and body.get("type") == "feature_flags":
                        await ws.send_str(dumps({"type": "feature_flags", "data": self.features}))
                    first = False
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            if self._sockets.get(sid) is ws:
                del self._sockets[sid]
        return ws
