"""What every node module of the pack shares: categories, the custom type names, and errors that name an input.

Node bodies only convert and call ``collage_core``; a core ``ValueError`` / ``OSError`` raised while handling an input
is re-raised by :func:`blame` as :class:`InputError` (the engine's :class:`~collage_engine.NodeInputError`), whose
message starts with ``input 'NAME':``. The engine adds
the node id and type, so a user reads e.g. ``node 4 (PaintClass): input 'mask': mask has shape (2, 3, 64, 64) ...``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from collage_engine import NodeInputError

CATEGORY = "neural-collage"

# Custom types at node boundaries (IMAGE and MASK are ComfyUI's own)
GENERATOR = "GENERATOR"    # collage_core.Generator (torch module, on its device)
LATENT_Z = "LATENT_Z"      # torch float tensor (N, dim_z) on the generator's device
CLASS_SPEC = "CLASS_SPEC"  # collage_core.collage.ClassSpec
CLASS_MAP = "CLASS_MAP"    # collage_core.collage.ClassMapSpec
FEATURE_BLEND = "FEATURE_BLEND"  # collage_core.collage.FeatureBlendSpec
IMAGE = "IMAGE"            # torch float32 (B, H, W, C) in [0, 1]
MASK = "MASK"              # torch float32 (B, H, W) in [0, 1]
DISCRIMINATOR = "DISCRIMINATOR"  # collage_core.Discriminator (eval mode)
ENCODER = "ENCODER"        # collage_core.encoder.Encoder (eval mode): picture -> (z, class logits)
CROP = "CROP"              # collage_core.crop.CropInfo
STRING = "STRING"          # ComfyUI's text; the labels outputs of sweeps hold one label per line

#: choices of LoadGenerator's device input (and of the CLI's --device)
DEVICES = ["auto", "cpu", "cuda", "mps"]
#: the model loaders: the nodes whose ``model`` input names a checkpoint and whose ``device`` input the command
#: line's and serve's ``--device`` set (the one list cli, map, serve and docs/make_figures.py use)
LOADERS = ("LoadGenerator", "LoadDiscriminator", "LoadEncoder")

#: node inputs that name the folder savers write to (the CLI's --out sets them all)
OUTPUT_DIR_INPUT = "output_dir"


@dataclass(frozen=True)
class ModelFacts:
    """What a workflow can know of a generator before loading it (from the checkpoint header): carried as the
    ``info`` of its outputs' estimates, so class names and layer indices are checked before anything runs."""

    class_names: tuple[str, ...]
    resolution: int
    dim_z: int
    n_map_layers: int

    @classmethod
    def read(cls, model: object) -> ModelFacts | None:
        from collage_core.checkpoints import read_info
        from collage_core.config import GeneratorConfig

        info = read_info(model, "generator") if isinstance(model, str) and model else None
        if not info or info.get("kind") != "generator":
            return None
        try:
            cfg = GeneratorConfig.from_dict(info["config"])
            names = info.get("class_names") or [str(i) for i in range(cfg.n_classes)]
            return cls(tuple(names), cfg.resolution, cfg.dim_z, cfg.n_map_layers)
        except (KeyError, TypeError, ValueError):
            return None

    def check_class(self, value: object, input_name: str) -> int:
        """The class id ``value`` names; :class:`InputError` naming ``input_name`` and the valid names if none."""
        from collage_core.collage import class_index

        try:
            return class_index(self.class_names, value)  # type: ignore[arg-type]
        except (ValueError, TypeError) as e:
            raise InputError(input_name, str(e)) from None


def facts_of(estimate: object) -> ModelFacts | None:
    """The :class:`ModelFacts` an upstream estimate carries, if any."""
    info = getattr(estimate, "info", None)
    return info if isinstance(info, ModelFacts) else None


#: A bad value of one node input (the engine's one user-error type; the message names the input).
InputError = NodeInputError


@contextmanager
def blame(input_name: str, *others: str) -> Iterator[None]:
    """Re-raise ``ValueError`` / ``OSError`` from the block as :class:`InputError` naming an input: the one the error's
    ``argument`` attribute names (see :class:`collage_core.collage.ArgumentError`) if it is ``input_name`` or one of
    ``others``, else ``input_name``. ``others`` may name a library parameter the node's ``error_inputs`` maps to an
    input of another name: the engine renames it (:func:`collage_engine.errors.as_input_error`)."""
    try:
        yield
    except InputError:
        raise
    except (ValueError, OSError) as e:
        arg = getattr(e, "argument", None)
        raise InputError(arg if arg in (input_name, *others) else input_name, str(e)) from None


