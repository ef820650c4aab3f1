"""Validation of an API-format workflow before anything runs.

:func:`validate` never raises on malformed input: every problem becomes an error entry naming the node id,
its ``class_type`` and the input, in ComfyUI's shape::

    {"error": {"type", "message", "details", "extra_info"},
     "node_errors": {node_id: {"errors": [{"type", "message", "details", "extra_info": {"input_name"}}],
                               "class_type", "dependent_outputs"}}}

All errors of a workflow are collected in one pass. Error types: ``invalid_prompt``, ``invalid_node``,
``invalid_node_id``, ``missing_node_type``, ``unknown_node_key``, ``invalid_inputs``, ``unknown_input``,
``required_input_missing``, ``bad_linked_input``, ``link_source_missing``, ``link_output_out_of_range``,
``return_type_mismatch``, ``link_required``, ``invalid_input_type``, ``value_not_finite``, ``value_smaller_than_min``,
``value_bigger_than_max``, ``value_not_in_list``, ``custom_validation_failed``, ``exception_during_validation``,
``dependency_cycle``, ``invalid_target``, ``prompt_no_outputs`` and ``prompt_outputs_failed_validation``.
"""

from __future__ import annotations

import difflib
import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from .declare import Node, check_constant, safe_repr, types_match
from .registry import NodeRegistry

# check_constant and safe_repr live in .declare (they check a value against an Input); re-exported here
__all__ = ["PlannedNode", "Validation", "ValidationError", "validate", "check_constant", "safe_repr", "format_errors",
           "id_key"]


def id_key(node_id: str) -> tuple:
    """Sort key putting numeric ids in numeric order ("2" < "10") before other ids."""
    if node_id.isascii() and node_id.isdigit() and len(node_id) < 30:
        return (0, int(node_id), node_id)
    return (1, 0, node_id)


class ValidationError(ValueError):
    """Raised by :meth:`Validation.raise_for_errors`; ``.errors`` holds the ComfyUI-shaped dict."""

    def __init__(self, errors: dict) -> None:
        super().__init__(format_errors(errors))
        self.errors = errors


@dataclass
class PlannedNode:
    """A validated node: its class, constant inputs (normalised) and links ``name -> (source_id, index)``."""

    id: str
    cls: type[Node]
    consts: dict[str, Any]
    links: dict[str, tuple[str, int]]
    title: str | None = None


@dataclass
class Validation:
    """The outcome of :func:`validate`; ``order`` lists the nodes to run (targets and ancestors), topologically."""

    error: dict | None = None
    node_errors: dict[str, dict] = field(default_factory=dict)
    nodes: dict[str, PlannedNode] = field(default_factory=dict)
    targets: list[str] = field(default_factory=list)
    order: list[str] = field(default_factory=list)
    graph: nx.DiGraph = field(default_factory=nx.DiGraph)
    prompt: dict | None = None  # the API-format workflow that was checked

    @property
    def ok(self) -> bool:
        return self.error is None and not self.node_errors

    def to_dict(self) -> dict:
        """ComfyUI's ``{"error": ..., "node_errors": ...}`` response body."""
        return {"error": self.error, "node_errors": self.node_errors}

    def raise_for_errors(self) -> None:
        if not self.ok:
            raise ValidationError(self.to_dict())


def format_errors(errors: dict) -> str:
    """Human-readable lines for a ``{"error", "node_errors"}`` dict (for CLIs and exception messages)."""
    lines = []
    top = errors.get("error") or {}
    if top:
        details = f": {top['details']}" if top.get("details") else ""
        lines.append(f"{top.get('message', 'invalid workflow')}{details}")
    for nid, entry in (errors.get("node_errors") or {}).items():
        for e in entry.get("errors", []):
            name = (e.get("extra_info") or {}).get("input_name")
            where = f"node {nid} ({entry.get('class_type')})" + (f", input '{name}'" if name else "")
            lines.append(f"  {where}: {e.get('message')}" + (f" - {e['details']}" if e.get("details") else ""))
    return "\n".join(lines)


