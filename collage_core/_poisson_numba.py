"""numba kernels of :mod:`collage_core.poisson_compiled` (imported only through its ``load``).

Arguments shared by the kernels describe the level hierarchy (see the layout in
:mod:`collage_core.poisson_compiled`): ``dims[k] = (h, w)`` (interior cells of level k), ``coff[k]`` (first cell of
level k in the flat cell arrays), ``om`` (1 inside omega, else 0), ``diag``, ``we``, ``ws`` (operator), ``d0``, ``d2``
(the Chebyshev smoother's ``C0 / D`` and ``C2 / D``, zero outside omega), ``cidx``/``chol`` (coarsest level: its
cells and the Cholesky factor of its operator). A vector is one channel's float32 values on every level, laid out
like the cell arrays.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from .poisson_params import _CHEB_A, _CHEB_B, _CHEB_C1, _RHO_MAX, _RHO_MIN

_ONE_C1 = np.float32(1.0 + _CHEB_C1)          # Chebyshev smoother: x += (1 + C1) d0 + C2 D^-1 r1 (poisson_solver)
_POLY_A, _POLY_B = np.float32(_CHEB_A), np.float32(_CHEB_B)   # level 0 (D = 4): x = a r + b A r in one stencil pass
_Q1, _Q3 = np.float32(0.25), np.float32(0.75)  # the bilinear transfer weights
_ZERO = np.float32(0.0)
_FM = {"contract", "reassoc", "nsz", "arcp"}     # fast-math without the no-NaN/no-Inf assumptions


@njit(cache=True, fastmath=_FM)
def _cells(a, coff, dims, k):
    """Level k's part of the flat array ``a`` (cells or one channel's vector) as an ``(h + 2) x (w + 2)`` view."""
    H, W = dims[k, 0] + 2, dims[k, 1] + 2
    return a[coff[k]:coff[k] + H * W].reshape((H, W))


@njit(cache=True, fastmath=_FM)
def _stencil(dg, we, ws, x, i, j):
    return (dg[i, j] * x[i, j] - we[i, j] * x[i, j + 1] - we[i, j - 1] * x[i, j - 1]
            - ws[i, j] * x[i + 1, j] - ws[i - 1, j] * x[i - 1, j])


@njit(cache=True, fastmath=_FM)
def _dot(a, b):
    """``a . b``, accumulated in float64."""
    total = 0.0
    for i in range(a.shape[0]):
        total += a[i] * b[i]
    return total


@njit(cache=True, fastmath=_FM)
def _restrict_row(r, t, b, omc, ic, wc, ylast, xlast):
    """Coarse row ``ic`` of ``b = P^T r`` on the coarse cells ``omc``: the separable [1, 3, 3, 1] / 4 filter sampled
    at even fine cells, replicating the (even-padded) fine grid's edge (``ylast``, ``xlast``: its last framed row and
    column) -- the exact transpose of :func:`_prolong_row`; ``t``: a row of work space."""
    ia = 2 * ic if ic > 0 else 1
    idd = 2 * ic + 3 if 2 * ic + 3 <= ylast else ylast
    for j in range(t.shape[0]):
        t[j] = _Q1 * (r[ia, j] + r[idd, j]) + _Q3 * (r[2 * ic + 1, j] + r[2 * ic + 2, j])
    b[ic + 1, 1] = omc[ic + 1, 1] * (_Q1 * (t[1] + t[min(3, xlast)]) + _Q3 * (t[1] + t[2]))
    for jc in range(1, wc):
        jd = 2 * jc + 3 if 2 * jc + 3 <= xlast else xlast
        b[ic + 1, jc + 1] = omc[ic + 1, jc + 1] * (_Q1 * (t[2 * jc] + t[jd]) + _Q3 * (t[2 * jc + 1] + t[2 * jc + 2]))


@njit(cache=True, fastmath=_FM)
def _a0(dg, x, i, j):
    """``(A x)_ij`` on level 0 for a clean ``x``: every link between two cells of omega has weight 1 and ``x`` is
    zero off omega, so the stencil is ``diag x - (sum of the 4 neighbours)``, kept on omega (``diag > 0``) only."""
    v = dg[i, j] * x[i, j] - (x[i, j + 1] + x[i, j - 1] + x[i + 1, j] + x[i - 1, j])
    return v if dg[i, j] != _ZERO else _ZERO


@njit(cache=True, fastmath=_FM)
def _pre0(dims, coff, diag, om, X, B, R, tmp):
    """Level 0's pre-smoothing and restriction in one sweep down the rows: row i of ``X = a B + b A B`` (the
    Chebyshev step from zero with ``D = 4``), row i - 1 of ``R = B - A X``, and each coarse row of ``B_1 = P^T R`` as
    soon as its fine rows are there."""
    h, w = dims[0, 0], dims[0, 1]
    hc, wc = dims[1, 0], dims[1, 1]
    dg = _cells(diag, coff, dims, 0)
    x, b, r = _cells(X, coff, dims, 0), _cells(B, coff, dims, 0), _cells(R, coff, dims, 0)
    omc, bc = _cells(om, coff, dims, 1), _cells(B, coff, dims, 1)
    ylast, xlast = 2 * hc, 2 * wc
    t = tmp[:w + 2]
    ic = 0
    for i in range(1, h + 2):
        if i <= h:
            for j in range(1, w + 1):
                x[i, j] = _POLY_A * b[i, j] + _POLY_B * _a0(dg, b, i, j)
        if i >= 2:
            for j in range(1, w + 1):
                r[i - 1, j] = b[i - 1, j] - _a0(dg, x, i - 1, j)
        while ic < hc and (min(2 * ic + 3, ylast) <= i - 1 or i == h + 1):
            _restrict_row(r, t, bc, omc, ic, wc, ylast, xlast)
            ic += 1


@njit(cache=True, fastmath=_FM)
def _prolong_row(x, ec, mask, u, i, w, hc, wc):
    """Fine row ``i`` (0-based, interior) of ``X_k += M P X_{k+1}``: cell-centred bilinear interpolation of the
    coarse ``ec`` (edges clamped) on the fine cells (``mask != 0``); ``u``: a row of work space."""
    ic = i // 2
    i2 = (ic - 1 if ic > 0 else 0) if i % 2 == 0 else (ic + 1 if ic + 1 < hc else hc - 1)
    for jc in range(wc):
        u[jc + 1] = _Q3 * ec[ic + 1, jc + 1] + _Q1 * ec[i2 + 1, jc + 1]
    u[0], u[wc + 1] = u[1], u[wc]
    for j in range(w):
        jc = j // 2
        j2 = jc + (j % 2) * 2
        v = _Q3 * u[jc + 1] + _Q1 * u[j2]
        x[i + 1, j + 1] += v if mask[i + 1, j + 1] != _ZERO else _ZERO


@njit(cache=True, fastmath=_FM)
def _post0(dims, coff, diag, X, B, R, tmp):
    """Level 0's prolongation and post-smoothing in one sweep down the rows: row i + 1 of ``X += M P X_1``, row i of
    ``R = B - A X``, row i - 1 of ``X += a R + b A R``."""
    h, w = dims[0, 0], dims[0, 1]
    hc, wc = dims[1, 0], dims[1, 1]
    dg = _cells(diag, coff, dims, 0)
    x, b, r = _cells(X, coff, dims, 0), _cells(B, coff, dims, 0), _cells(R, coff, dims, 0)
    ec = _cells(X, coff, dims, 1)
    u = tmp[:w + 2]
    _prolong_row(x, ec, dg, u, 0, w, hc, wc)
    for i in range(1, h + 2):
        if i < h:
            _prolong_row(x, ec, dg, u, i, w, hc, wc)
        if i <= h:
            for j in range(1, w + 1):
                r[i, j] = b[i, j] - _a0(dg, x, i, j)
        if i >= 2:
            for j in range(1, w + 1):
                x[i - 1, j] += _POLY_A * r[i - 1, j] + _POLY_B * _a0(dg, r, i - 1, j)


@njit(cache=True, fastmath=_FM)
def _pre(dims, coff, diag, we, ws, d0, d2, k, X, B, R, T):
    """Level k's pre-smoothing from zero: ``T = d0 B``, ``X = (1 + C1) T + d2 (B - A T)``, then ``R = B - A X``; one
    sweep down the rows (row i + 1 of T, row i of X, row i - 1 of R). (Fusing the restriction into this sweep, as
    level 0 does, made it 2x slower here: too many arrays in one loop for the vectoriser.)"""
    h, w = dims[k, 0], dims[k, 1]
    dg, e, s = _cells(diag, coff, dims, k), _cells(we, coff, dims, k), _cells(ws, coff, dims, k)
    a0, a2 = _cells(d0, coff, dims, k), _cells(d2, coff, dims, k)
    x, b, r, t = _cells(X, coff, dims, k), _cells(B, coff, dims, k), _cells(R, coff, dims, k), \
        _cells(T, coff, dims, k)
    for i in range(0, h + 2):
        if i < h:
            for j in range(1, w + 1):
                t[i + 1, j] = a0[i + 1, j] * b[i + 1, j]
        if 1 <= i <= h:
            for j in range(1, w + 1):
                x[i, j] = _ONE_C1 * t[i, j] + a2[i, j] * (b[i, j] - _stencil(dg, e, s, t, i, j))
        if i >= 2:
            for j in range(1, w + 1):
                r[i - 1, j] = b[i - 1, j] - _stencil(dg, e, s, x, i - 1, j)


@njit(cache=True, fastmath=_FM)
def _post(dims, coff, diag, we, ws, d0, d2, k, X, B, R, T):
    """Level k's post-smoothing: ``R = B - A X``, ``T = d0 R``, ``X += (1 + C1) T + d2 (R - A T)``; one sweep down
    the rows (rows i + 1 of R and T from the old X, then row i of X)."""
    h, w = dims[k, 0], dims[k, 1]
    dg, e, s = _cells(diag, coff, dims, k), _cells(we, coff, dims, k), _cells(ws, coff, dims, k)
    a0, a2 = _cells(d0, coff, dims, k), _cells(d2, coff, dims, k)
    x, b, r, t = _cells(X, coff, dims, k), _cells(B, coff, dims, k), _cells(R, coff, dims, k), \
        _cells(T, coff, dims, k)
    for i in range(0, h + 1):
        if i < h:
            for j in range(1, w + 1):
                rij = b[i + 1, j] - _stencil(dg, e, s, x, i + 1, j)
                r[i + 1, j] = rij
                t[i + 1, j] = a0[i + 1, j] * rij
        if i >= 1:
            for j in range(1, w + 1):
                x[i, j] += _ONE_C1 * t[i, j] + a2[i, j] * (r[i, j] - _stencil(dg, e, s, t, i, j))


@njit(cache=True, fastmath=_FM)
def _restrict(dims, coff, om, k, R, B, tmp):
    """``B_{k+1} = P^T R_k`` on level k+1's cells, row by row (see :func:`_restrict_row`)."""
    hc, wc = dims[k + 1, 0], dims[k + 1, 1]
    omc = _cells(om, coff, dims, k + 1)
    r, b = _cells(R, coff, dims, k), _cells(B, coff, dims, k + 1)
    t = tmp[:dims[k, 1] + 2]
    for ic in range(hc):
        _restrict_row(r, t, b, omc, ic, wc, 2 * hc, 2 * wc)


