"""``neural-collage serve``: the official ComfyUI editor over the node pack, without installing ComfyUI.

The editor is the ``comfyui-frontend-package`` wheel (GPL-3.0, an optional dependency: ``pip install
"neural-collage[serve]"``); :class:`collage_engine.server.PromptServer` answers the API it talks to. This module
only adds what is specific to the pack: savers write to the server's output folder, ``--model`` stands in for the
default embedded model, ``--device`` sets every Load Generator's device, file inputs are confined to the server's
input folder (where the editor uploads) and models folder (``--allow-path`` opens more), a run's results are bounded
by ``--max-memory``, the saved workflows of ``workflows/`` are offered in the editor's workflow browser and
templates, and a fresh editor opens on ``class_collage`` (``collage_app/web/first_screen.js``), not ComfyUI's stock
graph.

    neural-collage serve [--port 8188] [--host 127.0.0.1] [--dir DIR] [--model PATH] [--device cpu]

Its files (output/, input/, models/, temp/, user/) live in a per-user data folder (:func:`default_data_dir`) unless
``--dir`` names another (``--dir .``: the working folder).
"""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .common import UserError, add_device_flag, add_memory_flag, add_threads_flag, parse_memory
from .examples import workflows_folder

log = logging.getLogger(__name__)

#: the editor version this server is tested with (the ``[serve]`` extra pins it)
FRONTEND_VERSION = "1.49.6"
#: the model that saved workflows name; ``--model`` replaces it
DEFAULT_MODEL = "emoji-animals"
#: where the bundled editor-format workflows are (a clone's workflows/, or the installed package collage_workflows)
EXAMPLES = workflows_folder()  # editor format (the API sources are in api/)
EXAMPLES_FOLDER = "workflows/neural-collage"
#: the pictures the example workflows name (``examples/chelsea.png``), copied into the input folder
EXAMPLE_INPUTS = workflows_folder() / "examples"
#: the pack's editor extensions and node help pages (ComfyUI's WEB_DIRECTORY, ``collage_nodes/web``), served at
#: /extensions/neural-collage/ (in a checkout ``nodes/web``; installed from a wheel ``site-packages/collage_nodes/web``)
WEB_DIR = Path(importlib.util.find_spec("collage_nodes").submodule_search_locations[0]) / "web"
EXTENSION_NAME = "neural-collage"
#: what /object_info reports as the nodes' module, as ComfyUI does for the pack's folder: the editor then fetches a
#: node's help page from /extensions/neural-collage/docs/<NODE>.md
PYTHON_MODULE = f"custom_nodes.{EXTENSION_NAME}"
#: serve's own editor extension (collage_app/web: the first screen), served at /extensions/neural-collage-serve/;
#: ComfyUI never loads it
SERVE_WEB_DIR = Path(__file__).resolve().parent / "web"
SERVE_EXTENSION_NAME = "neural-collage-serve"
#: the workflow of EXAMPLES that the editor opens when it has nothing to restore (instead of ComfyUI's stock graph)
FIRST_WORKFLOW = "class_collage"
DEFAULT_WORKFLOW_ROUTE = "/neural-collage/default-workflow"
#: the settings of a new user folder: the editor opens its default graph (FIRST_WORKFLOW) rather than a blank
#: graph under ComfyUI's first-run template dialog (whose "Getting Started" category lists only ComfyUI's own)
DEFAULT_SETTINGS = {"Comfy.TutorialCompleted": True}

#: names serve's data folder, instead of the per-user default (tests point it at a temporary folder)
DATA_ENV = "NEURAL_COLLAGE_DATA"

__all__ = ["add_parser", "make_server", "prepare_prompt", "frontend_root", "frontend_version", "FRONTEND_VERSION",
           "default_data_dir"]


