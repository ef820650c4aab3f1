"""The node pack inside ComfyUI: the boundary code of both node APIs, and the classic (V1) classes.

Nothing here is written per node. :func:`comfy_class` turns a declaration (a :class:`collage_engine.Node`
subclass) into a class with ComfyUI's classic interface, and :data:`NODE_CLASS_MAPPINGS` /
:data:`NODE_DISPLAY_NAME_MAPPINGS` hold every node of :func:`collage_nodes.registry`. :mod:`.comfy_v3` makes the
V3 classes (``comfy_api.latest``) from the same declarations with the same functions of this module
(:func:`input_entry`, :func:`run_declaration`, :func:`fingerprint_of`, :func:`validate_given`,
:func:`validated_inputs`, :func:`display_name`); the repository root's ``__init__.py`` (the folder placed in
``ComfyUI/custom_nodes/``) exports V3 where ComfyUI has it, V1 otherwise. With the package installed from pip, a
one-line file in ``custom_nodes`` does the same (V1 here; V3: ``from collage_nodes.comfy_v3 import
comfy_entrypoint``)::

    from collage_nodes.comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

What the generated classes do at the boundary:

* ``INPUT_TYPES`` is the declaration's ``/object_info`` entry (COMBO as a list of choices) plus the hidden
  ``PROMPT`` / ``EXTRA_PNGINFO`` / ``UNIQUE_ID`` inputs. Inputs naming an output folder (``output_dir``) are not
  shown: inside ComfyUI the savers write to ComfyUI's output folder (``folder_paths.get_output_directory()``),
  so their ``ui`` previews resolve. A relative ``file=True`` path that does not exist is looked up in ComfyUI's
  input folder, then next to the pack's workflows (``examples/...``).
* ``execute`` runs the node outside ComfyUI's ``torch.inference_mode()`` (as in our engine: autograd for manifold
  projection, version counters for collage_core's weight caches; inference-mode tensors from ComfyUI's own nodes are
  copied first) with a :class:`ComfyContext`: ``ctx.progress`` drives ``comfy.utils.ProgressBar`` and
  ``ctx.check_cancelled`` is ``comfy.model_management.throw_exception_if_processing_interrupted``; ``ctx.prompt`` /
  ``ctx.extra`` are the hidden PROMPT / EXTRA_PNGINFO, so saved PNGs embed the workflow. ``IMAGE`` and ``MASK``
  outputs are handed over as float32 CPU tensors (ComfyUI's layout); the custom types (``GENERATOR``,
  ``LATENT_Z``, ``CLASS_MAP``...) pass through on the generator's device. An output node's ``ui`` dict becomes
  ``{"ui": ..., "result": ...}``. Errors propagate as they are: :class:`~collage_nodes.base.InputError` messages
  start with ``input 'NAME':``, and ComfyUI adds the node id and type.
* ``IS_CHANGED`` (only where a node reads files or has a ``fingerprint`` hook) returns the size and mtime of every
  ``file=True`` input plus the hook's fingerprint, so ComfyUI re-runs loaders whose files changed; ``always_run``
  nodes return NaN (and are ``NOT_IDEMPOTENT``).
* ``VALIDATE_INPUTS`` (where a node has a ``validate`` hook or a model input) takes exactly the inputs the hook
  names plus the model inputs, checks their ranges and choices (ComfyUI skips its own checks for inputs a
  VALIDATE_INPUTS takes) and runs the hook. A refusal is one error in ComfyUI's ``node_errors`` and one log line:
  returned where ComfyUI passed one input, raised where it passed several (ComfyUI repeats a returned message once
  per input taken; :func:`validation_answer`).
* Model inputs (``path_kind="model"``) are dropdowns of the embedded models and of ComfyUI's ``neural_collage``
  model folder that still accept any path (:mod:`.comfy_models`).
* Display names that repeat one of ComfyUI's own (``Load Image``, ``Invert Mask``...) get " (Collage)".
* Loaded generators are kept across prompts in a small LRU (:data:`KEEP_LOADED`), keyed by checkpoint path, size,
  mtime, device, dtype and truncation, so switching workflows does not reload the model.

Importing this module has no side effects: ComfyUI's modules (``comfy``, ``folder_paths``) are imported when a node
runs, and outside ComfyUI the classes still work (progress is dropped, savers use their declared folder).
"""

from __future__ import annotations

