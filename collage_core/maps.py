"""Building class maps (sCBN) from masks.

Conventions: masks are float arrays in [0, 1], shape (H, W) or (N, H, W). A *class map* gives per-pixel class
weights; :class:`ClassMap` keeps only the classes in use, channel-first, at one resolution, and the generator
resizes it to every sCBN layer. Blend maps (feature blending) are built in :mod:`collage_core.blending`;
:func:`transplant_blends` and :func:`resize_mask` (:mod:`collage_core.masks`) stay importable from here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .blending import transplant_blends
from .masks import resize_mask
from .scbn import MapCondition

__all__ = ["ClassMap", "class_map_from_regions", "onehot_maps", "resize_mask", "transplant_blends"]


@dataclass(frozen=True)
class ClassMap:
    """A compact class map: ``weights (N, K', H, W)`` over ``classes`` (K' ids), at one resolution.

    Pass it as ``class_maps=`` to :meth:`Generator.synthesize`; it is resized to each sCBN layer.
    """

    weights: torch.Tensor
    classes: tuple[int, ...]

    def condition(self) -> MapCondition:
        return MapCondition(self.weights, torch.as_tensor(self.classes, dtype=torch.long))

    def dense(self, n_classes: int) -> torch.Tensor:
        """The original layout (N, H, W, n_classes)."""
        n, _, h, w = self.weights.shape
        out = torch.zeros(n, h, w, n_classes, dtype=self.weights.dtype)
        for i, c in enumerate(self.classes):
            out[..., c] += self.weights[:, i]
        return out


def class_map_from_regions(base_class: int, regions: Sequence[tuple[np.ndarray | torch.Tensor, int, float]],
                           size: int | None = None) -> ClassMap:
    """Paint classes over a base class: each region is ``(mask, class_id, strength)``.

    Regions are composited in order, each *over* what is below it:
    ``w <- w * (1 - s m) + s m * onehot(class)``, so weights stay >= 0 and sum to one at every pixel, and a later
    region wins where masks overlap (unlike the original demo, whose ``w[..., c] = m t`` can break the sum).
    All masks must have the same shape (H, W) or (N, H, W); ``size`` resizes them first (bilinear).
    """
    classes: list[int] = [int(base_class)]
    for _, c, _ in regions:
        if int(c) not in classes:
            classes.append(int(c))
    masks = []
    shape = None
    for i, (m, _, s) in enumerate(regions):
        t = torch.as_tensor(np.asarray(m, dtype=np.float32) if not isinstance(m, torch.Tensor) else m).float()
        if t.dim() == 2:
            t = t[None]
        if t.dim() != 3:
            raise ValueError(f"region {i}: mask has shape {tuple(t.shape)}; expected (H, W) or (N, H, W)")
        if shape is not None and t.shape[1:] != shape[1:]:
            raise ValueError(f"region {i}: mask is {tuple(t.shape[1:])}, but region 0's is {tuple(shape[1:])}")
        if not torch.isfinite(t).all():
            raise ValueError(f"region {i}: mask contains NaN or infinite values")
        if not 0.0 <= float(s) <= 1.0:
            raise ValueError(f"region {i}: strength {s} is outside [0, 1]")
        shape = t.shape
        masks.append(t.clamp(0, 1) * float(s))
    if shape is None:
        side = size or 4
        w = torch.ones(1, 1, side, side)
        return ClassMap(w, (int(base_class),))
    n = max(m.shape[0] for m in masks)
    h, wd = shape[1:]
    w = torch.zeros(n, len(classes), h, wd)
    w[:, 0] = 1.0
    for m, (_, c, _) in zip(masks, regions):
        k = classes.index(int(c))
        m = m.expand(n, h, wd)
        w = w * (1 - m[:, None])
        w[:, k] += m
    if size is not None and (h, wd) != (size, size):
        w = F.interpolate(w, size=(size, size), mode="bilinear", align_corners=False, antialias=size < h)
    return ClassMap(w, tuple(classes))


def onehot_maps(classes: Sequence[int] | np.ndarray, n_classes: int, sizes: Sequence[int]) -> list[np.ndarray]:
    """Per-layer one-hot maps in the original layout: ``[(N, s, s, n_classes) for s in sizes]``."""
    ids = np.asarray(classes, dtype=np.int64).reshape(-1)
    out = []
    for s in sizes:
        m = np.zeros((len(ids), s, s, n_classes), np.float32)
        m[np.arange(len(ids)), :, :, ids] = 1.0
        out.append(m)
    return out
