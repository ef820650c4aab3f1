"""Editing a region of a large photo at the model's resolution, and putting the result back.

1. :func:`square_box` picks a square region: a given box, or a mask's bounding box plus a margin, made square
   (grown, then shifted to stay inside the photo; a photo smaller than the box is padded).
2. :func:`crop_to_model` cuts it out and resizes it to the generator's resolution (area filter when shrinking).
3. After projection and the edit, :func:`paste_back` scales the edited square back to the box and composites
   it into the full-resolution photo **only inside the mask** (Poisson, or alpha with a feathered mask):
   every pixel outside the mask keeps its original value exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class Box:
    """A square region ``[x0, x1) x [y0, y1)`` in photo pixels; it may extend past the photo (padded)."""

    x0: int
    y0: int
    x1: int
    y1: int

    @property
    def size(self) -> int:
        return self.x1 - self.x0


@dataclass(frozen=True)
class CropInfo:
    """Where a model-resolution crop came from: the square ``box`` of a ``photo_size`` (height, width) photo."""

    box: Box
    photo_size: tuple[int, int]
    resolution: int


def crop_photo(photo: np.ndarray, resolution: int, mask: np.ndarray | None = None, margin: float = 0.25
               ) -> tuple[np.ndarray, np.ndarray, CropInfo]:
    """Crop a uint8 ``(H, W, 3)`` photo for editing at ``resolution``.

    With a mask (H, W): its bounding box grown by ``margin``; without: the largest centred square. Returns the
    crop (r, r, 3) uint8, the mask cropped the same way (r, r) float32 (ones without a mask) and a
    :class:`CropInfo` for :func:`paste_back`.
    """
    h, w = photo.shape[:2]
    if mask is not None:
        m = fit_mask(_mask01(mask), (h, w))
        box = square_box((h, w), mask_bbox(m), margin)
    else:
        side = min(h, w)
        box = Box((w - side) // 2, (h - side) // 2, (w - side) // 2 + side, (h - side) // 2 + side)
        m = None
    crop = crop_to_model(photo, box, resolution)
    if m is None:
        mcrop = np.ones((resolution, resolution), np.float32)
    else:
        mcrop = crop_to_model((m * 255).astype(np.uint8)[..., None].repeat(3, -1), box, resolution)[..., 0]
        mcrop = mcrop.astype(np.float32) / 255.0
    return crop, mcrop, CropInfo(box, (h, w), resolution)


def mask_bbox(mask: np.ndarray, threshold: float = 0.0) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the pixels with ``mask > threshold``; ValueError for an empty mask."""
    ys, xs = np.nonzero(np.asarray(mask) > threshold)
    if len(xs) == 0:
        raise ValueError("the mask is empty: nothing to edit")
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def square_box(image_size: tuple[int, int], bbox: tuple[int, int, int, int], margin: float = 0.25,
               min_size: int = 16) -> Box:
    """A square around ``bbox`` (x0, y0, x1, y1), grown by ``margin`` x its longer side on every side.

    The square is shifted to lie inside the photo when it fits; when the photo is smaller than the square in a
    direction it is centred on the bbox and the outside is padded by :func:`crop_to_model`.
    ``image_size`` is (height, width).
    """
    h, w = image_size
    x0, y0, x1, y1 = bbox
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise ValueError(f"box {bbox} is not inside the {w}x{h} photo")
    side = max(x1 - x0, y1 - y0)
    side = max(int(round(side * (1 + 2 * margin))), min_size)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2

    def place(c: float, extent: int) -> int:
        start = int(round(c - side / 2))
        if side <= extent:
            start = min(max(start, 0), extent - side)
        return start

    sx, sy = place(cx, w), place(cy, h)
    return Box(sx, sy, sx + side, sy + side)


def crop_to_model(image: np.ndarray, box: Box, resolution: int) -> np.ndarray:
    """The box of a uint8 ``(H, W, 3)`` photo resized to ``resolution`` (edge-replicated where it overhangs)."""
    h, w = image.shape[:2]
    pad = max(0, -box.x0, -box.y0, box.x1 - w, box.y1 - h)
    src = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE) if pad else image
    patch = src[box.y0 + pad:box.y1 + pad, box.x0 + pad:box.x1 + pad]
    interp = cv2.INTER_AREA if box.size > resolution else cv2.INTER_CUBIC
    return cv2.resize(patch, (resolution, resolution), interpolation=interp)


