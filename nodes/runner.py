"""Running workflows of the node pack: an engine that lets savers embed the workflow, and ``--set`` overrides.

:class:`CollageEngine` is :class:`collage_engine.Engine` plus one thing ComfyUI gives its savers through hidden inputs
(``PROMPT``, ``EXTRA_PNGINFO``): the workflow being run, so that saved PNGs carry it (tEXt ``prompt`` = API JSON,
``workflow`` = UI JSON). Savers read it with :func:`png_text` by the run's ``prompt_id``.
"""

from __future__ import annotations

import json
import os
import threading
import uuid
from typing import Any, Iterable

from collage_engine import Engine, RunResult, api_to_ui, is_ui_format, load_workflow
from collage_engine.workflow import WorkflowError

__all__ = ["CollageEngine", "png_text", "parse_set", "apply_set", "set_everywhere", "OverrideError"]

_RUNS: dict[str, dict[str, Any]] = {}
_LOCK = threading.Lock()


def png_text(prompt_id: str) -> dict[str, str]:
    """The ``{"prompt": API JSON, "workflow": UI JSON}`` text chunks of the run ``prompt_id`` (empty if unknown)."""
    with _LOCK:
        run = _RUNS.get(prompt_id)
        if run is None:
            return {}
        if "text" not in run:
            ui = run["ui"] if run["ui"] is not None else api_to_ui(run["api"], run["registry"])
            run["text"] = {"prompt": json.dumps(run["api"]), "workflow": json.dumps(ui)}
        return dict(run["text"])


class CollageEngine(Engine):
    """An :class:`~collage_engine.Engine` whose runs make their workflow available to savers (see :func:`png_text`).

    ``run(workflow, ui=...)``: ``ui`` is the editor (UI-format) JSON to embed; by default the workflow itself if it
    is in UI format, else one generated from the API format with :func:`collage_engine.api_to_ui`.
    """

    def run(self, workflow: Any, targets: Iterable[Any] | None = None, *, prompt_id: str | None = None,
            ui: dict | None = None) -> RunResult:
        prompt_id = prompt_id or uuid.uuid4().hex
        if isinstance(workflow, (str, bytes, os.PathLike)) and not (isinstance(workflow, str)
                                                                     and workflow.lstrip().startswith("{")):
            try:
                with open(workflow, encoding="utf-8") as f:
                    workflow = json.load(f)
            except (OSError, ValueError, RecursionError):
                return super().run(workflow, targets, prompt_id=prompt_id)  # the engine reports it
        if ui is None and is_ui_format(workflow):
            ui = workflow
        if hasattr(workflow, "to_api"):
            api = workflow.to_api(self.registry)
        else:
            try:
                api = load_workflow(workflow, self.registry)[0]
            except WorkflowError:
                return super().run(workflow, targets, prompt_id=prompt_id)
        with _LOCK:
            _RUNS[prompt_id] = {"api": api, "ui": ui, "registry": self.registry}
        try:
            return super().run(api, targets, prompt_id=prompt_id)
        finally:
            with _LOCK:
                _RUNS.pop(prompt_id, None)


# ------------------------------------------------------------------------------------------------ overrides
class OverrideError(ValueError):
    """A ``--set`` that cannot be applied (bad syntax, unknown node or input)."""


def parse_set(text: str) -> tuple[str, str, Any]:
    """``"NODE.INPUT=VALUE"`` -> ``(NODE, INPUT, value)``; VALUE is JSON if it parses, else the string itself.

    NODE (an id or a title) may contain dots: the input name is what follows the last dot before ``=``.
    """
    target, eq, raw = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not eq or not dot or not node or not name.isidentifier():
        raise OverrideError(f"--set {text!r}: expected NODE.INPUT=VALUE (NODE: node id or title), "
                            f"e.g. --set 3.seed=7 or --set 'Base class.base_class=\"cat\"'")
    try:
        value = json.loads(raw)
    except ValueError:
        value = raw
    return node, name, value


def find_node(api: dict, node: str) -> str:
    """The id of the node named ``node``: a node id, else a unique title (``_meta.title``)."""
    if node in api:
        return node
    hits = [nid for nid, n in api.items() if isinstance(n, dict) and isinstance(n.get("_meta"), dict)
            and n["_meta"].get("title") == node]
    if len(hits) == 1:
        return hits[0]
    known = ", ".join(f"{nid}" + (f" ({n['_meta']['title']!r})" if isinstance(n, dict) and isinstance(
        n.get("_meta"), dict) and "title" in n["_meta"] else "") for nid, n in api.items())
    if hits:
        raise OverrideError(f"title {node!r} is used by nodes {', '.join(hits)}; use a node id")
    raise OverrideError(f"no node with id or title {node!r}; nodes: {known}")


def apply_set(api: dict, registry, node: str, name: str, value: Any) -> str:
    """Set input ``name`` of the node ``node`` (id or title) to ``value`` in ``api``; return the node id."""
    nid = find_node(api, node)
    entry = api[nid]
    if not isinstance(entry, dict) or not isinstance(entry.get("inputs", {}), dict):
        raise OverrideError(f"node {nid} is malformed")
    cls = registry.get(entry.get("class_type"))
    if cls is not None and name not in cls.input_map:
        raise OverrideError(f"node {nid} ({cls.name}) has no input {name!r}; inputs: {', '.join(cls.input_map)}")
    entry.setdefault("inputs", {})[name] = value
    return nid


def set_everywhere(api: dict, registry, name: str, value: Any, class_type: str | None = None) -> list[str]:
    """Set input ``name`` on every node that declares it (of ``class_type``, if given); return their ids."""
    done = []
    for nid, entry in api.items():
        cls = registry.get(entry.get("class_type")) if isinstance(entry, dict) else None
        if cls is None or name not in cls.input_map or (class_type and cls.name != class_type):
            continue
        if not isinstance(entry.get("inputs"), dict):
            continue
        entry["inputs"][name] = value
        done.append(nid)
    return done