@njit(cache=True, fastmath=_FM)
def _prolong_add(dims, coff, om, k, X, tmp):
    """``X_k += M P X_{k+1}`` on level k's cells, row by row (see :func:`_prolong_row`)."""
    o, x, ec = _cells(om, coff, dims, k), _cells(X, coff, dims, k), _cells(X, coff, dims, k + 1)
    u = tmp[:dims[k, 1] + 2]
    for i in range(dims[k, 0]):
        _prolong_row(x, ec, o, u, i, dims[k, 1], dims[k + 1, 0], dims[k + 1, 1])


@njit(cache=True, fastmath=_FM)
def vcycle(dims, coff, om, diag, we, ws, d0, d2, cidx, chol, X, B, R, T, tmp):
    """``X_0 = M B_0``: one symmetric V-cycle from level 0's right-hand side ``B_0`` (level 0's part of ``B``)."""
    L = dims.shape[0]
    if L > 1:
        _pre0(dims, coff, diag, om, X, B, R, tmp)
    for k in range(1, L - 1):
        _pre(dims, coff, diag, we, ws, d0, d2, k, X, B, R, T)
        _restrict(dims, coff, om, k, R, B, tmp)
    xf, bf = _cells(X, coff, dims, L - 1).reshape(-1), _cells(B, coff, dims, L - 1).reshape(-1)
    xf[:] = 0.0
    m = cidx.shape[0]
    y = tmp[:m]
    for a in range(m):                                  # L y = b, then L^T x = y
        acc = bf[cidx[a]]
        for b in range(a):
            acc -= chol[a, b] * y[b]
        y[a] = acc / chol[a, a]
    for a in range(m - 1, -1, -1):
        acc = y[a]
        for b in range(a + 1, m):
            acc -= chol[b, a] * y[b]
        y[a] = acc / chol[a, a]
        xf[cidx[a]] = y[a]
    for k in range(L - 2, 0, -1):
        _prolong_add(dims, coff, om, k, X, tmp)
        _post(dims, coff, diag, we, ws, d0, d2, k, X, B, R, T)
    if L > 1:
        _post0(dims, coff, diag, X, B, R, tmp)


