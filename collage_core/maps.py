"""Building class maps (sCBN) and blend maps (feature blending) from masks.

Conventions: masks are float arrays in [0, 1], shape (H, W) or (N, H, W). A *class map* gives per-pixel class
weights; :class:`ClassMap` keeps only the classes in use, channel-first, at one resolution, and the generator
resizes it to every sCBN layer. *Blend maps* follow the original layout ``blends[point] (N, H, W, S+1)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .scbn import MapCondition


def resize_mask(mask: np.ndarray | torch.Tensor, size: int | tuple[int, int], method: str = "bicubic") -> np.ndarray:
    """Resize a mask (H, W) with PIL, like the original scripts: ``np.array(img.resize((s, s), BICUBIC)) / 255``.

    uint8 masks are resized as 8-bit images (the original's exact numbers); float masks in [0, 1] as 32-bit
    float images. Returns float32 in [0, 1] (bicubic overshoot is clipped for float input).
    """
    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask has shape {mask.shape}; expected (H, W)")
    w, h = (size, size) if isinstance(size, int) else (size[1], size[0])
    resample = {"bicubic": Image.BICUBIC, "bilinear": Image.BILINEAR, "nearest": Image.NEAREST,
                "box": Image.BOX, "lanczos": Image.LANCZOS}.get(method)
    if resample is None:
        raise ValueError(f"unknown resize method {method!r}")
    if mask.dtype == np.uint8:
        return np.asarray(Image.fromarray(mask, "L").resize((w, h), resample), np.float32) / 255.0
    img = Image.fromarray(mask.astype(np.float32), "F").resize((w, h), resample)
    return np.clip(np.asarray(img, np.float32), 0.0, 1.0)


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


def transplant_blends(mask: np.ndarray | torch.Tensor, strengths: Mapping[int, float], sizes: Sequence[int],
                      resize: str = "bilinear") -> list[np.ndarray | None]:
    """Blend maps moving a reference latent's features into a source latent under ``mask``.

    Streams are [source, reference, generated] as in the original's feature-blending demo. At point 0 the
    generated stream is ``(1 - a m) * source + a m * reference``; at a later point b it becomes
    ``(1 - a_b m) * generated + a_b m * reference``, with ``a_b = strengths.get(b, 0)``. Points without a
    strength are left out (None), except point 0, which always starts the generated stream from the source.
    ``mask`` is (H, W) or (N, H, W) in [0, 1].
    """
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask, np.float32)
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(f"mask has shape {m.shape}; expected (H, W) or (N, H, W)")
    for b, a in strengths.items():
        if not 0 <= int(b) < len(sizes):
            raise ValueError(f"blend point {b} out of range 0..{len(sizes) - 1}")
        if not np.isfinite(a):
            raise ValueError(f"strength of blend point {b} is not finite")
    out: list[np.ndarray | None] = []
    for b, s in enumerate(sizes):
        a = float(strengths.get(b, 0.0))
        if b > 0 and b not in strengths:
            out.append(None)
            continue
        mr = np.stack([resize_mask(mi.astype(np.float32), s, "bilinear" if resize == "bilinear" else resize)
                       for mi in m])
        w = np.zeros((m.shape[0], s, s, 3), np.float32)
        w[..., 1] = a * mr
        if b == 0:
            w[..., 0] = 1.0 - w[..., 1]
        else:
            w[..., 2] = 1.0 - w[..., 1]
        out.append(w)
    return out
