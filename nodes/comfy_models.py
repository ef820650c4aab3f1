"""Model inputs inside ComfyUI: a dropdown of the embedded models and of ComfyUI's ``neural_collage`` model folder.

Our declarations keep ``model`` a free-text input (``path_kind="model"``: an embedded model's name, a checkpoint
path, a BigGAN name or folder); the command line and ``serve`` take any of them. Inside ComfyUI the adapters
(:mod:`.comfy` for V1, :mod:`.comfy_v3` for V3) show these inputs as a COMBO whose choices are:

* the embedded models that have a file of the node's kind (Load Generator: a generator, Load Discriminator: a
  discriminator, Load Encoder: an encoder), the declared default first;
* for Load Generator, the BigGAN-deep names (``biggan-deep-128/256/512``: from the cache, else downloaded once);
* the checkpoints (``.safetensors``, ``.npz``) under ComfyUI's model folder ``neural_collage``
  (``models/neural_collage/``, plus any folder ``extra_model_paths.yaml`` lists under ``neural_collage:``), by their
  path relative to it; ``.safetensors`` files written by this project for another kind are left out;
* for Load Generator, BigGAN reference folders (``config.json`` with ``pytorch_model.bin`` or
  ``model.safetensors``) in that folder, up to two levels down.

A value that is not in the list is still accepted: the adapters hand the validation of these inputs to the node
(V1: ``VALIDATE_INPUTS`` names the input, so ComfyUI skips its list check; V3: ``validate_inputs``), which accepts
any existing checkpoint path, embedded name or BigGAN name, as the command line does. So workflows sent to
``/prompt`` or saved with a path keep working; in the editor a file is picked from the list (put it, or a link to
it, into ``models/neural_collage``).

When the node runs, a relative name that is not an embedded model, a BigGAN name or an existing path is looked up
in the ``neural_collage`` folders (:func:`resolve_model`).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

from . import model_catalog
from .model_catalog import scan_models_folder

__all__ = ["MODEL_FOLDER", "MODEL_EXTENSIONS", "MODEL_KINDS", "register_model_folder", "model_choices",
           "resolve_model", "model_kind"]

#: ComfyUI's model folder name of the pack (``models/neural_collage``; ``neural_collage:`` in extra_model_paths.yaml).
MODEL_FOLDER = "neural_collage"
#: The checkpoint files offered from that folder.
MODEL_EXTENSIONS = frozenset({".safetensors", ".npz"})
#: A loader's output type -> the kind of checkpoint its ``model`` input names.
MODEL_KINDS = {"GENERATOR": "generator", "DISCRIMINATOR": "discriminator", "ENCODER": "encoder"}

_kind_cache: dict[tuple[str, int, int], str | None] = {}


def _folder_paths() -> Any:
    """ComfyUI's ``folder_paths`` module, or None outside ComfyUI."""
    try:
        return importlib.import_module("folder_paths")
    except ImportError:
        return None


def model_kind(node: Any) -> str:
    """The checkpoint kind a loader's model input names (from its first output's type; ``generator`` if unknown)."""
    outputs = getattr(node, "outputs", ())
    return MODEL_KINDS.get(outputs[0].type, "generator") if outputs else "generator"


def register_model_folder() -> Any:
    """Make ComfyUI know the ``neural_collage`` model folder (``<models>/neural_collage``, first; folders that
    ``extra_model_paths.yaml`` gave are kept) with our extensions. Idempotent; nothing is created on disk. Returns
    ``folder_paths``, or None outside ComfyUI."""
    fp = _folder_paths()
    if fp is None or not isinstance(getattr(fp, "folder_names_and_paths", None), dict):
        return None
    default = os.path.join(getattr(fp, "models_dir", "models"), MODEL_FOLDER)
    paths, exts = fp.folder_names_and_paths.get(MODEL_FOLDER, ([], set()))
    paths = list(paths)
    if default not in paths:
        paths.insert(0, default)
    fp.folder_names_and_paths[MODEL_FOLDER] = (paths, set(exts) | set(MODEL_EXTENSIONS))
    return fp


def _file_kind(path: str) -> str | None:
    """The kind a ``.safetensors`` file of ours holds (None: not ours, or not readable), cached by size and mtime."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    key = (path, st.st_size, st.st_mtime_ns)
    if key not in _kind_cache:
        from collage_core.checkpoints import read_info

        info = read_info(path) if path.endswith(".safetensors") else None
        _kind_cache[key] = info.get("kind") if isinstance(info, dict) else None
    return _kind_cache[key]


def _folder_files(fp: Any, kind: str) -> list[str]:
    """The checkpoints of the ``neural_collage`` folders a loader of ``kind`` can read (relative names)."""
    out = []
    for name in fp.get_filename_list(MODEL_FOLDER):
        if os.path.splitext(name)[1].lower() not in MODEL_EXTENSIONS:
            continue
        full = fp.get_full_path(MODEL_FOLDER, name)
        found = _file_kind(full) if full else None
        if found is None or found == kind:
            out.append(name.replace(os.sep, "/"))
    return out


def _reference_folders(fp: Any) -> list[str]:
    """BigGAN reference folders in the ``neural_collage`` folders (relative names, up to two levels down)."""
    return sorted({name for root in fp.get_folder_paths(MODEL_FOLDER) for name in scan_models_folder(root, 2)[1]})


def model_choices(kind: str, default: Any = None) -> list[str]:
    """The dropdown of a model input of ``kind``: the declared default, the embedded models with a file of that
    kind, (generators) the BigGAN-deep names, then the files and (generators) BigGAN folders of ComfyUI's
    ``neural_collage`` folder (:func:`.model_catalog.model_choices`). A folder that cannot be read only shortens the
    list."""
    files: list[str] = []
    folders: list[str] = []
    fp = register_model_folder()
    if fp is not None:
        try:
            files = _folder_files(fp, kind)
            if kind == "generator":
                folders = _reference_folders(fp)
        except (OSError, KeyError, AttributeError, TypeError, ValueError):
            pass
    return model_catalog.model_choices(kind, default, files, folders)


def resolve_model(value: Any, kind: str = "generator") -> Any:
    """A model input's value as the node reads it: embedded names, BigGAN names and existing paths unchanged; a
    relative name found in the ``neural_collage`` folders (a file, or a BigGAN reference folder) as its full path;
    anything else unchanged (the node reports it, naming the input)."""
    if not isinstance(value, str) or not value or os.path.isabs(value) or os.path.exists(value):
        return value
    from collage_core.biggan_io import is_biggan_name
    from collage_core.models import embedded_model_path

    if embedded_model_path(value, kind) is not None or is_biggan_name(value):
        return value
    fp = register_model_folder()
    if fp is None:
        return value
    try:
        full = fp.get_full_path(MODEL_FOLDER, value)
        if full:
            return full
        for root in fp.get_folder_paths(MODEL_FOLDER):
            candidate = os.path.join(root, value)
            if os.path.isdir(candidate):
                return candidate
    except (OSError, KeyError, AttributeError, TypeError, ValueError):
        pass
    return value
