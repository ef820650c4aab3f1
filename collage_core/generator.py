"""The SNGAN-projection ResNet generator with spatial conditional BN and feature blending.

One module covers every layout of the original (``resnet_64``, ``resnet_small``, ``resnet``, ``resnet_256``):
see :mod:`collage_core.config`. Shapes, for a config with ``n`` blocks and ``L = 2n`` sCBN layers::

    z (N, dim_z) --l1--> (N, C0, bw, bw) --block2--> (N, C1, 2bw, 2bw) ... --block{n+1}--> (N, Cn, R, R)
        --b{n+2} (BN), relu, l{n+2} (3x3 conv), tanh--> x (N, 3, R, R) in [-1, 1]

Each block is ``r = c2(relu(b2(c1(up(relu(b1(x)))))))`` and ``out = r + c_sc(up(x))``; ``up`` is
nearest-neighbour x2. ``b1`` reads sCBN layer ``2k`` (before the up-sampling) and ``b2`` layer ``2k+1``.

sCBN is :mod:`collage_core.scbn` (the conditional BN layers ``b1``/``b2``); feature blending is
:mod:`collage_core.blending`, whose stream runner this generator drives with its head ``l1`` and its blocks: blend
point ``b`` is the head for b=0 and block b+1's output otherwise. :meth:`synthesize`'s arguments are checked by the
base class :class:`collage_core.conditional.ConditionalGenerator`, shared with BigGAN-deep.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from .blending import run_streams, stream_schedule
from .conditional import ArrayLike, ConditionalGenerator, class_index, resize_map
from .config import GeneratorConfig
from .layers import Conv2d, Linear, add_upsampled
from .scbn import BatchNorm, Condition, ConditionalBatchNorm

# names that lived here before the split into blending.py and conditional.py
__all__ = ["ArrayLike", "GenBlock", "Generator", "class_index", "resize_map", "stream_schedule"]


class GenBlock(nn.Module):
    """One up-sampling residual block with two conditional BN layers (``SCBNBlock`` of the original)."""

    def __init__(self, in_channels: int, out_channels: int, n_classes: int, eps: float = 2e-5) -> None:
        super().__init__()
        self.b1 = ConditionalBatchNorm(in_channels, n_classes, eps)
        self.c1 = Conv2d(in_channels, out_channels, 3, gain=math.sqrt(2))
        self.b2 = ConditionalBatchNorm(out_channels, n_classes, eps)
        self.c2 = Conv2d(out_channels, out_channels, 3, gain=math.sqrt(2))
        self.c_sc = Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, cond1: Condition, cond2: Condition, streams: int = 1,
                record: dict[str, torch.Tensor] | None = None, name: str = "") -> torch.Tensor:
        if record is not None:
            h = self.b1(x, cond1, streams)
            record[f"{name}_b1"] = h[-cond1.batch:].clone()
            h = _relu(h)
        else:
            h = self.b1(x, cond1, streams, relu=True)
        h = self.c1.upsample_forward(h)
        h = self.c2(self.b2(h, cond2, streams, relu=True))
        return add_upsampled(h, self.c_sc(x))


def _relu(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x) if x.requires_grad else x.relu_()


class Generator(ConditionalGenerator):
    """Class-conditional generator with sCBN and feature blending; see :meth:`synthesize`."""

    def __init__(self, config: GeneratorConfig, class_names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.config = config
        c, n = config.channels, config.n_blocks
        self.l1 = Linear(config.dim_z, config.bottom_width ** 2 * c[0])
        for k in range(n):
            self.add_module(f"block{k + 2}", GenBlock(c[k], c[k + 1], config.n_classes, config.bn_eps))
        self.add_module(f"b{n + 2}", BatchNorm(c[-1], config.bn_eps))
        self.add_module(f"l{n + 2}", Conv2d(c[-1], 3, 3))
        if class_names is not None and len(class_names) != config.n_classes:
            raise ValueError(f"{len(class_names)} class names for {config.n_classes} classes")
        self.class_names: list[str] = list(class_names) if class_names is not None else [
            f"class_{i}" for i in range(config.n_classes)]
        self.provenance: dict[str, Any] = {}

    # ----------------------------------------------------------------------------------------------- structure
    @property
    def blocks(self) -> list[GenBlock]:
        return [getattr(self, f"block{k + 2}") for k in range(self.config.n_blocks)]

    @property
    def final_bn(self) -> BatchNorm:
        return getattr(self, f"b{self.config.n_blocks + 2}")

    @property
    def final_conv(self) -> Conv2d:
        return getattr(self, f"l{self.config.n_blocks + 2}")

    @property
    def device(self) -> torch.device:
        return self.l1.W.device

    @property
    def dtype(self) -> torch.dtype:
        return self.l1.W.dtype

    # ------------------------------------------------------------------------------------------------- core
    def forward(self, zs: Sequence[torch.Tensor], conds: Sequence[Condition],
                blends: Sequence[torch.Tensor | None] | None = None,
                record: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Core computation on validated tensors.

        zs: S tensors (N, dim_z). conds: one :class:`Condition` per sCBN layer (L of them).
        blends: None, or one entry per blend point: None (no blending there) or (N, S+1, H, W) weights over
        [input streams..., generated stream]. With no blend at point 0 the generated stream starts as zs[0].
        record: if a dict, intermediate activations of the generated stream are stored in it.
        """
        cfg = self.config
        batch, blocks = zs[0].shape[0], self.blocks
        bw = cfg.bottom_width

        def head(active: list[int]) -> torch.Tensor:
            z_act = torch.cat([zs[s] for s in active], 0) if active else zs[0][:0]
            return self.l1(z_act).view(-1, cfg.channels[0], bw, bw)  # (A*N, C, H, W)

        def step(k: int, x: torch.Tensor, latents: list[int]) -> torch.Tensor:
            return blocks[k](x, conds[2 * k], conds[2 * k + 1], len(latents), record, f"block{k + 2}")

        names = ["l1"] + [f"block{b + 1}" for b in range(1, cfg.n_blend_layers)]
        gen = run_streams(head, step, len(zs), batch, blends, cfg.n_blend_layers, record, names)
        h = self.final_bn(gen)
        if record is not None:
            record[f"b{cfg.n_blocks + 2}"] = h.clone()
        h = self.final_conv(_relu(h))
        if record is not None:
            record["pre_tanh"] = h
        return torch.tanh(h)

    # ----------------------------------------------------------------------------------------- public API
    def synthesize(self, z: ArrayLike | None = None, classes: ArrayLike | int | str | None = None,
                   class_maps: ArrayLike | Sequence[ArrayLike] | None = None, *,
                   zs: Sequence[ArrayLike] | None = None,
                   blends: Sequence[ArrayLike | None] | Mapping[int, ArrayLike] | None = None,
                   map_layers: Iterable[int] | slice | None = None,
                   map_resize: str = "bilinear", truncation: float | None = None,
                   record: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Generate images ``(N, 3, R, R)`` in [-1, 1].

        ``truncation`` (in (0, 1], default 1.0) is accepted for the API shared with BigGAN and ignored: this family
        has no truncation-dependent statistics (truncate the latents instead, :func:`collage_core.latents.sample_z`).

        Latents: ``z`` (N, dim_z), or ``zs`` = S latents for feature blending.

        Classes (one of):
          * ``classes``: an int / name, N class ids, or N class-weight vectors (N, K): plain CBN (fast path).
          * ``class_maps``: sCBN maps. Either the original per-layer layout, a list of L arrays
            ``(N, H_l, W_l, K)`` with ``H_l = config.map_sizes[l]``, or one array ``(N, H, W, K)`` (or
            ``(H, W, K)``) at any resolution, resized to every layer with ``map_resize``.
            Maps are used as given (no renormalisation), like the original.
          * ``map_layers``: the sCBN layers (indices into 0..L-1, a ``range`` or ``slice``) where the map
            applies; the other layers use ``classes`` (or, if not given, each sample's dominant class in the
            map). This is the paper's per-layer ablation.

        Feature blending: ``blends`` = one entry per blend point (``config.n_blend_layers``; point 0 is the
        head, point b the output of block b+1), each None or ``(N, H_b, W_b, S+1)`` weights over
        [zs[0], ..., zs[S-1], generated stream], or a dict {point: weights}. Batch-1 inputs broadcast to N.
        """
        if truncation is not None and not 0.0 < float(truncation) <= 1.0:
            raise ValueError(f"truncation must be in (0, 1], got {truncation}")
        zs_t, conds, blend_t = self._prepare(z, zs, classes, class_maps, map_layers, map_resize, blends)
        return self.forward(zs_t, conds, blend_t, record)
