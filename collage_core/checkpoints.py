"""Loading and saving weights: the original's Chainer ``.npz`` snapshots and our native safetensors files.

Nothing here unpickles: ``.npz`` files are read with ``numpy.load(allow_pickle=False)`` and native files with
``safetensors``. The architecture of an ``.npz`` snapshot is inferred from its keys and shapes (resolution,
channel plan, ``dim_z``, ``n_classes``, ``bottom_width``), so no config file is needed.

The native format (reading, writing, strict state loading, :class:`CheckpointError`) lives in
:mod:`collage_core.checkpoint_format`, which :mod:`collage_core.biggan_io` shares; its names are re-exported here.
:func:`load_generator` dispatches to :mod:`collage_core.biggan_io` for BigGAN folders and names.
"""

from __future__ import annotations

import json
import os
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import biggan_io
from .biggan import BigGANConfig, BigGANGenerator
from .checkpoint_format import (  # noqa: F401 - re-exported: the format's names stay importable from here
    FORMAT_KEY,
    FORMAT_VERSION,
    CheckpointError,
    finish_loading,
    load_state,
    read_native,
    resolve_checkpoint,
    save_discriminator,
    save_generator,
)
from .config import DiscriminatorBlockSpec, DiscriminatorConfig, GeneratorConfig
from .discriminator import Discriminator
from .generator import Generator


