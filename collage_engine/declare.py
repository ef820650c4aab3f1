"""Typed node declarations: one class per node, everything else is derived from it.

A node is a subclass of :class:`Node` with class attributes (name, category, version, ...), a list of
:class:`Input` and :class:`Output` declarations and one ``run(self, ctx, **inputs)`` method::

    class Scale(Node):
        name = "Scale"
        category = "math"
        description = "Multiply a number."
        inputs = [Input("x", "FLOAT", default=1.0), Float("factor", 2.0, min=0, max=10, step=0.5)]
        outputs = [Output("y", "FLOAT")]

        def run(self, ctx, x, factor):
            return (x * factor,)

Validation (:mod:`.validate`), the ComfyUI ``/object_info`` listing (:meth:`Node.object_info`), the markdown
documentation (:mod:`.registry`) and the UI-format conversion (:mod:`.workflow`) all read these declarations.
:func:`check_constant` (one value against one input, for defaults here and workflow values in :mod:`.validate`)
lives here too, so that this module imports no other engine module.
"""

from __future__ import annotations

import math
import re
import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .errors import as_input_error

__all__ = [
    "MISSING", "WIDGET_TYPES", "CONTROL_VALUES", "DeclarationError", "Input", "Output", "Node", "NodeOutput",
    "Int", "Float", "String", "Boolean", "Combo", "types_match", "check_constant", "safe_repr",
]

#: Types edited as widgets in the UI (they may be constants in a workflow). Every other type is link-only.
WIDGET_TYPES = frozenset({"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"})
#: UI-only values the editor stores after a widget that has ``control_after_generate``.
CONTROL_VALUES = frozenset({"fixed", "increment", "decrement", "randomize"})
#: Inputs the official editor gives a control widget even without ``control_after_generate``.
SEED_NAMES = frozenset({"seed", "noise_seed"})

_TYPE_RE = re.compile(r"^(\*|[A-Z][A-Z0-9_]*(,[A-Z][A-Z0-9_]*)*)$")
INT_MIN, INT_MAX = -(2 ** 63), 2 ** 64 - 1  # ComfyUI seeds go up to 0xffffffffffffffff
MAX_JSON_DEPTH = 32
_repr = reprlib.Repr()
_repr.maxstring, _repr.maxother, _repr.maxlong = 80, 80, 40


def safe_repr(value: Any) -> str:
    """A short repr that never raises (huge ints, deep nesting, broken ``__repr__``)."""
    try:
        return _repr.repr(value)
    except Exception:  # noqa: BLE001
        return f"<{type(value).__name__}>"


class DeclarationError(TypeError):
    """A node class is declared wrongly (raised when the class is defined or registered)."""


class _Missing:
    def __repr__(self) -> str:
        return "MISSING"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


def types_match(output_type: str, input_type: str) -> bool:
    """Whether a link from an output of ``output_type`` may feed an input of ``input_type``.

    ``*`` matches anything; comma-separated types (``"INT,FLOAT"``) match if they share a member.
    """
    if output_type == input_type or output_type == "*" or input_type == "*":
        return True
    return bool(set(output_type.split(",")) & set(input_type.split(",")))


