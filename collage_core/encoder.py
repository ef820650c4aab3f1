"""An encoder E: image -> (z, class logits) that starts manifold projection near the answer.

The paper initialises projection with an encoder trained to invert the generator; starting from random z, a
projection spends most of its steps finding the right region of latent space (or never finds it). ``E(x)``
gives a latent whose image is already close to ``x``, and the optimisation refines it.

Shapes, for resolution R = 4 * 2^n::

    x (N, 3, R, R) --stem 3x3--> (N, c, R, R) --n residual down-blocks--> (N, C, 4, 4)
        --GroupNorm, ReLU, flatten--> z head: linear -> (N, dim_z);  class head: mean over 4x4, linear -> (N, K)

Down-blocks are ``avgpool(conv(relu(gn(conv(relu(gn(x))))))) + conv1x1(avgpool(x))`` with widths c * (2, 4,
8, 8, ...). GroupNorm (not BatchNorm) so a single picture is encoded the same in training and eval.

Saved like the generator: one ``.safetensors`` file with ``kind = "encoder"``, the config, the class names
and provenance (which generator it was trained for) in its header. :func:`load_encoder` takes a path or an
embedded model name (``collage_core/models/<name>/encoder.safetensors``).
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class EncoderConfig:
    resolution: int = 64
    dim_z: int = 128
    n_classes: int = 1
    ch: int = 32
    max_mult: int = 8

    def __post_init__(self) -> None:
        n = math.log2(self.resolution / 4) if self.resolution >= 8 else -1
        if n != int(n) or n < 1:
            raise ValueError(f"encoder resolution must be 4 * 2^n (8, 16, ..., 256), got {self.resolution}")
        for name in ("dim_z", "n_classes", "ch", "max_mult"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def widths(self) -> list[int]:
        """Output width of the stem, then of each down-block."""
        n = int(math.log2(self.resolution / 4))
        return [self.ch] + [self.ch * min(2 ** (i + 1), self.max_mult) for i in range(n)]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _groups(c: int) -> int:
    return max(1, min(8, c // 4))


class _DownBlock(nn.Module):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.n1 = nn.GroupNorm(_groups(cin), cin)
        self.c1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.n2 = nn.GroupNorm(_groups(cout), cout)
        self.c2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.sc = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c1(F.relu(self.n1(x)))
        h = self.c2(F.relu(self.n2(h)))
        return F.avg_pool2d(h, 2) + self.sc(F.avg_pool2d(x, 2))


@dataclass
class Encoding:
    """What the encoder reads from a batch of pictures."""

    z: torch.Tensor  # (N, dim_z)
    logits: torch.Tensor  # (N, K)

    def top_classes(self, k: int) -> list[list[int]]:
        """Per picture, the ``k`` most likely class ids, best first."""
        k = min(k, self.logits.shape[1])
        return [[int(i) for i in row] for row in torch.topk(self.logits, k, dim=1).indices]


class Encoder(nn.Module):
    """E: image -> (z, class logits), for one generator; see the module docstring."""

    def __init__(self, config: EncoderConfig, class_names: list[str] | None = None) -> None:
        super().__init__()
        self.config = config
        w = config.widths
        self.stem = nn.Conv2d(3, w[0], 3, padding=1)
        self.blocks = nn.ModuleList(_DownBlock(a, b) for a, b in zip(w[:-1], w[1:]))
        self.norm = nn.GroupNorm(_groups(w[-1]), w[-1])
        self.to_z = nn.Linear(w[-1] * 16, config.dim_z)
        self.to_logits = nn.Linear(w[-1], config.n_classes)
        if class_names is not None and len(class_names) != config.n_classes:
            raise ValueError(f"{len(class_names)} class names for {config.n_classes} classes")
        self.class_names = list(class_names) if class_names is not None else [
            f"class_{i}" for i in range(config.n_classes)]
        self.provenance: dict[str, Any] = {}

    @property
    def device(self) -> torch.device:
        return self.stem.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.stem.weight.dtype

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.stem(x)
        for blk in self.blocks:
            h = blk(h)
        h = F.relu(self.norm(h))
        return self.to_z(h.flatten(1)), self.to_logits(h.mean(dim=(2, 3)))

    def encode(self, x: torch.Tensor) -> Encoding:
        """Encode pictures ``(N, 3, R, R)`` (or one ``(3, R, R)``) in [-1, 1]."""
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        if x.dim() == 3:
            x = x[None]
        r = self.resolution
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (r, r):
            raise ValueError(f"pictures have shape {tuple(x.shape)}; the encoder reads (N, 3, {r}, {r}) in [-1, 1]")
        if not torch.isfinite(x).all():
            raise ValueError("the picture contains NaN or infinite values")
        with torch.no_grad():
            z, logits = self(x.to(self.device, self.dtype))
        return Encoding(z.float(), logits.float())

    def check_fits(self, G) -> None:
        """``ValueError`` unless this encoder reads and writes what generator ``G`` makes and takes."""
        problems = []
        if G.resolution != self.resolution:
            problems.append(f"it reads {self.resolution}px pictures, the generator makes {G.resolution}px")
        if G.config.dim_z != self.config.dim_z:
            problems.append(f"it makes {self.config.dim_z}-d latents, the generator takes {G.config.dim_z}-d")
        if list(G.class_names) != list(self.class_names):
            problems.append(f"its {self.config.n_classes} classes are not the generator's {G.config.n_classes}")
        if problems:
            raise ValueError("the encoder does not belong to this generator: " + "; ".join(problems)
                             + " (train one with `neural-collage train-encoder`)")


# -------------------------------------------------------------------------------------------- files
def save_encoder(E: Encoder, path: str | os.PathLike, provenance: dict[str, Any] | None = None,
                 dtype: torch.dtype | None = None) -> Path:
    """Write ``E`` as a native ``.safetensors`` file (config, class names, provenance in the header)."""
    from .checkpoint_format import FORMAT_VERSION, write_native

    info = {"kind": "encoder", "format_version": FORMAT_VERSION, "config": E.config.to_dict(),
            "class_names": list(E.class_names), "provenance": dict(provenance or E.provenance or {})}
    return write_native(E, path, info, dtype)


def load_encoder(path: str | os.PathLike, device: str | torch.device = "cpu",
                 dtype: torch.dtype | str | None = None) -> Encoder:
    """An encoder from a native ``.safetensors`` file or an embedded model name (eval mode, no gradients)."""
    from .checkpoint_format import CheckpointError, finish_loading, load_state, read_native, resolve_checkpoint

    path = resolve_checkpoint(path, "encoder")
    if path.suffix != ".safetensors":
        raise CheckpointError(f"{path}: encoders are .safetensors files written by `neural-collage train-encoder`")
    tensors, info = read_native(path)
    if info.get("kind") != "encoder":
        raise CheckpointError(f"{path} holds a {info.get('kind')!r}, not an encoder")
    try:
        cfg = EncoderConfig.from_dict(info["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise CheckpointError(f"{path}: its encoder config is not valid ({e})") from None
    E = Encoder(cfg, class_names=info.get("class_names"))
    load_state(E, tensors, str(path))
    E.provenance = dict(info.get("provenance") or {})
    return finish_loading(E, device, dtype)