import inspect
import json
import math
import os
import threading
from collections import OrderedDict
from typing import Any

from collage_engine import (
    MISSING,
    VOLATILE,
    Context,
    DeclarationError,
    Input,
    Node,
    check_constant,
    node_fingerprint,
    normalise_result,
    public_ui,
    validation_messages,
)

from . import registry as _registry
from .base import IMAGE, MASK, OUTPUT_DIR_INPUT
from .comfy_models import MODEL_FOLDER, model_choices, model_kind, register_model_folder, resolve_model

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "HIDDEN_INPUTS", "KEEP_LOADED", "COMFY_DISPLAY_NAMES",
           "DISPLAY_SUFFIX", "ComfyContext", "comfy_class", "comfy_mappings", "input_types", "input_entry",
           "clear_loaded", "run_declaration", "fingerprint_of", "validate_given", "validated_inputs",
           "needs_fingerprint", "display_name", "register_model_folder", "InputsRefused", "validation_answer"]

#: ComfyUI's hidden inputs every generated class asks for (name -> ComfyUI's hidden type).
HIDDEN_INPUTS = {"prompt": "PROMPT", "extra_pnginfo": "EXTRA_PNGINFO", "unique_id": "UNIQUE_ID"}
#: Inputs that name an output folder: inside ComfyUI they are not shown and get ComfyUI's output folder.
OUTPUT_FOLDER_INPUTS = frozenset({OUTPUT_DIR_INPUT})
#: Types handed to ComfyUI as float32 CPU tensors ([B, H, W, C] and [B, H, W]).
CPU_TYPES = frozenset({IMAGE, MASK})
#: Display names of ComfyUI's own nodes that ours would repeat; inside ComfyUI ours get :data:`DISPLAY_SUFFIX`
#: (checked against a real ComfyUI by ``tests/comfy/test_comfy_integration.py``).
COMFY_DISPLAY_NAMES = frozenset({"Load Image", "Combine Masks", "Feather Mask", "Invert Mask", "Threshold Mask",
                                 "Save Image", "Preview Image", "Load Image (as Mask)", "Image Batch"})
DISPLAY_SUFFIX = " (Collage)"
#: Added to the tooltip of model inputs inside ComfyUI (where they are dropdowns).
MODEL_TOOLTIP = (f" In ComfyUI: an embedded model or a file of the models/{MODEL_FOLDER} folder (any other path is "
                 f"accepted from the API and saved workflows).")
#: Nodes whose results are kept across prompts: class name -> how many results are kept (LRU).
KEEP_LOADED = {"LoadGenerator": 2}

#: The folder holding ``nodes/`` (the repository root, or site-packages when installed from a wheel).
PACK_FOLDER = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_FUNCTION = "execute"


# ---------------------------------------------------------------------------------------------- ComfyUI access
def _comfy_module(name: str) -> Any:
    """A module of the running ComfyUI (``comfy.utils``, ``folder_paths``...), or None outside ComfyUI."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _output_directory(default: Any) -> Any:
    fp = _comfy_module("folder_paths")
    return fp.get_output_directory() if fp is not None else default


def _resolve_file(value: Any) -> Any:
    """A relative path that does not exist from ComfyUI's working folder is looked up in ComfyUI's input folder, then
    next to the pack's workflows (``examples/...``, as the command line does; ``workflows/`` in the pack's folder,
    ``collage_workflows/`` when installed from a wheel), then in the pack's folder."""
    if not isinstance(value, str) or not value or os.path.isabs(value) or os.path.exists(value):
        return value
    fp = _comfy_module("folder_paths")
    if fp is None:
        return value
    bundles = [os.path.join(PACK_FOLDER, name) for name in ("workflows", "collage_workflows")]
    for folder in (fp.get_input_directory(), *bundles, *(os.path.join(b, "api") for b in bundles), PACK_FOLDER):
        candidate = os.path.join(folder, value)
        if os.path.exists(candidate):
            return candidate
    return value


def _executing_prompt_id() -> str:
    utils = _comfy_module("comfy_execution.utils")
    ctx = utils.get_executing_context() if utils is not None and hasattr(utils, "get_executing_context") else None
    return str(getattr(ctx, "prompt_id", "") or "")


