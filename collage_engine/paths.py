"""Where the files a workflow names are looked for, and which of them it may read.

Inputs that name a file declare it: ``file=True`` (a data file: picture, mask, latent; kind ``"input"``) or
``path_kind="model"`` (a checkpoint or a model name). Before a workflow is validated, an engine with a
:class:`PathPolicy` replaces every such constant by the file it means, or reports the input as a node error:

* **Open** (the command line: the user owns the machine): absolute paths are used as they are; a relative path is
  looked up in the policy's folders in order (the workflow file's folder, then the working folder), and an error
  lists every place that was tried.
* **Confined** (a server: the workflow comes from a client): relative names are looked up only inside the folders
  of their kind (uploads for ``input``, the models folders for ``model``) and may not leave them, not even through
  a symbolic link; absolute paths and ``..`` are refused unless they lie inside an ``allow`` folder the operator
  named. A refused and a missing file get the same message, with the name as the client gave it, so no answer
  tells a client what exists on the server or where the server keeps its files.

A name that ``known_name(value, kind)`` accepts (an embedded model's name) is left as it is.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

__all__ = ["PathPolicy", "PathRefusedError", "input_pictures", "path_kind"]


class PathRefusedError(ValueError):
    """A path refused: a file input that names no usable file (missing, or not allowed by a confined policy), or a
    client-supplied path of the HTTP server that would leave its folder (``..``, absolute, drive, NUL, symlink
    escape; the server's name for it is ``PathRefused``).

    ``status`` is the HTTP status a server route answers it with: 404 for a file input that names no usable file,
    403 for a client path that resolves outside its folder, 400 (the default) for a malformed one.
    """

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def path_kind(inp: Any) -> str | None:
    """The path kind of a declared input (``"input"`` for ``file=True``, its ``path_kind``), or None."""
    kind = getattr(inp, "path_kind", None)
    if kind:
        return kind
    return "input" if getattr(inp, "file", False) else None


def _inside(path: str, folder: str) -> bool:
    real, base = os.path.realpath(path), os.path.realpath(folder)
    return real == base or real.startswith(base.rstrip(os.sep) + os.sep)


def _usable(path: str, kind: str) -> bool:
    """A file, or for models also a folder (a model in the reference layout: config.json + weights)."""
    return os.path.isfile(path) or (kind == "model" and os.path.isdir(path))


class PathPolicy:
    """How a run resolves file inputs (see the module documentation).

    ``folders`` maps a kind to the folders searched for relative names (a plain list applies to every kind);
    ``confined`` turns on the server rules; ``allow`` lists folders whose files may be named by absolute path
    when confined; ``known_name(value, kind)`` accepts names that are not files (embedded models) and
    ``names_hint(kind)`` says which in error messages.
    """

    def __init__(self, folders: Mapping[str, Sequence[str]] | Sequence[str] = (), *, confined: bool = False,
                 allow: Iterable[str] = (), known_name: Callable[[str, str], bool] | None = None,
                 names_hint: Callable[[str], str] | None = None) -> None:
        if isinstance(folders, Mapping):
            self.folders = {k: [os.path.abspath(f) for f in v] for k, v in folders.items()}
            self.default_folders: list[str] = []
        else:
            self.folders = {}
            self.default_folders = [os.path.abspath(f) for f in folders]
        self.confined = confined
        self.allow = [os.path.realpath(a) for a in allow]
        self.known_name = known_name
        self.names_hint = names_hint  # kind -> text added to errors (e.g. the embedded models' names)

    def _hint(self, kind: str) -> str:
        text = self.names_hint(kind) if self.names_hint is not None else ""
        return f"; {text}" if text else ""

    def folders_for(self, kind: str) -> list[str]:
        return self.folders.get(kind, self.default_folders)

    def resolve(self, value: str, kind: str = "input") -> str:
        """The path to read for ``value``; :class:`PathRefusedError` (message naming ``value`` as given) if none."""
        if not value or (self.known_name is not None and self.known_name(value, kind)):
            return value
        if self.confined:
            return self._confined(value, kind)
        expanded = os.path.expanduser(value)
        if os.path.isabs(expanded):
            if os.path.exists(expanded):
                return expanded
            raise PathRefusedError(f"file not found: {value}{self._hint(kind)}", status=404)
        tried = []
        for folder in self.folders_for(kind) or [os.getcwd()]:
            candidate = os.path.normpath(os.path.join(folder, expanded))
            if os.path.exists(candidate):
                return candidate
            tried.append(candidate)
        raise PathRefusedError(f"file not found: {value} (looked for {', '.join(dict.fromkeys(tried))})"
                               f"{self._hint(kind)}", status=404)

    def _confined(self, value: str, kind: str) -> str:
        refused = PathRefusedError(f"file not found or not allowed: {value!r} (name a file of the server's "
                                   f"{'models' if kind == 'model' else 'input'} folder, e.g. an upload)"
                                   f"{self._hint(kind)}", status=404)
        if "\x00" in value or len(value) > 4096:
            raise refused
        parts = re.split(r"[\\/]", value)
        absolute = os.path.isabs(value) or value.startswith("\\") or bool(re.match(r"^[A-Za-z]:", value))
        if absolute or ".." in parts:
            path = os.path.abspath(value)
            # inside an allowed folder, or inside its own folders (a path this policy resolved before)
            if _usable(path, kind) and any(_inside(path, a) for a in [*self.allow, *self.folders_for(kind)]):
                return os.path.realpath(path)
            raise refused
        for folder in self.folders_for(kind):
            candidate = os.path.join(folder, *[p for p in parts if p not in ("", ".")])
            if _usable(candidate, kind) and _inside(candidate, folder):
                return os.path.realpath(candidate)
        raise refused


PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")


def input_pictures(folder: str, limit: int = 2000) -> list[str]:
    """The pictures under ``folder`` as ``/``-separated relative names, sorted (no hidden files, no symlinked
    folders; at most ``limit``)."""
    out: list[str] = []
    for current, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for f in sorted(files):
            if f.lower().endswith(PICTURE_SUFFIXES) and not f.startswith("."):
                out.append(os.path.relpath(os.path.join(current, f), folder).replace(os.sep, "/"))
                if len(out) >= limit:
                    return sorted(out)
    return sorted(out)
