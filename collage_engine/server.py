"""A ComfyUI-compatible HTTP/WebSocket server over an :class:`~collage_engine.Engine` (it knows nothing about GANs).

It serves a static web root (e.g. the official editor from the ``comfyui-frontend-package`` wheel) and the subset of
ComfyUI's server API that the editor and ComfyUI API clients use, every route with and without the ``/api``
prefix::

    GET  /object_info, /object_info/{node}   node schemas from the registry
    POST /prompt        queue an API-format workflow: {"prompt", "client_id", "prompt_id", "extra_data",
                        "front", "number", "partial_execution_targets"} -> {"prompt_id", "number", "node_errors"};
                        400 with ComfyUI's {"error", "node_errors"} when it is malformed or invalid
    GET  /prompt        {"exec_info": {"queue_remaining"}}
    GET  /queue, POST /queue ({"clear"}, {"delete": [ids]})
    GET  /history[/{id}], POST /history ({"clear"}, {"delete"})   (capped at ``max_history`` entries)
    GET  /jobs, /jobs/{id}; POST /jobs/{id}/cancel, /jobs/cancel
    POST /interrupt     stop the running prompt (optionally only if it is {"prompt_id": ...}); 200 when idle too
    GET  /view          a file of the output, input or temp folder (confined: no traversal, no symlink escapes)
    POST /upload/image  multipart upload into the input (or temp/output) folder, size-limited
    GET/POST /settings[/{id}], GET /users, GET/POST/DELETE /userdata/{file}, POST /userdata/{file}/move/{dest},
    GET /userdata?dir=, GET /v2/userdata      settings and saved workflows in the user folder
    GET  /system_stats, /features, /extensions, /embeddings, /models[/{folder}], /experiment/models, /i18n,
         /node_replacements, /global_subgraphs, /workflow_templates[/{module}/{file}]   what the editor asks
         for at start (``templates`` folders are offered in its template browser)
    GET  /ws            WebSocket: status, execution_start, execution_cached, executing, progress, executed,
                        execution_error, execution_interrupted, execution_success, feature_flags

One worker thread runs the queue on one engine, so its cache is shared by all prompts and re-runs are incremental.
Engine events are forwarded to the client that queued the prompt (to every client when it gave no ``client_id``).
Nothing a client sends can crash the server: every handler answers errors as JSON.

Usage::

    server = PromptServer(engine_factory=lambda: Engine(registry), web_root=".../static", base_dir="work")
    server.run("127.0.0.1", 8188)                 # blocking; or: with BackgroundServer(server) as bg: bg.url

Needs ``aiohttp`` (``pip install "aiohttp>=3.9,<4"``); ``collage_engine`` itself never imports this module.
"""

from __future__ import annotations

import asyncio
import copy
import heapq
import itertools
import json
import logging
import math
import mimetypes
import os
import re
import shutil
import sys
import tempfile
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aiohttp import WSMsgType, web

from .executor import Engine, public_ui
from .registry import NodeRegistry

__all__ = ["PromptServer", "BackgroundServer", "safe_join", "PathRefused", "QueueItem"]

log = logging.getLogger(__name__)

FOLDER_TYPES = ("output", "input", "temp")
UPLOAD_CHUNK = 1 << 16
_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_INLINE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/gif", "image/bmp", "image/avif",
                 "video/mp4", "video/webm", "audio/mpeg", "audio/wav", "audio/x-wav", "audio/ogg", "audio/flac",
                 "application/json", "text/plain"}


# ------------------------------------------------------------------------------------------------- paths
class PathRefused(ValueError):
    """A client-supplied path that would leave its folder (``..``, absolute, drive, NUL, symlink escape)."""


def _check_part(part: Any, what: str) -> str:
    if not isinstance(part, str):
        raise PathRefused(f"{what} must be a string")
    if "\x00" in part or len(part) > 1024:
        raise PathRefused(f"{what} is not a valid name")
    if part.startswith(("/", "\\")) or os.path.isabs(part) or re.match(r"^[A-Za-z]:", part):
        raise PathRefused(f"{what} must be relative")
    if any(seg == ".." for seg in re.split(r"[\\/]", part)):
        raise PathRefused(f"{what} must not contain '..'")
    return part.replace("\\", "/")


def safe_join(base: str, *parts: Any) -> str:
    """``base/part/...`` when it stays inside ``base`` once symlinks are resolved, else :class:`PathRefused`.

    Parts must be relative, without ``..`` segments or NUL; the resolved path must lie under the resolved base
    (so a symlink inside the folder that points outside it is refused too).
    """
    rel = [_check_part(p, "path") for p in parts if p not in (None, "")]
    real_base = os.path.realpath(base)
    path = os.path.realpath(os.path.join(real_base, *rel))
    if path != real_base and os.path.commonpath([real_base, path]) != real_base:
        raise PathRefused("path leaves its folder")
    return path


def _plain_name(name: Any, what: str = "filename") -> str:
    """A file name without any folder part."""
    name = _check_part(name, what)
    if not name or "/" in name or name in (".", ".."):
        raise PathRefused(f"{what} must be a plain file name")
    return name


# ------------------------------------------------------------------------------------------------- json
def _finite(obj: Any) -> Any:
    """``obj`` with non-finite floats replaced by None and unknown objects by their str (JSON for browsers)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    return str(obj)


def dumps(obj: Any) -> str:
    try:
        return json.dumps(obj, allow_nan=False)
    except (TypeError, ValueError):
        return json.dumps(_finite(obj), allow_nan=False)


def _json(obj: Any, status: int = 200, headers: dict | None = None) -> web.Response:
    return web.Response(text=dumps(obj), status=status, content_type="application/json", headers=headers)


def _error(status: int, etype: str, message: str, details: str = "", node_errors: dict | None = None) -> web.Response:
    """ComfyUI's error body: ``{"error": {type, message, details, extra_info}, "node_errors": {...}}``."""
    return _json({"error": {"type": etype, "message": message, "details": details, "extra_info": {}},
                  "node_errors": node_errors or {}}, status)


# ------------------------------------------------------------------------------------------------- queue
@dataclass(order=False)
class QueueItem:
    """One queued prompt (ComfyUI's ``(number, prompt_id, prompt, extra_data, outputs_to_execute)``)."""

    number: float
    prompt_id: str
    prompt: dict
    extra_data: dict
    targets: list[str]
    client_id: str | None = None
    seq: int = 0

    def as_tuple(self) -> list:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.targets]


@dataclass
class _Running:
    item: QueueItem
    outputs: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    recorded: bool = False
    started: float = 0.0


