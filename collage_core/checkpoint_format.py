"""The pieces every weight loader shares: errors, the native safetensors format, strict state loading.

:mod:`collage_core.checkpoints` (Chainer ``.npz`` snapshots, embedded names, the public ``load_generator``) and
:mod:`collage_core.biggan_io` (BigGAN-deep folders, names and caches) both build on this module, and
:mod:`collage_core.encoder` reads and writes its files with it; it imports none of them.

Native format: one ``.safetensors`` file whose tensors use the original's key layout (``block2.b1.gammas.W``)
and whose header metadata holds ``neural_collage`` = a JSON object with ``kind`` (generator/discriminator/encoder),
``config``, ``class_names`` and ``provenance``. Nothing here unpickles.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

if TYPE_CHECKING:
    from .discriminator import Discriminator
    from .generator import Generator

FORMAT_KEY = "neural_collage"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be read or does not fit the network; the message says why."""


# ----------------------------------------------------------------------------------------- native files
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


def save_generator(G: Generator, path: str | os.PathLike, provenance: Mapping[str, Any] | None = None,
                   dtype: torch.dtype | None = None) -> Path:
    """Write ``G`` as a native ``.safetensors`` file (config, class names and provenance in the header)."""
    info = {"kind": "generator", "format_version": FORMAT_VERSION, "config": G.config.to_dict(),
            "class_names": list(G.class_names), "provenance": dict(provenance or G.provenance or {})}
    return write_native(G, path, info, dtype)


def save_discriminator(D: Discriminator, path: str | os.PathLike, provenance: Mapping[str, Any] | None = None,
                       dtype: torch.dtype | None = None) -> Path:
    info = {"kind": "discriminator", "format_version": FORMAT_VERSION, "config": D.config.to_dict(),
            "provenance": dict(provenance or {})}
    return write_native(D, path, info, dtype)


def write_native(module: torch.nn.Module, path, info: dict[str, Any], dtype) -> Path:
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


def finish_loading(module, device, dtype):
    if isinstance(dtype, str):
        dtype = {"float32": torch.float32, "fp32": torch.float32, "float16": torch.float16, "fp16": torch.float16,
                 "bfloat16": torch.bfloat16, "bf16": torch.bfloat16}.get(dtype)
        if dtype is None:
            raise ValueError("dtype must be float32, float16 or bfloat16")
    module = module.to(device=device, dtype=dtype or torch.float32)
    module.eval()
    module.requires_grad_(False)
    return module


def resolve_checkpoint(path, kind: str) -> Path:
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