class ComfyContext(Context):
    """A :class:`collage_engine.Context` that reports to ComfyUI: ``progress`` updates a ``comfy.utils.ProgressBar``
    (shown on the node) and ``check_cancelled`` raises ComfyUI's interruption
    (``comfy.model_management.throw_exception_if_processing_interrupted``) once the user pressed Cancel."""

    __slots__ = ("_bar",)

    def __init__(self, node_id: str, class_type: str, prompt_id: str = "", prompt: dict | None = None,
                 extra: dict | None = None, registry: Any = None) -> None:
        super().__init__(node_id, class_type, prompt_id, None, threading.Event(), prompt, extra, registry)
        self._bar = None

    def check_cancelled(self) -> None:
        mm = _comfy_module("comfy.model_management")
        if mm is not None:
            mm.throw_exception_if_processing_interrupted()
        else:
            super().check_cancelled()

    def progress(self, value: float, total: float | None = None) -> None:
        if total:
            utils = _comfy_module("comfy.utils")
            if utils is not None:
                if self._bar is None:
                    self._bar = utils.ProgressBar(total, node_id=self.node_id)
                self._bar.update_absolute(value, total)
        self.check_cancelled()


# ------------------------------------------------------------------------------------------------ declarations
def is_shown(inp: Input) -> bool:
    return inp.name not in OUTPUT_FOLDER_INPUTS


def is_model_input(inp: Input) -> bool:
    """A model input (``path_kind="model"``): a dropdown inside ComfyUI that still takes any path (see
    :mod:`.comfy_models`)."""
    return inp.path_kind == "model" and inp.type == "STRING" and inp.is_widget


def is_upload_input(inp: Input) -> bool:
    """A picture input (``file=True`` with ``image_upload``): ComfyUI's image picker over its input folder (upload
    button, preview) that still takes any path, as model inputs do."""
    return bool(inp.file and inp.extra.get("image_upload") and inp.type == "STRING" and inp.is_widget)


def _input_pictures() -> list[str]:
    fp = _comfy_module("folder_paths")
    if fp is None:
        return []
    from collage_engine.paths import input_pictures

    try:
        return input_pictures(fp.get_input_directory())
    except OSError:
        return []


def input_entry(node: type[Node], inp: Input) -> tuple:
    """One input as ComfyUI's ``(TYPE, options)``; a COMBO's type is its list of choices, a model input is a COMBO
    of the models ComfyUI can offer (:func:`~.comfy_models.model_choices`)."""
    kind, opts = inp.object_info()
    opts = dict(opts)
    if is_model_input(inp):
        kind = model_choices(model_kind(node), inp.default)
        if opts.get("tooltip"):
            opts["tooltip"] += MODEL_TOOLTIP
    elif is_upload_input(inp):
        kind = _input_pictures()
        opts = {k: v for k, v in opts.items() if k not in ("multiline", "default")}
        opts["image_upload"] = True
    return (list(kind) if isinstance(kind, list) else kind, opts)


def input_types(node: type[Node]) -> dict:
    """ComfyUI's ``INPUT_TYPES()`` of a declaration: required, optional and hidden inputs."""
    out: dict[str, dict] = {"required": {}, "optional": {}}
    for inp in node.inputs:
        if is_shown(inp):
            out["optional" if inp.optional else "required"][inp.name] = input_entry(node, inp)
    if not out["optional"]:
        del out["optional"]
    out["hidden"] = dict(HIDDEN_INPUTS)
    return out


def _hook_inputs(node: type[Node], hook: str) -> list[str]:
    """The declared inputs a ``validate``/``fingerprint`` hook names in its signature (all shown ones if none)."""
    params = inspect.signature(getattr(node, hook)).parameters.values()
    named = [p.name for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name in node.input_map]
    return [n for n in named if is_shown(node.input_map[n])] or \
        [i.name for i in node.inputs if i.is_widget and is_shown(i)]


def validated_inputs(node: type[Node], all_combos: bool = False) -> list[str]:
    """The inputs the generated ``VALIDATE_INPUTS`` / ``validate_inputs`` takes over from ComfyUI: those the node's
    ``validate`` hook names, its model inputs (a dropdown that also takes paths) and, with ``all_combos`` (V3, whose
    COMBO values ComfyUI v0.3.64 does not check against the list), every COMBO. Empty: no validation hook needed."""
    names = _hook_inputs(node, "validate") if node.validate is not Node.validate else []
    names += [i.name for i in node.inputs if is_shown(i) and (is_model_input(i) or is_upload_input(i) or (
        all_combos and i.type == "COMBO" and i.is_widget))]
    return list(dict.fromkeys(names))


