"""Loading and saving weights: the original's Chainer ``.npz`` snapshots and our native safetensors files.

Nothing here unpickles: ``.npz`` files are read with ``numpy.load(allow_pickle=False)`` and native files with
``safetensors``. The architecture of an ``.npz`` snapshot is inferred from its keys and shapes (resolution,
channel plan, ``dim_z``, ``n_classes``, ``bottom_width``), so no config file is needed.

Native format: one ``.safetensors`` file whose tensors use the original's key layout (``block2.b1.gammas.W``)
and whose header metadata holds ``neural_collage`` = a JSON object with ``kind`` (generator/discriminator),
``config``, ``class_names`` and ``provenance``.
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

from .config import DiscriminatorBlockSpec, DiscriminatorConfig, GeneratorConfig
from .discriminator import Discriminator
from .generator import Generator

FORMAT_KEY = "neural_collage"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the network; the message says why."""


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


def read_native(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CheckpointError(f"{path} is not a readable safetensors file ({e})") from None
    if FORMAT_KEY not in meta:
        raise CheckpointError(f"{path} is a safetensors file without neural-collage metadata "
                              f"(no {FORMAT_KEY!r} entry in its header)")
    try:
        info = json.loads(meta[FORMAT_KEY])
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{path}: its {FORMAT_KEY!r} metadata is not valid JSON ({e})") from None
    return tensors, info


def read_info(path: str | os.PathLike, kind: str = "generator") -> dict[str, Any] | None:
    """A native checkpoint's header metadata (``kind``, ``config``, ``class_names``...) without reading its weights,
    for an embedded name or a ``.safetensors`` file; None for anything else (``.npz`` snapshots, unreadable files).
    Cheap: workflows are checked against it before they run."""
    from safetensors import safe_open

    try:
        p = _resolve(path, kind)
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


# ----------------------------------------------------------------------------------------- state loading
def _to_torch_key(k: str) -> str:
    return k.replace("/", ".")


def load_state(module: torch.nn.Module, state: Mapping[str, Any], source: str,
               ignore: tuple[str, ...] = (r"/N$", r"\.N$")) -> None:
    """Copy ``state`` (Chainer or torch key style) into ``module`` strictly.

    Raises :class:`CheckpointError` listing every missing key, unexpected key and shape mismatch.
    """
    want = module.state_dict()
    got: dict[str, Any] = {}
    for k, v in state.items():
        if any(re.search(p, k) for p in ignore):
            continue
        got[_to_torch_key(k)] = v
    missing = sorted(set(want) - set(got))
    unexpected = sorted(set(got) - set(want))
    mismatched = [f"{k}: file {tuple(np.shape(got[k]))} vs model {tuple(want[k].shape)}"
                  for k in sorted(set(want) & set(got)) if tuple(np.shape(got[k])) != tuple(want[k].shape)]
    if missing or unexpected or mismatched:
        parts = [f"{source} does not fit {type(module).__name__}:"]
        if missing:
            more = " ..." if len(missing) > 20 else ""
            parts.append(f"  missing keys ({len(missing)}): {', '.join(missing[:20])}{more}")
        if unexpected:
            more = " ..." if len(unexpected) > 20 else ""
            parts.append(f"  unexpected keys ({len(unexpected)}): {', '.join(unexpected[:20])}{more}")
        if mismatched:
            parts.append(f"  shape mismatches ({len(mismatched)}): {'; '.join(mismatched[:20])}")
        raise CheckpointError("\n".join(parts))
    with torch.no_grad():
        for k, t in want.items():
            v = got[k]
            v = v if isinstance(v, torch.Tensor) else torch.from_numpy(np.ascontiguousarray(v))
            if not torch.isfinite(v.float()).all():
                raise CheckpointError(f"{source}: {k} contains NaN or infinite values")
            t.copy_(v.to(t.dtype))


# ------------------------------------------------------------------------------------------- public API
def load_generator(path: str | os.PathLike, device: str | torch.device = "cpu",
                   dtype: torch.dtype | str | None = None) -> Generator:
    """A generator from an original ``.npz`` snapshot, a native ``.safetensors`` file, or an embedded name; or a
    BigGAN-deep: a reference folder (``config.json`` + ``pytorch_model.bin``), ``biggan-deep-128/256/512`` or
    ``hf:owner/repo`` (see :mod:`collage_core.biggan_io`).

    The model is returned in eval mode with gradients off for its parameters (latents can still require grad).
    """
    from . import biggan_io

    if biggan_io.is_reference_folder(path):  # a BigGAN folder (config.json + pytorch_model.bin)
        return _finish(biggan_io.load_reference(path), device, dtype)
    if isinstance(path, str) and biggan_io.is_biggan_name(path):  # biggan-deep-256, hf:owner/repo
        path = biggan_io.resolve(path)
    path = _resolve(path, "generator")
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
            from .biggan import BigGANConfig, BigGANGenerator
            G = BigGANGenerator(BigGANConfig.from_dict(info["config"]), class_names=info.get("class_names"))
        else:
            G = Generator(GeneratorConfig.from_dict(info["config"]), class_names=info.get("class_names"))
        load_state(G, tensors, str(path))
        G.provenance = dict(info.get("provenance") or {})
    return _finish(G, device, dtype)


def load_discriminator(path: str | os.PathLike, device: str | torch.device = "cpu",
                       dtype: torch.dtype | str | None = None, resolution: int | None = None) -> Discriminator:
    """A discriminator from an original ``.npz`` snapshot, a native file, or an embedded model name."""
    path = _resolve(path, "discriminator")
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
    return _finish(D, device, dtype)


def save_generator(G: Generator, path: str | os.PathLike, provenance: Mapping[str, Any] | None = None,
                   dtype: torch.dtype | None = None) -> Path:
    """Write ``G`` as a native ``.safetensors`` file (config, class names and provenance in the header)."""
    info = {"kind": "generator", "format_version": FORMAT_VERSION, "config": G.config.to_dict(),
            "class_names": list(G.class_names), "provenance": dict(provenance or G.provenance or {})}
    return _save(G, path, info, dtype)


def save_discriminator(D: Discriminator, path: str | os.PathLike, provenance: Mapping[str, Any] | None = None,
                       dtype: torch.dtype | None = None) -> Path:
    info = {"kind": "discriminator", "format_version": FORMAT_VERSION, "config": D.config.to_dict(),
            "provenance": dict(provenance or {})}
    return _save(D, path, info, dtype)


def _save(module: torch.nn.Module, path, info: dict[str, Any], dtype) -> Path:
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"native checkpoints end in .safetensors, not {path.suffix!r}")
    tensors = {}
    for k, v in module.state_dict().items():
        v = v.detach().cpu()
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        tensors[k] = v.contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={FORMAT_KEY: json.dumps(info)})
    os.replace(tmp, path)
    return path


def _finish(module, device, dtype):
    if isinstance(dtype, str):
        dtype = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
                 "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}.get(dtype)
        if dtype is None:
            raise ValueError("dtype must be float32, float16 or bfloat16")
    module = module.to(device=device, dtype=dtype or torch.float32)
    module.eval()
    module.requires_grad_(False)
    return module


def _resolve(path, kind: str) -> Path:
    from .models import embedded_model_path

    p = Path(path)
    if p.suffix in (".npz", ".safetensors"):
        if not p.is_file():
            raise CheckpointError(f"{kind} checkpoint not found: {p}")
        return p
    found = embedded_model_path(str(path), kind)
    if found is not None:
        return found
    if p.is_file():
        raise CheckpointError(f"{p}: unknown checkpoint type {p.suffix!r} (expected .npz or .safetensors)")
    from .models import list_embedded_models
    names = ", ".join(list_embedded_models()) or "none installed"
    extra = ", or a BigGAN folder / biggan-deep-128/256/512 / hf:owner/repo" if kind == "generator" else ""
    raise CheckpointError(f"no {kind} checkpoint {str(path)!r}: not a .npz/.safetensors file and not an embedded "
                          f"model name (embedded: {names}){extra}")