@dataclass(frozen=True)
class Input:
    """One input of a node.

    ``type`` is ``INT``, ``FLOAT``, ``STRING``, ``BOOLEAN``, ``COMBO`` (with ``choices``), ``*`` (anything) or any
    uppercase custom type (``GENERATOR``, ``LATENT_Z``, ``IMAGE``, ``MASK``...). Widget types may be given as
    constants or links; custom types must be links. ``choices`` is a list or a callable returning one (evaluated
    at validation and listing time). ``file=True`` marks a path: the engine folds the file's size and mtime into
    the cache key so that a changed file re-runs the node; ``path_kind`` (e.g. ``"model"``) marks an input that names a
    file or a known name without that (see :mod:`collage_engine.paths`: where files are looked for). ``extra`` holds
    further ComfyUI widget options
    (``display``, ``round``, ``image_upload``...), passed through to ``object_info`` untouched.
    """

    name: str
    type: str
    default: Any = MISSING
    min: float | None = None
    max: float | None = None
    step: float | None = None
    choices: Sequence[Any] | Callable[[], Sequence[Any]] | None = None
    multiline: bool = False
    optional: bool = False
    description: str = ""
    file: bool = False
    path_kind: str | None = None
    force_input: bool = False
    control_after_generate: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def is_widget(self) -> bool:
        """Shown as a widget in the editor (so it has a slot in the UI format's ``widgets_values``)."""
        return self.type in WIDGET_TYPES and not self.force_input

    @property
    def has_control(self) -> bool:
        """The editor stores a control value ("fixed", "randomize"...) after this widget's value."""
        return self.is_widget and (self.control_after_generate or (self.type == "INT" and self.name in SEED_NAMES))

    def get_choices(self) -> list:
        """The allowed values of a COMBO input (calls ``choices`` if it is callable)."""
        c = self.choices() if callable(self.choices) else self.choices
        return list(c or [])

    def object_info(self) -> list:
        """This input as ComfyUI's ``[TYPE, options]`` pair (COMBO: ``[[choices...], options]``)."""
        opts: dict[str, Any] = {}
        if self.default is not MISSING:
            opts["default"] = self.default
        for key in ("min", "max", "step"):
            if getattr(self, key) is not None:
                opts[key] = getattr(self, key)
        if self.multiline:
            opts["multiline"] = True
        if self.description:
            opts["tooltip"] = self.description
        if self.force_input:
            opts["forceInput"] = True
        if self.has_control:
            opts["control_after_generate"] = True
        opts.update(self.extra)
        if self.type == "COMBO":
            try:
                return [self.get_choices(), opts]
            except Exception:  # a failing choices callable must not break the listing
                return [[], opts]
        return [self.type, opts]


@dataclass(frozen=True)
class Output:
    """One output of a node: a name (shown in the editor) and a type."""

    name: str
    type: str
    description: str = ""


def Int(name: str, default: int = 0, *, min: int | None = None, max: int | None = None, step: int | None = None,
        **kw: Any) -> Input:
    """An ``INT`` widget input."""
    return Input(name, "INT", default, min=min, max=max, step=step, **kw)


def Float(name: str, default: float = 0.0, *, min: float | None = None, max: float | None = None,
          step: float | None = None, **kw: Any) -> Input:
    """A ``FLOAT`` widget input."""
    return Input(name, "FLOAT", default, min=min, max=max, step=step, **kw)


def String(name: str, default: str = "", **kw: Any) -> Input:
    """A ``STRING`` widget input (``multiline=True`` for a text box, ``file=True`` for a path)."""
    return Input(name, "STRING", default, **kw)


def Boolean(name: str, default: bool = False, **kw: Any) -> Input:
    """A ``BOOLEAN`` widget input."""
    return Input(name, "BOOLEAN", default, **kw)


def Combo(name: str, choices: Sequence[Any] | Callable[[], Sequence[Any]], default: Any = MISSING,
          **kw: Any) -> Input:
    """A ``COMBO`` input: one of ``choices`` (a list or a callable returning one)."""
    return Input(name, "COMBO", default, choices=choices, **kw)


class NodeOutput(tuple):
    """What ``run`` may return: the output values plus an optional ``ui`` dict (sent with ``executed``).

    ``return NodeOutput(image, ui={"images": [...]})``. A plain tuple works too; a node with exactly one output
    may return the bare value.
    """

    ui: dict | None

    def __new__(cls, *values: Any, ui: dict | None = None) -> NodeOutput:
        self = super().__new__(cls, values)
        self.ui = ui
        return self


