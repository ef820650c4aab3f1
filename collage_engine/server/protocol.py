"""The server's wire rules: JSON bodies, the one JSON error helper, client-supplied paths and loopback host names.

Every other module of :mod:`collage_engine.server` answers through these: :func:`_json` / :func:`_error` for
responses, :func:`_read_json` for request bodies, :func:`safe_join` / :func:`_plain_name` for any path a client
names (a refusal is a :class:`PathRefused` that carries its HTTP status) and :func:`_is_loopback_name` for the
DNS-rebinding guard.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import time
from typing import Any

from aiohttp import web

from ..paths import PathRefusedError

# one logger for the whole server package, named as it was before the package was split into modules
log = logging.getLogger("collage_engine.server")

_ID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# ------------------------------------------------------------------------------------------------- paths
#: the server's name for the engine's one path-refusal type (its ``status``: the HTTP status a route answers)
PathRefused = PathRefusedError


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
        raise PathRefused("path leaves its folder", status=403)
    return path


def _plain_name(name: Any, what: str = "filename") -> str:
    """A file name without any folder part."""
    name = _check_part(name, what)
    if not name or "/" in name or name in (".", ".."):
        raise PathRefused(f"{what} must be a plain file name")
    return name


# ------------------------------------------------------------------------------------------------- redaction
class Redactor:
    """Takes the server's own paths out of what it sends: each folder of ``folders`` (``{name: path}``) becomes its
    name (``/srv/data/input/x.png`` -> ``input/x.png``), the Python installation and the code's folders become
    ``<python>`` / ``<code>``, and the home folder ``~``. Clients see names they can use, never where the server
    keeps its files."""

    def __init__(self, folders: dict[str, str]) -> None:
        import sys

        pairs: list[tuple[str, str]] = []
        code = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        roots = {**folders, "<python>": sys.prefix, "<python> ": sys.base_prefix, "<code>": code,
                 "~": os.path.expanduser("~")}
        for name, path in roots.items():
            if not path or len(path) < 2:
                continue
            for variant in {os.path.abspath(path), os.path.realpath(path)}:
                pairs.append((variant.rstrip(os.sep), name.strip()))
        self._pairs = sorted(set(pairs), key=lambda p: -len(p[0]))  # the deepest folder first
        # a folder only where it ends a path or continues with a separator (/srv/data, not /srv/database)
        end = r"(?=[/\\\"'\s:,;)\]}]|$)"
        self._text = [(re.compile(re.escape(a) + end), b) for a, b in self._pairs]
        variants = set(self._pairs) | {(json.dumps(a)[1:-1], json.dumps(b)[1:-1]) for a, b in self._pairs}
        self._bytes = [(re.compile(re.escape(a.encode()) + end.encode()), b.encode())
                       for a, b in sorted(variants, key=lambda p: -len(p[0]))]

    def text(self, s: str) -> str:
        for pattern, name in self._text:
            s = pattern.sub(lambda _m, n=name: n, s)
        return s

    def body(self, data: bytes) -> bytes:
        """The same for a JSON body (paths as JSON writes them)."""
        for pattern, name in self._bytes:
            data = pattern.sub(lambda _m, n=name: n, data)
        return data


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


def _error(status: int, etype: str, message: str, details: str = "", node_errors: dict | None = None,
           **extra_info: Any) -> web.Response:
    """Every error response of the server, in one JSON shape (ComfyUI's ``/prompt`` error body)::

        {"error": {"type": etype, "message": message, "details": details, "extra_info": {...}},
         "node_errors": {node id: ...}}

    ``type`` is a stable machine-readable word (``invalid_path``, ``not_found``, ``conflict``, ...); ``message``
    is for people; ``extra_info`` carries structured detail (e.g. the invalid ids of a jobs request). ComfyUI's
    jobs and user-data routes answer errors as a bare string or plain text; its frontend reads only their HTTP
    status, so one shape everywhere costs clients nothing and lets them parse every error the same way.
    """
    return _json({"error": {"type": etype, "message": message, "details": details, "extra_info": extra_info},
                  "node_errors": node_errors or {}}, status)


def _refusal(e: PathRefused, message: str = "path refused") -> web.Response:
    """The error response of a refused client path, with the status the refusal carries."""
    return _error(e.status, "invalid_path", message, str(e))


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


# ------------------------------------------------------------------------------------------------- hosts, time
def _now_ms() -> int:
    return int(time.time() * 1000)


def _is_loopback_name(host: str) -> bool:
    host = host.strip("[]").lower()
    if host in ("localhost", "::1", "0:0:0:0:0:0:0:1") or host.endswith(".localhost"):
        return True
    return bool(re.match(r"^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$", host))
