"""Workflow files: ComfyUI's API (prompt) format is native; the UI (editor) format is converted using the schemas.

API format::

    {"1": {"class_type": "SampleZ", "inputs": {"seed": 1}, "_meta": {"title": "z"}},
     "2": {"class_type": "Generate", "inputs": {"z": ["1", 0]}}}

UI format: ``{"nodes": [...], "links": [[id, src, src_slot, dst, dst_slot, type], ...], "version": 0.4}`` with
positional ``widgets_values``. :func:`ui_to_api` maps widget values onto the declared widget inputs in order,
skipping UI-only control values ("randomize", "fixed", ...) after seed-like inputs; follows links through
``Reroute`` nodes and bypassed nodes (mode 4); inlines ``PrimitiveNode`` values; drops notes and muted nodes
(mode 2). :func:`api_to_ui` goes the other way, laying nodes out left to right by depth.
"""

from __future__ import annotations

import json
import os
from typing import Any

from .declare import CONTROL_VALUES, MISSING, Input, Node
from .registry import NodeRegistry

__all__ = ["WorkflowError", "load_workflow", "ui_to_api", "api_to_ui", "is_ui_format", "coerce_workflow",
           "save_workflow"]

UI_ONLY_TYPES = frozenset({"Note", "MarkdownNote", "Reroute", "PrimitiveNode"})
MODE_MUTED, MODE_BYPASS = 2, 4


class WorkflowError(ValueError):
    """A workflow file cannot be read or is of no known shape."""


def is_ui_format(obj: Any) -> bool:
    """UI format has a ``nodes`` list; in API format every value is a node object."""
    return isinstance(obj, dict) and isinstance(obj.get("nodes"), list)


def _unwrap(obj: Any) -> Any:
    """Accept the body of a ``POST /prompt`` (``{"prompt": {...}, "client_id": ...}``) too."""
    if isinstance(obj, dict) and isinstance(obj.get("prompt"), dict) and "class_type" not in obj["prompt"]:
        return obj["prompt"]
    return obj


def load_workflow(source: Any, registry: NodeRegistry) -> tuple[Any, dict]:
    """Read a workflow (path, JSON text of an object, or already-parsed object) into API format.

    Returns ``(api_dict, meta)`` with ``meta = {"format": "api"|"ui", "titles": {...}, "warnings": [...],
    "source": path or None}``. Raises :class:`WorkflowError` if the file is unreadable or not JSON; any parsed
    object is returned (possibly malformed: :func:`~collage_engine.validate.validate` reports what is wrong).
    """
    path = None
    if isinstance(source, (str, os.PathLike)) and not (isinstance(source, str) and source.lstrip().startswith("{")):
        path = os.fspath(source)
        try:
            with open(path, encoding="utf-8") as f:
                source = json.load(f)
        except (OSError, ValueError, RecursionError) as e:
            raise WorkflowError(f"cannot read workflow {path}: {e}") from e
    elif isinstance(source, (str, bytes)):
        try:
            source = json.loads(source)
        except (ValueError, RecursionError) as e:
            raise WorkflowError(f"workflow is not valid JSON: {e}") from e
    source = _unwrap(source)
    meta: dict[str, Any] = {"format": "api", "titles": {}, "warnings": [], "source": path}
    if is_ui_format(source):
        meta["format"] = "ui"
        api = ui_to_api(source, registry, warnings=meta["warnings"])
    else:
        api = source
    if isinstance(api, dict):
        for nid, node in api.items():
            if isinstance(node, dict) and isinstance(node.get("_meta"), dict) and "title" in node["_meta"]:
                meta["titles"][nid] = node["_meta"]["title"]
    return api, meta


def coerce_workflow(workflow: Any, registry: NodeRegistry) -> Any:
    """Whatever :meth:`Engine.run` was given, as an API-format object (graphs, paths, JSON, UI dicts)."""
    if hasattr(workflow, "to_api") and callable(workflow.to_api):
        return workflow.to_api(registry)
    if isinstance(workflow, (str, bytes, os.PathLike)) or is_ui_format(workflow) or isinstance(workflow, dict):
        return load_workflow(workflow, registry)[0]
    return workflow


def save_workflow(api: dict, path: str | os.PathLike, registry: NodeRegistry | None = None,
                  ui: bool = False) -> None:
    """Write a workflow as API JSON (or as UI JSON the editor opens, with ``ui=True`` and a registry)."""
    obj = api_to_ui(api, registry) if ui else api
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2)


# -- UI -> API ---------------------------------------------------------------------------------------------------

def _list(x: Any) -> list:
    return x if isinstance(x, list) else []


def _link_table(links: Any) -> dict[Any, tuple]:
    """``link_id -> (src_node, src_slot, dst_node, dst_slot, type)`` from list or object links."""
    table: dict[Any, tuple] = {}
    for link in links if isinstance(links, list) else []:
        if isinstance(link, list) and len(link) >= 5:
            lid, rest = link[0], tuple(link[1:6]) + ((None,) if len(link) < 6 else ())
        elif isinstance(link, dict):
            lid = link.get("id")
            rest = tuple(link.get(k) for k in ("origin_id", "origin_slot", "target_id", "target_slot", "type"))
        else:
            continue
        if isinstance(lid, (int, str)) and not isinstance(lid, bool):
            table[lid] = rest
    return table