def default_data_dir(environ: Mapping[str, str] | None = None, platform: str | None = None,
                     home: Path | None = None) -> Path:
    """serve's data folder when ``--dir`` is not given: ``$NEURAL_COLLAGE_DATA`` if set, else ``neural-collage`` in
    the per-user data folder of the platform: ``%LOCALAPPDATA%`` on Windows, ``~/Library/Application Support`` on
    macOS, ``$XDG_DATA_HOME`` (an absolute path; else ``~/.local/share``) elsewhere. Nothing is created here."""
    env = os.environ if environ is None else environ
    platform = sys.platform if platform is None else platform
    home = Path.home() if home is None else home
    if env.get(DATA_ENV):
        return Path(env[DATA_ENV]).expanduser()
    if platform == "win32":
        base = Path(env["LOCALAPPDATA"]) if env.get("LOCALAPPDATA") else home / "AppData" / "Local"
    elif platform == "darwin":
        base = home / "Library" / "Application Support"
    else:  # the XDG base directory spec: a relative $XDG_DATA_HOME is invalid and ignored
        xdg = env.get("XDG_DATA_HOME", "")
        base = Path(xdg) if os.path.isabs(xdg) else home / ".local" / "share"
    return base / "neural-collage"


def frontend_root() -> str | None:
    """The static folder of the installed ``comfyui-frontend-package``, or None."""
    try:
        import comfyui_frontend_package  # type: ignore[import-not-found]
    except ImportError:
        return None
    root = Path(comfyui_frontend_package.__file__).resolve().parent / "static"
    return str(root) if (root / "index.html").is_file() else None


def frontend_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("comfyui-frontend-package")
    except PackageNotFoundError:
        return None


def prepare_prompt(prompt: dict, server: Any, model: str | None = None, device: str | None = None) -> dict:
    """Rewrite a queued API prompt for the server: every ``output_dir`` input -> the server's output folder
    (savers never write elsewhere), ``model == emoji-animals`` -> ``model`` (when given) and every Load Generator's
    device -> ``device`` (when given). File inputs are resolved by the engine's confined :class:`PathPolicy`."""
    from collage_nodes.base import LOADERS, OUTPUT_DIR_INPUT

    reg = server.registry
    for node in prompt.values():
        if not isinstance(node, dict) or not isinstance(node.get("inputs"), dict):
            continue
        cls = reg.get(node.get("class_type"))
        if cls is None:
            continue
        inputs = node["inputs"]
        if OUTPUT_DIR_INPUT in cls.input_map:
            inputs[OUTPUT_DIR_INPUT] = server.output_dir
        if cls.name in LOADERS:
            if model and cls.name == "LoadGenerator" and inputs.get("model") == DEFAULT_MODEL:
                inputs["model"] = model
            if device and "device" in cls.input_map:
                inputs["device"] = device
    return prompt


def server_paths(input_dir: str, models_dir: str, allow: list[str] = ()):
    """The server's file rules (:class:`collage_engine.PathPolicy`, confined): pictures, masks and latents are names
    inside the input folder (uploads), checkpoints names inside the models folder or embedded model names; absolute
    paths only inside the ``--allow-path`` folders."""
    from collage_engine import PathPolicy
    from collage_nodes.model import is_model_name, model_names_hint

    return PathPolicy({"input": [input_dir], "model": [models_dir]}, confined=True, allow=allow,
                      known_name=is_model_name, names_hint=model_names_hint)


def seed_example_inputs(server: Any, examples: Path = EXAMPLE_INPUTS) -> list[str]:
    """Copy the example workflows' pictures into the input folder (``examples/...``), so they run as saved (the
    pack does the same in ComfyUI: :mod:`collage_nodes.example_inputs`)."""
    from collage_nodes.example_inputs import copy_example_inputs

    return copy_example_inputs(examples, server.input_dir)


def labels_route(get_server, model_override: str | None = None):
    """``GET /neural-collage/labels?model=NAME`` (:func:`collage_nodes.paint.labels_handler`): the model input's value
    resolved like the workflow's (``emoji-animals`` means ``--model`` when given; file names are confined to the
    models folder and ``--allow-path``), nothing loaded. 404 with a reason when the model names nothing usable."""
    from collage_nodes.paint import labels_handler

    def resolve(model: str) -> str:
        target = model_override if model_override and model == DEFAULT_MODEL else model
        paths = get_server().engine.paths
        return paths.resolve(target, "model") if paths is not None and target else target  # PathRefusedError: 404

    return labels_handler(resolve)


