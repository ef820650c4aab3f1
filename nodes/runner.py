"""Running workflows of the node pack: the PNG text of the workflow being run, and ``--set`` overrides.

Savers embed the workflow (tEXt ``prompt`` = API JSON, ``workflow`` = UI JSON) from ``ctx.prompt`` / ``ctx.extra``
with :func:`png_text`, as ComfyUI's savers do from their hidden ``PROMPT`` / ``EXTRA_PNGINFO`` inputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from collage_engine import Engine, RunResult, api_to_ui

__all__ = ["CollageEngine", "png_text", "parse_set", "apply_set", "set_everywhere", "OverrideError", "workflow_paths"]

def png_text(ctx) -> dict[str, str]:
    """The ``{"prompt": API JSON, "workflow": UI JSON}`` text chunks for the run a node is part of.

    The UI JSON is what the embedder passed as ``extra["workflow"]`` (ComfyUI's ``extra_pnginfo``), else one
    generated from the API workflow with :func:`collage_engine.api_to_ui`. Empty when the run has no workflow.
    """
    if not ctx.prompt:
        return {}
    ui = ctx.extra.get("workflow") if ctx.extra else None
    if ui is None:
        reg = getattr(ctx, "registry", None)
        if reg is None:  # a context made outside an engine
            from . import registry

            reg = registry()
        ui = api_to_ui(ctx.prompt, reg)
    return {"prompt": json.dumps(ctx.prompt), "workflow": json.dumps(ui)}


class CollageEngine(Engine):
    """An :class:`~collage_engine.Engine` that also accepts ``ui=`` (the editor JSON to embed in saved PNGs)."""

    def run(self, workflow: Any, targets: Iterable[Any] | None = None, *, prompt_id: str | None = None,
            ui: dict | None = None, extra: dict | None = None) -> RunResult:
        extra = dict(extra or {})
        if ui is not None:
            extra["workflow"] = ui
        return super().run(workflow, targets, prompt_id=prompt_id, extra=extra)


def workflow_paths(workflow: str | None = None):
    """The file rules of a workflow run on the user's own machine (:class:`collage_engine.PathPolicy`, open): any
    path; a relative one is looked up next to the workflow file (when it is one), then in the working folder, and
    an error lists both places. Embedded model names pass as they are."""
    import os

    from collage_engine import PathPolicy

    from .model import is_model_name, model_names_hint

    is_file = isinstance(workflow, (str, os.PathLike)) and str(workflow) != "-"  # "-": standard input
    folders = ([os.path.dirname(os.path.abspath(workflow))] if is_file else []) + [os.getcwd()]
    return PathPolicy(folders, known_name=is_model_name, names_hint=model_names_hint)


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
    inp = cls.input_map[name] if cls is not None else None
    if inp is not None and inp.type == "STRING" and isinstance(value, (list, dict)) and not _is_link(value):
        value = json.dumps(value)  # JSON given to a text input (e.g. Paint Class Map's strokes) is its text
    entry.setdefault("inputs", {})[name] = value
    return nid


def _is_link(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 2 and isinstance(value[0], (str, int))
            and isinstance(value[1], int) and not isinstance(value[1], bool))


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