@njit(cache=True)
def _frame_zero(a, H, W):
    """Zero the frame of the ``H x W`` view ``a``."""
    for j in range(W):
        a[0, j] = 0.0
        a[H - 1, j] = 0.0
    for i in range(H):
        a[i, 0] = 0.0
        a[i, W - 1] = 0.0


@njit(cache=True)
def _clear_frame(dims, coff, arrays, k):
    """Zero level k's frame in each of ``arrays`` (the loops of :func:`build` write every interior cell)."""
    H, W = dims[k, 0] + 2, dims[k, 1] + 2
    for a in arrays:
        _frame_zero(_cells(a, coff, dims, k), H, W)


@njit(cache=True)
def build(omega, edges, boost, c0, c2, maxn, dims, coff, om, diag, we, ws, d0, d2, tmp):
    """Fill the level hierarchy from the box's ``omega`` (``h x w`` uint8): level 0 on the even-padded box, then 2x2
    aggregates (see ``poisson_solver._coarsen``) until a level has at most ``maxn`` cells. ``edges``: whether the
    box's top, bottom, left and right sides lie on the image border (``|N_p|`` is 4 less one per such side).

    Level 0's links are 1 between cells of omega (see :func:`_a0`): its ``we``/``ws`` are filled only when it is
    also the coarsest level. ``tmp``: work array of level 0's cell count. ``dims``/``coff`` arrive with
    every level's shape and offset down to 1x1 (the most levels there can be); returns the number of levels ``L``.
    """
    h, w = omega.shape
    arrays = (om, diag, we, ws, d0, d2)
    _clear_frame(dims, coff, arrays[:4], 0)
    o, dg = _cells(om, coff, dims, 0), _cells(diag, coff, dims, 0)
    e, s = _cells(we, coff, dims, 0), _cells(ws, coff, dims, 0)
    h2, w2 = dims[0, 0], dims[0, 1]
    n = 0
    for i in range(h):
        dy = np.float32(4.0) - np.float32(edges[0] if i == 0 else 0) - np.float32(edges[1] if i == h - 1 else 0)
        for j in range(w):
            v = omega[i, j]
            n += v
            o[i + 1, j + 1] = v
            deg = dy - np.float32(edges[2] if j == 0 else 0) - np.float32(edges[3] if j == w - 1 else 0)
            dg[i + 1, j + 1] = np.float32(v) * deg
        for j in range(w, w2):
            o[i + 1, j + 1] = dg[i + 1, j + 1] = 0.0
    for i in range(h, h2):
        for j in range(w2):
            o[i + 1, j + 1] = dg[i + 1, j + 1] = 0.0
    if n <= maxn or dims.shape[0] == 1:         # level 0 is the coarsest: its links for coarse_factor
        for i in range(1, h2 + 1):
            for j in range(1, w2 + 1):
                e[i, j] = o[i, j] * o[i, j + 1]
                s[i, j] = o[i, j] * o[i + 1, j]
        return 1
    k = 0
    while n > maxn and k + 1 < dims.shape[0]:
        hc, wc = dims[k + 1, 0], dims[k + 1, 1]
        o, dg = _cells(om, coff, dims, k), _cells(diag, coff, dims, k)
        e, s = _cells(we, coff, dims, k), _cells(ws, coff, dims, k)
        _clear_frame(dims, coff, arrays, k + 1)
        oc, dgc = _cells(om, coff, dims, k + 1), _cells(diag, coff, dims, k + 1)
        ec, sc = _cells(we, coff, dims, k + 1), _cells(ws, coff, dims, k + 1)
        a0, a2 = _cells(d0, coff, dims, k + 1), _cells(d2, coff, dims, k + 1)
        dd = tmp[:(dims[k, 0] + 2) * (dims[k, 1] + 2)].reshape((dims[k, 0] + 2, dims[k, 1] + 2))
        # dd: the Dirichlet part of each cell (zero off omega); on level 0 a link is 1 between two cells of omega
        for i in range(1, dims[k, 0] + 2):
            if k == 0:
                for j in range(1, dims[k, 1] + 2):
                    dd[i, j] = dg[i, j] - o[i, j] * (o[i, j + 1] + o[i, j - 1] + o[i + 1, j] + o[i - 1, j])
            else:
                for j in range(1, dims[k, 1] + 2):
                    dd[i, j] = dg[i, j] - (e[i, j] + e[i, j - 1] + s[i, j] + s[i - 1, j])
        n = 0
        for ic in range(1, hc + 1):
            i = 2 * ic - 1                              # framed children: rows i, i + 1; columns j, j + 1
            for jc in range(1, wc + 1):
                j = 2 * jc - 1
                inside = o[i, j] + o[i, j + 1] + o[i + 1, j] + o[i + 1, j + 1]
                lin = np.float32(1.0) if inside > 0.0 else np.float32(0.0)
                n += int(lin)
                oc[ic, jc] = lin
                dgc[ic, jc] = np.float32(0.5 * boost) * (dd[i, j] + dd[i, j + 1] + dd[i + 1, j] + dd[i + 1, j + 1])
                if k == 0:
                    ec[ic, jc] = np.float32(0.5) * (o[i, j + 1] * o[i, j + 2] + o[i + 1, j + 1] * o[i + 1, j + 2])
                    sc[ic, jc] = np.float32(0.5) * (o[i + 1, j] * o[i + 2, j] + o[i + 1, j + 1] * o[i + 2, j + 1])
                else:
                    ec[ic, jc] = np.float32(0.5) * (e[i, j + 1] + e[i + 1, j + 1])
                    sc[ic, jc] = np.float32(0.5) * (s[i + 1, j] + s[i + 1, j + 1])
        for i in range(1, hc + 1):
            for j in range(1, wc + 1):
                d = dgc[i, j] + ec[i, j] + ec[i, j - 1] + sc[i, j] + sc[i - 1, j]
                dgc[i, j] = d
                inv = 1.0 / d if oc[i, j] != 0.0 else 0.0
                a0[i, j] = c0 * inv
                a2[i, j] = c2 * inv
        k += 1
    return k + 1