def default_workflow_route(examples: Path | None = None):
    """``GET /neural-collage/default-workflow``: the editor-format :data:`FIRST_WORKFLOW`, which serve's editor
    extension (collage_app/web/first_screen.js) opens in place of ComfyUI's stock graph; 404 when it is missing."""
    from aiohttp import web

    from collage_engine.server.protocol import _error

    async def handler(request: web.Request) -> web.StreamResponse:
        path = (examples or EXAMPLES) / f"{FIRST_WORKFLOW}.json"
        if not path.is_file():
            return _error(404, "not_found", f"the default workflow {FIRST_WORKFLOW}.json is not installed")
        return web.FileResponse(path, headers={"Content-Type": "application/json", "Cache-Control": "no-cache"})
    return handler


def _system_info() -> dict:
    import platform

    import torch

    devices = []
    if torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            free, total = torch.cuda.mem_get_info(i)
            devices.append({"name": f"cuda:{i} {torch.cuda.get_device_name(i)}", "type": "cuda", "index": i,
                            "vram_total": total, "vram_free": free, "torch_vram_total": total,
                            "torch_vram_free": free})
    devices.append({"name": f"cpu ({platform.processor() or platform.machine()})", "type": "cpu", "index": None,
                    "vram_total": 0, "vram_free": 0, "torch_vram_total": 0, "torch_vram_free": 0})
    return {"system": {"pytorch_version": torch.__version__}, "devices": devices}


def seed_examples(server: Any, examples: Path = EXAMPLES) -> list[str]:
    """Copy the saved editor workflows into the user's workflow folder (never over an existing file)."""
    if not examples.is_dir():
        return []
    dest = Path(server.user_root()) / EXAMPLES_FOLDER
    copied = []
    for src in sorted(examples.glob("*.json")):
        target = dest / src.name
        if not target.exists():
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, target)
            copied.append(str(target))
    return copied


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()


def worker_engine(threads: int, kwargs: dict):
    """The engine of serve's worker process (:class:`~collage_engine.server.worker.ProcessRunner` calls it there):
    the thread count the server chose (``--threads``), then :func:`collage_nodes.engine`."""
    import torch

    import collage_nodes

    torch.set_num_threads(max(1, int(threads)))
    return collage_nodes.engine(**kwargs)


def model_choices(models_dir: str) -> list[str]:
    """What serve's model dropdowns offer (:func:`collage_nodes.model_catalog.model_choices`): the embedded models,
    the BigGAN-deep names (downloaded on first use) and the checkpoints (``.safetensors``, ``.npz``) and BigGAN
    reference folders of the models folder."""
    from collage_nodes.model_catalog import model_choices as catalogue
    from collage_nodes.model_catalog import scan_models_folder

    files, folders = scan_models_folder(models_dir)
    return catalogue(None, files=files, folders=folders)


def make_server(base_dir: str = ".", *, model: str | None = None, device: str | None = None,
                web_root: str | None = None, output_dir: str | None = None, input_dir: str | None = None,
                user_dir: str | None = None, max_upload_bytes: int = 50 << 20, max_history: int = 10_000,
                max_queue: int = 1000, examples: bool = True, engine_kwargs: dict | None = None,
                models_dir: str | None = None, allow_paths: list[str] = (), max_memory: int | None = None,
                allowed_hosts: list[str] = (), isolate: bool = True, worker_memory_limit: int | None = None,
                lock: bool = True):
    """A :class:`~collage_engine.server.PromptServer` over :func:`collage_nodes.engine` (needs aiohttp): file inputs
    confined to its input and models folders (plus ``allow_paths`` and the folder of ``model`` when it is a file),
    runs bounded by ``max_memory`` bytes. With ``isolate`` (the default) workflows run in a supervised worker process
    (:class:`~collage_engine.server.worker.ProcessRunner`, its resident memory limited to ``worker_memory_limit``,
    default 85% of the memory available at start) that the server outlives; ``lock``: one server per folder."""
    import functools
    from importlib.metadata import PackageNotFoundError, version

    import collage_nodes
    from collage_engine.server import PromptServer
    from collage_nodes.paint import LABELS_ROUTE

    try:
        ours = version("neural-collage")
    except PackageNotFoundError:
        ours = "0.0.0"
    base = os.path.abspath(base_dir)
    inputs = os.path.abspath(input_dir or os.path.join(base, "input"))
    models = os.path.abspath(models_dir or os.path.join(base, "models"))
    os.makedirs(models, exist_ok=True)
    allow = list(allow_paths) + ([os.path.dirname(os.path.abspath(model))] if model and os.path.isfile(model) else [])
    kwargs = {"paths": server_paths(inputs, models, allow), "max_memory": max_memory,
              **(engine_kwargs or {})}
    server = PromptServer(lambda: collage_nodes.engine(**kwargs),
                          web_root=web_root if web_root is not None else frontend_root(), base_dir=base_dir,
                          output_dir=output_dir, input_dir=inputs, user_dir=user_dir, allowed_hosts=allowed_hosts,
                          prepare_prompt=lambda p, s: prepare_prompt(p, s, model, device),
                          system_info=_system_info, max_upload_bytes=max_upload_bytes, max_queue=max_queue,
                          max_history=max_history, name="neural-collage", version=ours,
                          templates={"neural-collage": str(EXAMPLES)} if examples and EXAMPLES.is_dir() else None,
                          extensions={name: str(folder) for name, folder in ((EXTENSION_NAME, WEB_DIR),
                                      (SERVE_EXTENSION_NAME, SERVE_WEB_DIR)) if folder.is_dir()},
                          default_settings=DEFAULT_SETTINGS, python_module=PYTHON_MODULE,
                          routes=[("GET", LABELS_ROUTE, labels_route(lambda: server, model)),
                                  ("GET", DEFAULT_WORKFLOW_ROUTE, default_workflow_route())],
                          path_choices=lambda kind: model_choices(models) if kind == "model" else [],
                          worker=functools.partial(worker_engine, _torch_threads(), kwargs) if isolate else None,
                          worker_memory_limit=worker_memory_limit, lock=lock)
    server.models_dir = models
    if examples:
        seed_examples(server)
        seed_example_inputs(server)
    return server