def _widget_values(cls: type[Node], values: Any) -> tuple[dict[str, Any], list[str]]:
    """Map a UI node's ``widgets_values`` onto its declared widget inputs."""
    out: dict[str, Any] = {}
    widgets = [i for i in cls.inputs if i.is_widget]
    if isinstance(values, dict):  # some editors save widgets by name
        return {i.name: values[i.name] for i in widgets if i.name in values}, []
    if not isinstance(values, list):
        return out, []
    pos = 0
    for n, inp in enumerate(widgets):
        if pos >= len(values):
            break
        out[inp.name] = values[pos]
        pos += 1
        nxt = values[pos] if pos < len(values) else None
        extra_left = len(values) - pos > len(widgets) - n - 1
        if isinstance(nxt, str) and nxt in CONTROL_VALUES and (inp.has_control or (
                inp.type in ("INT", "FLOAT", "COMBO") and extra_left)):
            pos += 1
        elif inp.extra.get("image_upload") and nxt == "image" and extra_left:
            pos += 1
    warnings = [f"{cls.name}: {len(values) - pos} unused widget value(s)"] if pos < len(values) else []
    return out, warnings


def ui_to_api(ui: dict, registry: NodeRegistry, warnings: list[str] | None = None) -> dict:
    """Convert a UI-format workflow to API format (never raises on malformed parts: they are skipped)."""
    warnings = warnings if warnings is not None else []
    if not is_ui_format(ui):
        raise WorkflowError("not a UI-format workflow (no 'nodes' list)")
    if isinstance(ui.get("definitions"), dict) and ui["definitions"].get("subgraphs"):
        warnings.append("subgraphs are not supported; their nodes are ignored")
    raw_nodes = [n for n in ui.get("nodes", []) if isinstance(n, dict) and isinstance(n.get("id"), (int, str))
                 and not isinstance(n.get("id"), bool)]
    by_id = {str(n["id"]): n for n in raw_nodes}
    links = _link_table(ui.get("links"))

    def source(link_id: Any) -> tuple | None:
        """Follow a link back through reroutes and bypassed nodes: ("link", id, slot), ("const", v) or None."""
        seen: set = set()
        while isinstance(link_id, (int, str)) and link_id in links and link_id not in seen:
            seen.add(link_id)
            src, slot, _, _, ltype = links[link_id]
            node = by_id.get(str(src))
            if node is None:
                return None
            kind, mode = node.get("type"), node.get("mode", 0)
            if kind == "PrimitiveNode":
                vals = node.get("widgets_values")
                return ("const", vals[0]) if isinstance(vals, list) and vals else None
            if kind == "Reroute" or mode == MODE_BYPASS:
                ins = [i for i in _list(node.get("inputs")) if isinstance(i, dict) and i.get("link") is not None]
                if kind != "Reroute":  # a bypassed node passes on its first input of the same type
                    ins = [i for i in ins if i.get("type") == ltype]
                if not ins:
                    return None
                link_id = ins[0]["link"]
                continue
            if mode == MODE_MUTED or kind in UI_ONLY_TYPES:
                return None
            return ("link", str(src), slot)
        return None

    api: dict[str, dict] = {}
    for node in raw_nodes:
        kind, mode = node.get("type"), node.get("mode", 0)
        if kind in UI_ONLY_TYPES or mode in (MODE_MUTED, MODE_BYPASS):
            continue
        cls = registry.get(kind)
        inputs: dict[str, Any] = {}
        if cls is not None:
            inputs, w = _widget_values(cls, node.get("widgets_values"))
            warnings.extend(w)
        elif node.get("widgets_values"):
            warnings.append(f"node {node['id']}: unknown type {kind!r}, widget values dropped")
        for slot in _list(node.get("inputs")):
            if not isinstance(slot, dict) or slot.get("link") is None:
                continue
            widget = slot.get("widget")
            name = widget.get("name") if isinstance(widget, dict) else slot.get("name")
            if not isinstance(name, str):
                continue
            src = source(slot["link"])
            if src is None:
                continue
            inputs[name] = src[1] if src[0] == "const" else [src[1], src[2]]
        entry: dict[str, Any] = {"class_type": kind, "inputs": inputs}
        title = node.get("title")
        entry["_meta"] = {"title": title if isinstance(title, str) else (cls.display_name if cls else str(kind))}
        api[str(node["id"])] = entry
    return api


# -- API -> UI ---------------------------------------------------------------------------------------------------

def _depths(api: dict) -> dict[str, int]:
    """Longest-path depth of each node from the sources (nodes in cycles stop growing)."""
    parents = {nid: [v[0] for v in _inputs(node).values() if _is_link(v) and v[0] in api]
               for nid, node in api.items()}
    depth = {nid: 0 for nid in api}
    for _ in range(len(api)):
        changed = False
        for nid, ps in parents.items():
            d = max((depth[p] + 1 for p in ps), default=0)
            if d > depth[nid] and d <= len(api):
                depth[nid], changed = d, True
        if not changed:
            break
    return depth