@njit(cache=True)
def _cholesky(A):
    """Lower Cholesky factor of the SPD matrix ``A`` (float64)."""
    m = A.shape[0]
    Lf = np.zeros((m, m))
    for j in range(m):
        d = A[j, j]
        for k in range(j):
            d -= Lf[j, k] * Lf[j, k]
        Lf[j, j] = np.sqrt(d)
        for i in range(j + 1, m):
            v = A[i, j]
            for k in range(j):
                v -= Lf[i, k] * Lf[j, k]
            Lf[i, j] = v / Lf[j, j]
    return Lf


@njit(cache=True)
def coarse_factor(dims, coff, om, diag, we, ws, k, cidx):
    """The Cholesky factor of level k's dense operator on its cells (listed into ``cidx``, framed indices)."""
    o, dg = _cells(om, coff, dims, k), _cells(diag, coff, dims, k)
    e, s = _cells(we, coff, dims, k), _cells(ws, coff, dims, k)
    H, W = dims[k, 0] + 2, dims[k, 1] + 2
    index = np.full((H, W), -1, np.int64)
    m = 0
    for i in range(H):
        for j in range(W):
            if o[i, j] != 0.0:
                index[i, j] = m
                cidx[m] = i * W + j
                m += 1
    A = np.zeros((m, m))
    for i in range(H):
        for j in range(W):
            a = index[i, j]
            if a < 0:
                continue
            A[a, a] = dg[i, j]
            if e[i, j] != 0.0:
                b = index[i, j + 1]
                A[a, b] -= e[i, j]
                A[b, a] -= e[i, j]
            if s[i, j] != 0.0:
                b = index[i + 1, j]
                A[a, b] -= s[i, j]
                A[b, a] -= s[i, j]
    return _cholesky(A[:m, :m])


