"""Reference Poisson compositing: one ``scipy.sparse`` system over all masked pixels, solved by ``spsolve``.

What the original project's post-processing did, restated with the conventions of :mod:`collage_core.poisson`. It
is slow and exists only as the yardstick of the fast solver (``tests/core/test_poisson.py``,
``benchmarks/poisson.py``); nothing in the library calls it. scipy is imported lazily (optional dependency).
"""

from __future__ import annotations

import numpy as np

from .poisson import Mode, _prepare

__all__ = ["poisson_composite_reference"]


def poisson_composite_reference(source: np.ndarray, target: np.ndarray, mask: np.ndarray, mode: Mode = "normal",
                                offset: tuple[int, int] | None = None) -> np.ndarray:
    """Straightforward reference: one ``scipy.sparse`` system over all masked pixels, solved by ``spsolve``.

    Same conventions and input handling as :func:`poisson_composite` (Neumann image border, soft-mask blending,
    mixed guidance), but the matrix and right-hand side ``b`` of ``A f = b`` are assembled link by link over the
    whole image, with no bounding boxes, components, correction formulation or iterative solver. The three channels
    are one multi-column ``spsolve``. Needs scipy (imported here; optional dependency).
    """
    try:
        import scipy.sparse as sp
        import scipy.sparse.linalg as spla
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("poisson_composite_reference needs scipy (pip install scipy)") from exc

    prob = _prepare(source, target, mask, mode, offset)
    H, W = prob.height, prob.width
    box = (0, H, 0, W)
    inside = prob.mask_at(box) > 0
    if not inside.any():
        raise ValueError("mask is empty (no pixel > 0 inside the target)")
    if inside.all():
        raise ValueError("mask covers the whole target: the Poisson problem has no boundary and is singular")
    tgt, src = prob.target_at(box).astype(np.float64), prob.source_at(box).astype(np.float64)
    n = int(inside.sum())
    index = np.full((H, W), -1, np.int64)
    index[inside] = np.arange(n)
    py, px = np.nonzero(inside)
    ip = index[py, px]
    rows, cols, vals = [ip], [ip], [np.zeros(n)]
    rhs = np.zeros((n, tgt.shape[2]))
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):       # every neighbour pair (p, q) inside the image
        qy, qx = py + dy, px + dx
        ok = (qy >= 0) & (qy < H) & (qx >= 0) & (qx < W)
        p_, qy_, qx_ = ip[ok], qy[ok], qx[ok]
        vals[0][p_] += 1.0                                   # |N_p|
        iq = index[qy_, qx_]
        unknown = iq >= 0
        rows.append(p_[unknown])
        cols.append(iq[unknown])
        vals.append(-np.ones(int(unknown.sum())))
        np.add.at(rhs, p_[~unknown], tgt[qy_[~unknown], qx_[~unknown]])     # Dirichlet values f*_q
        gp, gq = src[py[ok], px[ok]], src[qy_, qx_]
        v = gp - gq
        if prob.mode == "mixed":
            tv = tgt[py[ok], px[ok]] - tgt[qy_, qx_]
            v = np.where(np.abs(tv) > np.abs(v), tv, v)
        np.add.at(rhs, p_, v)                                                # guidance v_pq
    A = sp.csc_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, n))
    sol = np.asarray(spla.spsolve(A, rhs)).reshape(n, -1)
    f = tgt.copy()
    f[inside] = sol
    prob.write(box, inside, f, tgt)
    return prob.out