def paste_back(photo: np.ndarray, edited: np.ndarray, box: Box | CropInfo, mask: np.ndarray,
               method: str = "poisson", feather: float = 0.0) -> np.ndarray:
    """Composite ``edited`` (uint8 ``(r, r, 3)`` at model resolution) into ``photo`` at ``box`` inside ``mask``.

    ``mask`` is the full-photo mask ``(H, W)`` in [0, 1] (or bool/uint8). ``method``: ``"poisson"`` (seamless,
    normal gradients), ``"mixed"`` (mixed gradients) or ``"alpha"`` (plain blend by the mask, optionally feathered
    by a Gaussian of ``feather`` pixels). Pixels where the mask is zero are returned unchanged.
    """
    from .poisson import poisson_composite

    if isinstance(box, CropInfo):
        if tuple(photo.shape[:2]) != box.photo_size:
            raise ValueError(f"the photo is {photo.shape[1]}x{photo.shape[0]} but the crop was taken from a "
                             f"{box.photo_size[1]}x{box.photo_size[0]} photo")
        box = box.box
    h, w = photo.shape[:2]
    m = fit_mask(_mask01(mask), (h, w))
    if not m.any():
        raise ValueError("the mask is empty: nothing to paste")
    interp = cv2.INTER_CUBIC if box.size > edited.shape[0] else cv2.INTER_AREA
    big = cv2.resize(edited, (box.size, box.size), interpolation=interp)
    # place the edited square into a photo-sized source (only the box region matters)
    src = photo.copy()
    ox0, oy0 = max(box.x0, 0), max(box.y0, 0)
    ox1, oy1 = min(box.x1, w), min(box.y1, h)
    src[oy0:oy1, ox0:ox1] = big[oy0 - box.y0:oy1 - box.y0, ox0 - box.x0:ox1 - box.x0]
    inside = np.zeros((h, w), bool)
    inside[oy0:oy1, ox0:ox1] = True
    m = np.where(inside, m, 0.0)
    if method in ("poisson", "mixed"):
        return poisson_composite(src, photo, m, mode="normal" if method == "poisson" else "mixed")
    if method != "alpha":
        raise ValueError("method must be poisson, mixed or alpha")
    if feather > 0:
        soft = cv2.GaussianBlur(m.astype(np.float32), (0, 0), feather)
        m = np.where(m > 0, soft, 0.0)  # never reach outside the mask
    a = m[..., None]
    out = photo.astype(np.float32) * (1 - a) + src.astype(np.float32) * a
    out = np.where(a > 0, np.clip(np.round(out), 0, 255), photo).astype(photo.dtype)
    return out


class MaskSizeError(ValueError):
    """A mask whose shape cannot be fitted to the photo (another aspect ratio); ``needed`` is the photo's (W, H)."""

    argument = "mask"

    def __init__(self, message: str, needed: tuple[int, int]) -> None:
        super().__init__(message)
        self.needed = needed


def fit_mask(m: np.ndarray, size: tuple[int, int], tolerance: float = 0.02) -> np.ndarray:
    """A float mask ``m`` (h, w) at ``size`` (H, W): as is, or resized (bilinear) when its aspect ratio is the
    photo's within ``tolerance`` — so masks drawn in fractions of a picture (the parametric masks), or at another
    resolution, fit any photo. Another aspect ratio is a :class:`MaskSizeError`: stretching would move the region."""
    h, w = size
    if m.shape == (h, w):
        return m
    mh, mw = m.shape
    if abs(mw / mh - w / h) > tolerance * (w / h):
        raise MaskSizeError(f"the mask is {mw}x{mh} but the photo is {w}x{h}: another aspect ratio (make the mask "
                            f"{w}x{h})", (w, h))
    return cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR)


def _mask01(mask: np.ndarray) -> np.ndarray:
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim != 2:
        raise ValueError(f"mask has shape {m.shape}; expected (H, W)")
    if m.dtype == bool:
        return m.astype(np.float32)
    if m.dtype == np.uint8:
        return m.astype(np.float32) / 255.0
    m = m.astype(np.float32)
    if not np.isfinite(m).all():
        raise ValueError("mask contains NaN or infinite values")
    return np.clip(m, 0.0, 1.0)
