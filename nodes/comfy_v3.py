"""The node pack through ComfyUI's current node API (V3, ``comfy_api.latest``, ComfyUI >= v0.3.47).

:func:`v3_class` turns a declaration into an ``io.ComfyNode`` subclass, as :func:`.comfy.comfy_class` does for the
classic (V1) interface; both call the same boundary code of :mod:`.comfy` (running a node, fingerprints,
validation, display names, model dropdowns), so a node behaves the same through either API:

* ``define_schema`` gives an ``io.Schema``: ``node_id`` = the declaration's name, our display name and category,
  the description, ``is_output_node``, ``not_idempotent`` for ``always_run`` nodes, and the hidden ``PROMPT`` /
  ``EXTRA_PNGINFO`` / ``UNIQUE_ID`` (savers embed the workflow; errors name the linked node). Inputs are built
  from the V1 entries (:func:`.comfy.input_entry`): INT / FLOAT / STRING / BOOLEAN widgets with their options,
  COMBOs (model inputs included) as ``io.Combo`` (``image_upload`` as ``io.UploadType.image``), IMAGE / MASK /
  ``*`` as ComfyUI's types, every other type (``GENERATOR``, ``LATENT_Z``...) as ``io.Custom``. An option a
  ComfyUI version has no keyword for is passed in the input's ``extra_dict``. Outputs carry their names and
  tooltips. The schema is made on every call, so dropdowns (the model folder) are current.
* ``execute`` reads the hidden values from ``cls.hidden`` and returns ``io.NodeOutput(*outputs, ui=...)``; progress
  bars, Cancel, inference-mode handling, kept-loaded generators and error texts are those of V1.
* ``fingerprint_inputs`` (nodes that read files, have a fingerprint hook or always run) and ``validate_inputs``
  (nodes with a validate hook, model inputs, and every COMBO: ComfyUI v0.3.64 does not check V3 COMBO values
  against their options, so ours are checked here, with the engine's messages ``input 'NAME': ...``). A bad input
  is one error and one log line in ComfyUI, not one per input taken (:func:`.comfy.validation_answer`).

:func:`comfy_exports` decides what the pack's folder exports (ComfyUI reads ``NODE_CLASS_MAPPINGS`` first and only
looks for ``comfy_entrypoint`` without it, so exactly one is exported): ``comfy_entrypoint`` where
``comfy_api.latest`` imports and our classes build under it, the V1 mappings otherwise. The environment variable
``NEURAL_COLLAGE_COMFYUI_API`` (``v1`` / ``v3``; default: choose) forces one. With the package installed from pip,
a one-line file in ``custom_nodes`` exposes the pack through V3::

    from collage_nodes.comfy_v3 import comfy_entrypoint

Importing this module needs neither ComfyUI nor torch; ``comfy_api.latest`` is imported when classes are made.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
from typing import Any

from collage_engine import Node

from . import registry as _registry
from .comfy import (
    HIDDEN_INPUTS,
    check_hidden_names,
    display_name,
    fingerprint_of,
    input_entry,
    is_shown,
    needs_fingerprint,
    run_declaration,
    validate_given,
    validated_inputs,
    with_signature,
)

__all__ = ["API_ENV", "latest_api", "v3_class", "v3_node_list", "comfy_exports", "comfy_entrypoint"]

#: Environment variable forcing the API the pack's folder exports: ``v1``, ``v3`` (default: V3 where available).
API_ENV = "NEURAL_COLLAGE_COMFYUI_API"
log = logging.getLogger("neural-collage")

#: ComfyUI's own io types for ours (every other type is an ``io.Custom``).
_CORE_TYPES = {"IMAGE": "Image", "MASK": "Mask", "*": "AnyType"}
_WIDGETS = {"INT": "Int", "FLOAT": "Float", "STRING": "String", "BOOLEAN": "Boolean"}
#: V1 option name -> the keyword of the V3 input classes (passed where the running ComfyUI's class takes it).
_KEYWORDS = {"default": "default", "min": "min", "max": "max", "step": "step", "round": "round",
             "multiline": "multiline", "placeholder": "placeholder", "forceInput": "force_input",
             "control_after_generate": "control_after_generate", "label_on": "label_on", "label_off": "label_off",
             "lazy": "lazy"}


def latest_api() -> Any:
    """ComfyUI's ``comfy_api.latest`` module, or None where it does not import (older ComfyUI, no ComfyUI)."""
    try:
        return importlib.import_module("comfy_api.latest")
    except Exception:  # noqa: BLE001 - ImportError, or a ComfyUI too old/new to import it: V1 then
        return None