def _constants(node: type[Node], given: dict, names: Any = None) -> dict:
    """The constant inputs among ``given`` (ComfyUI passes linked inputs as None when validating), file paths
    resolved."""
    out = {}
    for inp in node.inputs:
        if (names is not None and inp.name not in names) or given.get(inp.name) is None:
            continue
        out[inp.name] = _resolve_input(node, inp, given[inp.name])
    return out


def _resolve_input(node: type[Node], inp: Input, value: Any) -> Any:
    """A path input's value as the node reads it inside ComfyUI (files: input folder...; models: the
    ``neural_collage`` folder); other values unchanged."""
    if inp.file:
        return _resolve_file(value)
    if inp.path_kind == "model":
        return resolve_model(value, model_kind(node))
    return value


def _messages(result: Any) -> list[str]:
    """A ``validate`` hook's result as messages naming the input where the hook did (the engine's reading)."""
    return [msg if name is None else f"input '{name}': {msg}" for name, msg in validation_messages(result)]


def _is_nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


# ------------------------------------------------------------------------------------------- kept-loaded results
_loaded: OrderedDict = OrderedDict()
_loaded_lock = threading.Lock()


def clear_loaded() -> None:
    """Forget every kept generator (the next prompt loads them again)."""
    with _loaded_lock:
        _loaded.clear()


def _keep_key(node: type[Node], kwargs: dict) -> tuple | None:
    """The LRU key of a kept Load Generator result: checkpoint path, size, mtime, device, dtype and truncation
    (BigGAN keeps it on the loaded model). :data:`KEEP_LOADED` names no other node; any other gets no key."""
    if node.name != "LoadGenerator":
        return None
    from .model import model_file, resolve_device

    try:
        path = model_file(kwargs["model"])
        if path is None:
            return None
        st = os.stat(path)
        return (node.name, node.version, os.path.realpath(path), st.st_size, st.st_mtime_ns,
                resolve_device(kwargs["device"]), kwargs["dtype"], float(kwargs.get("truncation", 0.4)))
    except (OSError, ValueError, TypeError, KeyError):
        return None  # the node itself reports the problem


# -------------------------------------------------------------------------------- what V1 and V3 classes share
def run_declaration(node: type[Node], given: dict, *, registry: Any = None, prompt: Any = None,
                    extra_pnginfo: Any = None, unique_id: Any = None, instance: Node | None = None
                    ) -> tuple[tuple, dict | None]:
    """Run a declaration on the inputs ComfyUI passed (``given``: by name; hidden values apart): the inputs completed
    with their defaults and resolved (paths, ComfyUI's output folder), a :class:`ComfyContext`, kept-loaded results
    (:data:`KEEP_LOADED`), outside ``torch.inference_mode()``. Returns ComfyUI's output values and the ``ui`` dict
    (None for nodes without one). Errors propagate as they are."""
    kwargs: dict[str, Any] = {}
    for inp in node.inputs:
        if inp.name in OUTPUT_FOLDER_INPUTS:
            value = _output_directory(given.get(inp.name, None if inp.default is MISSING else inp.default))
        elif inp.name in given:
            value = _resolve_input(node, inp, _from_comfy(given[inp.name]))
        else:
            value = None if inp.default is MISSING else inp.default
        kwargs[inp.name] = value
    node_id = str(unique_id) if unique_id is not None else ""
    ctx = ComfyContext(node_id, node.name, _executing_prompt_id(), prompt if isinstance(prompt, dict) else None,
                       extra_pnginfo if isinstance(extra_pnginfo, dict) else None, registry)
    limit = KEEP_LOADED.get(node.name, 0)
    key = _keep_key(node, kwargs) if limit else None
    if key is not None:
        with _loaded_lock:
            if key in _loaded:
                _loaded.move_to_end(key)
                return _loaded[key], None
    import torch

    # ComfyUI executes nodes inside torch.inference_mode(); ours run as in our own engine: tensors that keep
    # version counters (collage_core's weight caches read them) and autograd available (manifold projection).
    with torch.inference_mode(False):
        values, ui = normalise_result(node, (instance or node()).run_reported(ctx, **kwargs))
    outputs = tuple(_to_comfy(o.type, v) for o, v in zip(node.outputs, values))
    if ui is not None:
        return outputs, public_ui(ui)
    if key is not None:
        with _loaded_lock:
            _loaded[key] = outputs
            while len(_loaded) > limit:
                _loaded.popitem(last=False)
    return outputs, None


