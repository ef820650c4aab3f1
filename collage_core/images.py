"""Converting between generator tensors and pictures.

Generator images are ``(N, 3, H, W)`` float in [-1, 1]. The original saves them as
``uint8(clip(x * 127.5 + 127.5, 0, 255))`` (truncation, not rounding) and reads targets as ``u8 / 128 - 1``;
both conventions are available here, named for what they do.
"""

from __future__ import annotations

import warnings
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


# ------------------------------------------------------------------------- ComfyUI IMAGE tensors [B, H, W, C]
# ComfyUI's IMAGE is a float32 tensor (B, H, W, C) in [0, 1]. These helpers convert to and from it, read picture
# files into it, and tile a batch into one picture; only image_to_uint8 moves data (to numpy on the CPU).


def to_image(x: torch.Tensor) -> torch.Tensor:
    """Generator output ``(N, 3, H, W)`` in [-1, 1] -> ``IMAGE`` ``(N, H, W, 3)`` float32 in [0, 1], same device."""
    if x.dim() != 4:
        raise ValueError(f"expected generator images (N, C, H, W), got shape {tuple(x.shape)}")
    return (x.float().permute(0, 2, 3, 1) * 0.5 + 0.5).clamp(0.0, 1.0).contiguous()


def image_to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """``IMAGE`` ``(B, H, W, C)`` (or ``(H, W, C)``) in [0, 1] -> uint8 numpy on the CPU, as ComfyUI saves:
    ``clip(255 * x, 0, 255)`` truncated (the same numbers as :func:`to_uint8` of the generator output)."""
    a = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image, np.float32)
    return np.clip(a * 255.0, 0, 255).astype(np.uint8)


def load_image(path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Read a picture file with :func:`read_image` as an ``IMAGE`` ``(1, H, W, 3)`` float32 in [0, 1] and its alpha
    ``(1, H, W)`` (or None), on the CPU. Missing, corrupt or over-large files raise an error naming the file."""
    rgb, alpha = read_image(path)
    image = torch.from_numpy(np.ascontiguousarray(rgb)).float().div_(255.0)[None]
    return image, (torch.from_numpy(np.ascontiguousarray(alpha)).float()[None] if alpha is not None else None)


def tile_images(images: torch.Tensor, columns: int, pad: int = 2, fill: float = 1.0) -> torch.Tensor:
    """Tile an ``IMAGE`` batch ``(B, H, W, C)`` row by row into one ``(1, H', W', C)`` picture with ``columns``
    columns and ``pad`` pixels of value ``fill`` between cells (empty cells of the last row are filled too)."""
    if images.dim() != 4:
        raise ValueError(f"images have shape {tuple(images.shape)}; expected an IMAGE [B, H, W, C]")
    if int(columns) < 1 or int(pad) < 0:
        raise ValueError(f"columns must be >= 1 and pad >= 0, got {columns} and {pad}")
    b, h, w, c = images.shape
    cols = min(int(columns), b)
    rows = (b + cols - 1) // cols
    out = images.new_full((rows * h + (rows - 1) * pad, cols * w + (cols - 1) * pad, c), float(fill))
    for i in range(b):
        r, k = divmod(i, cols)
        out[r * (h + pad):r * (h + pad) + h, k * (w + pad):k * (w + pad) + w] = images[i]
    return out[None]


#: refuse images above this many pixels unless asked (Pillow's own bomb check is at ~179 MP)
MAX_PIXELS = 100_000_000
#: host bytes per pixel that reading a picture with :func:`load_image` takes at its peak (the decoded file, the RGB
#: and alpha arrays, the float32 IMAGE and MASK): 19 measured on a 20 MP RGBA PNG here, 40 seen on a 100 MP one
LOAD_PEAK_BYTES_PER_PIXEL = 40


def to_rgb_uint8(image: np.ndarray, background: tuple[int, int, int] = (255, 255, 255)) -> np.ndarray:
    """Any common image array as uint8 RGB ``(H, W, 3)``.

    Accepts ``(H, W)`` / ``(H, W, 1)`` grey, ``(H, W, 3)`` RGB, ``(H, W, 4)`` RGBA (composited on
    ``background``), in uint8, uint16 (scaled by 255/65535) or float in [0, 1]. Anything else is a ValueError.
    """
    a = np.asarray(image)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 3, 4):
        raise ValueError(f"image has shape {a.shape}; expected (H, W), (H, W, 1), (H, W, 3) or (H, W, 4)")
    if a.dtype == np.uint8:
        f = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        f = a.astype(np.float32) / 65535.0
    elif np.issubdtype(a.dtype, np.floating):
        f = a.astype(np.float32)
        if not np.isfinite(f).all():
            raise ValueError("image contains NaN or infinite values")
        f = np.clip(f, 0.0, 1.0)
    elif a.dtype == bool:
        f = a.astype(np.float32)
    else:
        raise ValueError(f"image dtype {a.dtype} is not supported (use uint8, uint16 or float in [0, 1])")
    if f.shape[-1] == 1:
        f = np.repeat(f, 3, axis=-1)
    elif f.shape[-1] == 4:
        alpha = f[..., 3:]
        f = f[..., :3] * alpha + np.asarray(background, np.float32) / 255.0 * (1 - alpha)
    return np.clip(np.round(f * 255.0), 0, 255).astype(np.uint8)


def read_image(path: str | Path, max_pixels: int = MAX_PIXELS) -> tuple[np.ndarray, np.ndarray | None]:
    """Read an image file as uint8 RGB ``(H, W, 3)`` plus its alpha ``(H, W)`` float in [0, 1] (or None).

    16-bit and grey files are converted; corrupt, missing or over-large files raise a ValueError or
    FileNotFoundError that names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # we check the size ourselves
            im = Image.open(path)
        with im:
            if im.width * im.height > max_pixels:
                raise ValueError(f"{path} is {im.width}x{im.height} ({im.width * im.height / 1e6:.0f} MP), over "
                                 f"the limit of {max_pixels / 1e6:.0f} MP")
            im.load()
            alpha = None
            if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
                rgba = np.asarray(im.convert("RGBA"))
                alpha = rgba[..., 3].astype(np.float32) / 255.0
                return rgba[..., :3].copy(), alpha
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im).astype(np.float32)
                arr = arr / (65535.0 if arr.max() > 255 else 255.0)
                return to_rgb_uint8(np.clip(arr, 0, 1)), None
            return np.asarray(im.convert("RGB")).copy(), None
    except Image.DecompressionBombError as e:
        raise ValueError(f"{path} is too large to read safely ({e})") from None
    except (OSError, SyntaxError) as e:  # Pillow reports corrupt/unknown files this way
        raise ValueError(f"cannot read image {path}: {e}") from None
