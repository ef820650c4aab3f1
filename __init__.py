"""ComfyUI entry point: this folder placed in ``ComfyUI/custom_nodes/`` exposes every node of the pack.

ComfyUI imports the folder as a package; the node classes are generated from the declarations in ``nodes/``
(imported relatively, so ComfyUI's own top-level ``nodes`` module is never shadowed). The folder exports ONE node
API, because ComfyUI reads ``NODE_CLASS_MAPPINGS`` first and looks for ``comfy_entrypoint`` only without it:

* ``comfy_entrypoint`` (ComfyUI's current V3 API, ``nodes/comfy_v3.py``) where ``comfy_api.latest`` imports
  (ComfyUI >= v0.3.47) and our classes build under it;
* ``NODE_CLASS_MAPPINGS`` / ``NODE_DISPLAY_NAME_MAPPINGS`` (the classic V1 API, ``nodes/comfy.py``) otherwise.

``NEURAL_COLLAGE_COMFYUI_API=v1`` (or ``v3``) forces one. The choice is made on the first access of one of these
names and logged (``neural-collage: N nodes through ComfyUI's V3 node API``); the absent name raises
AttributeError, as ComfyUI's ``hasattr`` checks expect.

The node modules import the libraries ``collage_core`` and ``collage_engine`` by their absolute names. They resolve
to the installed package when there is one (``pip install -e ComfyUI/custom_nodes/neural-collage``, or
``pip install neural-collage``); otherwise, for a folder installed by ComfyUI-Manager or the Comfy Registry (which
only install ``requirements.txt``), the two libraries are loaded from this folder under those names. ``sys.path`` is
not changed, nothing is printed or downloaded.

``WEB_DIRECTORY`` names the pack's editor extensions (``nodes/web``: the class-map painter of Paint Class Map).
Nothing is built at import time: the exports are made on first access (module ``__getattr__``, which ComfyUI's
``hasattr``/``getattr`` checks trigger), so importing this folder as a package (as pytest does for the repository
root) needs neither torch nor the node modules. At that first access the ``neural_collage`` model folder is
registered with ComfyUI's ``folder_paths`` (the model dropdowns of the loaders) and the painter's labels route, and
the example pictures the templates name (``workflows/examples/*``) are copied into ComfyUI's input folder under
``examples/`` (never over a file that is there; a folder that cannot be written only logs a warning).
"""

import importlib.util as _util
import sys as _sys
from pathlib import Path as _Path


def _load_from_this_folder(name):
    """Import the library ``name`` from this folder under its own top-level name, unless it is importable already."""
    if name in _sys.modules or _util.find_spec(name) is not None:
        return
    folder = _Path(__file__).resolve().parent / name
    spec = _util.spec_from_file_location(name, folder / "__init__.py", submodule_search_locations=[str(folder)])
    if spec is None or spec.loader is None:
        raise ImportError(f"neural-collage: {folder} is missing; reinstall the node pack")
    module = _util.module_from_spec(spec)
    _sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        _sys.modules.pop(name, None)
        raise


#: every name the folder may export to ComfyUI; only those of one API exist (see the docstring)
_EXPORTS = ("NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "comfy_entrypoint")
#: the editor extensions of the pack (the Paint Class Map painter), served by ComfyUI at /extensions/<folder name>/
WEB_DIRECTORY = "./nodes/web"
__all__ = ["WEB_DIRECTORY"]
_chosen: dict | None = None


def _exports() -> dict:
    """The chosen API's exports (made once: libraries loaded, the model folder and the labels route registered)."""
    global _chosen
    if _chosen is None:
        for library in ("collage_engine", "collage_core"):
            _load_from_this_folder(library)
        from .nodes import comfy, comfy_v3, example_inputs, paint

        exports = comfy_v3.comfy_exports()
        comfy.register_model_folder()  # models/neural_collage, when running inside ComfyUI
        paint.register_comfyui_routes()  # the painter's labels route, when running inside ComfyUI
        # the pictures the templates name (examples/chelsea.png) into ComfyUI's input folder; never fails the load
        example_inputs.seed_comfyui_input(_Path(__file__).resolve().parent / "workflows" / "examples")
        globals().update(exports)
        _chosen = exports
    return _chosen


def __getattr__(name):
    if name in _EXPORTS:
        exports = _exports()
        if name in exports:
            return exports[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