def needs_fingerprint(node: type[Node]) -> bool:
    """Whether ComfyUI must ask the node before serving it from its cache (files, a fingerprint hook, always_run)."""
    return node.always_run or node.fingerprint is not Node.fingerprint or any(i.file for i in node.inputs)


def fingerprint_of(node: type[Node], given: dict) -> Any:
    """ComfyUI's ``IS_CHANGED`` / ``fingerprint_inputs`` value: the engine's fingerprint (sizes and mtimes of the
    files read, the ``fingerprint`` hook) as a JSON string, or NaN (always re-run)."""
    material = _fingerprint_material(node, _constants(node, given))
    if _is_nan(material):
        return material
    try:
        return json.dumps(material, sort_keys=True, default=repr)
    except (TypeError, ValueError):
        return float("nan")


class InputsRefused(ValueError):
    """A validation hook's refusal, raised rather than returned where ComfyUI would repeat a returned message.

    ComfyUI (``execution.validate_inputs``, v0.3.64) turns a message returned by ``VALIDATE_INPUTS`` /
    ``validate_inputs`` into one error *per input the hook took* (``"<input> - <message>"``, each logged by
    ``validate_prompt``), so one bad model on Load Generator (V3 takes ``model``, ``device``, ``dtype``) came back as
    three errors, three log lines, two of them naming a good input. An exception from the hook is one error on the
    node (``Exception when validating [inner] node: <message>``); the editor then marks the node rather than the
    widget (the error's ``input_name`` is not ours), and ComfyUI drops its own findings on that same node (range
    errors of inputs the hook does not take). Every input the hook takes is checked and named in the message.
    """


def validation_answer(message: Any, taken: int) -> Any:
    """What a hook that took ``taken`` inputs hands ComfyUI: True; a message where ComfyUI reports it once (one
    input taken: the error names that input); else raises :class:`InputsRefused` (one error, not ``taken``)."""
    if message is True or taken <= 1:
        return message
    raise InputsRefused(message)


def validate_given(node: type[Node], names: list[str], given: dict) -> Any:
    """ComfyUI's ``VALIDATE_INPUTS`` / ``validate_inputs`` answer for the inputs ``names`` (those the node took over,
    :func:`validated_inputs`): True, or one message naming the bad input(s) — returned where ComfyUI passed one
    input, raised as :class:`InputsRefused` where it passed several (see :func:`validation_answer`)."""
    return validation_answer(_validation_message(node, names, given), len(given))


def _validation_message(node: type[Node], names: list[str], given: dict) -> Any:
    consts = _constants(node, given, names)
    problems = []
    for name, value in list(consts.items()):
        inp = node.input_map[name]
        if inp.is_widget:  # ComfyUI leaves range and choice checks of these to us
            value, problem = check_constant(inp, value)
            if problem:
                problems.append(f"input '{name}': {problem[1]}")
            consts[name] = value
    if problems:
        return "; ".join(problems)
    if node.validate is Node.validate:
        return True
    try:
        messages = _messages(node().validate(**consts))
    except Exception as e:  # noqa: BLE001 - reported as a validation failure, not a crash
        return f"{type(e).__name__}: {e}"
    return True if not messages else "; ".join(messages)