class _Collector:
    """Accumulates node errors in ComfyUI's shape."""

    def __init__(self) -> None:
        self.node_errors: dict[str, dict] = {}

    def add(self, nid: str, class_type: Any, etype: str, message: str, details: str = "",
            input_name: str | None = None, **extra: Any) -> None:
        entry = self.node_errors.setdefault(nid, {"errors": [], "class_type": class_type if isinstance(
            class_type, str) else safe_repr(class_type), "dependent_outputs": []})
        info = {"input_name": input_name} if input_name is not None else {}
        info.update(extra)
        entry["errors"].append({"type": etype, "message": message, "details": details or message,
                                "extra_info": info})


#: the keys of a node object in ComfyUI's API format (keys starting with "_" are annotations, and ignored)
NODE_KEYS = ("class_type", "inputs")


def did_you_mean(word: Any, choices: Iterable[str], n: int = 3) -> str:
    """`` (did you mean 'x'?)`` with the closest of ``choices`` (case-insensitive), or ``""`` when none is close."""
    if not isinstance(word, str):
        return ""
    choices = list(choices)
    by_lower = {c.lower(): c for c in choices}
    close = [by_lower[c] for c in difflib.get_close_matches(word.lower(), list(by_lower), n=n, cutoff=0.6)]
    if not close:
        return ""
    return " (did you mean " + " or ".join(repr(c) for c in close) + "?)"


def _link_problem(value: list) -> tuple[str, int] | str:
    """A normalised ``(source_id, index)`` or the reason the link is malformed."""
    if len(value) != 2:
        return f"a link must be [node_id, output_index], got a list of length {len(value)}"
    src, idx = value
    if isinstance(src, int) and not isinstance(src, bool) and abs(src) < 10 ** 18:
        src = str(src)
    if not isinstance(src, str):
        return f"link source id must be a string, got {type(src).__name__} {safe_repr(src)}"
    if isinstance(idx, bool) or not isinstance(idx, int) or idx < 0:
        return f"link output index must be a non-negative integer, got {safe_repr(idx)}"
    return src, idx


def _check_inputs(nid: str, cls: type[Node], inputs: dict, prompt: dict, known: dict[str, type[Node]],
                  graph: nx.DiGraph, col: _Collector) -> PlannedNode:
    """Check one node's inputs against its declaration; add its valid links to ``graph``."""
    ct = cls.name
    for key in inputs:
        if not isinstance(key, str) or key not in cls.input_map:
            col.add(nid, ct, "unknown_input", f"unknown input {safe_repr(key)}{did_you_mean(key, cls.input_map)}",
                    f"{ct} has inputs: {', '.join(cls.input_map) or '(none)'}",
                    input_name=key if isinstance(key, str) else safe_repr(key))
    consts: dict[str, Any] = {}
    links: dict[str, tuple[str, int]] = {}
    for inp in cls.inputs:
        name = inp.name
        if name not in inputs:
            if not inp.optional:
                col.add(nid, ct, "required_input_missing", "Required input is missing", name, input_name=name)
            continue
        value = inputs[name]
        if isinstance(value, (list, tuple)):
            link = _link_problem(list(value))
            if isinstance(link, str):
                col.add(nid, ct, "bad_linked_input", "Bad linked input", link, input_name=name)
                continue
            src, idx = link
            if src not in prompt:
                col.add(nid, ct, "link_source_missing", f"linked node {src!r} does not exist",
                        input_name=name, linked_node=src)
                continue
            src_cls = known.get(src)
            if src_cls is None:  # the source node is itself broken; its own errors say why
                continue
            if idx >= len(src_cls.outputs):
                col.add(nid, ct, "link_output_out_of_range",
                        f"node {src} ({src_cls.name}) has {len(src_cls.outputs)} output(s), link asks for #{idx}",
                        input_name=name, linked_node=src)
                continue
            out_type = src_cls.outputs[idx].type
            want = "COMBO" if inp.type == "COMBO" else inp.type
            if not types_match(out_type, want):
                col.add(nid, ct, "return_type_mismatch", "Return type mismatch between linked nodes",
                        f"{name}, received_type({out_type}) mismatch input_type({want})", input_name=name,
                        received_type=out_type, linked_node=src)
                continue
            links[name] = (src, idx)
            if graph.has_edge(src, nid):
                graph[src][nid]["inputs"].append(name)
            else:
                graph.add_edge(src, nid, inputs=[name])
        else:
            norm, problem = check_constant(inp, value)
            if problem:
                col.add(nid, ct, problem[0], problem[1], input_name=name, received_value=safe_repr(value))
            else:
                consts[name] = norm
    return PlannedNode(nid, cls, consts, links)


