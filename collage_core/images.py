"""Converting between generator tensors and pictures.

Generator images are ``(N, 3, H, W)`` float in [-1, 1]. The original saves them as
``uint8(clip(x * 127.5 + 127.5, 0, 255))`` (truncation, not rounding) and reads targets as ``u8 / 128 - 1``;
both conventions are available here, named for what they do.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image


def to_uint8(x: torch.Tensor | np.ndarray, rounding: str = "truncate") -> np.ndarray:
    """``(N, 3, H, W)`` or ``(3, H, W)`` in [-1, 1] -> uint8 ``(N, H, W, 3)`` / ``(H, W, 3)``.

    ``rounding="truncate"`` reproduces the original scripts bit for bit; ``"round"`` is the nearer value.
    """
    a = x.detach().float().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x, np.float32)
    v = a * 127.5 + 127.5
    if rounding == "round":
        v = np.round(v)
    elif rounding != "truncate":
        raise ValueError("rounding must be 'truncate' or 'round'")
    u8 = np.clip(v, 0, 255).astype(np.uint8)
    return np.moveaxis(u8, -3, -1)


def from_uint8(u8: np.ndarray, convention: str = "generator") -> torch.Tensor:
    """uint8 ``(H, W, 3)`` or ``(N, H, W, 3)`` -> float ``(N, 3, H, W)``.

    ``convention="generator"``: ``u8 / 127.5 - 1`` (the exact inverse of the generator's output mapping);
    ``"original-projection"``: ``u8 / 128 - 1``, as the original's ``optimization.py`` reads its target.
    """
    a = np.asarray(u8)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 3:
        raise ValueError(f"expected (N, H, W, 3) uint8 images, got shape {a.shape}")
    t = torch.from_numpy(np.ascontiguousarray(a)).permute(0, 3, 1, 2).float()
    if convention == "generator":
        return t / 127.5 - 1.0
    if convention == "original-projection":
        return t / 128.0 - 1.0
    raise ValueError("convention must be 'generator' or 'original-projection'")


def grid(images: np.ndarray, ncols: int, pad: int = 2, fill: int = 255) -> np.ndarray:
    """Tile uint8 images ``(N, H, W, C)`` into one picture with ``ncols`` columns and ``pad`` pixels between."""
    n, h, w, c = images.shape
    nrows = (n + ncols - 1) // ncols
    out = np.full((nrows * h + (nrows - 1) * pad, ncols * w + (ncols - 1) * pad, c), fill, np.uint8)
    for i in range(n):
        r, k = divmod(i, ncols)
        out[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = images[i]
    return out


def save_png(image: np.ndarray, path: str | Path, text: dict[str, str] | None = None) -> Path:
    """Write a uint8 ``(H, W, 3|4)`` or ``(H, W)`` image as PNG (with optional tEXt chunks), atomically."""
    from PIL import PngImagePlugin

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    info = None
    if text:
        info = PngImagePlugin.PngInfo()
        for k, v in text.items():
            info.add_text(k, v)
    tmp = path.with_name(path.name + ".tmp")
    Image.fromarray(np.asarray(image)).save(tmp, format="PNG", pnginfo=info)
    tmp.replace(path)
    return path
