"""The WebSocket side of the server: the ``/ws`` endpoint and the fan-out of events to clients.

:class:`EventsMixin` is a part of :class:`~collage_engine.server.PromptServer`. :meth:`~EventsMixin.post` may be
called from any thread (the worker calls it for engine events); the send loop (started with the app) delivers to
the client that queued the prompt, or to every client when it gave no ``client_id``.
"""

from __future__ import annotations

import asyncio
import json
import threading
import uuid
from typing import Any

from aiohttp import WSMsgType, web

from .protocol import _now_ms, dumps, log


class EventsMixin:
    """WebSocket clients, the outbox and its send loop of :class:`~collage_engine.server.PromptServer`."""

    features: dict
    _cond: threading.Condition
    _sockets: dict[str, web.WebSocketResponse]
    _loop: asyncio.AbstractEventLoop | None
    _outbox: asyncio.Queue | None
    redact: Any  # a protocol.Redactor

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
            text = self.redact.body(dumps({"type": event, "data": data}).encode()).decode()  # no server paths
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

    async def _ws(self, request: web.Request) -> web.WebSocketResponse:
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
            with self._cond:
                run = self._running
            if run is not None and run.item.client_id == sid:
                await ws.send_str(dumps({"type": "execution_start", "data": {"prompt_id": run.item.prompt_id,
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