def validation_messages(result: Any) -> list[tuple[str | None, str]]:
    """A node ``validate`` hook's result as ``(input name or None, message)`` pairs: None / True / [] mean valid,
    False a bare failure; a string, an ``(input_name, message)`` pair, or a list of those."""
    if result is None or result is True or result == []:
        return []
    if result is False:
        return [(None, "custom validation failed")]
    out: list[tuple[str | None, str]] = []
    for msg in [result] if isinstance(result, (str, tuple)) else list(result):
        if isinstance(msg, tuple) and len(msg) == 2:
            out.append((str(msg[0]), str(msg[1])))
        else:
            out.append((None, str(msg)))
    return out


def _run_custom_validate(node: PlannedNode, col: _Collector) -> None:
    cls = node.cls
    if cls.validate is Node.validate:
        return
    try:
        result = cls().validate(**node.consts)
    except Exception as e:  # noqa: BLE001 - a node's own checker must not crash validation
        col.add(node.id, cls.name, "exception_during_validation", f"{type(e).__name__}: {e}")
        return
    for name, msg in validation_messages(result):
        if name is not None:
            col.add(node.id, cls.name, "custom_validation_failed", msg, input_name=name)
        else:
            col.add(node.id, cls.name, "custom_validation_failed", msg)


def validate(prompt: Any, registry: NodeRegistry, targets: Iterable[Any] | None = None) -> Validation:
    """Check an API-format workflow; collect every error. ``targets`` default to all output nodes."""
    v = Validation(prompt=prompt if isinstance(prompt, dict) else None)
    col = _Collector()
    if not isinstance(prompt, dict):
        v.error = _top("invalid_prompt", "Workflow must be a JSON object of nodes",
                       f"got {type(prompt).__name__}")
        return v
    known: dict[str, type[Node]] = {}
    raw_inputs: dict[str, dict] = {}
    titles: dict[str, str] = {}
    for raw_id, node in prompt.items():
        nid = raw_id if isinstance(raw_id, str) else safe_repr(raw_id)
        if not isinstance(raw_id, str):
            col.add(nid, node.get("class_type") if isinstance(node, dict) else None, "invalid_node_id",
                    f"node id must be a string, got {type(raw_id).__name__}")
            continue
        if not isinstance(node, dict):
            col.add(nid, None, "invalid_node", f"node must be an object, got {type(node).__name__}")
            continue
        ct = node.get("class_type")
        if not isinstance(ct, str):
            col.add(nid, ct, "invalid_node", "node has no class_type string", safe_repr(ct))
            continue
        cls = registry.get(ct)
        if cls is None:
            col.add(nid, ct, "missing_node_type", f"Node type '{ct}' not found{did_you_mean(ct, registry.names())}",
                    f"node {nid}")
            continue
        stray = [k for k in node if k not in NODE_KEYS and not (isinstance(k, str) and k.startswith("_"))]
        for key in stray:
            col.add(nid, ct, "unknown_node_key", f"unknown key {safe_repr(key)} in the node"
                    f"{did_you_mean(key, NODE_KEYS)}", f"a node has the keys {' and '.join(NODE_KEYS)} (and _meta)")
        if stray and "inputs" not in node:
            continue  # its inputs are under a misspelled key: "missing input" for each would only repeat that
        inputs = node.get("inputs", {})
        if not isinstance(inputs, dict):
            col.add(nid, ct, "invalid_inputs", f"inputs must be an object, got {type(inputs).__name__}")
            continue
        known[nid], raw_inputs[nid] = cls, inputs
        meta = node.get("_meta")
        if isinstance(meta, dict) and isinstance(meta.get("title"), str):
            titles[nid] = meta["title"]
    graph = v.graph
    graph.add_nodes_from(known)
    for nid, cls in known.items():
        try:
            planned = _check_inputs(nid, cls, raw_inputs[nid], prompt, known, graph, col)
        except Exception as e:  # noqa: BLE001 - last resort: junk must become an error, never an exception
            col.add(nid, cls.name, "exception_during_validation", f"{type(e).__name__}: {safe_repr(e)}")
            continue
        planned.title = titles.get(nid)
        v.nodes[nid] = planned
        if nid not in col.node_errors:
            _run_custom_validate(planned, col)
    for scc in nx.strongly_connected_components(graph):
        if len(scc) > 1 or any(graph.has_edge(n, n) for n in scc):
            for n in sorted(scc, key=id_key):
                for src in graph.predecessors(n):
                    if src in scc:
                        for name in graph[src][n]["inputs"]:
                            col.add(n, known[n].name, "dependency_cycle", "Dependency cycle detected",
                                    f"input '{name}' depends on node {src}, which depends on this node",
                                    input_name=name)
    v.targets = _targets(targets, prompt, known, v)
    if v.error is None and not v.targets:
        v.error = _top("prompt_no_outputs", "Prompt has no outputs", "the workflow has no output node to run")
    for nid, entry in col.node_errors.items():
        if nid in graph:
            reach = nx.descendants(graph, nid) | {nid}
            entry["dependent_outputs"] = [t for t in v.targets if t in reach]
    v.node_errors = col.node_errors
    if v.node_errors and v.error is None:
        v.error = _top("prompt_outputs_failed_validation", "Prompt outputs failed validation",
                       f"{sum(len(e['errors']) for e in v.node_errors.values())} error(s) in "
                       f"{len(v.node_errors)} node(s)")
    if v.ok:
        v.order = _plan(graph, v.targets)
    return v