def _keywords(cls: type) -> set[str]:
    return set(inspect.signature(cls.__init__).parameters)


def _io_type(io: Any, type_name: str, customs: dict) -> Any:
    if type_name in _CORE_TYPES:
        return getattr(io, _CORE_TYPES[type_name])
    if type_name not in customs:
        customs[type_name] = io.Custom(type_name)
    return customs[type_name]


def _schema_input(io: Any, node: type[Node], inp: Any, customs: dict) -> Any:
    """One declared input as a V3 input, from its V1 entry (so both APIs show the same widget and options)."""
    kind, opts = input_entry(node, inp)
    opts = dict(opts)
    common: dict[str, Any] = {"optional": inp.optional, "tooltip": opts.pop("tooltip", None)}
    if isinstance(kind, list):
        cls = io.Combo.Input
        common["options"] = kind
        if opts.pop("image_upload", False):
            common["upload"] = io.UploadType.image
    elif kind in _WIDGETS:
        cls = getattr(io, _WIDGETS[kind]).Input
    else:
        cls = _io_type(io, kind, customs).Input
    accepted = _keywords(cls)
    for key, arg in _KEYWORDS.items():
        if key in opts and arg in accepted:
            common[arg] = opts.pop(key)
    made = cls(inp.name, **common)
    made.extra_dict.update(opts)  # options without a keyword here (display, image_folder...) as ComfyUI reads them
    return made


def _schema(io: Any, node: type[Node], customs: dict) -> Any:
    inputs = [_schema_input(io, node, inp, customs) for inp in node.inputs if is_shown(inp)]
    taken = {inp.name for inp in node.inputs}
    outputs = []
    for out in node.outputs:
        oid = out.name if out.name not in taken else f"{out.name}_out"  # V3 ids are unique across inputs/outputs
        taken.add(oid)
        outputs.append(_io_type(io, out.type, customs).Output(oid, display_name=out.name,
                                                              tooltip=out.description or None))
    return io.Schema(node_id=node.name, display_name=display_name(node), category=node.category,
                     description=node.description, inputs=inputs, outputs=outputs,
                     hidden=[io.Hidden(kind) for kind in HIDDEN_INPUTS.values()],
                     is_output_node=bool(node.output_node), not_idempotent=bool(node.always_run))


def v3_class(node: type[Node], registry: Any = None, io: Any = None) -> type:
    """A ComfyUI V3 node class (``io.ComfyNode`` subclass) for a declaration (of ``registry``, which its runs see as
    ``ctx.registry``); ``io`` defaults to the running ComfyUI's ``comfy_api.latest.io``."""
    if io is None:
        api = latest_api()
        if api is None:
            raise ImportError("ComfyUI's V3 node API (comfy_api.latest, ComfyUI >= 0.3.47) is not importable")
        io = api.io
    check_hidden_names(node)
    customs: dict[str, Any] = {}

    def define_schema(cls) -> Any:
        return _schema(io, node, customs)

    def execute(cls, **given: Any) -> Any:
        hidden = getattr(cls, "hidden", None)
        values = {name: getattr(hidden, name, None) for name in HIDDEN_INPUTS}
        outputs, ui = run_declaration(node, given, registry=registry, **values)
        return io.NodeOutput(*outputs, ui=ui)

    attrs: dict[str, Any] = {
        "NODE": node,
        "REGISTRY": registry,
        "define_schema": classmethod(define_schema),
        "execute": classmethod(execute),
        "__doc__": node.description,
        "__module__": __name__,
    }
    if needs_fingerprint(node):
        def fingerprint_inputs(cls, **given: Any) -> Any:
            return fingerprint_of(node, given)

        attrs["fingerprint_inputs"] = classmethod(fingerprint_inputs)
    names = validated_inputs(node, all_combos=True)
    if names:
        def validate_inputs(cls, **given: Any) -> Any:
            return validate_given(node, names, given)

        attrs["validate_inputs"] = classmethod(with_signature(validate_inputs, names))
    return type(node.name, (io.ComfyNode,), attrs)


