"""The pictures the saved workflows name (``examples/chelsea.png``), copied into an input folder so they run as saved.

Load Image names a picture of the input folder; the workflows in ``workflows/`` name ``examples/<file>`` (the
pictures of ``workflows/examples/``). ``neural-collage serve`` copies them into its input folder
(:func:`collage_app.serve.seed_example_inputs`); inside ComfyUI the pack copies them into ComfyUI's input folder when
it loads (:func:`seed_comfyui_input`), so a template such as photo_edit shows its picture instead of an empty
preview. A file already there is never replaced (it may be the user's), and an input folder that cannot be written
only logs a warning: the pack loads anyway.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
from pathlib import Path

__all__ = ["EXAMPLES_SUBFOLDER", "copy_example_inputs", "seed_comfyui_input"]

log = logging.getLogger("neural-collage")

#: the input subfolder the workflows name their pictures in (``examples/chelsea.png``)
EXAMPLES_SUBFOLDER = "examples"
#: what is copied: pictures, and the notes beside them (LICENSES.md: where each picture comes from)
COPIED_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".md")


def copy_example_inputs(examples: str | Path, input_dir: str | Path) -> list[str]:
    """Copy the files of ``examples`` (top level; pictures and ``.md`` notes) into ``input_dir/examples/``, never over
    an existing file. Returns the paths written; raises OSError when the folder cannot be written."""
    examples = Path(examples)
    if not examples.is_dir():
        return []
    dest = Path(input_dir) / EXAMPLES_SUBFOLDER
    copied = []
    for src in sorted(examples.iterdir()):
        if not (src.is_file() and src.suffix.lower() in COPIED_SUFFIXES) or (dest / src.name).exists():
            continue
        dest.mkdir(parents=True, exist_ok=True)
        target = dest / src.name
        try:
            with open(src, "rb") as f_in, open(target, "xb") as f_out:  # "x": a file made meanwhile is kept
                shutil.copyfileobj(f_in, f_out)
        except FileExistsError:
            continue
        except BaseException:
            target.unlink(missing_ok=True)  # no half-written picture
            raise
        copied.append(str(target))
    return copied


def seed_comfyui_input(examples: str | Path) -> list[str]:
    """Inside ComfyUI: :func:`copy_example_inputs` into ``folder_paths.get_input_directory()``. Outside ComfyUI
    nothing happens; a folder that cannot be written logs a warning. Returns the paths written."""
    try:
        folder_paths = importlib.import_module("folder_paths")
    except ImportError:
        return []
    get_input = getattr(folder_paths, "get_input_directory", None)
    if get_input is None:
        return []
    try:
        input_dir = get_input()
        copied = copy_example_inputs(examples, input_dir)
    except OSError as e:
        log.warning("neural-collage: the example pictures were not copied into ComfyUI's input folder (%s); "
                    "workflows that name examples/... show no picture until they are there", e)
        return []
    if copied:
        log.info("neural-collage: %d example pictures copied into %s", len(copied),
                 os.path.join(input_dir, EXAMPLES_SUBFOLDER))
    return copied
