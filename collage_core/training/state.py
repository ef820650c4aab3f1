"""Resumable training state as one safetensors file: module weights, optimiser state, RNG, JSON metadata.

No pickle: tensors are stored under ``<name>/<key>`` (modules) and ``<name>/<param index>/<key>``
(optimisers); the optimisers' param groups and everything else that is not a tensor go into the header
(``neural_collage_train``). Writing goes through a temporary file and an atomic rename, so an interrupted save
never leaves a broken state behind.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

META_KEY = "neural_collage_train"


def write_state(path: str | os.PathLike, modules: Mapping[str, torch.nn.Module],
                optimizers: Mapping[str, torch.optim.Optimizer], meta: Mapping[str, Any],
                tensors: Mapping[str, torch.Tensor] | None = None) -> Path:
    """Write modules, optimisers, extra ``tensors`` and JSON-able ``meta`` to ``path`` atomically."""
    from safetensors.torch import save_file

    out: dict[str, torch.Tensor] = {}
    for name, mod in modules.items():
        for k, v in mod.state_dict().items():
            out[f"{name}/{k}"] = v.detach().cpu().contiguous()
    header: dict[str, Any] = dict(meta)
    for name, opt in optimizers.items():
        sd = opt.state_dict()
        header[name] = {"param_groups": sd["param_groups"]}
        for idx, st in sd["state"].items():
            for k, v in st.items():
                out[f"{name}/{idx}/{k}"] = torch.as_tensor(v).detach().cpu().contiguous()
    for k, v in (tensors or {}).items():
        out[k] = v.detach().cpu().contiguous()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(out, str(tmp), metadata={META_KEY: json.dumps(header)})
    os.replace(tmp, path)
    return path


def read_state(path: str | os.PathLike) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """All tensors and the JSON header of a state file."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    path = Path(path)
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads((f.metadata() or {})[META_KEY])
    return load_file(str(path)), meta


def restore(tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any],
            modules: Mapping[str, torch.nn.Module], optimizers: Mapping[str, torch.optim.Optimizer],
            device: torch.device) -> None:
    """Load what :func:`write_state` wrote back into ``modules`` (strictly) and ``optimizers``."""
    for name, mod in modules.items():
        sd = {k[len(name) + 1:]: v for k, v in tensors.items() if k.startswith(name + "/")}
        mod.load_state_dict(sd, strict=True)
    for name, opt in optimizers.items():
        state: dict[int, dict[str, torch.Tensor]] = {}
        for k, v in tensors.items():
            if k.startswith(name + "/"):
                _, idx, key = k.split("/", 2)
                state.setdefault(int(idx), {})[key] = v.to(device) if key != "step" else v
        opt.load_state_dict({"state": state, "param_groups": meta[name]["param_groups"]})