def v3_node_list(reg: Any = None, io: Any = None) -> list[type]:
    """The V3 classes of every node of ``reg`` (default: the whole pack)."""
    reg = _registry() if reg is None else reg
    return [v3_class(node, reg, io) for node in reg]


_classes: list[type] | None = None


def _extension(api: Any, classes: list[type]) -> Any:
    class CollageExtension(api.ComfyExtension):
        """The neural-collage node pack."""

        async def get_node_list(self) -> list[type]:
            return list(classes)

    return CollageExtension()


async def comfy_entrypoint() -> Any:
    """ComfyUI's V3 entry point: a ``ComfyExtension`` listing the pack's V3 classes."""
    global _classes
    api = latest_api()
    if api is None:
        raise ImportError("ComfyUI's V3 node API (comfy_api.latest) is not importable")
    if _classes is None:
        _classes = v3_node_list(io=api.io)
    return _extension(api, _classes)


def _libraries() -> str:
    """The folder ``collage_core`` and ``collage_engine`` were imported from (links resolved), for the log."""
    import collage_core
    import collage_engine

    folders = {os.path.dirname(os.path.dirname(os.path.realpath(m.__file__))) for m in (collage_core, collage_engine)}
    return ", ".join(sorted(folders))


def comfy_exports() -> dict[str, Any]:
    """What the pack's folder exports to ComfyUI: ``{"comfy_entrypoint": ...}`` (V3) where ``comfy_api.latest``
    imports and every class builds its schema under it, else ``NODE_CLASS_MAPPINGS`` and
    ``NODE_DISPLAY_NAME_MAPPINGS`` (V1). :data:`API_ENV` forces one (``v3`` raises where V3 cannot be used)."""
    global _classes
    wanted = os.environ.get(API_ENV, "").strip().lower()
    if wanted not in ("", "auto", "v1", "v3"):
        raise ValueError(f"{API_ENV}={wanted!r}: use v1, v3 or leave it unset")
    api = latest_api() if wanted != "v1" else None
    if api is not None:
        try:
            classes = v3_node_list(io=api.io)
            for cls in classes:
                cls.GET_SCHEMA()  # the schemas build and validate under this ComfyUI's V3 (marked not stable)
        except Exception as e:
            if wanted == "v3":
                raise
            log.warning("neural-collage: ComfyUI's V3 node API refused the nodes (%s: %s); using the V1 API",
                        type(e).__name__, e)
        else:
            _classes = classes
            log.info("neural-collage: %d nodes through ComfyUI's V3 node API (comfy_api.latest); libraries from %s",
                     len(classes), _libraries())
            return {"comfy_entrypoint": comfy_entrypoint}
    elif wanted == "v3":
        raise ImportError(f"{API_ENV}=v3 but ComfyUI's V3 node API (comfy_api.latest, ComfyUI >= 0.3.47) is not "
                          f"importable")
    from .comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

    log.info("neural-collage: %d nodes through ComfyUI's V1 node API; libraries from %s", len(NODE_CLASS_MAPPINGS),
             _libraries())
    return {"NODE_CLASS_MAPPINGS": NODE_CLASS_MAPPINGS, "NODE_DISPLAY_NAME_MAPPINGS": NODE_DISPLAY_NAME_MAPPINGS}
