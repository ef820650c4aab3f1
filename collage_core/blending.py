"""Feature blending, the paper's second operation: mixing the feature maps of several latents under masks.

Follows the original's ``spatial_interpolation``. ``S`` input latents run through the network side by side with the
stream being generated; at blend point ``b`` (0 = the head, later points = the output of a block) the generated
stream becomes ``sum_s w[n, s, h, w] * h_s`` over the ``S`` inputs and itself, with blend weights
``(N, S+1, H_b, W_b)`` (channel-first here; ``synthesize`` takes the original's ``(N, H_b, W_b, S+1)``). With no
weights at point 0 the generated stream starts as input stream 0.

Streams whose later blend weights are all zero are dropped, so the tail runs on the generated stream only and a
transplant at the head costs about one stream. :func:`stream_schedule` says which streams run until when and
:func:`run_streams` is the one loop that runs them, for every architecture: the SNGAN generator
(:mod:`collage_core.generator`) and BigGAN-deep (:mod:`collage_core.biggan`) pass their head and a per-block step.
:func:`transplant_blends` builds the weights of the demo's transplant from a mask; the node recipes that chain
several transplants are in :mod:`collage_core.collage`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np
import torch

from .masks import resize_mask

#: ``head(active)``: the stacked input streams ``active`` at blend point 0, ``(len(active) * N, C, H, W)``
Head = Callable[[list[int]], torch.Tensor]
#: ``step(k, x, latents)``: block ``k`` (blend point ``k + 1``) on the stacked streams ``x``; ``latents[i]`` is the
#: index of the latent whose features stream ``i`` carries (the generated stream counts as latent 0, the source)
Step = Callable[[int, torch.Tensor, list[int]], torch.Tensor]


def stream_schedule(blends, n_in: int, n_points: int) -> tuple[list, list[list[int]], list[int], list[int]]:
    """Which input streams feature blending needs, and until when: ``(blends as a list, the streams each blend
    point reads, the last point that reads each stream (-1: never; streams are dropped after it), the streams
    that run at all)``. With no blend at point 0 the generated stream starts as stream 0, which is then needed."""
    blends = list(blends) if blends is not None else [None] * n_points
    last_use = [-1] * n_in
    used_at: list[list[int]] = []
    for b, w in enumerate(blends):
        users = [s for s in range(n_in) if w is not None and bool(w[:, s].any())]
        used_at.append(users)
        for s in users:
            last_use[s] = b
    if blends[0] is None:
        last_use[0] = max(last_use[0], 0)
    return blends, used_at, last_use, [s for s in range(n_in) if last_use[s] >= 0]


def mix_streams(w: torch.Tensor | None, users: list[int], active: list[int], h_in: torch.Tensor,
                gen: torch.Tensor | None, batch: int, n_in: int) -> torch.Tensor:
    """The generated stream after one blend point: ``w (N, S+1, H, W)`` over the input streams ``users`` (stacked
    in ``h_in`` in the order of ``active``) and the generated stream ``gen`` (None before point 0)."""
    if w is None:
        if gen is None:  # no blend at the head: the generated stream starts as input stream 0
            return h_in[active.index(0) * batch:(active.index(0) + 1) * batch]
        return gen
    out = None
    for s in users:
        i = active.index(s)
        term = w[:, s:s + 1] * h_in[i * batch:(i + 1) * batch]
        out = term if out is None else out + term
    if gen is not None:
        term = w[:, n_in:n_in + 1] * gen
        out = term if out is None else out + term
    if out is None:  # every weight is zero
        out = torch.zeros_like(h_in[:batch]) if h_in.shape[0] else None
    assert out is not None
    return out


def run_streams(head: Head, step: Step, n_in: int, batch: int, blends: Sequence[torch.Tensor | None] | None,
                n_points: int, record: dict[str, torch.Tensor] | None = None,
                point_names: Sequence[str] = ()) -> torch.Tensor:
    """Run ``n_in`` input streams of ``batch`` samples and the generated stream through ``n_points`` blend points
    (the head, then ``n_points - 1`` blocks) and return the generated stream after the last one.

    ``blends``: None, or per point None or channel-first weights ``(N, n_in + 1, H, W)``. Every block runs once on
    the input streams still needed and the generated stream, stacked along the batch; streams are dropped after
    their last use. ``record``: the generated stream after point ``b`` is stored under ``point_names[b]``.
    """
    blends, used_at, last_use, active = stream_schedule(blends, n_in, n_points)
    h_in = head(active)  # (len(active) * N, C, H, W)
    gen: torch.Tensor | None = None
    for b in range(n_points):
        if b > 0:
            x = h_in if gen is None else (gen if h_in.shape[0] == 0 else torch.cat([h_in, gen], 0))
            x = step(b - 1, x, active + ([0] if gen is not None else []))
            h_in, gen = (x[:-batch], x[-batch:]) if gen is not None else (x, None)
        gen = mix_streams(blends[b], used_at[b], active, h_in, gen, batch, n_in)
        if record is not None:
            record[point_names[b]] = gen
        keep = [i for i, s in enumerate(active) if last_use[s] > b]
        if len(keep) != len(active):
            h_in = torch.cat([h_in[i * batch:(i + 1) * batch] for i in keep], 0) if keep else h_in[:0]
            active = [active[i] for i in keep]
    assert gen is not None
    return gen


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