class Node:
    """Base class of all nodes. Subclasses declare class attributes and implement :meth:`run`.

    Attributes: ``name`` (the workflow's ``class_type``; defaults to the class name), ``display_name``,
    ``category`` (slash-separated), ``version`` (part of every cache key: bump it when results change),
    ``description`` (defaults to the docstring), ``output_node`` (runs whenever the workflow runs),
    ``always_run`` (non-deterministic: never served from cache), ``inputs``, ``outputs``, ``error_inputs``
    (``{"library parameter": "input"}``: the input an error naming that parameter is reported on, where the names
    differ; see :func:`~collage_engine.errors.as_input_error`).

    The engine creates one instance per class and engine, so nodes should keep no per-run state.
    """

    name: ClassVar[str]
    display_name: ClassVar[str] = ""
    category: ClassVar[str] = "misc"
    version: ClassVar[int | str] = 1
    description: ClassVar[str] = ""
    output_node: ClassVar[bool] = False
    always_run: ClassVar[bool] = False
    inputs: ClassVar[Sequence[Input]] = ()
    outputs: ClassVar[Sequence[Output]] = ()
    input_map: ClassVar[dict[str, Input]] = {}
    error_inputs: ClassVar[dict[str, str]] = {}

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if "name" not in cls.__dict__:
            cls.name = cls.__name__
        if not cls.__dict__.get("display_name"):
            cls.display_name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", cls.name)
        if not cls.__dict__.get("description"):
            doc = cls.__dict__.get("__doc__") or ""
            cls.description = " ".join(doc.strip().split("\n\n")[0].split())
        cls.inputs, cls.outputs = tuple(cls.inputs), tuple(cls.outputs)
        cls.input_map = {i.name: i for i in cls.inputs if isinstance(i, Input)}
        problems = _check_declaration(cls)
        if problems:
            raise DeclarationError(f"node {cls.__name__}: " + "; ".join(problems))

    def run_reported(self, ctx: Any, **inputs: Any) -> Any:
        """:meth:`run`, its errors reported on the node's inputs as the declaration says (``error_inputs``)."""
        try:
            return self.run(ctx, **inputs)
        except ValueError as e:
            reported = as_input_error(e, type(self).input_map, type(self).error_inputs)
            if reported is None:
                raise
            raise reported from None

    def run(self, ctx: Any, **inputs: Any) -> Any:
        """Compute the outputs. ``ctx`` is a :class:`~collage_engine.context.Context` (progress, cancellation).

        Every declared input arrives as a keyword argument: its value, else its default, else ``None``.
        Return a tuple with one value per declared output (or a :class:`NodeOutput`).
        """
        raise NotImplementedError

    def fingerprint(self, **inputs: Any) -> Any:
        """Extra cache-key material (file hashes, mtimes...): a changed fingerprint re-runs the node.

        Receives the constant inputs only (linked values are not known before the run). Returning ``float("nan")``
        forces a re-run, like ComfyUI's ``IS_CHANGED``. Files of ``file=True`` inputs are already covered.
        """
        return None

    def estimate(self, **inputs: Any) -> Sequence[Any] | None:
        """Sizes of the outputs before running: one :class:`~collage_engine.memory.Estimate` (or None) per output,
        or None when unknown. Constant inputs arrive as values, linked ones as their source's Estimate (or None).
        The engine refuses a workflow whose estimated live results would pass its memory budget."""
        return None

    def validate(self, **inputs: Any) -> str | list[str | tuple[str, str]] | None:
        """Custom checks on the constant inputs, run before execution; return error strings, or
        ``(input_name, message)`` pairs to name the input (or None)."""
        return None

    @classmethod
    def object_info(cls) -> dict:
        """This node as one entry of ComfyUI's ``/object_info``."""
        required = {i.name: i.object_info() for i in cls.inputs if not i.optional}
        optional = {i.name: i.object_info() for i in cls.inputs if i.optional}
        return {
            "input": {"required": required, "optional": optional},
            "input_order": {"required": list(required), "optional": list(optional)},
            "output": [o.type for o in cls.outputs],
            "output_is_list": [False] * len(cls.outputs),
            "output_name": [o.name for o in cls.outputs],
            "output_tooltips": [o.description for o in cls.outputs],
            "name": cls.name,
            "display_name": cls.display_name,
            "description": cls.description,
            "python_module": cls.__module__,
            "category": cls.category,
            "output_node": bool(cls.output_node),
            "version": cls.version,
        }