# ------------------------------------------------------------------------------------------------ command line
def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "serve", help="serve the ComfyUI graph editor over the node pack (needs the [serve] extra)",
        description="Serve the official ComfyUI editor (comfyui-frontend-package) and a ComfyUI-compatible API over "
                    "this node pack: open the printed address, load a workflow (the examples are under "
                    f"Workflows > {EXAMPLES_FOLDER.split('/')[-1]}), queue it and see the result. Files live under "
                    "DIR: output/ (saved images), input/ (uploads), models/, temp/, user/ (settings, saved "
                    "workflows).")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; anything else exposes an "
                        "unauthenticated server that runs workflows and writes files to your network)")
    p.add_argument("--port", type=int, default=8188, help="port (default 8188)")
    p.add_argument("--dir", metavar="DIR",
                   help=f"folder for output/, input/, models/, temp/ and user/ (default: ${DATA_ENV}, else "
                        f"neural-collage in your data folder, here {default_data_dir()}; '--dir .': the working "
                        "folder)")
    p.add_argument("--output-dir", help="folder savers write to (default DIR/output)")
    p.add_argument("--input-dir", help="folder uploads go to (default DIR/input)")
    p.add_argument("--user-dir", help="folder of settings and saved workflows (default DIR/user)")
    p.add_argument("--models-dir", help="folder of checkpoints workflows may name (default DIR/models)")
    p.add_argument("--allow-path", action="append", default=[], metavar="FOLDER",
                   help="let workflows name files inside FOLDER by absolute path (repeatable); otherwise file inputs "
                        "are names inside the input folder (uploads) or the models folder, or embedded model names")
    p.add_argument("--allowed-host", action="append", default=[], metavar="NAME",
                   help="with a non-loopback --host: a host name clients may use (repeatable); the machine's own "
                        "names and addresses are allowed already, any other Host header is refused (DNS rebinding)")
    p.add_argument("--model", metavar="NAME_OR_PATH",
                   help=f"generator used wherever a workflow names the default model {DEFAULT_MODEL!r} (e.g. a "
                        "checkpoint of your own while the embedded model is not installed)")
    add_device_flag(p, "device of every Load Generator")
    p.add_argument("--max-upload-mb", type=float, default=50.0, help="largest upload or request body (default 50)")
    p.add_argument("--max-history", type=int, default=10_000,
                   help="finished prompts kept in the history, on disk in the user folder (default 10000, as ComfyUI)")
    add_memory_flag(p)
    add_threads_flag(p)
    p.add_argument("--worker-memory", type=_worker_memory, default="auto", metavar="SIZE",
                   help="workflows run in a worker process that is stopped (and replaced) when its resident memory "
                        "passes SIZE; 'auto' (default): 85%% of the memory available at start, a container's "
                        "(cgroup) limit included; 0: no watchdog")
    p.add_argument("--in-process", action="store_true",
                   help="run workflows in the server process instead (no worker: a workflow that runs out of memory "
                        "takes the server down; for debugging)")
    p.add_argument("--web-root", help="serve this folder as the editor instead of the installed frontend package")
    p.add_argument("--no-examples", action="store_true",
                   help=f"do not copy workflows/*.json into the user's {EXAMPLES_FOLDER}")
    p.set_defaults(func=_cmd_serve)