class PromptServer:
    """The server: routes, the prompt queue, one worker thread and the WebSocket fan-out.

    ``engine_factory`` (a callable returning an :class:`Engine`) or ``registry`` (then a plain ``Engine`` is
    made) gives the engine; ``web_root`` is a folder of static files served at ``/`` (None: a small page
    listing the API). Folders: ``base_dir`` holds ``output/``, ``input/``, ``temp/`` and ``user/`` unless given
    one by one. ``prepare_prompt(prompt, server) -> prompt`` may rewrite each queued API prompt (e.g. point
    savers at :attr:`output_dir`); ``system_info()`` adds to ``/system_stats`` (``{"system": {...},
    "devices": [...]}``). Uploads and request bodies are limited to ``max_upload_bytes``; at most
    ``max_queue`` prompts wait and ``max_history`` finished ones are kept.
    """

    def __init__(self, engine_factory: Callable[[], Engine] | None = None, *, registry: NodeRegistry | None = None,
                 web_root: str | None = None, base_dir: str = ".", output_dir: str | None = None,
                 input_dir: str | None = None, temp_dir: str | None = None, user_dir: str | None = None,
                 prepare_prompt: Callable[[dict, PromptServer], dict] | None = None,
                 system_info: Callable[[], dict] | None = None, max_upload_bytes: int = 50 << 20,
                 max_queue: int = 1000, max_history: int = 200, name: str = "collage_engine",
                 version: str = "0.0.0", features: dict | None = None,
                 default_settings: dict | None = None, templates: dict[str, str] | None = None) -> None:
        if engine_factory is None and registry is None:
            raise ValueError("give engine_factory or registry")
        self.engine: Engine = engine_factory() if engine_factory is not None else Engine(registry)  # type: ignore
        self.registry = self.engine.registry
        self.web_root = os.path.abspath(web_root) if web_root else None
        base = os.path.abspath(base_dir)
        self.output_dir = os.path.abspath(output_dir or os.path.join(base, "output"))
        self.input_dir = os.path.abspath(input_dir or os.path.join(base, "input"))
        self.temp_dir = os.path.abspath(temp_dir or os.path.join(base, "temp"))
        self.user_dir = os.path.abspath(user_dir or os.path.join(base, "user"))
        for d in (self.output_dir, self.input_dir, self.temp_dir, self.user_dir):
            os.makedirs(d, exist_ok=True)
        self.prepare_prompt = prepare_prompt
        self.default_settings = dict(default_settings or {})
        self.templates = {k: os.path.abspath(v) for k, v in (templates or {}).items()}
        for sub in ("workflows", "subgraphs"):  # the editor lists these at start
            os.makedirs(os.path.join(self.user_root(), sub), exist_ok=True)
        self.system_info = system_info
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_queue = int(max_queue)
        self.max_history = int(max_history)
        self.name, self.version = name, version
        self.features = {"supports_preview_metadata": False, "max_upload_size": self.max_upload_bytes,
                         **(features or {})}
        # queue state (guarded by _cond)
        self._cond = threading.Condition()
        self._pending: list[tuple[float, int, QueueItem]] = []
        self._running: _Running | None = None
        self._history: OrderedDict[str, dict] = OrderedDict()
        self._known_ids: set[str] = set()
        self._seq = itertools.count()
        self.number = 0
        self._interrupt_target: str | None = None
        self._stopping = False
        self._worker: threading.Thread | None = None
        # websocket state (event loop only)
        self._sockets: dict[str, web.WebSocketResponse] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._outbox: asyncio.Queue | None = None
        self._sender: asyncio.Task | None = None
        self.engine.add_listener(self._on_event)
        self.app = self._make_app()

    # -- folders ----------------------------------------------------------------------------------------------
    def folder(self, kind: str | None) -> str:
        """The folder of an upload/view ``type`` (output, input, temp); ``PathRefused`` for others."""
        kind = kind or "output"
        if kind == "output":
            return self.output_dir
        if kind == "input":
            return self.input_dir
        if kind == "temp":
            return self.temp_dir
        raise PathRefused(f"type must be one of {', '.join(FOLDER_TYPES)}")

    def user_root(self, request: web.Request | None = None) -> str:
        """The (single) user's data folder: ``user/default``."""
        path = os.path.join(self.user_dir, "default")
        os.makedirs(path, exist_ok=True)
        return path

    # -- the app ------------------------------------------------------------------------------------------------
    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_upload_bytes + (1 << 20),
                              middlewares=[self._guard_middleware])
        routes = web.RouteTableDef()
        get, post, delete = routes.get, routes.post, routes.delete

        get("/ws")(self._ws)
        get("/object_info")(self._object_info)
        get("/object_info/{node_class}")(self._object_info_node)
        get("/prompt")(self._get_prompt)
        post("/prompt")(self._post_prompt)
        get("/queue")(self._get_queue)
        post("/queue")(self._post_queue)
        get("/history")(self._get_history)
        get("/history/{prompt_id}")(self._get_history_item)
        post("/history")(self._post_history)
        get("/jobs")(self._get_jobs)
        get("/jobs/{job_id}")(self._get_job)
        post("/jobs/cancel")(self._cancel_jobs)
        post("/jobs/{job_id}/cancel")(self._cancel_job)
        post("/interrupt")(self._interrupt)
        post("/free")(self._free)
        get("/view")(self._view)
        post("/upload/image")(self._upload_image)
        get("/system_stats")(self._system_stats)
        get("/features")(self._features)
        get("/extensions")(self._const([]))
        get("/embeddings")(self._const([]))
        get("/models")(self._const([]))
        get("/models/{folder}")(self._const([]))
        get("/experiment/models")(self._const([]))
        get("/experiment/models/{folder}")(self._const([]))
        get("/i18n")(self._const({}))
        get("/node_replacements")(self._const({}))
        get("/global_subgraphs")(self._const({}))
        get("/workflow_templates")(self._workflow_templates)
        get("/workflow_templates/{module}/{file}")(self._workflow_template_file)
        get("/settings")(self._get_settings)
        get("/settings/{id}")(self._get_setting)
        post("/settings")(self._post_settings)
        post("/settings/{id}")(self._post_setting)
        get("/users")(self._get_users)
        post("/users")(self._post_users)
        get("/user")(self._get_users)
        get("/userdata")(self._list_userdata)
        get("/v2/userdata")(self._list_userdata_v2)
        get("/userdata/{file}")(self._get_userdata)
        post("/userdata/{file}")(self._post_userdata)
        delete("/userdata/{file}")(self._delete_userdata)
        post("/userdata/{file}/move/{dest}")(self._move_userdata)

        api = web.RouteTableDef()
        for r in routes:
            api.route(r.method, "/api" + r.path)(r.handler)  # type: ignore[attr-defined]
        app.add_routes(api)
        app.add_routes(routes)
        app.router.add_get("/", self._index)
        app.router.add_get("/templates/index.json", self._const([]))  # no workflow-templates package
        app.router.add_get("/templates/index_logo.json", self._const({}))
        app.router.add_get("/user.css", self._user_css)
        app.router.add_get("/api/userdata/user.css", self._user_css)
        if self.web_root and os.path.isdir(self.web_root):
            app.router.add_static("/", self.web_root, follow_symlinks=False)
        app.on_startup.append(self._on_startup)
        app.on_shutdown.append(self._on_shutdown)
        app.on_cleanup.append(self._on_cleanup)
        return app

    @staticmethod
    def _const(value: Any) -> Callable:
        async def handler(request: web.Request) -> web.Response:
            return _json(value)
        return handler

    @web.middleware
    async def _guard_middleware(self, request: web.Request, handler: Callable) -> web.StreamResponse:
        """Refuse cross-origin writes and DNS-rebinding hosts while bound to loopback; answer errors as JSON."""
        if self._loopback_only:
            host = (request.host or "").rsplit(":", 1)[0].strip("[]").lower()
            if host and not _is_loopback_name(host):
                return _error(403, "forbidden", f"host {request.host!r} refused: the server only answers loopback "
                                                "names (localhost, 127.0.0.1, [::1])")
        origin = request.headers.get("Origin")
        if origin and (request.method not in ("GET", "HEAD", "OPTIONS") or request.path.rstrip("/").endswith("/ws")):
            o = urlsplit(origin)
            if o.netloc.lower() != (request.host or "").lower():
                return _error(403, "forbidden", "cross-origin request refused", f"origin {origin!r}")
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            if e.status >= 400 and e.content_type != "application/json" and request.path.startswith("/api/"):
                return _error(e.status, "http_error", e.reason or "error", e.text or "")
            raise
        except PathRefused as e:
            return _error(400, "invalid_path", str(e))
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - never let a request take the server down
            log.exception("request %s %s failed", request.method, request.path)
            return _error(500, "server_error", f"{type(e).__name__}: {e}")
        if request.path in ("/", "/index.html"):
            resp.headers.setdefault("Cache-Control", "no-cache")
        return resp

    _loopback_only = True

    # -- start and stop ------------------------------------------------------------------------------------------
    async def _on_startup(self, app: web.Application) -> None:
        self._loop = asyncio.get_running_loop()
        self._outbox = asyncio.Queue()
        self._sender = self._loop.create_task(self._send_loop())
        self.start_worker()

    async def _on_shutdown(self, app: web.Application) -> None:
        for ws in list(self._sockets.values()):
            await ws.close(code=1001, message=b"server shutdown")
        self._sockets.clear()

    async def _on_cleanup(self, app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.stop_worker)
        if self._sender is not None:
            self._sender.cancel()
            try:
                await self._sender
            except (asyncio.CancelledError, Exception):  # noqa: BLE001
                pass
            self._sender = None

    def start_worker(self) -> None:
        with self._cond:
            if self._worker is not None and self._worker.is_alive():
                return
            self._stopping = False
        self._worker = threading.Thread(target=self._work, name="prompt-worker", daemon=True)
        self._worker.start()

    def stop_worker(self, timeout: float = 30.0) -> None:
        """Stop the worker: the running prompt is interrupted, pending prompts stay queued."""
        with self._cond:
            self._stopping = True
            if self._running is not None:
                self.engine.interrupt()
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None

    def run(self, host: str = "127.0.0.1", port: int = 8188,
            print_fn: Callable[[str], None] | None = print) -> None:
        """Serve on ``host:port`` until interrupted (Ctrl-C); loopback names only unless ``host`` is not one."""
        self._loopback_only = _is_loopback_name(host)
        shown = f"[{host}]" if ":" in host else host

        def announce(_msg: str) -> None:
            if print_fn is not None:
                print_fn(f"serving on http://{shown}:{port}  (Ctrl-C to stop)")

        web.run_app(self.app, host=host, port=port, access_log=None, shutdown_timeout=5.0, print=announce)

    # -- queue ---------------------------------------------------------------------------------------------------
    def queue_remaining(self) -> int:
        with self._cond:
            return len(self._pending) + (1 if self._running is not None else 0)

    def status(self) -> dict:
        return {"exec_info": {"queue_remaining": self.queue_remaining()}}

    def enqueue(self, prompt: dict, *, client_id: str | None = None, prompt_id: str | None = None,
                extra_data: dict | None = None, targets: Iterable[str] = (), front: bool = False,
                number: float | None = None) -> QueueItem:
        """Put an (already validated) prompt on the queue; ``OverflowError`` when it is full, ``KeyError`` when
        ``prompt_id`` is in use."""
        with self._cond:
            if len(self._pending) >= self.max_queue:
                raise OverflowError(f"the queue is full ({self.max_queue} prompts waiting)")
            prompt_id = prompt_id or str(uuid.uuid4())
            if prompt_id in self._known_ids:
                raise KeyError(prompt_id)
            if number is None:
                number = -self.number if front else self.number
                self.number += 1
            item = QueueItem(float(number) if not float(number).is_integer() else int(number), prompt_id, prompt,
                             extra_data or {}, list(targets), client_id, next(self._seq))
            heapq.heappush(self._pending, (item.number, item.seq, item))
            self._known_ids.add(prompt_id)
            self._cond.notify_all()
        self.post("status", {"status": self.status()})
        return item

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                item = heapq.heappop(self._pending)[2]
                self._running = _Running(item, started=time.time())
            self.post("status", {"status": self.status()})
            try:
                self._execute(item)
            except Exception:  # noqa: BLE001 - the worker must survive anything
                log.exception("prompt %s failed outside the engine", item.prompt_id)
                with self._cond:
                    run = self._running
                if run is not None and not run.recorded:
                    err = {"prompt_id": item.prompt_id, "node_id": "", "node_type": "", "executed": [],
                           "exception_type": "ServerError", "exception_message": "the server failed to run it",
                           "traceback": traceback.format_exc().splitlines(), "current_inputs": {},
                           "current_outputs": {}, "timestamp": _now_ms()}
                    self._finish(run, "execution_error", err)
            finally:
                with self._cond:
                    self._running = None
                    if self._interrupt_target == item.prompt_id:
                        self._interrupt_target = None
                self.post("status", {"status": self.status()})

    def _execute(self, item: QueueItem) -> None:
        extra = dict(item.extra_data.get("extra_pnginfo") or {})
        res = self.engine.run(item.prompt, item.targets or None, prompt_id=item.prompt_id, extra=extra)
        with self._cond:
            run = self._running
        if run is None or run.recorded:
            return
        # No terminal event came from the engine: the prompt became invalid between queueing and running.
        if res.status == "invalid":
            errors = res.errors or {}
            top = errors.get("error") or {}
            nid = next(iter(errors.get("node_errors") or {}), "")
            entry = (errors.get("node_errors") or {}).get(nid, {})
            msg = "; ".join(e.get("message", "") for e in entry.get("errors", [])) or top.get("message", "invalid")
            err = {"prompt_id": item.prompt_id, "node_id": str(nid), "node_type": str(entry.get("class_type", "")),
                   "executed": [], "exception_type": "ValidationError", "exception_message": msg,
                   "traceback": [], "current_inputs": {}, "current_outputs": {}, "timestamp": _now_ms(),
                   "node_errors": errors.get("node_errors") or {}}
            self._finish(run, "execution_error", err)
            self.post("executing", {"node": None, "prompt_id": item.prompt_id}, item.client_id)
        else:
            self._finish(run, "execution_" + ("success" if res.ok else "error"), {"prompt_id": item.prompt_id,
                                                                              "timestamp": _now_ms()})

    def _on_event(self, event: str, data: dict) -> None:
        """Engine listener (worker thread): record, then forward to the prompt's client."""
        with self._cond:
            run = self._running
            target = self._interrupt_target
        if run is None or data.get("prompt_id") != run.item.prompt_id:
            return
        item = run.item
        if event == "execution_start":
            if target == item.prompt_id:  # an interrupt that came before the engine cleared its flag
                self.engine.interrupt()
            run.messages.append([event, dict(data)])
        elif event == "execution_cached":
            run.messages.append([event, dict(data)])
        elif event == "executed":
            data = {**data, "output": public_ui(data.get("output"))}
            run.outputs[str(data.get("node"))] = data["output"]
        elif event == "execution_error":
            data = {"current_inputs": {}, "current_outputs": {}, **data}
            data["node_id"] = "" if data.get("node_id") is None else str(data["node_id"])
            data["node_type"] = str(data.get("node_type") or "")
            data["exception_message"] = str(data.get("exception_message") or "")
            data["exception_type"] = str(data.get("exception_type") or "")
            data["traceback"] = [str(t) for t in data.get("traceback") or []]
            self._finish(run, event, data)
            return
        elif event in ("execution_success", "execution_interrupted"):
            data = {**data, "timestamp": data.get("timestamp", _now_ms())}
            self._finish(run, event, data)
            return
        self.post(event, data, item.client_id)

    def _finish(self, run: _Running, event: str, data: dict) -> None:
        """Record the finished prompt in the history, then tell its client (so history is there first)."""
        if run.recorded:
            return
        run.recorded = True
        run.messages.append([event, data])
        item = run.item
        ok = event == "execution_success"
        entry = {"prompt": item.as_tuple(), "outputs": run.outputs,
                 "status": {"status_str": "success" if ok else "error", "completed": ok, "messages": run.messages},
                 "meta": {nid: {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
                          for nid in run.outputs}}
        with self._cond:
            self._history[item.prompt_id] = entry
            while len(self._history) > self.max_history:
                old, _ = self._history.popitem(last=False)
                self._known_ids.discard(old)
        self.post(event, data, item.client_id)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Interrupt the running prompt (only if it is ``prompt_id``, when given); False if nothing was running."""
        with self._cond:
            run = self._running
            if run is None or (prompt_id and run.item.prompt_id != prompt_id):
                return False
            self._interrupt_target = run.item.prompt_id
            self.engine.interrupt()
            return True

    def delete_pending(self, prompt_id: str) -> bool:
        with self._cond:
            for i, (_, _, item) in enumerate(self._pending):
                if item.prompt_id == prompt_id:
                    self._pending.pop(i)
                    heapq.heapify(self._pending)
                    self._known_ids.discard(prompt_id)
                    break
            else:
                return False
        self.post("status", {"status": self.status()})
        return True

    def clear_pending(self) -> int:
        with self._cond:
            n = len(self._pending)
            for _, _, item in self._pending:
                self._known_ids.discard(item.prompt_id)
            self._pending.clear()
        self.post("status", {"status": self.status()})
        return n

    def history(self) -> OrderedDict:
        with self._cond:
            return OrderedDict(self._history)

    def snapshot(self) -> tuple[list[QueueItem], list[QueueItem]]:
        """``(running, pending)`` queue items, pending in execution order."""
        with self._cond:
            running = [self._running.item] if self._running is not None else []
            pending = [it for _, _, it in sorted(self._pending, key=lambda t: (t[0], t[1]))]
        return running, pending

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
            text = dumps({"type": event, "data": data})
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

    # -- nodes and prompts ---------------------------------------------------------------------------------------
    async def _object_info(self, request: web.Request) -> web.Response:
        info = await asyncio.get_running_loop().run_in_executor(None, self.registry.object_info)
        return _json(info)

    async def _object_info_node(self, request: web.Request) -> web.Response:
        cls = self.registry.get(request.match_info["node_class"])
        if cls is None:
            return _json({})
        info = await asyncio.get_running_loop().run_in_executor(None, cls.object_info)
        return _json({cls.name: info})

    async def _get_prompt(self, request: web.Request) -> web.Response:
        return _json(self.status())

    async def _post_prompt(self, request: web.Request) -> web.Response:
        body = await _read_json_object(request, "invalid_prompt", "Invalid prompt",
                                       "the request body must be a JSON object")
        if isinstance(body, web.Response):
            return body
        prompt = body.get("prompt")
        if prompt is None:
            return _error(400, "no_prompt", "No prompt provided", "No prompt provided")
        if not isinstance(prompt, dict):
            return _error(400, "invalid_prompt", "Invalid prompt", "'prompt' must be an object of nodes")
        prompt_id = body.get("prompt_id")
        if prompt_id is not None and not (isinstance(prompt_id, str) and _ID_RE.match(prompt_id)):
            return _error(400, "invalid_prompt_id", "prompt_id must be a valid UUID",
                          "a UUID in lowercase hyphenated form; omit it to let the server make one")
        client_id = body.get("client_id")
        client_id = client_id if isinstance(client_id, str) and client_id else None
        extra_data = body.get("extra_data")
        extra_data = dict(extra_data) if isinstance(extra_data, dict) else {}
        if not isinstance(extra_data.get("extra_pnginfo", {}), dict):
            extra_data.pop("extra_pnginfo")
        targets = body.get("partial_execution_targets")
        ids_ok = isinstance(targets, list) and all(isinstance(t, (str, int)) and not isinstance(t, bool)
                                                   for t in targets)
        if targets is not None and not ids_ok:
            return _error(400, "invalid_prompt", "Invalid prompt", "partial_execution_targets must be a list of ids")
        targets = [str(t) for t in targets] if targets else []
        number = body.get("number")
        if number is not None and (isinstance(number, bool) or not isinstance(number, (int, float))
                                   or not math.isfinite(number)):
            return _error(400, "invalid_prompt", "Invalid prompt", "'number' must be a finite number")
        try:
            prompt = copy.deepcopy(prompt)
            if self.prepare_prompt is not None:
                prompt = self.prepare_prompt(prompt, self)
        except RecursionError:
            return _error(400, "invalid_prompt", "Invalid prompt", "the prompt is nested too deeply")
        except Exception as e:  # noqa: BLE001
            return _error(400, "invalid_prompt", "Invalid prompt", f"{type(e).__name__}: {e}")
        v = await asyncio.get_running_loop().run_in_executor(None, self.engine.validate, prompt, targets or None)
        if not v.ok:
            errors = v.to_dict()
            return _json({"error": errors.get("error") or {"type": "prompt_outputs_failed_validation",
                                                           "message": "Prompt outputs failed validation",
                                                           "details": "", "extra_info": {}},
                          "node_errors": errors.get("node_errors") or {}}, 400)
        if client_id:
            extra_data["client_id"] = client_id
        extra_data["create_time"] = _now_ms()
        try:
            item = self.enqueue(v.prompt if isinstance(v.prompt, dict) else prompt, client_id=client_id,
                                prompt_id=prompt_id, extra_data=extra_data, targets=targets or v.targets,
                                front=bool(body.get("front")), number=number)
        except OverflowError as e:
            return _error(503, "queue_full", "The queue is full", str(e))
        except KeyError:
            return _error(400, "invalid_prompt_id", "prompt_id is already in use", str(prompt_id))
        return _json({"prompt_id": item.prompt_id, "number": item.number, "node_errors": {}})

    async def _get_queue(self, request: web.Request) -> web.Response:
        running, pending = self.snapshot()
        return _json({"queue_running": [_strip_item(i) for i in running],
                      "queue_pending": [_strip_item(i) for i in pending]})

    async def _post_queue(self, request: web.Request) -> web.Response:
        body = await _read_json_object(request, "invalid_request", "expected {\"clear\": true} or {\"delete\": [ids]}")
        if isinstance(body, web.Response):
            return body
        if body.get("clear"):
            self.clear_pending()
        ids = body.get("delete")
        if ids is not None:
            if not isinstance(ids, list):
                return _error(400, "invalid_request", "'delete' must be a list of prompt ids")
            for pid in ids:
                if isinstance(pid, str):
                    self.delete_pending(pid)
        return web.Response(status=200)

    async def _get_history(self, request: web.Request) -> web.Response:
        hist = self.history()
        try:
            max_items = int(request.query["max_items"]) if "max_items" in request.query else None
            offset = int(request.query.get("offset", -1))
        except ValueError:
            return _error(400, "invalid_request", "max_items and offset must be integers")
        items = list(hist.items())
        if offset >= 0:
            items = items[offset:]
        if max_items is not None:
            items = items[-max_items:] if max_items > 0 else []
        return _json({k: _public_history(v) for k, v in items})

    async def _get_history_item(self, request: web.Request) -> web.Response:
        pid = request.match_info["prompt_id"]
        entry = self.history().get(pid)
        return _json({pid: _public_history(entry)} if entry is not None else {})

    async def _post_history(self, request: web.Request) -> web.Response:
        body = await _read_json_object(request, "invalid_request", "expected {\"clear\": true} or {\"delete\": [ids]}")
        if isinstance(body, web.Response):
            return body
        with self._cond:
            if body.get("clear"):
                for pid in self._history:
                    self._known_ids.discard(pid)
                self._history.clear()
            ids = body.get("delete")
            if isinstance(ids, list):
                for pid in ids:
                    if isinstance(pid, str) and self._history.pop(pid, None) is not None:
                        self._known_ids.discard(pid)
        return web.Response(status=200)

    # -- jobs ------------------------------------------------------------------------------------------------------
    def _jobs(self) -> list[dict]:
        running, pending = self.snapshot()
        jobs = [_queue_job(i, "in_progress") for i in running] + [_queue_job(i, "pending") for i in pending]
        jobs += [_history_job(pid, e) for pid, e in self.history().items()]
        return jobs

    async def _get_jobs(self, request: web.Request) -> web.Response:
        q = request.query
        statuses = [s.strip().lower() for s in q.get("status", "").split(",") if s.strip()]
        bad = [s for s in statuses if s not in JOB_STATUSES]
        if bad:
            return _json({"error": f"invalid status value(s): {', '.join(bad)}; valid: {', '.join(JOB_STATUSES)}"},
                         400)
        sort_by = q.get("sort_by", "created_at").lower()
        if sort_by not in ("created_at", "create_time", "execution_duration", "execution_time"):
            return _json({"error": "sort_by must be 'created_at' or 'execution_duration'"}, 400)
        order = q.get("sort_order", "desc").lower()
        if order not in ("asc", "desc"):
            return _json({"error": "sort_order must be 'asc' or 'desc'"}, 400)
        try:
            limit = int(q["limit"]) if "limit" in q else None
            offset = max(0, int(q.get("offset", 0)))
        except ValueError:
            return _json({"error": "limit and offset must be integers"}, 400)
        if limit is not None and limit <= 0:
            return _json({"error": "limit must be a positive integer"}, 400)
        jobs = [j for j in self._jobs() if not statuses or j["status"] in statuses]
        wid = q.get("workflow_id")
        if wid:
            jobs = [j for j in jobs if j.get("workflow_id") == wid]
        if sort_by.startswith("execution"):
            def key(j: dict) -> tuple:
                s, e = j.get("execution_start_time"), j.get("execution_end_time")
                return ((e - s) if s is not None and e is not None else -1, j["create_time"])
        else:
            def key(j: dict) -> tuple:
                return (j["create_time"], j.get("priority", 0))
        jobs.sort(key=key, reverse=order == "desc")
        total = len(jobs)
        page = jobs[offset:offset + limit] if limit is not None else jobs[offset:]
        return _json({"jobs": page, "pagination": {"offset": offset, "limit": limit if limit is not None else total,
                                                   "total": total, "has_more": offset + len(page) < total}})

    async def _get_job(self, request: web.Request) -> web.Response:
        jid = request.match_info["job_id"]
        running, pending = self.snapshot()
        for status, items in (("in_progress", running), ("pending", pending)):
            for it in items:
                if it.prompt_id == jid:
                    job = _queue_job(it, status)
                    job["workflow"] = {"prompt": it.prompt, "extra_data": it.extra_data}
                    return _json(job)
        entry = self.history().get(jid)
        if entry is None:
            return _json({"error": "Job not found"}, 404)
        return _json(_history_job(jid, entry, full=True))

    def cancel(self, job_id: str) -> bool:
        """Cancel a job: interrupt it if running, drop it if pending; False for finished or unknown ids."""
        return self.interrupt(job_id) or self.delete_pending(job_id)

    async def _cancel_job(self, request: web.Request) -> web.Response:
        return _json({"cancelled": self.cancel(request.match_info["job_id"])})

    async def _cancel_jobs(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        if isinstance(body, web.Response):
            return body
        ids = body.get("job_ids") if isinstance(body, dict) else None
        if not isinstance(ids, list):
            return _json({"error": "job_ids must be a list"}, 400)
        bad = [i if isinstance(i, str) else repr(i) for i in ids if not (isinstance(i, str) and _ID_RE.match(i))]
        if bad:
            return _json({"error": "job_ids contains invalid id(s)", "invalid_ids": bad}, 400)
        cancelled = False
        for jid in ids:
            cancelled = self.cancel(jid) or cancelled
        return _json({"cancelled": cancelled})

    async def _interrupt(self, request: web.Request) -> web.Response:
        prompt_id = None
        if request.can_read_body:
            try:
                body = json.loads(await request.text() or "{}")
            except ValueError:
                body = {}
            if isinstance(body, dict) and isinstance(body.get("prompt_id"), str):
                prompt_id = body["prompt_id"]
        self.interrupt(prompt_id)
        return web.Response(status=200)

    async def _free(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        if isinstance(body, dict) and (body.get("free_memory") or body.get("unload_models")):
            with self._cond:  # only between prompts: the cache belongs to the worker while it runs
                clear = getattr(self.engine.cache, "clear", None)
                if self._running is None and callable(clear):
                    clear()
        return web.Response(status=200)

    # -- files ----------------------------------------------------------------------------------------------------
    async def _view(self, request: web.Request) -> web.StreamResponse:
        q = request.query
        try:
            filename = _plain_name(q.get("filename", ""))
            base = self.folder(q.get("type"))
            path = safe_join(base, q.get("subfolder", ""), filename)
        except PathRefused as e:
            return _error(400, "invalid_path", "file refused", str(e))
        if not os.path.isfile(path):
            return _error(404, "not_found", "file not found", filename)
        ctype = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        headers = {"X-Content-Type-Options": "nosniff", "Cache-Control": "no-cache"}
        if ctype in _INLINE_TYPES:
            headers["Content-Disposition"] = f'inline; filename="{_header_name(filename)}"'
        else:
            ctype = "application/octet-stream"
            headers["Content-Disposition"] = f'attachment; filename="{_header_name(filename)}"'
        headers["Content-Type"] = ctype
        return web.FileResponse(path, headers=headers)

    async def _upload_image(self, request: web.Request) -> web.Response:
        limit = self.max_upload_bytes
        if request.content_length is not None and request.content_length > limit + (1 << 16):
            return _error(413, "too_large", "upload too large", f"at most {limit} bytes")
        try:
            reader = await request.multipart()
        except (AssertionError, ValueError, KeyError):
            return _error(400, "invalid_request", "expected a multipart/form-data upload with an 'image' file")
        fields: dict[str, str] = {}
        tmp_path, orig_name, size = None, None, 0
        tmp_dir = self.temp_dir
        try:
            while True:
                part = await reader.next()
                if part is None:
                    break
                name = getattr(part, "name", None)
                if name == "image" and getattr(part, "filename", None) is not None and tmp_path is None:
                    orig_name = part.filename
                    fd, tmp_path = tempfile.mkstemp(prefix=".upload-", dir=tmp_dir)
                    with os.fdopen(fd, "wb") as f:
                        while True:
                            chunk = await part.read_chunk(UPLOAD_CHUNK)
                            if not chunk:
                                break
                            size += len(chunk)
                            if size > limit:
                                return _error(413, "too_large", "upload too large", f"at most {limit} bytes")
                            f.write(chunk)
                elif name in ("overwrite", "type", "subfolder", "original_ref"):
                    value = await part.read(decode=True)
                    if len(value) > 4096:
                        return _error(400, "invalid_request", f"field {name!r} too long")
                    fields[name] = value.decode("utf-8", "replace")
                else:
                    await part.release()
            if tmp_path is None:
                return _error(400, "invalid_request", "no 'image' file in the upload")
            try:
                filename = _plain_name(os.path.basename((orig_name or "").replace("\\", "/")) or "", "file name")
                if filename.startswith("."):
                    raise PathRefused("file name must not start with '.'")
                kind = fields.get("type") or "input"
                base = self.folder(kind)
                subfolder = fields.get("subfolder", "")
                folder = safe_join(base, subfolder)
            except PathRefused as e:
                return _error(400, "invalid_path", "upload refused", str(e))
            os.makedirs(folder, exist_ok=True)
            folder = safe_join(base, subfolder)  # again, now that it exists (symlinks)
            overwrite = fields.get("overwrite", "").lower() in ("true", "1")
            target = os.path.join(folder, filename)
            if not overwrite:
                stem, ext = os.path.splitext(filename)
                n = 1
                while os.path.lexists(target):
                    if os.path.isfile(target) and _same_content(target, tmp_path):
                        break
                    filename = f"{stem} ({n}){ext}"
                    target = os.path.join(folder, filename)
                    n += 1
            elif os.path.islink(target):
                return _error(400, "invalid_path", "upload refused", "the target is a symbolic link")
            shutil.move(tmp_path, target)
            tmp_path = None
            rel_sub = os.path.relpath(folder, os.path.realpath(base)).replace(os.sep, "/")
            return _json({"name": filename, "subfolder": "" if rel_sub == "." else rel_sub, "type": kind})
        finally:
            if tmp_path is not None:
                try:
                    os.unlink(tmp_path)
                except OSError:
                    pass

    # -- system ---------------------------------------------------------------------------------------------------
    async def _system_stats(self, request: web.Request) -> web.Response:
        total, free = _ram()
        # "--disable-api-nodes" (ComfyUI's flag): this server has no cloud API nodes, and the editor then makes no
        # calls to comfy.org (release notes, pricing) on its own.
        system = {"os": sys.platform, "python_version": sys.version, "embedded_python": False,
                  "comfyui_version": self.version, "pytorch_version": "",
                  "argv": list(sys.argv) + ["--disable-api-nodes"],
                  "ram_total": total, "ram_free": free, "deploy_environment": self.name}
        devices = [{"name": "cpu", "type": "cpu", "index": None, "vram_total": 0, "vram_free": 0,
                    "torch_vram_total": 0, "torch_vram_free": 0}]
        if self.system_info is not None:
            try:
                extra = await asyncio.get_running_loop().run_in_executor(None, self.system_info) or {}
                system.update(extra.get("system", {}))
                devices = extra.get("devices", devices)
            except Exception:  # noqa: BLE001
                log.exception("system_info failed")
        return _json({"system": system, "devices": devices})

    async def _features(self, request: web.Request) -> web.Response:
        return _json(self.features)

    async def _index(self, request: web.Request) -> web.StreamResponse:
        if self.web_root and os.path.isfile(os.path.join(self.web_root, "index.html")):
            return web.FileResponse(os.path.join(self.web_root, "index.html"),
                                    headers={"Cache-Control": "no-cache"})
        return web.Response(text=f"<!doctype html><title>{self.name}</title><p>{self.name} {self.version}: "
                                 "no editor installed; the API answers under /api/ (object_info, prompt, ws).",
                            content_type="text/html")

    async def _workflow_templates(self, request: web.Request) -> web.Response:
        """``{module: [template names]}``: the ``*.json`` workflows of each ``templates`` folder."""
        return _json({m: sorted(f[:-5] for f in os.listdir(d) if f.endswith(".json"))
                      for m, d in self.templates.items() if os.path.isdir(d)})

    async def _workflow_template_file(self, request: web.Request) -> web.StreamResponse:
        folder = self.templates.get(request.match_info["module"])
        if folder is None:
            return _error(404, "not_found", "no such template module")
        try:
            path = safe_join(folder, _plain_name(request.match_info["file"]))
        except PathRefused as e:
            return _error(400, "invalid_path", "file refused", str(e))
        if not os.path.isfile(path):
            return _error(404, "not_found", "no such template file")
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return web.FileResponse(path, headers={"Content-Type": ctype, "X-Content-Type-Options": "nosniff"})

    async def _user_css(self, request: web.Request) -> web.StreamResponse:
        """The user's ``user.css`` (user folder), else an empty style sheet (index.html always asks for it)."""
        path = os.path.join(self.user_root(), "user.css")
        if os.path.isfile(path):
            return web.FileResponse(path, headers={"Content-Type": "text/css"})
        return web.Response(text="", content_type="text/css")

    # -- settings and user data --------------------------------------------------------------------------------
    def _settings_path(self) -> str:
        return os.path.join(self.user_root(), "comfy.settings.json")

    def _load_settings(self) -> dict:
        """The saved settings; ``default_settings`` until the user saved any."""
        try:
            with open(self._settings_path(), encoding="utf-8") as f:
                data = json.load(f)
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return dict(self.default_settings)
        except (OSError, ValueError):
            return {}

    def _save_settings(self, settings: dict) -> None:
        _atomic_write(self._settings_path(), json.dumps(settings, indent=2).encode())

    async def _get_settings(self, request: web.Request) -> web.Response:
        return _json(self._load_settings())

    async def _get_setting(self, request: web.Request) -> web.Response:
        return _json(self._load_settings().get(request.match_info["id"]))

    async def _post_settings(self, request: web.Request) -> web.Response:
        body = await _read_json_object(request, "invalid_request", "settings must be a JSON object")
        if isinstance(body, web.Response):
            return body
        with self._cond:
            self._save_settings({**self._load_settings(), **body})
        return web.Response(status=200)

    async def _post_setting(self, request: web.Request) -> web.Response:
        body = await _read_json(request)
        if isinstance(body, web.Response):
            return body
        with self._cond:
            settings = self._load_settings()
            settings[request.match_info["id"]] = body
            self._save_settings(settings)
        return web.Response(status=200)

    async def _get_users(self, request: web.Request) -> web.Response:
        return _json({"storage": "server", "migrated": True})

    async def _post_users(self, request: web.Request) -> web.Response:
        return _error(400, "invalid_request", "this server has a single user (default)")

    def _user_file(self, rel: str) -> str:
        rel = _check_part(rel, "file")
        if not rel or rel.endswith("/"):
            raise PathRefused("file must name a file")
        return safe_join(self.user_root(), rel)

    async def _list_userdata(self, request: web.Request) -> web.Response:
        directory = request.query.get("dir", "")
        if not directory:
            return web.Response(status=400, text="Directory not provided")
        try:
            root = safe_join(self.user_root(), directory)
        except PathRefused:
            return web.Response(status=403, text="Invalid directory")
        if not os.path.isdir(root):
            return web.Response(status=404, text="Directory not found")
        recurse = request.query.get("recurse", "").lower() == "true"
        full = request.query.get("full_info", "").lower() == "true"
        split = request.query.get("split", "").lower() == "true"
        out: list[Any] = []
        for path in _walk_files(root, recurse):
            rel = os.path.relpath(path, root).replace(os.sep, "/")
            if full:
                out.append(_file_info(path, root))
            elif split:
                out.append([rel] + rel.split("/"))
            else:
                out.append(rel)
        return _json(out)

    async def _list_userdata_v2(self, request: web.Request) -> web.Response:
        rel = request.query.get("path", "")
        user = self.user_root()
        try:
            root = safe_join(user, rel)
        except PathRefused:
            return web.Response(status=400, text="Invalid path requested")
        if not os.path.exists(root):
            return web.Response(status=404, text="Requested path not found")
        if not os.path.isdir(root):
            return web.Response(status=400, text="Requested path is not a directory")
        out = []
        for entry in sorted(os.scandir(root), key=lambda e: e.name):
            p = os.path.relpath(entry.path, user).replace(os.sep, "/")
            if entry.is_dir(follow_symlinks=False):
                out.append({"name": entry.name, "path": p, "type": "directory"})
            elif entry.is_file(follow_symlinks=False):
                st = entry.stat()
                out.append({"name": entry.name, "path": p, "type": "file", "size": st.st_size,
                            "modified": st.st_mtime})
        return _json(out)

    async def _get_userdata(self, request: web.Request) -> web.StreamResponse:
        try:
            path = self._user_file(request.match_info["file"])
        except PathRefused as e:
            return web.Response(status=403 if "leaves" in str(e) else 400, text=str(e))
        if not os.path.isfile(path):
            return web.Response(status=404, text="not found")
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return web.FileResponse(path, headers={"Content-Type": ctype, "X-Content-Type-Options": "nosniff",
                                               "Cache-Control": "no-cache"})

    async def _post_userdata(self, request: web.Request) -> web.Response:
        try:
            path = self._user_file(request.match_info["file"])
        except PathRefused as e:
            return web.Response(status=403 if "leaves" in str(e) else 400, text=str(e))
        overwrite = request.query.get("overwrite", "true") != "false"
        full = request.query.get("full_info", "false").lower() == "true"
        if not overwrite and os.path.exists(path):
            return web.Response(status=409, text="File already exists")
        body = await request.read()
        os.makedirs(os.path.dirname(path), exist_ok=True)
        path = self._user_file(request.match_info["file"])  # again, now that the folder exists
        _atomic_write(path, body)
        user = os.path.realpath(self.user_root())
        return _json(_file_info(path, user) if full else os.path.relpath(path, user).replace(os.sep, "/"))

    async def _delete_userdata(self, request: web.Request) -> web.Response:
        try:
            path = self._user_file(request.match_info["file"])
        except PathRefused as e:
            return web.Response(status=403 if "leaves" in str(e) else 400, text=str(e))
        if not os.path.isfile(path):
            return web.Response(status=404, text="not found")
        os.unlink(path)
        return web.Response(status=204)

    async def _move_userdata(self, request: web.Request) -> web.Response:
        try:
            src = self._user_file(request.match_info["file"])
            dest = self._user_file(request.match_info["dest"])
        except PathRefused as e:
            return web.Response(status=403 if "leaves" in str(e) else 400, text=str(e))
        if not os.path.isfile(src):
            return web.Response(status=404, text="not found")
        overwrite = request.query.get("overwrite", "true") != "false"
        if not overwrite and os.path.exists(dest):
            return web.Response(status=409, text="File already exists")
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.replace(src, dest)
        user = os.path.realpath(self.user_root())
        full = request.query.get("full_info", "false").lower() == "true"
        return _json(_file_info(dest, user) if full else os.path.relpath(dest, user).replace(os.sep, "/"))


# ------------------------------------------------------------------------------------------------- helpers
JOB_STATUSES = ("pending", "in_progress", "completed", "failed", "cancelled")


def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_loopback_name(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ("localhost", "::1", "0:0:0:0:0:0:0:1") or host.endswith(".localhost"):
        return True
    return bool(re.match(r"^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$", host))


async def _read_json(request: web.Request) -> Any:
    """The request's JSON body, or a 400 response (bad JSON) / 413 (too large)."""
    try:
        text = await request.text()
    except web.HTTPRequestEntityTooLarge:
        return _error(413, "too_large", "request body too large")
    except UnicodeDecodeError:
        return _error(400, "invalid_json", "Invalid JSON", "the body is not UTF-8 text")
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except RecursionError:
        return _error(400, "invalid_json", "Invalid JSON", "nested too deeply")
    except ValueError as e:
        return _error(400, "invalid_json", "Invalid JSON", str(e))

async def _read_json_object(request: web.Request, etype: str, message: str, details: str = "") -> Any:
    """The request's JSON body if it is an object; otherwise the 400/413 response to send (``etype``, ``message``,
    ``details`` describe a body that parsed but is not an object)."""
    body = await _read_json(request)
    if isinstance(body, web.Response) or isinstance(body, dict):
        return body
    return _error(400, etype, message, details)


def _strip_item(item: QueueItem) -> list:
    return item.as_tuple()


def _public_history(entry: dict | None) -> dict | None:
    if entry is None:
        return None
    return {**entry, "outputs": {k: public_ui(v) for k, v in entry.get("outputs", {}).items()}}


def _queue_job(item: QueueItem, status: str) -> dict:
    job = {"id": item.prompt_id, "status": status, "priority": item.number,
           "create_time": item.extra_data.get("create_time", 0), "outputs_count": 0,
           "previewable_outputs_count": 0}
    wid = _workflow_id(item.extra_data)
    if wid:
        job["workflow_id"] = wid
    return job


def _workflow_id(extra: dict) -> str | None:
    wf = (extra.get("extra_pnginfo") or {}).get("workflow") if isinstance(extra, dict) else None
    wid = wf.get("id") if isinstance(wf, dict) else None
    return wid if isinstance(wid, str) else None


_PREVIEWABLE = ("images", "video", "audio", "3d", "text")


def _history_job(pid: str, entry: dict, full: bool = False) -> dict:
    number, _, prompt, extra, _targets = entry["prompt"]
    status = entry.get("status") or {}
    start = end = err = None
    interrupted = False
    for ev, data in status.get("messages", []):
        if not isinstance(data, dict):
            continue
        if ev == "execution_start":
            start = data.get("timestamp")
        elif ev in ("execution_success", "execution_error", "execution_interrupted"):
            end = data.get("timestamp")
            if ev == "execution_error":
                err = data
            if ev == "execution_interrupted":
                interrupted = True
    outputs = entry.get("outputs") or {}
    count, previewable, preview = 0, 0, None
    for nid, ui in outputs.items():
        if not isinstance(ui, dict):
            continue
        for media, items in ui.items():
            if not isinstance(items, list):
                continue
            for it in items:
                if not isinstance(it, dict):
                    continue
                count += 1
                if media in _PREVIEWABLE:
                    previewable += 1
                    if preview is None or (preview.get("type") != "output" and it.get("type") == "output"):
                        preview = {**{k: v for k, v in it.items() if k != "path"}, "nodeId": str(nid),
                                   "mediaType": media}
    job: dict[str, Any] = {"id": pid, "status": "completed" if status.get("status_str") == "success" else (
        "cancelled" if interrupted else "failed"), "priority": number, "create_time": extra.get("create_time", 0),
        "outputs_count": count, "previewable_outputs_count": previewable}
    for k, v in (("execution_start_time", start), ("execution_end_time", end), ("execution_error", err),
                 ("preview_output", preview), ("workflow_id", _workflow_id(extra))):
        if v is not None:
            job[k] = v
    if full:
        job["outputs"] = {k: public_ui(v) for k, v in outputs.items()}
        job["execution_status"] = status
        job["workflow"] = {"prompt": prompt, "extra_data": extra}
    return job


def _header_name(name: str) -> str:
    return re.sub(r'[^A-Za-z0-9._ ()-]', "_", name)


def _same_content(a: str, b: str) -> bool:
    try:
        if os.path.getsize(a) != os.path.getsize(b):
            return False
        with open(a, "rb") as fa, open(b, "rb") as fb:
            while True:
                x, y = fa.read(1 << 16), fb.read(1 << 16)
                if x != y:
                    return False
                if not x:
                    return True
    except OSError:
        return False


def _atomic_write(path: str, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _walk_files(root: str, recurse: bool) -> list[str]:
    out = []
    if recurse:
        for dirpath, dirnames, filenames in os.walk(root):  # does not follow symlinked folders
            dirnames.sort()
            out += [os.path.join(dirpath, f) for f in sorted(filenames)
                    if os.path.isfile(os.path.join(dirpath, f))]
    else:
        out = [e.path for e in sorted(os.scandir(root), key=lambda e: e.name) if e.is_file()]
    return out


def _file_info(path: str, root: str) -> dict:
    st = os.stat(path)
    return {"path": os.path.relpath(path, root).replace(os.sep, "/"), "size": st.st_size,
            "modified": int(st.st_mtime * 1000), "created": int(st.st_ctime * 1000)}


def _ram() -> tuple[int, int]:
    """Total and available memory in bytes (0, 0 where unknown)."""
    try:
        with open("/proc/meminfo") as f:
            info = {line.split(":")[0]: int(line.split()[1]) * 1024 for line in f if len(line.split()) >= 2}
        return info.get("MemTotal", 0), info.get("MemAvailable", info.get("MemFree", 0))
    except (OSError, ValueError):
        pass
    try:
        pages, size = os.sysconf("SC_PHYS_PAGES"), os.sysconf("SC_PAGE_SIZE")
        return pages * size, 0
    except (ValueError, OSError, AttributeError):
        return 0, 0


# ------------------------------------------------------------------------------------------------- background
class BackgroundServer:
    """Run a :class:`PromptServer` on its own event-loop thread (tests, notebooks)::

        with BackgroundServer(server, port=0) as bg:      # port 0: a free port
            requests.get(bg.url + "/api/object_info")
    """

    def __init__(self, server: PromptServer, host: str = "127.0.0.1", port: int = 0) -> None:
        self.server, self.host, self.port = server, host, port
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self.server._loopback_only = _is_loopback_name(self.host)
        self._thread = threading.Thread(target=self._main, name="prompt-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("server did not start")
        if self._error is not None:
            raise RuntimeError(f"server failed to start: {self._error}") from self._error
        return self

    def _main(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._runner = web.AppRunner(self.server.app, access_log=None, shutdown_timeout=2.0)
            loop.run_until_complete(self._runner.setup())
            site = web.TCPSite(self._runner, self.host, self.port)
            loop.run_until_complete(site.start())
            sock = site._server.sockets[0]  # type: ignore[union-attr]
            self.port = sock.getsockname()[1]
        except BaseException as e:  # noqa: BLE001
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(self._runner.cleanup())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    def stop(self, timeout: float = 30.0) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