def source_of(ctx, input_name: str) -> str | None:
    """``node ID ('Title')`` of the node whose output feeds ``input_name`` of the running node, when known."""
    entry = (ctx.prompt or {}).get(ctx.node_id) if getattr(ctx, "prompt", None) else None
    link = (entry or {}).get("inputs", {}).get(input_name) if isinstance(entry, dict) else None
    if not (isinstance(link, list) and len(link) == 2):
        return None
    src = (ctx.prompt or {}).get(str(link[0]))
    title = (src.get("_meta") or {}).get("title") if isinstance(src, dict) else None
    kind = src.get("class_type") if isinstance(src, dict) else None
    return f"node {link[0]}" + (f" ({kind}{f' {title!r}' if title else ''})" if kind else "")


def require(value: object, input_name: str, what: str) -> None:
    """:class:`InputError` unless ``value`` is present (for optional links that are needed in some cases)."""
    if value is None:
        raise InputError(input_name, f"not connected: {what}")


def missing_file(path: object, input_name: str, what: str = "file") -> list[tuple[str, str]] | None:
    """A validation error naming the input if ``path`` (a constant input) names no existing file, else None."""
    if not isinstance(path, str):
        return None  # linked: checked when the node runs
    if not path:
        return [(input_name, f"no {what} given")]
    if not os.path.isfile(path):
        return [(input_name, f"{what} not found: {path}")]
    return None


def reserve_decoding(ctx, path: object) -> None:
    """Reserve the memory that reading the picture at ``path`` takes at its peak (from its header's size), so a huge
    picture fails cleanly within the run's memory budget before it is decoded."""
    from collage_core.images import LOAD_PEAK_BYTES_PER_PIXEL

    size = picture_size(path)
    if size is not None:
        ctx.reserve(size[0] * size[1] * LOAD_PEAK_BYTES_PER_PIXEL,
                    f"reading the {size[0]}x{size[1]} picture ({size[0] * size[1] / 1e6:.0f} MP)")


def picture_size(path: object) -> tuple[int, int] | None:
    """``(width, height)`` of a picture file from its header (nothing decoded), or None (not a readable picture).

    For memory estimates before a run: the pixels are read when the node runs."""
    if not isinstance(path, str) or not os.path.isfile(path):
        return None
    try:
        from PIL import Image

        with Image.open(path) as im:
            return im.size
    except Exception:  # noqa: BLE001 - any unreadable file: the node reports it when it runs
        return None


def host_bytes(*tensors) -> int:
    """Bytes ``tensors`` of this shape would take in host memory (0 for tensors on a device)."""
    return sum(t.element_size() * t.nelement() for t in tensors if t.device.type == "cpu")


def safe_relative(prefix: str, input_name: str) -> str:
    """``prefix`` as a relative path that stays inside its folder (no absolute paths, no '..')."""
    norm = os.path.normpath(prefix.replace("\\", "/")) if prefix else ""
    if not prefix or os.path.isabs(prefix) or norm == ".." or norm.startswith("../") or norm == ".":
        raise InputError(input_name, f"{prefix!r} must be a relative name inside the output folder "
                                     f"(e.g. 'collage' or 'grids/interpolation')")
    return norm


def next_free_name(output_dir: str, prefix: str, suffix: str, prefix_input: str = "filename_prefix") -> str:
    """``output_dir/prefix_NNNNN.suffix`` with the next number not yet used (ComfyUI's counter, 5 digits)."""
    import re

    rel = safe_relative(prefix, prefix_input)
    folder = os.path.join(output_dir or ".", os.path.dirname(rel))
    real_out = os.path.realpath(output_dir or ".")
    real = os.path.realpath(folder)
    if real != real_out and not real.startswith(real_out.rstrip(os.sep) + os.sep):
        raise InputError(prefix_input, f"{prefix!r} leaves the output folder through a symbolic link")
    base = os.path.basename(rel)
    pattern = re.compile(re.escape(base) + r"_(\d{5,})" + re.escape(suffix) + "$")
    try:
        used = [int(m.group(1)) for f in os.listdir(folder) if (m := pattern.match(f))]
    except OSError:
        used = []
    return os.path.join(folder, f"{base}_{max(used, default=0) + 1:05d}{suffix}")
