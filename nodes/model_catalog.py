"""The models a ``model`` input offers as a dropdown, in one place: the embedded models, the BigGAN-deep names
(downloaded on first use) and the checkpoints (``.safetensors``, ``.npz``) and BigGAN reference folders of a models
folder. ``serve`` lists its ``models/`` folder with it; inside ComfyUI :mod:`.comfy_models` passes the files of
ComfyUI's ``neural_collage`` folders."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

__all__ = ["CHECKPOINT_EXTENSIONS", "model_choices", "scan_models_folder"]

#: the checkpoint files a models folder offers
CHECKPOINT_EXTENSIONS = (".safetensors", ".npz")


def model_choices(kind: str | None = None, default: Any = None, files: Iterable[str] = (),
                  folders: Iterable[str] = ()) -> list[str]:
    """The dropdown of a model input: ``default`` (when a name), the embedded models (with a file of ``kind``:
    generator, discriminator, encoder; None: any), for generators (or any kind) the BigGAN-deep names, then the
    checkpoint ``files`` and for generators the BigGAN reference ``folders`` of a models folder (relative names,
    as :func:`scan_models_folder` finds them); each name once."""
    from collage_core.biggan_io import NAMES
    from collage_core.models import embedded_model_path, list_embedded_models

    generators = kind in (None, "generator")
    choices = [default] if isinstance(default, str) and default else []
    choices += [n for n in list_embedded_models() if kind is None or embedded_model_path(n, kind) is not None]
    choices += list(NAMES) if generators else []
    choices += list(files)
    choices += list(folders) if generators else []
    return list(dict.fromkeys(choices))


def scan_models_folder(root: str, max_depth: int | None = None) -> tuple[list[str], list[str]]:
    """The checkpoint files and the BigGAN reference folders under ``root`` (names relative to it, ``/``-separated,
    in name order; hidden files and folders skipped; a reference folder's own files not listed), looking at most
    ``max_depth`` folders down (None: all)."""
    from collage_core.biggan_io import is_reference_folder

    files: list[str] = []
    folders: list[str] = []
    if not os.path.isdir(root):
        return files, folders
    for current, dirs, names in os.walk(root):
        rel = os.path.relpath(current, root)
        depth = 0 if rel == "." else rel.count(os.sep) + 1
        if depth and is_reference_folder(current):
            folders.append(rel.replace(os.sep, "/"))
            dirs[:] = []
            continue
        dirs[:] = [] if max_depth is not None and depth >= max_depth else sorted(
            d for d in dirs if not d.startswith("."))
        files += [os.path.join(rel, f).replace(os.sep, "/").removeprefix("./") for f in sorted(names)
                  if f.lower().endswith(CHECKPOINT_EXTENSIONS) and not f.startswith(".")]
    return files, folders