@njit(cache=True, fastmath=_FM)
def _direction(dims, coff, diag, z, beta, p, q):
    """``p = z + beta p`` then ``q = A p`` on level 0, in one sweep down the rows; returns ``p . q`` (float64)."""
    h, w = dims[0, 0], dims[0, 1]
    dg, zc, pc, qc = _cells(diag, coff, dims, 0), _cells(z, coff, dims, 0), _cells(p, coff, dims, 0), \
        _cells(q, coff, dims, 0)
    total = 0.0
    for i in range(0, h + 1):
        if i < h:
            for j in range(1, w + 1):
                pc[i + 1, j] = zc[i + 1, j] + beta * pc[i + 1, j]
        if i >= 1:
            for j in range(1, w + 1):
                qc[i, j] = _a0(dg, pc, i, j)
            for j in range(1, w + 1):
                total += pc[i, j] * qc[i, j]
    return total


@njit(cache=True, fastmath=_FM)
def _step(e, r, p, q, s32):
    """``e += s p``, ``r -= s q``; returns ``max |p|`` (an integer max over the bit patterns, which vectorises)."""
    bits = p.view(np.int32)
    m = np.int32(0)
    for i in range(e.shape[0]):
        e[i] += s32 * p[i]
        r[i] -= s32 * q[i]
        m = max(m, bits[i] & np.int32(0x7FFFFFFF))
    return np.array([m], np.int32).view(np.float32)[0]


