"""ComfyUI entry point: this folder placed in ``ComfyUI/custom_nodes/`` exposes every node of the pack.

ComfyUI imports the folder as a package; the node classes are generated from the declarations in ``nodes/`` by
``nodes/comfy.py`` (imported relatively, so ComfyUI's own top-level ``nodes`` module is never shadowed).

The node modules import the libraries ``collage_core`` and ``collage_engine`` by their absolute names. They resolve
to the installed package when there is one (``pip install -e ComfyUI/custom_nodes/neural-collage``, or
``pip install neural-collage``); otherwise, for a folder installed by ComfyUI-Manager or the Comfy Registry (which
only install ``requirements.txt``), the two libraries are loaded from this folder under those names. ``sys.path`` is
not changed, nothing is printed or downloaded.
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


for _name in ("collage_engine", "collage_core"):
    _load_from_this_folder(_name)

from .nodes.comfy import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS  # noqa: E402

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS"]