def _top(etype: str, message: str, details: str = "") -> dict:
    return {"type": etype, "message": message, "details": details, "extra_info": {}}


def _targets(targets: Iterable[Any] | None, prompt: dict, known: dict[str, type[Node]], v: Validation) -> list[str]:
    if targets is None:
        return sorted((n for n, c in known.items() if c.output_node), key=id_key)
    out, bad = [], []
    try:
        for t in targets:
            t = getattr(t, "id", t)  # accept graph-builder references
            (out if isinstance(t, str) and t in known else bad).append(t)
    except TypeError:
        bad.append(targets)
    if bad:
        v.error = _top("invalid_target", "Requested targets are not valid nodes", safe_repr(bad))
    return sorted(set(out), key=id_key)


def _plan(graph: nx.DiGraph, targets: list[str]) -> list[str]:
    """Targets and all their ancestors, in a deterministic topological order (Kahn's algorithm, smallest id
    first; the graph is known to be acyclic here)."""
    needed, stack = set(targets), list(targets)
    while stack:
        for p in graph.predecessors(stack.pop()):
            if p not in needed:
                needed.add(p)
                stack.append(p)
    indegree = {n: sum(1 for p in graph.predecessors(n) if p in needed) for n in needed}
    ready = [(id_key(n), n) for n, d in indegree.items() if d == 0]
    heapq.heapify(ready)
    order = []
    while ready:
        n = heapq.heappop(ready)[1]
        order.append(n)
        for s in graph.successors(n):
            if s in needed:
                indegree[s] -= 1
                if indegree[s] == 0:
                    heapq.heappush(ready, (id_key(s), s))
    return order
