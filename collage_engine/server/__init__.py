"""A ComfyUI-compatible HTTP/WebSocket server over an :class:`~collage_engine.Engine` (it knows nothing about GANs).

It serves a static web root (e.g. the official editor from the ``comfyui-frontend-package`` wheel) and the subset of
ComfyUI's server API that the editor and ComfyUI API clients use, every route with and without the ``/api``
prefix::

    GET  /object_info, /object_info/{node}   node schemas from the registry (``python_module`` may name a pack)
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
    POST /upload/mask   the same, the upload's alpha written into the picture ``original_ref`` names (mask editor)
    GET  /extensions    the ``.js`` files of the ``extensions`` folders (a pack's WEB_DIRECTORY), served at
                        /extensions/NAME/...; ``routes`` adds a pack's own routes (e.g. /neural-collage/labels)
    GET/POST /settings[/{id}], GET /users, GET/POST/DELETE /userdata/{file}, POST /userdata/{file}/move/{dest},
    GET /userdata?dir=, GET /v2/userdata      settings and saved workflows in the user folder
    GET  /system_stats, /features, /embeddings, /models[/{folder}], /experiment/models, /i18n,
         /node_replacements, /global_subgraphs, /workflow_templates[/{module}/{file}]   what the editor asks
         for at start (``templates`` folders are offered in its template browser)
    GET  /ws            WebSocket: status, execution_start, execution_cached, executing, progress, executed,
                        execution_error, execution_interrupted, execution_success, feature_flags

One runner (a supervised worker process, or a thread) runs the queue on one engine, so its cache is shared by all
prompts and re-runs are incremental.
Engine events are forwarded to the client that queued the prompt (to every client when it gave no ``client_id``).
Nothing a client sends can crash the server: every error, on every route, is a status and one JSON body,
``{"error": {"type", "message", "details", "extra_info"}, "node_errors": {...}}`` (ComfyUI's ``/prompt`` error
shape; see :func:`~collage_engine.server.protocol._error`). A refused client path answers with the status its
:class:`~collage_engine.server.protocol.PathRefused` carries (403 outside the folder, 400 malformed).

Usage::

    server = PromptServer(engine_factory=lambda: Engine(registry), web_root=".../static", base_dir="work")
    server.run("127.0.0.1", 8188)                 # blocking; or: with BackgroundServer(server) as bg: bg.url

Needs ``aiohttp`` (``pip install "aiohttp>=3.9,<4"``); ``collage_engine`` itself never imports this package.

One job per module: :mod:`.protocol` (JSON bodies and errors, path rules, loopback names, redaction),
:mod:`.queue` (prompt queue and history), :mod:`.worker` (where prompts run: a supervised worker process or a
thread), :mod:`.store` (history and queue on disk), :mod:`.lock` (one server per folder), :mod:`.prompts` (the
prompt, queue, history and jobs routes), :mod:`.events` (WebSocket fan-out), :mod:`.files` (view, upload,
templates, settings, user data) and :mod:`.app` (:class:`PromptServer`, which composes them, its route table and
middleware, and :class:`BackgroundServer`).
"""

from __future__ import annotations

from .app import BackgroundServer, PromptServer
from .files import FOLDER_TYPES as FOLDER_TYPES
from .files import UPLOAD_CHUNK as UPLOAD_CHUNK
from .prompts import JOB_STATUSES as JOB_STATUSES
from .protocol import PathRefused, safe_join
from .protocol import dumps as dumps
from .queue import PromptQueue, QueueItem

__all__ = ["PromptServer", "BackgroundServer", "safe_join", "PathRefused", "PromptQueue", "QueueItem"]
