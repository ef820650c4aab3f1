"""The :class:`PromptServer` that composes the parts of the server, its route table, middleware, start and stop,
and :class:`BackgroundServer` (the server on its own event-loop thread).

The parts, each usable and testable alone: :class:`~collage_engine.server.queue.PromptQueue` (queue, history, the
queue's thread) with its runner (:mod:`~collage_engine.server.worker`: a supervised worker process or a thread) and
store (:class:`~collage_engine.server.store.PromptStore`), :class:`~collage_engine.server.events.EventHub`
(WebSocket fan-out), :class:`~collage_engine.server.lock.FolderLock` (one server per folder) and
:class:`~collage_engine.server.protocol.Redactor` (no server paths out). The route handlers are two mixins over
them: :class:`~collage_engine.server.prompts.PromptRoutes` (the prompt API) and
:class:`~collage_engine.server.files.FilesMixin` (file, settings and user-data routes).
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import threading
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from ..executor import Engine
from ..registry import NodeRegistry
from .events import EventHub
from .files import FilesMixin
from .lock import FolderLock
from .prompts import PromptRoutes
from .protocol import PathRefused, Redactor, _error, _is_loopback_name, _json, _refusal, log
from .queue import PromptQueue
from .store import PromptStore
from .worker import ProcessRunner, ThreadRunner


class PromptServer(PromptRoutes, FilesMixin):
    """The server: its configuration and routes over three parts, :attr:`queue` (a
    :class:`~collage_engine.server.queue.PromptQueue` with its runner and store), :attr:`events` (an
    :class:`~collage_engine.server.events.EventHub`) and the file routes.

    ``engine_factory`` (a callable returning an :class:`Engine`) or ``registry`` (then a plain ``Engine`` is
    made) gives the engine; ``web_root`` is a folder of static files served at ``/`` (None: a small page
    listing the API). Folders: ``base_dir`` holds ``output/``, ``input/``, ``temp/`` and ``user/`` unless given
    one by one. ``extensions`` maps a pack name to a folder of editor extensions (ComfyUI's ``WEB_DIRECTORY``):
    ``/extensions`` lists its ``.js`` files and ``/extensions/NAME/...`` serves the folder; ``routes`` adds
    ``(method, path, handler)`` routes (answered with and without ``/api``, as ComfyUI's custom routes).
    ``python_module`` is what ``/object_info`` reports as every node's module (default: its class's module).
    ComfyUI reports ``custom_nodes.<folder>`` for a pack's nodes, and the editor takes the pack's name from it:
    for the node's badge and for its help page, ``/extensions/<pack>/docs/<NODE>.md`` (after
    ``/extensions/<pack>/docs/<NODE>/<locale>.md``), which the ``extensions`` folder of that name then serves.
    ``prepare_prompt(prompt, server) -> prompt`` may rewrite each queued API prompt (e.g. point
    savers at :attr:`output_dir`); ``system_info()`` adds to ``/system_stats`` (``{"system": {...},
    "devices": [...]}``). Uploads and request bodies are limited to ``max_upload_bytes``; at most
    ``max_queue`` prompts wait and ``max_history`` finished ones are kept. With ``durable`` (the default) the
    history and the queue live in ``user/prompts.sqlite3`` too (:mod:`~collage_engine.server.store`): a server
    started again on the same folders shows the old history, runs the prompts that were waiting and records the
    one that was running as failed; partial uploads left by a killed server are removed at start; a damaged database
    is set aside (kept, named in :attr:`notices`) and a fresh one started.

    ``worker`` (a picklable engine factory: a module-level function or a ``functools.partial`` of one) runs prompts
    in a supervised worker process (:class:`~collage_engine.server.worker.ProcessRunner`: killed above
    ``worker_memory_limit`` resident bytes, or ``worker_kill_after`` seconds after an interrupt it did not obey,
    and replaced; the prompt it ran fails with a message naming the node). Without it prompts run in a thread of
    this process. ``lock``: hold ``base_dir/serve.lock`` (:class:`~collage_engine.server.lock.FolderLock`) so a
    second server on the folder refuses to start (:class:`~collage_engine.server.lock.FolderBusy`).
    """

    def __init__(self, engine_factory: Callable[[], Engine] | None = None, *, registry: NodeRegistry | None = None,
                 web_root: str | None = None, base_dir: str = ".", output_dir: str | None = None,
                 input_dir: str | None = None, temp_dir: str | None = None, user_dir: str | None = None,
                 prepare_prompt: Callable[[dict, PromptServer], dict] | None = None,
                 system_info: Callable[[], dict] | None = None, max_upload_bytes: int = 50 << 20,
                 max_queue: int = 1000, max_history: int = 10_000, name: str = "collage_engine",
                 version: str = "0.0.0", features: dict | None = None,
                 default_settings: dict | None = None, templates: dict[str, str] | None = None,
                 durable: bool = True, allowed_hosts: Iterable[str] = (),
                 extensions: dict[str, str] | None = None,
                 path_choices: Callable[[str], list[str]] | None = None,
                 routes: Iterable[tuple[str, str, Callable]] = (), python_module: str | None = None,
                 worker: Callable[[], Engine] | None = None, worker_memory_limit: int | None = None,
                 worker_kill_after: float = 5.0, lock: bool = False) -> None:
        if engine_factory is None and registry is None:
            raise ValueError("give engine_factory or registry")
        base = os.path.abspath(base_dir)
        self.lock = FolderLock(base) if lock else None  # before anything else touches the folder
        if self.lock is not None:
            self.lock.acquire()  # FolderBusy names the server that has it
        self.engine: Engine = engine_factory() if engine_factory is not None else Engine(registry)  # type: ignore
        self.registry = self.engine.registry
        self.web_root = os.path.abspath(web_root) if web_root else None
        self.output_dir = os.path.abspath(output_dir or os.path.join(base, "output"))
        self.input_dir = os.path.abspath(input_dir or os.path.join(base, "input"))
        self.temp_dir = os.path.abspath(temp_dir or os.path.join(base, "temp"))
        self.user_dir = os.path.abspath(user_dir or os.path.join(base, "user"))
        for d in (self.output_dir, self.input_dir, self.temp_dir, self.user_dir):
            os.makedirs(d, exist_ok=True)
        self.prepare_prompt = prepare_prompt
        self.allowed_hosts = {h.strip("[]").lower() for h in allowed_hosts}
        self.default_settings = dict(default_settings or {})
        self.templates = {k: os.path.abspath(v) for k, v in (templates or {}).items()}
        self.extensions = {k: os.path.abspath(v) for k, v in (extensions or {}).items()}
        self.path_choices = path_choices  # kind -> the names a path_kind input offers as a dropdown (still typed)
        self.extra_routes = list(routes)
        self.python_module = python_module
        for sub in ("workflows", "subgraphs"):  # the editor lists these at start
            os.makedirs(os.path.join(self.user_root(), sub), exist_ok=True)
        self.system_info = system_info
        self.max_upload_bytes = int(max_upload_bytes)
        self.max_queue = int(max_queue)
        self.max_history = int(max_history)
        self.name, self.version = name, version
        self.features = {"supports_preview_metadata": False, "max_upload_size": self.max_upload_bytes,
                         **(features or {})}
        self._settings_lock = threading.Lock()
        self.redact = Redactor({"output": self.output_dir, "input": self.input_dir, "temp": self.temp_dir,
                                "user": self.user_dir, "<data folder>": base})
        # the parts: the event hub (websocket), the store (history and queue on disk), the queue and its runner
        self.events = EventHub(lambda: self.queue.status(), lambda: self.queue.running_item(), self.features,
                               self.redact.body)
        store: PromptStore | None = None
        self.notices: list[str] = []  # what the server had to do at start that its user should hear of
        if durable:
            store, moved = PromptStore.open_or_set_aside(os.path.join(self.user_dir, "prompts.sqlite3"))
            if moved:
                self.notices.append(f"the history database was damaged: kept as {os.path.basename(moved)} in the "
                                    "user folder; a new, empty history was started")

        def make_runner(on_event):  # where prompts run: a supervised worker process, else this process's thread
            if worker is not None:
                return ProcessRunner(worker, on_event, memory_limit=worker_memory_limit, kill_after=worker_kill_after)
            return ThreadRunner(self.engine, on_event)
        self.queue = PromptQueue(make_runner, store=store, max_queue=max_queue, max_history=max_history,
                                 post=self.events.post)
        self.runner = self.queue.runner
        self.swept = _sweep_orphans(self.temp_dir, self.user_dir)  # what a killed server left in temp/
        self.app = self._make_app()

    # -- the app ------------------------------------------------------------------------------------------------
    def _make_app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_upload_bytes + (1 << 20),
                              middlewares=[self._guard_middleware])
        routes = web.RouteTableDef()
        get, post, delete = routes.get, routes.post, routes.delete

        get("/ws")(self.events.handle)
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
        post("/upload/mask")(self._upload_mask)
        get("/system_stats")(self._system_stats)
        get("/features")(self._features)
        get("/extensions")(self._list_extensions)
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

        for method, path, handler in self.extra_routes:
            routes.route(method, path)(handler)

        api = web.RouteTableDef()
        for r in routes:
            api.route(r.method, "/api" + r.path)(r.handler)  # type: ignore[attr-defined]
        app.add_routes(api)
        app.add_routes(routes)
        app.router.add_get("/", self._index)
        app.router.add_get("/templates/index.json", self._const([]))  # no workflow-templates package
        app.router.add_get("/templates/index_logo.json", self._const({}))
        app.router.add_get("/user.css", self._user_css)
        for name in self.extensions:  # before the editor's static files (which have an extensions/ folder too)
            app.router.add_get(f"/extensions/{name}/{{path:.+}}", self._extension_files(name))
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
        host = _host_name(request.host or "")
        if host and not _is_loopback_name(host):
            if self._loopback_only:
                return _error(403, "forbidden", f"host {request.host!r} refused: the server only answers loopback "
                                                "names (localhost, 127.0.0.1, [::1])")
            if host not in self._host_names():
                return _error(403, "forbidden", f"host {request.host!r} refused: not a name of this server (start "
                                                "it with --allowed-host NAME to accept it)")
        origin = request.headers.get("Origin")
        if origin and (request.method not in ("GET", "HEAD", "OPTIONS") or request.path.rstrip("/").endswith("/ws")):
            o = urlsplit(origin)
            if o.netloc.lower() != (request.host or "").lower():
                return _error(403, "forbidden", "cross-origin request refused", f"origin {origin!r}")
        route = request.match_info.route
        if request.path.startswith("/api/") and isinstance(getattr(route, "resource", None), web.StaticResource):
            return _error(404, "http_error", "Not Found", f"no API route {request.path}")  # not a web-root file
        try:
            resp = await handler(request)
        except web.HTTPException as e:
            if e.status >= 400 and e.content_type != "application/json" and request.path.startswith("/api/"):
                return _error(e.status, "http_error", e.reason or "error", e.text or "")
            raise
        except PathRefused as e:  # routes let refusals of client paths through: answered with their own status
            return _refusal(e)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - never let a request take the server down
            log.exception("request %s %s failed", request.method, request.path)
            return _error(500, "server_error", f"{type(e).__name__}: {e}")
        if request.path in ("/", "/index.html"):
            resp.headers.setdefault("Cache-Control", "no-cache")
        if isinstance(resp, web.Response) and resp.content_type == "application/json" and \
                isinstance(resp.body, bytes):
            resp.body = self.redact.body(resp.body)  # no server path in any answer
        return resp

    _loopback_only = True
    _bound_host: str | None = None
    _names: set[str] | None = None

    def _host_names(self) -> set[str]:
        """Host names a client may use when the server listens beyond loopback: ``allowed_hosts``, the address it is
        bound to and this machine's own names and addresses (a DNS-rebinding page uses some other name)."""
        if self._names is None:
            names = set(self.allowed_hosts)
            if self._bound_host and self._bound_host not in ("0.0.0.0", "::", ""):
                names.add(self._bound_host.strip("[]").lower())
            try:
                hostname = socket.gethostname()
                names.update({hostname.lower(), socket.getfqdn().lower()})
                names.update(str(a[4][0]).lower() for a in socket.getaddrinfo(hostname, None))
            except OSError:
                pass
            self._names = names
        return self._names

    def close(self) -> None:
        """Stop the queue's runner, close the durable store and release the folder (the server is not used after
        this)."""
        self.queue.stop()
        self.queue.close()
        if self.lock is not None:
            self.lock.release()

    # -- the parts' calls that embedders and the route modules use ---------------------------------------------
    def start_worker(self) -> None:
        self.queue.start()

    def stop_worker(self, timeout: float = 30.0) -> None:
        self.queue.stop(timeout)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        return self.queue.interrupt(prompt_id)

    def post(self, event: str, data: Any, sid: str | None = None) -> None:
        self.events.post(event, data, sid)

    # -- start and stop ------------------------------------------------------------------------------------------
    async def _on_startup(self, app: web.Application) -> None:
        await self.events.start()
        self.queue.start()

    async def _on_shutdown(self, app: web.Application) -> None:
        await self.events.close_clients()

    async def _on_cleanup(self, app: web.Application) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.queue.stop)
        await self.events.stop()

    def run(self, host: str = "127.0.0.1", port: int = 8188,
            print_fn: Callable[[str], None] | None = print) -> None:
        """Serve on ``host:port`` until interrupted (Ctrl-C); loopback names only unless ``host`` is not one."""
        self._loopback_only = _is_loopback_name(host)
        self._bound_host, self._names = host, None
        shown = f"[{host}]" if ":" in host else host
        if self.lock is not None:
            self.lock.describe(f"http://{shown}:{port}")

        def announce(_msg: str) -> None:
            if print_fn is not None:
                print_fn(f"serving on http://{shown}:{port}  (Ctrl-C to stop)")

        web.run_app(self.app, host=host, port=port, access_log=None, shutdown_timeout=5.0, print=announce)

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
        self.server._bound_host, self.server._names = self.host, None
        self._thread = threading.Thread(target=self._main, name="prompt-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("server did not start")
        if self._error is not None:
            raise RuntimeError(f"server failed to start: {self._error}") from self._error
        if self.server.lock is not None:
            self.server.lock.describe(self.url)
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


def _host_name(host_header: str) -> str:
    """The host name of a ``Host`` header, without its port and brackets, lower case."""
    h = host_header.strip().lower()
    if h.startswith("["):
        return h[1:h.find("]")] if "]" in h else h
    return h.rsplit(":", 1)[0] if h.count(":") == 1 else h


def _sweep_orphans(*folders: str) -> list[str]:
    """Remove the partial uploads and half-written files (``.upload-*``, ``.tmp-*``) a killed server left."""
    removed = []
    for folder in folders:
        for dirpath, _, files in os.walk(folder):
            for f in files:
                if f.startswith((".upload-", ".tmp-")):
                    path = os.path.join(dirpath, f)
                    try:
                        os.unlink(path)
                        removed.append(path)
                    except OSError:
                        pass
    if removed:
        log.info("removed %d partial upload(s) left by an earlier run", len(removed))
    return removed
