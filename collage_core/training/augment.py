"""Augmentations for training a GAN on a few hundred images.

* :func:`diff_augment` -- differentiable augmentation (Zhao et al. 2020, "Differentiable Augmentation for
  Data-Efficient GAN Training"), applied to real *and* fake images before the discriminator, so D never sees
  the raw training set and G is not pushed to reproduce the augmentations.
* :func:`data_augment` -- classic augmentation of the real images only (random scale, shift, small rotation,
  horizontal flip, mild colour jitter), which enlarges the training distribution itself.

All functions take and return batches ``(N, 3, H, W)`` in [-1, 1] and draw from an explicit ``torch.Generator``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _rand(n: int, gen: torch.Generator | None, device) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, generator=gen, device=device)


def diff_augment(x: torch.Tensor, policy: str = "color,translation,cutout",
                 gen: torch.Generator | None = None) -> torch.Tensor:
    """Apply the DiffAugment ``policy`` (comma-separated: color, translation, cutout) to ``x``."""
    for p in [p for p in policy.split(",") if p]:
        if p == "color":
            x = _color(x, gen)
        elif p == "translation":
            x = _translation(x, gen)
        elif p == "cutout":
            x = _cutout(x, gen)
        else:
            raise ValueError(f"unknown DiffAugment op {p!r}; use color, translation, cutout")
    return x


def _color(x, gen):
    n, dev = x.shape[0], x.device
    x = x + (_rand(n, gen, dev).to(x.dtype) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand(n, gen, dev).to(x.dtype) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand(n, gen, dev).to(x.dtype) + 0.5) + mean  # contrast


def _translation(x, gen, ratio: float = 0.125):
    n, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), generator=gen, device=x.device)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), generator=gen, device=x.device)
    gy, gx = torch.meshgrid(torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = (gy[None] + dy).clamp(-1, h)  # index -1 / h fall into the zero padding
    gx = (gx[None] + dx).clamp(-1, w)
    padded = F.pad(x, (1, 1, 1, 1))
    idx = ((gy + 1) * (w + 2) + (gx + 1)).view(n, 1, -1).expand(-1, x.shape[1], -1)
    return padded.flatten(2).gather(2, idx).view_as(x)


def _cutout(x, gen, ratio: float = 0.5):
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = torch.randint(0, h + (1 - ch % 2), (n, 1, 1), generator=gen, device=x.device)
    cx = torch.randint(0, w + (1 - cw % 2), (n, 1, 1), generator=gen, device=x.device)
    gy = torch.arange(h, device=x.device).view(1, h, 1)
    gx = torch.arange(w, device=x.device).view(1, 1, w)
    # a ch x cw box with its top-left corner at (cy - ch//2, cx - cw//2), partly outside the image at times
    inside = ((gy >= cy - ch // 2) & (gy < cy - ch // 2 + ch) & (gx >= cx - cw // 2) & (gx < cx - cw // 2 + cw))
    return x * (~inside).unsqueeze(1).to(x.dtype)


def data_augment(x: torch.Tensor, gen: torch.Generator | None = None, scale: tuple[float, float] = (0.8, 1.1),
                 shift: float = 0.08, rotate_deg: float = 10.0, flip: bool = True, jitter: float = 0.1,
                 background: float = 1.0) -> torch.Tensor:
    """Random affine (scale, shift, rotation), horizontal flip and mild brightness/contrast jitter.

    Pixels uncovered by the transform are filled with ``background`` (white by default, as the data is
    composited on white). Hue is never changed: colour is what tells a fox from a wolf.
    """
    n, dev = x.shape[0], x.device
    s = torch.empty(n, device=dev).uniform_(*scale, generator=gen)
    a = (torch.rand(n, device=dev, generator=gen) * 2 - 1) * math.radians(rotate_deg)
    t = (torch.rand(n, 2, device=dev, generator=gen) * 2 - 1) * shift * 2
    f = torch.where(torch.rand(n, device=dev, generator=gen) < 0.5, -1.0, 1.0) if flip else torch.ones(n, device=dev)
    cos, sin = torch.cos(a) / s, torch.sin(a) / s
    theta = torch.stack([torch.stack([cos * f, -sin, t[:, 0]], 1), torch.stack([sin * f, cos, t[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x.dtype), list(x.shape), align_corners=False)
    out = F.grid_sample(x - background, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out = out + background
    if jitter > 0:
        b = (torch.rand(n, 1, 1, 1, device=dev, generator=gen) * 2 - 1) * jitter
        c = 1 + (torch.rand(n, 1, 1, 1, device=dev, generator=gen) * 2 - 1) * jitter
        mean = out.mean(dim=(1, 2, 3), keepdim=True)
        out = (out - mean) * c + mean + b
    return out.clamp(-1, 1)
