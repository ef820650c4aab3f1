"""The ``--set NODE.INPUT=VALUE`` grammar of the command line (``run``, ``validate``, ``map``): naming a node by id
or title, and changing inputs of an API-format workflow against a node registry."""

from __future__ import annotations

import json
from typing import Any

from collage_nodes.base import LOADERS, OUTPUT_DIR_INPUT

from .errors import OverrideError  # defined with the application's other errors (its exit-status table)

__all__ = ["OverrideError", "parse_set", "find_node", "apply_set", "set_everywhere", "set_device", "set_output_dir",
           "apply_overrides"]


def parse_set(text: str) -> tuple[str, str, Any]:
    """``"NODE.INPUT=VALUE"`` -> ``(NODE, INPUT, value)``; VALUE is JSON if it parses, else the string itself.

    NODE (an id or a title) may contain dots: the input name is what follows the last dot before ``=``.
    """
    target, eq, raw = text.partition("=")
    node, dot, name = target.rpartition(".")
    if not eq or not dot or not node or not name.isidentifier():
        raise OverrideError(f"--set {text!r}: expected NODE.INPUT=VALUE (NODE: node id or title), "
                            f"e.g. --set 3.seed=7 or --set 'Base class.base_class=\"cat\"'")
    return node, name, parse_value(raw)


def parse_value(text: str) -> Any:
    """A value as the command line gives it (``--set``, a CSV cell of ``--over``): JSON if it parses, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


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


def set_device(api: dict, registry, device: str) -> list[str]:
    """``--device``: the device of every model loader (:data:`collage_nodes.base.LOADERS`), so all sit on one."""
    return [nid for loader in LOADERS for nid in set_everywhere(api, registry, "device", device, loader)]


def set_output_dir(api: dict, registry, folder: str) -> list[str]:
    """``--out``: the folder every saver writes to."""
    return set_everywhere(api, registry, OUTPUT_DIR_INPUT, folder)


def apply_overrides(api: dict, registry, sets=(), device: str | None = None, out: str | None = None) -> None:
    """What the command line changes in a workflow, in place: each ``--set`` text, then ``--out`` (every saver's
    folder) and ``--device`` (every model loader); :class:`OverrideError` for a ``--set`` that cannot apply."""
    for text in sets:
        apply_set(api, registry, *parse_set(text))
    if out:
        set_output_dir(api, registry, out)
    if device:
        set_device(api, registry, device)
