"""Latent vectors: seeded sampling (with an optional truncation threshold) and ``.npy`` files.

A latent batch is a float tensor ``(N, dim_z)``. Row ``i`` of a batch sampled with ``seed`` is drawn from its own
generator seeded with ``seed + i``, so one row of a batch can be reproduced alone (``seed + i``, batch 1), and the
numbers do not depend on the device (they are drawn on the CPU, then moved).

Files are plain ``.npy`` arrays read with ``numpy.load(allow_pickle=False)``: the original's ``z-example_*.npy``
(float32, shape ``(1, 128)`` or ``(128,)``) load as they are, and :func:`save_latent` writes float32 ``(N, dim_z)``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

SEED_MODULUS = 2 ** 64
_MAX_REDRAWS = 1000


def sample_z(n: int, dim_z: int, seed: int, truncation: float = 0.0, device: str | torch.device = "cpu",
             dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``(n, dim_z)`` standard-normal latents; row ``i`` uses seed ``(seed + i) mod 2**64``.

    ``truncation`` > 0 is the truncation trick as a threshold: entries with ``|z| > truncation`` are redrawn (from the
    same row generator) until they fall inside, which samples a truncated normal. 0 turns it off.
    """
    if int(n) < 1:
        raise ValueError(f"batch must be at least 1, got {n}")
    if int(dim_z) < 1:
        raise ValueError(f"dim_z must be at least 1, got {dim_z}")
    t = float(truncation)
    if not np.isfinite(t) or t < 0:
        raise ValueError(f"truncation must be 0 (off) or a positive threshold, got {truncation}")
    rows = []
    for i in range(int(n)):
        g = torch.Generator(device="cpu")
        g.manual_seed((int(seed) + i) % SEED_MODULUS)
        z = torch.randn(int(dim_z), generator=g)
        if t > 0:
            for _ in range(_MAX_REDRAWS):
                out = z.abs() > t
                if not bool(out.any()):
                    break
                z[out] = torch.randn(int(out.sum()), generator=g)
            z = z.clamp(-t, t)
        rows.append(z)
    return torch.stack(rows).to(device=device, dtype=dtype)


def load_latent(path: str | os.PathLike, dim_z: int | None = None) -> torch.Tensor:
    """A latent batch ``(N, dim_z)`` float32 (on the CPU) from a ``.npy`` file of shape ``(dim_z,)`` or ``(N, dim_z)``.

    Raises ``ValueError`` (with the reason) for a missing, unreadable, pickled, non-numeric, non-finite or
    wrongly shaped array; ``dim_z``, if given, is checked.
    """
    p = Path(path)
    if not str(path):
        raise ValueError("no latent file given")
    if not p.is_file():
        raise ValueError(f"latent file not found: {p}")
    with open(p, "rb") as f:
        magic = f.read(6)
    if magic[:2] == b"PK":
        raise ValueError(f"{p} is an .npz archive; expected a single .npy array")
    if magic != b"\x93NUMPY":
        raise ValueError(f"{p} is not a readable .npy file (no .npy header)")
    try:
        a = np.load(p, allow_pickle=False)
    except ValueError as e:
        if "allow_pickle" in str(e):  # numpy's refusal of object arrays
            raise ValueError(f"{p} holds data that needs pickle to load, which is refused ({e})") from None
        raise ValueError(f"{p} is not a readable .npy file ({e})") from None
    except (OSError, EOFError) as e:
        raise ValueError(f"{p} is not a readable .npy file ({e})") from None
    if not (np.issubdtype(a.dtype, np.floating) or np.issubdtype(a.dtype, np.integer)):
        raise ValueError(f"{p} holds a {a.dtype} array; expected numbers")
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2 or a.shape[0] < 1 or a.shape[1] < 1:
        raise ValueError(f"{p} holds an array of shape {a.shape}; expected (dim_z,) or (N, dim_z)")
    if dim_z is not None and a.shape[1] != dim_z:
        raise ValueError(f"{p} holds latents of size {a.shape[1]}; the generator expects {dim_z}")
    a = a.astype(np.float32)
    if not np.isfinite(a).all():
        raise ValueError(f"{p} contains NaN or infinite values")
    return torch.from_numpy(np.ascontiguousarray(a))


def save_latent(z: torch.Tensor | np.ndarray, path: str | os.PathLike) -> Path:
    """Write a latent batch as a float32 ``(N, dim_z)`` ``.npy`` file (atomically); return the path."""
    a = z.detach().float().cpu().numpy() if isinstance(z, torch.Tensor) else np.asarray(z, np.float32)
    if a.ndim == 1:
        a = a[None]
    if a.ndim != 2:
        raise ValueError(f"latents have shape {a.shape}; expected (N, dim_z)")
    if not np.isfinite(a).all():  # load_latent refuses such a file: never write one
        rows = sorted({int(r) for r in np.nonzero(~np.isfinite(a))[0]})
        raise ValueError(f"latent row(s) {', '.join(map(str, rows[:10]))} hold NaN or infinite values; not saved")
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    tmp = p.with_name(p.name + ".tmp")
    with open(tmp, "wb") as f:
        np.save(f, a.astype(np.float32), allow_pickle=False)
    tmp.replace(p)
    return p
