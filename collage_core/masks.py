"""Masks: parametric shapes, feathering, set operations, thresholds and reading masks from pictures.

A mask is a float32 tensor in [0, 1], ``(B, H, W)`` (or ``(H, W)``, read as batch 1) - ComfyUI's ``MASK``.
Shapes are given in fractions of the picture (``x, y, w, h`` in 0..1, origin top left), so one description fits
every resolution; edges are anti-aliased (each pixel holds the fraction of its area inside the shape).
"""

from __future__ import annotations

import math
import os

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

#: slack allowed outside [0, 1] before a mask is rejected (rounding of upstream maths); values are then clipped
RANGE_TOLERANCE = 1e-4


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


def as_mask_batch(mask: torch.Tensor | np.ndarray, what: str = "mask") -> torch.Tensor:
    """``mask`` as a float32 ``(B, H, W)`` tensor in [0, 1] (same device); ``ValueError`` naming ``what`` if it is not
    a mask: wrong number of dimensions, empty, non-finite, or values outside [0, 1]."""
    t = torch.as_tensor(np.asarray(mask, np.float32)) if not isinstance(mask, torch.Tensor) else mask
    if t.dim() == 2:
        t = t[None]
    if t.dim() != 3:
        raise ValueError(f"{what} has shape {tuple(t.shape)}; expected a MASK [B, H, W] or [H, W]")
    if t.numel() == 0:
        raise ValueError(f"{what} is empty (shape {tuple(t.shape)})")
    if not (t.is_floating_point() or t.dtype == torch.bool):
        raise ValueError(f"{what} has dtype {t.dtype}; expected float values in [0, 1]")
    t = t.float()
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what} contains NaN or infinite values")
    lo, hi = float(t.min()), float(t.max())
    if lo < -RANGE_TOLERANCE or hi > 1 + RANGE_TOLERANCE:
        raise ValueError(f"{what} has values in [{lo:.4g}, {hi:.4g}]; a mask must lie in [0, 1]")
    return t.clamp(0.0, 1.0)


def resize_masks(mask: torch.Tensor, size: int | tuple[int, int], method: str = "bilinear") -> torch.Tensor:
    """Resize every mask of a ``(B, H, W)`` batch to ``size`` with :func:`resize_mask` (PIL, float);
    a batch already of that size is returned unchanged."""
    h, w = (size, size) if isinstance(size, int) else size
    if tuple(mask.shape[-2:]) == (h, w):
        return mask
    out = np.stack([resize_mask(m.detach().float().cpu().numpy(), (h, w), method) for m in mask])
    return torch.from_numpy(out).to(mask.device)