@njit(cache=True, fastmath=_FM, nogil=True)
def pcg(dims, coff, om, diag, we, ws, d0, d2, cidx, chol, rhs, sol, e, X, B, R, T, tmp, p, q, atol, rtol, max_iter):
    """Preconditioned CG for ``A e = rhs`` on level 0 of the ``dims.shape[0]`` levels, one channel.

    ``rhs``: ``h x w`` (any strides, zero off omega); ``sol``: ``h x w`` output (any strides). ``e`` (level 0),
    ``X, B, R, T`` (every level), ``tmp`` (a few rows), ``p``, ``q`` (level 0): work arrays of any content; the
    residual lives in level 0's part of ``B``, the right-hand side of the V-cycle.
    ``atol > 0``: stop once the estimated max-norm error is at most ``atol`` (the rule of ``_pcg32_maxnorm``);
    otherwise stop at ``||r_k|| <= rtol ||r_0||``. Returns ``(iterations, status, last update)``, status 0 when
    converged (or at round-off), 1 when ``max_iter`` ran out.
    """
    L = dims.shape[0]
    for k in range(L):                                  # work vectors must be zero on every level's frame
        H, W = dims[k, 0] + 2, dims[k, 1] + 2
        for v in (X, B, R, T):
            _frame_zero(_cells(v, coff, dims, k), H, W)
    n0 = e.shape[0]
    h, w = rhs.shape
    e[:] = 0.0
    q[:] = 0.0                                          # apply() writes the interior only
    r = B[:n0]
    r2 = _cells(B, coff, dims, 0)
    r2[:, :] = 0.0
    r2[1:h + 1, 1:w + 1] = rhs
    vcycle(dims, coff, om, diag, we, ws, d0, d2, cidx, chol, X, B, R, T, tmp)
    p[:] = 0.0
    z = X[:n0]
    rz = _dot(r, z)
    goal = rtol * np.sqrt(_dot(r, r))
    prev = np.inf
    upd = np.inf
    status = 0
    it = 0
    beta = np.float32(0.0)
    for it in range(1, max_iter + 1):  # noqa: B007 -- returned after the loop
        pq = _direction(dims, coff, diag, z, beta, p, q)
        if not (pq > 0.0 and rz > 0.0):                  # converged to round-off
            break
        step = rz / pq
        upd = abs(step) * _step(e, r, p, q, np.float32(step))
        if atol > 0.0:
            rho = min(max(upd / prev, _RHO_MIN), _RHO_MAX)
            if upd * rho / (1.0 - rho) <= atol:
                break
            prev = upd
        elif np.sqrt(_dot(r, r)) <= goal:
            break
        vcycle(dims, coff, om, diag, we, ws, d0, d2, cidx, chol, X, B, R, T, tmp)
        rz_new = _dot(r, z)
        beta = np.float32(rz_new / rz)
        rz = rz_new
    else:
        status = 1
    sol[:, :] = _cells(e, coff, dims, 0)[1:h + 1, 1:w + 1]
    return it, status, upd



@njit(cache=True, nogil=True)
def normal_rhs(omega, src, tgt, out):
    """One channel of ``r0 = b - A g`` in normal mode (``h x w`` planes, any strides): each cell of omega gets the sum
    of ``f* - g`` over its 4-neighbours off omega inside the box (the box ends at the image border or one pixel past
    omega), scattered from those neighbours."""
    h, w = src.shape
    for i in range(h):
        for j in range(w):
            out[i, j] = 0.0
    for i in range(h):
        for j in range(w):
            if omega[i, j] == 0:
                d = tgt[i, j] - src[i, j]
                if j + 1 < w and omega[i, j + 1]:
                    out[i, j + 1] += d
                if j > 0 and omega[i, j - 1]:
                    out[i, j - 1] += d
                if i + 1 < h and omega[i + 1, j]:
                    out[i + 1, j] += d
                if i > 0 and omega[i - 1, j]:
                    out[i - 1, j] += d
