"""The node registry: which ``class_type`` names exist, their ``/object_info`` listing and markdown docs."""

from __future__ import annotations

import inspect
from collections.abc import Iterable, Iterator
from types import ModuleType

from .declare import MISSING, DeclarationError, Input, Node

__all__ = ["NodeRegistry", "markdown_cell", "input_constraints"]


class NodeRegistry:
    """A mapping ``class_type -> Node subclass``.

    ``@registry.register`` works as a class decorator; :meth:`add_module` registers every node class defined in a
    module.
    """

    def __init__(self, nodes: Iterable[type[Node]] = ()) -> None:
        self._nodes: dict[str, type[Node]] = {}
        for cls in nodes:
            self.register(cls)

    def register(self, cls: type[Node]) -> type[Node]:
        """Add a node class (usable as a decorator). A second, different class of the same name is an error."""
        if not (isinstance(cls, type) and issubclass(cls, Node)) or cls is Node:
            raise DeclarationError(f"{cls!r} is not a Node subclass")
        if cls.run is Node.run:
            raise DeclarationError(f"node {cls.name}: no run() method")
        old = self._nodes.get(cls.name)
        if old is not None and old is not cls:
            raise DeclarationError(f"node name {cls.name!r} is already registered by {old.__module__}.{old.__name__}")
        self._nodes[cls.name] = cls
        return cls

    def add_module(self, module: ModuleType) -> list[type[Node]]:
        """Register every concrete Node subclass defined in ``module``; return them."""
        found = [c for _, c in inspect.getmembers(module, inspect.isclass)
                 if issubclass(c, Node) and c is not Node and c.__module__ == module.__name__ and c.run is not Node.run]
        for cls in found:
            self.register(cls)
        return found

    def update(self, other: NodeRegistry) -> None:
        """Register all nodes of another registry."""
        for cls in other:
            self.register(cls)

    def get(self, name: object) -> type[Node] | None:
        """The node class called ``name``, or None (also for non-string names)."""
        return self._nodes.get(name) if isinstance(name, str) else None

    def __getitem__(self, name: str) -> type[Node]:
        return self._nodes[name]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._nodes

    def __iter__(self) -> Iterator[type[Node]]:
        return iter(self._nodes.values())

    def __len__(self) -> int:
        return len(self._nodes)

    def names(self) -> list[str]:
        return sorted(self._nodes)

    def object_info(self) -> dict[str, dict]:
        """ComfyUI's ``/object_info`` for all registered nodes."""
        return {name: cls.object_info() for name, cls in sorted(self._nodes.items())}

    def markdown(self, title: str = "Nodes") -> str:
        """Reference documentation of all nodes, grouped by category, generated from the declarations."""
        lines = [f"# {title}", ""]
        by_cat: dict[str, list[type[Node]]] = {}
        for cls in self._nodes.values():
            by_cat.setdefault(cls.category, []).append(cls)
        for cat in sorted(by_cat):
            lines += [f"## {cat}", ""]
            for cls in sorted(by_cat[cat], key=lambda c: c.name):
                lines += _node_markdown(cls)
        return "\n".join(lines).rstrip() + "\n"


def markdown_cell(text: object) -> str:
    """Text for one cell of a Markdown table (``|`` escaped, one line)."""
    return str(text).replace("|", "\\|").replace("\n", " ")


def input_constraints(i: Input) -> str:
    """An input's range, step or choices as short text (``0 … 1, step 0.05``; ``one of `a`, `b` ``)."""
    if i.type == "COMBO":
        try:
            choices = i.get_choices()
        except Exception as e:  # noqa: BLE001 - documentation must still render
            return f"choices unavailable ({e})"
        shown = ", ".join(f"`{c}`" for c in choices[:12])
        return f"one of {shown}" + (f" (+{len(choices) - 12} more)" if len(choices) > 12 else "")
    parts = []
    if i.min is not None or i.max is not None:
        parts.append(f"{'' if i.min is None else i.min} … {'' if i.max is None else i.max}")
    if i.step is not None:
        parts.append(f"step {i.step}")
    if i.file:
        parts.append("file path")
    if i.multiline:
        parts.append("multiline")
    return ", ".join(parts)


def _node_markdown(cls: type[Node]) -> list[str]:
    flags = [f"version {cls.version}"] + (["output node"] if cls.output_node else []) + \
        (["always re-runs"] if cls.always_run else [])
    out = [f"### {cls.display_name} (`{cls.name}`)", "", f"*{', '.join(flags)}*", ""]
    if cls.description:
        out += [cls.description, ""]
    if cls.inputs:
        out += ["| input | type | default | constraints | description |", "| --- | --- | --- | --- | --- |"]
        for i in cls.inputs:
            default = "" if i.default is MISSING else f"`{i.default!r}`"
            name = f"{i.name} (optional)" if i.optional else i.name
            out.append(f"| {markdown_cell(name)} | {i.type} | {markdown_cell(default)} | "
                       f"{markdown_cell(input_constraints(i))} | {markdown_cell(i.description)} |")
        out.append("")
    if cls.outputs:
        out += ["| output | type | description |", "| --- | --- | --- |"]
        out += [f"| {markdown_cell(o.name)} | {o.type} | {markdown_cell(o.description)} |" for o in cls.outputs]
        out.append("")
    return out