def with_signature(func: Any, names: list[str]) -> Any:
    """``func(cls, **given)`` with the signature ``(cls, NAME=None, ...)``: ComfyUI passes a validation hook the
    inputs its signature names (and then skips its own checks of those only)."""
    params = [inspect.Parameter("cls", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
    params += [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None) for n in names]
    func.__signature__ = inspect.Signature(params)
    return func


def display_name(node: type[Node]) -> str:
    """The node's display name inside ComfyUI (" (Collage)" after names ComfyUI's own nodes use)."""
    return node.display_name + (DISPLAY_SUFFIX if node.display_name in COMFY_DISPLAY_NAMES else "")


def check_hidden_names(node: type[Node]) -> None:
    """:class:`DeclarationError` if an input of ``node`` takes the name of one of ComfyUI's hidden inputs."""
    clash = [i.name for i in node.inputs if i.name in HIDDEN_INPUTS]
    if clash:
        raise DeclarationError(f"node {node.name}: input name(s) {clash} are reserved for ComfyUI's hidden inputs")


# ----------------------------------------------------------------------------------------------- the classes
class ComfyNode:
    """Base of the generated classes (``NODE`` is the declaration they were made from)."""

    NODE: type[Node]
    REGISTRY: Any = None  # the registry the declaration belongs to (ctx.registry of its runs)
    FUNCTION = _FUNCTION

    def __init__(self) -> None:
        self._node = self.NODE()

    def execute(self, prompt: dict | None = None, extra_pnginfo: dict | None = None, unique_id: Any = None,
                **given: Any) -> Any:
        outputs, ui = run_declaration(self.NODE, given, registry=type(self).REGISTRY, prompt=prompt,
                                      extra_pnginfo=extra_pnginfo, unique_id=unique_id, instance=self._node)
        return outputs if ui is None else {"ui": ui, "result": outputs}


def _from_comfy(value: Any) -> Any:
    """An input from another node: tensors made inside ComfyUI's inference mode (its IMAGE / MASK) are copied, so our
    nodes may use them outside it."""
    if getattr(value, "is_inference", None) is not None and callable(value.is_inference) and value.is_inference():
        import torch

        with torch.inference_mode(False):
            return value.clone()
    return value


def _to_comfy(kind: str, value: Any) -> Any:
    """IMAGE and MASK as ComfyUI holds them: float32 on the CPU. Other types pass through."""
    if kind in CPU_TYPES and hasattr(value, "detach") and hasattr(value, "is_floating_point"):
        value = value.detach()
        if value.is_floating_point() and value.dtype != _float32():
            value = value.float()
        return value.cpu()
    return value


def _float32() -> Any:
    import torch

    return torch.float32


def _fingerprint_material(node: type[Node], consts: dict) -> Any:
    """The engine's fingerprint of a node (its shown file inputs and its ``fingerprint`` hook, called with the inputs
    the hook names), or NaN for "always changed" (ComfyUI's convention)."""
    hook = _hook_inputs(node, "fingerprint") if node.fingerprint is not Node.fingerprint else None
    fp = node_fingerprint(node, consts, file_inputs=[i for i in node.inputs if i.file and is_shown(i)],
                          hook_inputs=hook)
    return float("nan") if fp is VOLATILE else fp


def _is_changed(node: type[Node]):
    def IS_CHANGED(cls, **given: Any) -> Any:
        return fingerprint_of(node, given)

    return IS_CHANGED


def _validate_inputs(node: type[Node], names: list[str]):
    def VALIDATE_INPUTS(cls, **given: Any) -> Any:
        return validate_given(node, names, given)

    return with_signature(VALIDATE_INPUTS, names)


def comfy_class(node: type[Node], registry: Any = None) -> type:
    """A ComfyUI (v1) node class for a declaration (of ``registry``, which its runs see as ``ctx.registry``)."""
    check_hidden_names(node)
    attrs: dict[str, Any] = {
        "NODE": node,
        "REGISTRY": registry,
        "INPUT_TYPES": classmethod(lambda cls: input_types(cls.NODE)),
        "RETURN_TYPES": tuple(o.type for o in node.outputs),
        "RETURN_NAMES": tuple(o.name for o in node.outputs),
        "OUTPUT_TOOLTIPS": tuple(o.description for o in node.outputs),
        "FUNCTION": _FUNCTION,
        "CATEGORY": node.category,
        "OUTPUT_NODE": bool(node.output_node),
        "DESCRIPTION": node.description,
        "__doc__": node.description,
        "__module__": __name__,
    }
    if node.always_run:
        attrs["NOT_IDEMPOTENT"] = True
    if needs_fingerprint(node):
        attrs["IS_CHANGED"] = classmethod(_is_changed(node))
    names = validated_inputs(node)
    if names:
        attrs["VALIDATE_INPUTS"] = classmethod(_validate_inputs(node, names))
    return type(node.name, (ComfyNode,), attrs)


def comfy_mappings(reg: Any = None) -> tuple[dict[str, type], dict[str, str]]:
    """``(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)`` for a registry (default: the whole pack)."""
    reg = _registry() if reg is None else reg
    classes = {node.name: comfy_class(node, reg) for node in reg}
    names = {node.name: display_name(node) for node in reg}
    return classes, names


NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS = comfy_mappings()