# --------------------------------------------------------------------------------------------- raw reading
def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """All arrays of a Chainer ``save_npz`` snapshot, keys as stored (``block2/c1/W``); never unpickles."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            return {k: np.asarray(f[k]) for k in f.files}
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        raise CheckpointError(f"{path} is not a readable .npz archive ({e})") from None
    except ValueError as e:  # object arrays need pickle: refuse
        raise CheckpointError(f"{path} holds data that needs pickle to load, which is refused ({e})") from None


def read_info(path: str | os.PathLike, kind: str = "generator") -> dict[str, Any] | None:
    """A native checkpoint's header metadata (``kind``, ``config``, ``class_names``...) without reading its weights,
    for an embedded name or a ``.safetensors`` file; None for anything else (``.npz`` snapshots, unreadable files).
    Cheap: workflows are checked against it before they run."""
    from safetensors import safe_open

    try:
        p = resolve_checkpoint(path, kind)
        if p.suffix != ".safetensors":
            return None
        with safe_open(str(p), framework="pt") as f:
            meta = f.metadata() or {}
        info = json.loads(meta[FORMAT_KEY])
    except Exception:  # noqa: BLE001 - no information is not an error here: loading reports it
        return None
    if not isinstance(info, dict):
        return None
    info["path"] = str(p)
    info["nbytes"] = p.stat().st_size
    return info


# ---------------------------------------------------------------------------------- architecture inference
def _block_ids(keys, pattern: str) -> list[int]:
    ids = sorted({int(m.group(1)) for k in keys if (m := re.match(pattern, k))})
    return ids


def infer_generator_config(state: Mapping[str, Any]) -> GeneratorConfig:
    """Generator architecture from Chainer keys/shapes (``l1/W``, ``blockK/c1/W``, ``blockK/b1/gammas/W``)."""
    keys = set(state)
    try:
        ids = _block_ids(keys, r"block(\d+)/c1/W$")
        if not ids or "l1/W" not in keys:
            raise KeyError
        if ids != list(range(2, 2 + len(ids))):
            raise CheckpointError(f"generator blocks are numbered {ids}; expected block2..block{len(ids) + 1}")
        c0 = state[f"block{ids[0]}/c1/W"].shape[1]
        channels = [c0] + [state[f"block{i}/c1/W"].shape[0] for i in ids]
        l1 = state["l1/W"].shape
        dim_z = l1[1]
        bw2 = l1[0] // c0
        bw = int(round(bw2 ** 0.5))
        if bw * bw * c0 != l1[0]:
            raise CheckpointError(f"l1/W has shape {l1}, not (bottom_width^2 * {c0}, dim_z)")
        g = state.get(f"block{ids[0]}/b1/gammas/W")
        if g is None:
            raise CheckpointError("no block2/b1/gammas/W: this is not a class-conditional (CBN) generator")
        n_classes = g.shape[0]
    except KeyError:
        raise CheckpointError("not a generator snapshot: expected keys l1/W and block2/c1/W ... "
                              f"(found e.g. {sorted(keys)[:5]})") from None
    layout = None
    from .config import GENERATOR_LAYOUTS
    for name, (head, blocks) in GENERATOR_LAYOUTS.items():
        ch = channels[-1]
        if tuple(channels) == (head * ch, *(m * ch for m in blocks)):
            layout = name
    return GeneratorConfig(channels=tuple(channels), dim_z=dim_z, n_classes=n_classes, bottom_width=bw,
                           layout=layout)


def infer_discriminator_config(state: Mapping[str, Any], resolution: int | None = None) -> DiscriminatorConfig:
    """Discriminator architecture from Chainer keys (``blockK/{c1,c2,c_sc}/W``, ``lN/W``, ``l_y/W``).

    A block down-samples exactly when it has a shortcut conv ``c_sc`` (true of every original layout).
    The input resolution cannot be read from the weights; it defaults to 128, or 256 for seven blocks and 64
    for five (the original layouts), and can be given.
    """
    keys = set(state)
    ids = _block_ids(keys, r"block(\d+)/c1/W$")
    if not ids or ids != list(range(1, len(ids) + 1)):
        raise CheckpointError(f"not a discriminator snapshot: expected keys block1/c1/W ... (found blocks {ids})")
    blocks = []
    for i in ids:
        w1, w2 = state[f"block{i}/c1/W"].shape, state[f"block{i}/c2/W"].shape
        has_sc = f"block{i}/c_sc/W" in keys
        blocks.append(DiscriminatorBlockSpec(in_channels=w1[1], hidden_channels=w1[0], out_channels=w2[0],
                                             downsample=has_sc, optimized=(i == 1)))
    n_classes = state["l_y/W"].shape[0] if "l_y/W" in keys else 0
    if resolution is None:
        resolution = {5: 64, 7: 256}.get(len(blocks), 128)
    return DiscriminatorConfig(blocks=tuple(blocks), n_classes=n_classes, resolution=resolution)


# ------------------------------------------------------------------------------------------- public API
def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu",
                   dtype: torch.dtype | str | None = None) -> Generator:
    """A generator from an original ``.npz`` snapshot, a native ``.safetensors`` file, or an embedded name; or a
    BigGAN-deep: a reference folder (``config.json`` + ``pytorch_model.bin``), ``biggan-deep-128/256/512`` or
    ``hf:owner/repo`` (see :mod:`collage_core.biggan_io`).

    The model is returned in eval mode with gradients off for its parameters (latents can still require grad).
    """
    if biggan_io.is_reference_folder(path):  # a BigGAN folder (config.json + pytorch_model.bin)
        return finish_loading(biggan_io.load_reference(path), device, dtype)
    if isinstance(path, str) and biggan_io.is_biggan_name(path):  # biggan-deep-256, hf:owner/repo
        path = biggan_io.resolve(path)
    path = resolve_checkpoint(path, "generator")
    if path.suffix == ".npz":
        state = read_npz(path)
        cfg = infer_generator_config(state)
        G = Generator(cfg)
        load_state(G, state, str(path))
        G.provenance = {"source": "chainer-npz", "path": str(path)}
    else:
        tensors, info = read_native(path)
        if info.get("kind") != "generator":
            raise CheckpointError(f"{path} holds a {info.get('kind')!r}, not a generator")
        if info["config"].get("family") == "biggan-deep":
            G = BigGANGenerator(BigGANConfig.from_dict(info["config"]), class_names=info.get("class_names"))
        else:
            G = Generator(GeneratorConfig.from_dict(info["config"]), class_names=info.get("class_names"))
        load_state(G, tensors, str(path))
        G.provenance = dict(info.get("provenance") or {})
    return finish_loading(G, device, dtype)


def load_discriminator(path: str | os.PathLike, device: str | torch.device = "cpu",
                       dtype: torch.dtype | str | None = None, resolution: int | None = None) -> Discriminator:
    """A discriminator from an original ``.npz`` snapshot, a native file, or an embedded model name."""
    path = resolve_checkpoint(path, "discriminator")
    if path.suffix == ".npz":
        state = read_npz(path)
        cfg = infer_discriminator_config(state, resolution)
        D = Discriminator(cfg)
        load_state(D, state, str(path))
    else:
        tensors, info = read_native(path)
        if info.get("kind") != "discriminator":
            raise CheckpointError(f"{path} holds a {info.get('kind')!r}, not a discriminator")
        D = Discriminator(DiscriminatorConfig.from_dict(info["config"]))
        load_state(D, tensors, str(path))
    return finish_loading(D, device, dtype)