def broadcast_batches(a: torch.Tensor, b: torch.Tensor, what_a: str = "a", what_b: str = "b"
                      ) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``(B, ...)`` batches made the same length (a batch of 1 repeats); ``ValueError`` if they differ otherwise."""
    na, nb = a.shape[0], b.shape[0]
    if na == nb:
        return a, b
    if na == 1:
        return a.expand(nb, *a.shape[1:]), b
    if nb == 1:
        return a, b.expand(na, *b.shape[1:])
    raise ValueError(f"{what_a} has batch {na} and {what_b} has batch {nb}; they must match (or one be 1)")


# ------------------------------------------------------------------------------------------------ shapes
def _check_size(width: int, height: int) -> None:
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f"mask size must be at least 1x1, got {width}x{height}")


def _coverage_1d(n: int, start: float, length: float) -> torch.Tensor:
    """Fraction of each of ``n`` unit cells (of a [0, 1] axis) inside ``[start, start + length]``."""
    edges = torch.arange(n + 1, dtype=torch.float64) / n
    lo, hi = edges[:-1], edges[1:]
    inside = (torch.minimum(hi, torch.tensor(start + length)) - torch.maximum(lo, torch.tensor(start))).clamp(min=0)
    return (inside * n).float()


def rectangle(width: int, height: int, x: float, y: float, w: float, h: float) -> torch.Tensor:
    """``(1, height, width)`` mask of the rectangle with top-left corner ``(x, y)`` and size ``(w, h)`` (fractions of
    the picture); border pixels hold the fraction of their area inside."""
    _check_size(width, height)
    for name, v in (("x", x), ("y", y), ("w", w), ("h", h)):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v}")
    if w < 0 or h < 0:
        raise ValueError(f"rectangle size must not be negative, got w={w}, h={h}")
    cols = _coverage_1d(int(width), float(x), float(w))
    rows = _coverage_1d(int(height), float(y), float(h))
    return (rows[:, None] * cols[None, :]).clamp(0, 1)[None]


def ellipse(width: int, height: int, cx: float, cy: float, rx: float, ry: float, supersample: int = 8
            ) -> torch.Tensor:
    """``(1, height, width)`` mask of the ellipse centred at ``(cx, cy)`` with radii ``(rx, ry)`` (fractions of the
    picture's width and height); edge pixels hold their covered fraction (``supersample``² samples per pixel)."""
    _check_size(width, height)
    for name, v in (("cx", cx), ("cy", cy), ("rx", rx), ("ry", ry)):
        if not math.isfinite(v):
            raise ValueError(f"{name} must be finite, got {v}")
    if rx < 0 or ry < 0:
        raise ValueError(f"radii must not be negative, got rx={rx}, ry={ry}")
    if rx == 0 or ry == 0:
        return torch.zeros(1, int(height), int(width))
    s, W, H = int(supersample), int(width), int(height)
    out = torch.zeros(H, W)
    # only the ellipse's bounding box is sampled, a band of rows at a time: the working memory stays near 16 MB
    # whatever the picture's size (a 4096² mask sampled 8x at once would take gigabytes)
    x0, x1 = max(int(math.floor((cx - rx) * W)) - 1, 0), min(int(math.ceil((cx + rx) * W)) + 1, W)
    y0, y1 = max(int(math.floor((cy - ry) * H)) - 1, 0), min(int(math.ceil((cy + ry) * H)) + 1, H)
    if x0 >= x1 or y0 >= y1:
        return out[None]
    xs = (torch.arange(x0 * s, x1 * s, dtype=torch.float64) + 0.5) / (W * s)
    dx = ((xs - cx) / rx) ** 2
    band = max(1, (16 << 20) // max(1, (x1 - x0) * s * s * 9))  # rows per band (bool + float64 per sample)
    for r0 in range(y0, y1, band):
        r1 = min(r0 + band, y1)
        ys = (torch.arange(r0 * s, r1 * s, dtype=torch.float64) + 0.5) / (H * s)
        inside = dx[None, :] + ((ys[:, None] - cy) / ry) ** 2 <= 1.0
        out[r0:r1, x0:x1] = inside.view(r1 - r0, s, x1 - x0, s).double().mean(dim=(1, 3)).float()
    return out[None]


def feather(mask: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of a ``(B, H, W)`` mask with standard deviation ``sigma`` pixels (edges replicate); 0 returns the
    mask unchanged."""
    sigma = float(sigma)
    if not math.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma must be a non-negative number of pixels, got {sigma}")
    if sigma == 0:
        return mask
    radius = max(1, int(math.ceil(3 * sigma)))
    k = torch.arange(-radius, radius + 1, dtype=torch.float32, device=mask.device)
    k = torch.exp(-0.5 * (k / sigma) ** 2)
    k = k / k.sum()
    x = mask.float()[:, None]
    x = F.pad(x, (radius, radius, 0, 0), mode="replicate")  # edges replicated, one-pixel sides included
    x = F.conv2d(x, k.view(1, 1, 1, -1))
    x = F.pad(x, (0, 0, radius, radius), mode="replicate")
    x = F.conv2d(x, k.view(1, 1, -1, 1))
    return x[:, 0].clamp(0, 1)


def invert(mask: torch.Tensor) -> torch.Tensor:
    """``1 - mask``."""
    return 1.0 - mask


COMBINE_OPS = ("union", "intersection", "add", "subtract", "multiply", "difference")


def combine(a: torch.Tensor, b: torch.Tensor, op: str) -> torch.Tensor:
    """Combine two ``(B, H, W)`` masks: ``union`` (max), ``intersection`` (min), ``add`` / ``subtract`` (clipped to
    [0, 1]), ``multiply``, ``difference`` (|a - b|). ``b`` is resized to ``a``'s size; a batch of 1 repeats."""
    if op not in COMBINE_OPS:
        raise ValueError(f"op must be one of {', '.join(COMBINE_OPS)}, not {op!r}")
    b = resize_masks(b, tuple(a.shape[-2:])).to(a.device)
    a, b = broadcast_batches(a, b, "mask_a", "mask_b")
    if op == "union":
        out = torch.maximum(a, b)
    elif op == "intersection":
        out = torch.minimum(a, b)
    elif op == "add":
        out = a + b
    elif op == "subtract":
        out = a - b
    elif op == "multiply":
        out = a * b
    else:
        out = (a - b).abs()
    return out.clamp(0, 1)


def threshold(mask: torch.Tensor, level: float) -> torch.Tensor:
    """1 where ``mask >= level``, else 0."""
    if not 0.0 <= float(level) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {level}")
    return (mask >= float(level)).float()


# --------------------------------------------------------------------------------------------- from pictures
CHANNELS = ("luminance", "alpha", "red", "green", "blue")


def from_image(image: torch.Tensor, channel: str, alpha: torch.Tensor | None = None) -> torch.Tensor:
    """A ``(B, H, W)`` mask from an ``IMAGE`` ``(B, H, W, C)`` in [0, 1]: ``luminance`` (ITU-R 601 luma, like PIL's
    ``L`` mode), ``red`` / ``green`` / ``blue``, or ``alpha`` (the 4th channel, or ``alpha`` given separately;
    opaque is 1)."""
    if channel not in CHANNELS:
        raise ValueError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}")
    if image.dim() != 4 or image.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image has shape {tuple(image.shape)}; expected an IMAGE [B, H, W, C]")
    if channel == "alpha":
        if image.shape[-1] == 4:
            return image[..., 3].float()
        if alpha is None:
            raise ValueError("the image has no alpha channel (choose luminance, red, green or blue)")
        return alpha.float()
    if image.shape[-1] == 1:
        return image[..., 0].float()
    if channel == "luminance":
        return (image[..., 0] * 0.299 + image[..., 1] * 0.587 + image[..., 2] * 0.114).float().clamp(0, 1)
    return image[..., ("red", "green", "blue").index(channel)].float()


def load_mask(path: str | os.PathLike, channel: str = "luminance") -> torch.Tensor:
    """A ``(1, H, W)`` mask read from a picture file (see :func:`from_image` for ``channel``)."""
    from .images import load_image

    image, alpha = load_image(path)
    return from_image(image, channel, alpha)