def _inputs(node: Any) -> dict:
    ins = node.get("inputs") if isinstance(node, dict) else None
    return ins if isinstance(ins, dict) else {}


def _is_link(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 2 and isinstance(v[0], str) and isinstance(v[1], int)


def _placeholder(inp: Input) -> Any:
    """A widget value for an input that has none in the workflow (its default, else a zero of its type)."""
    if inp.default is not MISSING:
        return inp.default
    if inp.type == "COMBO":
        try:
            return (inp.get_choices() or [None])[0]
        except Exception:  # noqa: BLE001
            return None
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(inp.type)


#: the height the editor (ComfyUI frontend 1.49) adds under a saver's widgets for the pictures it saved (176)
SAVED_PREVIEW_ROOM = 180


def api_to_ui(api: dict, registry: NodeRegistry | None = None) -> dict:
    """Convert API format to a UI-format graph the ComfyUI editor opens, laid out left to right by depth.

    Without a registry (or for unknown types) constants become widget values in input order and links become
    sockets typed ``*``.
    """
    registry = registry or NodeRegistry()
    api = {k: v for k, v in api.items() if isinstance(v, dict)}
    numeric = all(k.isascii() and k.isdigit() for k in api)
    ids = {k: int(k) if numeric else n for n, k in enumerate(sorted(api, key=lambda k: (len(k), k)), 1)}
    depth = _depths(api)
    column_y: dict[int, int] = {}  # next free y of each column (nodes stack by their height: no overlaps)
    nodes, links = [], []
    out_links: dict[tuple[str, int], list[int]] = {}
    for nid in sorted(api, key=lambda k: (depth[k], ids[k])):
        node = api[nid]
        ct = node.get("class_type")
        cls = registry.get(ct)
        ins = _inputs(node)
        slots: list[dict] = []
        widgets: list[Any] = []
        declared: list[Input] = list(cls.inputs) if cls else \
            [Input(k, "*" if _is_link(v) else "STRING") for k, v in ins.items()]
        for inp in declared:
            value = ins.get(inp.name, MISSING)
            linked = _is_link(value) and value[0] in api
            if inp.is_widget and cls is not None or (cls is None and not linked):
                widgets.append(_placeholder(inp) if linked or value is MISSING else value)
                if inp.has_control:
                    widgets.append("fixed")
            if linked or (cls is not None and not inp.is_widget):
                slot = {"name": inp.name, "type": inp.type, "link": None}
                if inp.is_widget:
                    slot["widget"] = {"name": inp.name}
                if linked:
                    lid = len(links) + 1
                    src_cls = registry.get(api[value[0]].get("class_type"))
                    ltype = src_cls.outputs[value[1]].type if src_cls and 0 <= value[1] < len(src_cls.outputs) \
                        else "*"
                    links.append([lid, ids[value[0]], value[1], ids[nid], len(slots), ltype])
                    out_links.setdefault((value[0], value[1]), []).append(lid)
                    slot["link"] = lid
                slots.append(slot)
        d = depth[nid]
        n_out = len(cls.outputs) if cls is not None else 1
        height = 46 + 24 * (max(len(slots), n_out) + len(widgets))
        if cls is not None and any(i.extra.get("image_upload") for i in cls.inputs):
            height += 24 + 300  # the editor adds an upload button and a preview of the picture
        elif cls is not None and cls.output_node and not cls.outputs and any(i.type == "IMAGE" for i in cls.inputs):
            height += SAVED_PREVIEW_ROOM  # a saver: the editor grows it to show the saved pictures under its widgets
        y = column_y.get(d, 50)
        column_y[d] = y + height + 50
        entry = {"id": ids[nid], "type": ct, "pos": [50 + 360 * d, y], "size": [320, height],
                 "flags": {}, "order": len(nodes), "mode": 0, "inputs": slots, "outputs": [],
                 "properties": {"Node name for S&R": ct}, "widgets_values": widgets}
        meta = node.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get("title"), str):
            entry["title"] = meta["title"]
        nodes.append((nid, cls, entry))
    for nid, cls, entry in nodes:
        if cls is not None:
            n_out = len(cls.outputs)
        else:
            n_out = max((i + 1 for (s, i) in out_links if s == nid), default=0)
        for i in range(n_out):
            o = cls.outputs[i] if cls is not None else None
            entry["outputs"].append({"name": o.name if o else f"out{i}", "type": o.type if o else "*",
                                     "links": out_links.get((nid, i), []), "slot_index": i})
    return {"last_node_id": max(ids.values(), default=0), "last_link_id": len(links),
            "nodes": [e for _, _, e in nodes], "links": links, "groups": [], "config": {},
            "extra": {"ds": {"scale": 1.0, "offset": [0, 0]}}, "version": 0.4}
