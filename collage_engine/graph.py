"""Build workflows in Python; :meth:`Graph.to_api` gives the same API-format dict a JSON file would hold.

::

    g = Graph()
    z = g.node("SampleZ", seed=1)
    img = g.node("Generate", z=z.out(0), truncation=0.7)
    g.node("SaveImage", images=img)          # a node reference stands for its output 0
    result = engine.run(g)
    image, = result[img]
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .declare import MISSING
from .registry import NodeRegistry

__all__ = ["Graph", "NodeRef", "OutputRef"]


@dataclass(frozen=True)
class OutputRef:
    """Output ``index`` of node ``node_id``; serialised as the link ``[node_id, index]``."""

    node_id: str
    index: int

    def to_link(self) -> list:
        return [self.node_id, self.index]


class NodeRef:
    """A node added to a :class:`Graph`. ``ref.out(i)`` / ``ref.out("name")`` / ``ref[i]`` refer to its outputs."""

    def __init__(self, graph: Graph, node_id: str) -> None:
        self.graph, self.id = graph, node_id

    def __repr__(self) -> str:
        return f"NodeRef({self.id!r}, {self.class_type!r})"

    @property
    def class_type(self) -> str:
        return self.graph.nodes[self.id]["class_type"]

    @property
    def inputs(self) -> dict:
        return self.graph.nodes[self.id]["inputs"]

    def out(self, which: int | str = 0) -> OutputRef:
        """An output by index, or by declared name (needs the graph's registry)."""
        if isinstance(which, str):
            cls = self.graph.registry.get(self.class_type) if self.graph.registry else None
            names = [o.name for o in cls.outputs] if cls else []
            if which not in names:
                raise KeyError(f"{self.class_type} has no output {which!r} (outputs: {names})")
            which = names.index(which)
        return OutputRef(self.id, which)

    __getitem__ = out

    def set(self, **inputs: Any) -> NodeRef:
        """Change inputs (constants or references) of this node."""
        self.inputs.update({k: _encode(v) for k, v in inputs.items()})
        return self


def _encode(value: Any) -> Any:
    if isinstance(value, NodeRef):
        return [value.id, 0]
    if isinstance(value, OutputRef):
        return value.to_link()
    return value


class Graph:
    """An editable workflow. With a ``registry``, node types and input names are checked as they are added."""

    def __init__(self, registry: NodeRegistry | None = None) -> None:
        self.registry = registry
        self.nodes: dict[str, dict] = {}
        self._next = 1

    def __len__(self) -> int:
        return len(self.nodes)

    def __iter__(self) -> Iterator[NodeRef]:
        return (NodeRef(self, nid) for nid in self.nodes)

    def __getitem__(self, node_id: str) -> NodeRef:
        if node_id not in self.nodes:
            raise KeyError(node_id)
        return NodeRef(self, node_id)

    def node(self, class_type: str, /, **inputs: Any) -> NodeRef:
        """Add a node; inputs are constants, :class:`NodeRef` (output 0) or :class:`OutputRef`."""
        return self.add(class_type, inputs)

    def add(self, class_type: str, inputs: dict[str, Any] | None = None, *, id: str | None = None,
            title: str | None = None) -> NodeRef:
        """Add a node with an explicit id and/or title."""
        inputs = dict(inputs or {})
        if self.registry is not None:
            cls = self.registry.get(class_type)
            if cls is None:
                raise KeyError(f"unknown node type {class_type!r}")
            unknown = set(inputs) - set(cls.input_map)
            if unknown:
                raise KeyError(f"{class_type} has no input(s) {sorted(unknown)}; inputs: {list(cls.input_map)}")
        if id is None:
            while str(self._next) in self.nodes:
                self._next += 1
            id = str(self._next)
        elif id in self.nodes:
            raise KeyError(f"node id {id!r} already used")
        entry: dict[str, Any] = {"class_type": class_type, "inputs": {k: _encode(v) for k, v in inputs.items()}}
        if title is not None:
            entry["_meta"] = {"title": title}
        self.nodes[id] = entry
        return NodeRef(self, id)

    def remove(self, ref: NodeRef | str) -> None:
        self.nodes.pop(getattr(ref, "id", ref))

    def to_api(self, registry: NodeRegistry | None = None) -> dict:
        """The API-format dict. With a registry, missing widget inputs get their declared defaults (optional
        ones too, as the ComfyUI editor does)."""
        api = copy.deepcopy(self.nodes)
        registry = registry or self.registry
        if registry is not None:
            for node in api.values():
                cls = registry.get(node["class_type"])
                for inp in cls.inputs if cls else ():
                    if not inp.is_widget or inp.name in node["inputs"]:
                        continue
                    if inp.default is not MISSING:
                        node["inputs"][inp.name] = inp.default
                    elif inp.type == "COMBO" and inp.get_choices():
                        node["inputs"][inp.name] = inp.get_choices()[0]
        return api