def check_constant(inp: Input, value: Any) -> tuple[Any, tuple[str, str] | None]:
    """Check a constant for input ``inp``; return ``(normalised_value, None)`` or ``(None, (type, message))``."""
    t = inp.type
    if t == "INT":
        if isinstance(value, bool) or not isinstance(value, int):
            return None, ("invalid_input_type", f"expected an integer, got {type(value).__name__} {safe_repr(value)}")
        lo = INT_MIN if inp.min is None else inp.min
        hi = INT_MAX if inp.max is None else inp.max
    elif t == "FLOAT":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None, ("invalid_input_type", f"expected a number, got {type(value).__name__} {safe_repr(value)}")
        try:
            value = float(value)
        except OverflowError:
            return None, ("value_not_finite", f"number too large: {safe_repr(value)}")
        if not math.isfinite(value):
            return None, ("value_not_finite", f"expected a finite number, got {value}")
        lo, hi = inp.min, inp.max
    elif t == "STRING":
        if not isinstance(value, str):
            return None, ("invalid_input_type", f"expected a string, got {type(value).__name__} {safe_repr(value)}")
        return value, None
    elif t == "BOOLEAN":
        if not isinstance(value, bool):
            return None, ("invalid_input_type", f"expected true/false, got {type(value).__name__} {safe_repr(value)}")
        return value, None
    elif t == "COMBO":
        choices = inp.get_choices()
        if not isinstance(value, (str, int, float)) or value not in choices:
            return None, ("value_not_in_list", f"{safe_repr(value)} not in {safe_repr(choices)}")
        return value, None
    elif t == "*":
        problem = _json_problem(value)
        return (None, ("invalid_input_type", problem)) if problem else (value, None)
    else:
        return None, ("link_required", f"a {t} input must be linked to a node output, got a constant "
                                       f"{safe_repr(value)}")
    if lo is not None and value < lo:
        return None, ("value_smaller_than_min", f"value {safe_repr(value)} smaller than min of {lo}")
    if hi is not None and value > hi:
        return None, ("value_bigger_than_max", f"value {safe_repr(value)} bigger than max of {hi}")
    return value, None


def _json_problem(value: Any) -> str | None:
    """Why ``value`` is not a plain JSON value of bounded depth (iterative: deep junk cannot overflow)."""
    stack = [(value, 0)]
    while stack:
        v, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            return f"value nested deeper than {MAX_JSON_DEPTH} levels"
        if v is None or isinstance(v, (bool, str, float)):
            continue
        if isinstance(v, int):
            if v.bit_length() > 256:
                return "integer too large"
        elif isinstance(v, dict):
            if not all(isinstance(k, str) for k in v):
                return "object keys must be strings"
            stack.extend((x, depth + 1) for x in v.values())
        elif isinstance(v, list):
            stack.extend((x, depth + 1) for x in v)
        else:
            return f"not a JSON value: {type(v).__name__}"
    return None


def _check_declaration(cls: type[Node]) -> list[str]:
    """Problems with a node class's declaration (empty when it is fine)."""
    out: list[str] = []
    if not isinstance(cls.name, str) or not cls.name:
        out.append("name must be a non-empty string")
    if not isinstance(cls.version, (int, str)) or isinstance(cls.version, bool):
        out.append("version must be an int or a string")
    seen: set[str] = set()
    for i in cls.inputs:
        if not isinstance(i, Input):
            out.append(f"inputs must be Input objects, got {i!r}")
            continue
        if not i.name.isidentifier() or i.name in seen:
            out.append(f"input name {i.name!r} is not a unique identifier")
        seen.add(i.name)
        if not _TYPE_RE.match(i.type):
            out.append(f"input {i.name!r}: type {i.type!r} must be '*' or UPPERCASE")
        if i.type == "COMBO" and i.choices is None:
            out.append(f"input {i.name!r}: COMBO needs choices")
        if i.default is not MISSING and i.type in WIDGET_TYPES and i.type != "COMBO":
            problem = check_constant(i, i.default)[1]
            if problem:
                out.append(f"input {i.name!r}: default {i.default!r}: {problem[1]}")
    for o in cls.outputs:
        if not isinstance(o, Output) or not _TYPE_RE.match(o.type):
            out.append(f"bad output {o!r}: use Output(name, TYPE)")
    for param, name in dict(cls.error_inputs).items():
        if name not in cls.input_map:
            out.append(f"error_inputs: {param!r} maps to {name!r}, which is no input")
    return out