def _cmd_serve(args: argparse.Namespace) -> int:
    try:
        import aiohttp  # noqa: F401
    except ImportError:
        raise UserError('serve needs aiohttp and the editor: pip install "neural-collage[serve]"') from None
    if not 0 <= args.port <= 65535:
        raise UserError(f"--port {args.port}: not a port number")
    if args.max_upload_mb <= 0 or args.max_history < 1:
        raise UserError("--max-upload-mb and --max-history must be positive")
    web_root = args.web_root
    if web_root is not None and not os.path.isfile(os.path.join(web_root, "index.html")):
        raise UserError(f"--web-root {web_root}: no index.html there")
    if web_root is None:
        web_root = frontend_root()
        installed = frontend_version()
        if web_root is None:
            print('warning: the editor is not installed (pip install "neural-collage[serve]"); serving the API only')
        elif installed != FRONTEND_VERSION:
            print(f"warning: comfyui-frontend-package {installed} is installed; this server is tested with "
                  f"{FRONTEND_VERSION}")
    if args.model and not (os.path.isfile(args.model) or _embedded(args.model)):
        raise UserError(f"--model {args.model}: neither a checkpoint file nor an embedded model")
    if not args.model and not _embedded(DEFAULT_MODEL):
        print(f"note: the embedded model {DEFAULT_MODEL!r} is not installed; the saved workflows need "
              "--model PATH (a generator checkpoint) or another model in their Load Generator node")
    data = os.path.abspath(args.dir if args.dir is not None else default_data_dir())
    try:
        os.makedirs(data, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot make the data folder {data}: {e.strerror or e} (--dir DIR names another)") from None
    print(f"data:   {data}" + ("" if args.dir is not None else "  (--dir DIR to use another folder)"))
    from collage_engine.server.lock import FolderBusy

    try:
        server = make_server(data, model=os.path.abspath(args.model) if args.model and os.path.isfile(args.model)
                             else args.model, device=args.device, web_root=web_root or "",
                             output_dir=args.output_dir, input_dir=args.input_dir, user_dir=args.user_dir,
                             max_upload_bytes=int(args.max_upload_mb * (1 << 20)), max_history=args.max_history,
                             examples=not args.no_examples, models_dir=args.models_dir, max_memory=args.max_memory,
                             allow_paths=args.allow_path, allowed_hosts=args.allowed_host,
                             isolate=not args.in_process, worker_memory_limit=args.worker_memory)
    except FolderBusy as e:
        raise UserError(str(e)) from None
    for notice in server.notices:
        print(f"note: {notice}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: listening on {args.host}: anyone who can reach it can run workflows and write files")
    print(f"output: {server.output_dir}\ninput:  {server.input_dir}\nmodels: {server.models_dir}\n"
          f"user:   {server.user_dir}\ntorch:  {args.thread_choice}")
    from collage_engine import format_bytes

    if args.max_memory:
        print(f"memory budget of a run: {format_bytes(args.max_memory)} (--max-memory)")
    limit = getattr(server.runner, "memory_limit", None)
    print("worker: workflows run in the server process (--in-process)" if args.in_process else
          "worker: workflows run in a worker process" + (f", stopped above {format_bytes(limit)} (--worker-memory)"
                                                         if limit else ""))
    try:
        server.run(args.host, args.port)
    except OSError as e:
        raise UserError(f"cannot listen on {args.host}:{args.port}: {e}") from None
    return 0


def _worker_memory(text: str) -> int | None:
    """``--worker-memory``: None for ``auto`` (the worker's default limit), 0 for no watchdog, else bytes."""
    if text.strip().lower() == "auto":
        return None
    return parse_memory(text) or 0


def _embedded(name: str) -> bool:
    from collage_core.models import embedded_model_path

    return embedded_model_path(name) is not None
