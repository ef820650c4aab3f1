"""The solver of :mod:`collage_core.poisson`: multigrid-preconditioned conjugate gradients in float32 inside float64
iterative refinement (or, for 8/16-bit outputs, one float32 run stopped on an estimated max-norm error), over the
masked pixels of one bounding box. :func:`_solve` is its entry; the problem set-up, the public function and the
mathematics are documented in :mod:`collage_core.poisson`.
"""

from __future__ import annotations

import time

import cv2
import numpy as np

from . import poisson_compiled as compiled
from .poisson_params import (
    _CHEB_A,
    _CHEB_B,
    _CHEB_C0,
    _CHEB_C1,
    _CHEB_C2,
    _COARSEST_MAX,
    _DIRECT_MAX,
    _DIRICHLET_BOOST,
    _F32_RTOL_FLOOR,
    _RHO_MAX,
    _RHO_MIN,
    _ROUND_SLACK,
)

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_CROSS8 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
_LAPLACE = {_F32: np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float32)}
_LAPLACE[_F64] = _LAPLACE[_F32].astype(np.float64)
_CROSS64 = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float64)
_BILINEAR_T = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
_BILINEAR_T_Y, _BILINEAR_T_X = _BILINEAR_T.reshape(4, 1), _BILINEAR_T.reshape(1, 4)


# ----------------------------------------------------------------------------------------------------------------------
# Solver: multigrid-preconditioned conjugate gradients (float32) inside float64 iterative refinement
# ----------------------------------------------------------------------------------------------------------------------

class _Level:
    """One grid level of the operator ``(A x)_p = D_p x_p - sum_q w_pq x_q`` on the cells of ``omega``.

    Stored as the constant stencil ``4 x_p - sum_q x_q`` (one ``cv2.filter2D`` pass) plus the sparse correction
    ``(D_p - 4) x_p + sum_q (1 - w_pq) x_q`` at the few cells ``K`` where the stencil differs (image border on the
    fine level, mask boundary on coarse levels). Vectors are *clean*: zero outside ``omega``. ``apply`` keeps them
    clean by zeroing the ring of cells next to ``omega`` (the only outside cells the stencil reaches), so no full
    mask pass is ever needed. ``unit_links``: every link inside ``omega`` has weight 1 (fine level); the smoother
    then uses the scalar ``D ~ 4`` (exact except at the image border, where it still bounds ``A`` as required).
    """

    def __init__(self, omega: np.ndarray, diag: np.ndarray, wx: np.ndarray, wy: np.ndarray, channels: int,
                 unit_links: bool = False):
        h, w = omega.shape
        self.omega, self.diag, self.wx, self.wy = omega, diag, wx, wy
        self.channels = channels
        self.shape = (h, w) if channels == 1 else (h, w, channels)
        self.n = int(np.count_nonzero(omega))
        self.m8 = omega.view(np.uint8)
        self.ring = np.flatnonzero(cv2.dilate(self.m8, _CROSS8) > self.m8)
        self.unit_links = unit_links
        if unit_links:
            self.dinv0 = self.dinv2 = None
        else:
            inv = np.zeros((h, w), np.float32)
            np.divide(1.0, diag, out=inv, where=omega, casting="unsafe")

            def rep(a: np.ndarray) -> np.ndarray:
                a = a.astype(np.float32, copy=False)
                return a if channels == 1 else np.repeat(a[..., None], channels, axis=2)

            self.dinv0 = rep(inv * np.float32(_CHEB_C0))
            self.dinv2 = rep(inv * np.float32(_CHEB_C2))
        kd = diag - np.float32(4.0)
        kd *= omega
        need = kd != 0
        coef = {}
        if not unit_links:
            for d, (wgt, nb, sl) in {
                "e": (wx, omega[:, 1:], (slice(None), slice(0, w - 1))),
                "w": (wx, omega[:, :-1], (slice(None), slice(1, w))),
                "s": (wy, omega[1:], (slice(0, h - 1), slice(None))),
                "n": (wy, omega[:-1], (slice(1, h), slice(None))),
            }.items():
                c = np.zeros((h, w), np.float32)
                c[sl] = np.where(nb & omega[sl], 1.0 - wgt, 0.0)
                coef[d] = c
                need |= c != 0
        K = np.flatnonzero(need)
        # Correction at the cells K: sum_j coef[j, k] * x[idx[j, k]] over (self, east, west, south, north);
        # unused slots point at the cell itself with coefficient 0.
        idx = np.repeat(K[None, :], 5, axis=0)
        cf = np.zeros((5, K.size))
        cf[0] = kd.reshape(-1)[K]
        if not unit_links:
            for j, (d, step) in enumerate((("e", 1), ("w", -1), ("s", w), ("n", -w)), start=1):
                ck = coef[d].reshape(-1)[K]
                used = ck != 0
                cf[j, used] = ck[used]
                idx[j, used] = K[used] + step
        keep = np.flatnonzero(cf.any(axis=1))
        self.K = K
        # Flat (channel-interleaved) indices, so that gathers and scatters are 1-D `take`/`put`.
        ch = np.arange(channels)
        flat = lambda i: (i[..., None] * channels + ch).reshape(i.shape[:-1] + (i.shape[-1] * channels,))  # noqa: E731
        self._Kf = flat(K[None, :])[0]
        self._idxf = np.ascontiguousarray(flat(idx[keep]))
        self._coef = {dt: np.ascontiguousarray(np.repeat(cf[keep], channels, axis=1)).astype(dt) for dt in (_F32, _F64)}
        self._ringf = flat(self.ring[None, :])[0]
        ring8 = np.flatnonzero(cv2.dilate(self.m8, np.ones((3, 3), np.uint8)) > self.m8)
        self._ring8f = flat(ring8[None, :])[0]            # where a restricted vector may be non-zero outside omega
        self._buf: dict[str, np.ndarray] = {}

    def buf(self, name: str, shape: tuple | None = None) -> np.ndarray:
        """A float32 work buffer of this level (zero-initialised once, then reused)."""
        b = self._buf.get(name)
        if b is None:
            b = self._buf[name] = np.zeros(self.shape if shape is None else shape, np.float32)
        return b

    def apply(self, x: np.ndarray, out: np.ndarray) -> np.ndarray:
        """``out = A x`` for a clean ``x`` (float32 or float64); ``out`` is clean too."""
        cv2.filter2D(x, -1, _LAPLACE[x.dtype], dst=out, borderType=cv2.BORDER_CONSTANT)
        return self._finish(x, out, 1.0)

    def poly(self, x: np.ndarray, alpha: float, beta: float, out: np.ndarray) -> np.ndarray:
        """``out = alpha x + beta A x`` for a clean float32 ``x`` in one stencil pass; ``out`` is clean too."""
        k = np.array([[0, -beta, 0], [-beta, alpha + 4.0 * beta, -beta], [0, -beta, 0]], np.float32)
        cv2.filter2D(x, -1, k, dst=out, borderType=cv2.BORDER_CONSTANT)
        return self._finish(x, out, beta)

    def _finish(self, x: np.ndarray, out: np.ndarray, beta: float) -> np.ndarray:
        """Add ``beta`` times the sparse correction at the cells ``K`` and zero the ring around ``omega``."""
        of = out.reshape(-1)
        if self.K.size:
            terms = np.take(x.reshape(-1), self._idxf)             # (terms, |K| * C)
            terms *= self._coef[x.dtype]
            corr = terms.sum(axis=0)
            if beta != 1.0:
                corr *= beta
            of[self._Kf] += corr
        of.put(self._ringf, 0.0)
        return out


def _incident(wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    """Sum of the link weights at each cell."""
    inc = np.zeros((wy.shape[0] + 1, wx.shape[1] + 1), wx.dtype)
    inc[:, :-1] += wx
    inc[:, 1:] += wx
    inc[:-1] += wy
    inc[1:] += wy
    return inc


def _coarsen(omega: np.ndarray, diag: np.ndarray, wx: np.ndarray, wy: np.ndarray):
    """Coarse operator on 2x2 aggregates: returns ``(omega, diag, wx, wy)`` of the next level.

    Write ``D_p = d_p + sum_q w_pq`` with ``d_p`` the Dirichlet coupling. For aggregates ``I, J``::

        w_IJ = (sum of fine link weights between I and J) / 2
        d_I  = _DIRICHLET_BOOST * (sum_{p in I} d_p) / 2

    Without the boost this is the Galerkin product with piecewise-constant aggregation, halved (inside the mask it
    is the plain 5-point Laplacian of the coarse grid, the right scale for bilinear transfers). A coarse cell centre
    lies closer to the Dirichlet pixels than one coarse spacing, so its Dirichlet coupling is boosted; this keeps
    V-cycles level-independent (7 instead of 12-50 CG iterations on a 1000-pixel ellipse).
    """
    H, W = omega.shape
    d = diag - _incident(wx, wy)
    d *= omega
    He, We = H + H % 2, W + W % 2

    def pad(a: np.ndarray, h: int, w: int) -> np.ndarray:
        if a.shape == (h, w):
            return a
        out = np.zeros((h, w), a.dtype)
        out[:a.shape[0], :a.shape[1]] = a
        return out

    om, d = pad(omega, He, We), pad(d, He, We)
    wxp, wyp = pad(wx, He, We - 1), pad(wy, He - 1, We)
    omega_c = om[0::2, 0::2] | om[1::2, 0::2] | om[0::2, 1::2] | om[1::2, 1::2]
    wx_c = 0.5 * (wxp[0::2, 1::2] + wxp[1::2, 1::2])          # fine links from column 2J+1 to 2J+2
    wy_c = 0.5 * (wyp[1::2, 0::2] + wyp[1::2, 1::2])          # fine links from row 2I+1 to 2I+2
    d_c = (0.5 * _DIRICHLET_BOOST) * (d[0::2, 0::2] + d[1::2, 0::2] + d[0::2, 1::2] + d[1::2, 1::2])
    diag_c = d_c + _incident(wx_c, wy_c)
    diag_c *= omega_c
    return omega_c, diag_c, wx_c, wy_c


def _dense_matrix(omega: np.ndarray, diag: np.ndarray, wx: np.ndarray, wy: np.ndarray) -> np.ndarray:
    idx = np.full(omega.shape, -1, np.int64)
    n = int(omega.sum())
    idx[omega] = np.arange(n)
    A = np.zeros((n, n))
    A[idx[omega], idx[omega]] = diag[omega]     # float64 whatever the input dtype
    for w, a, b in ((wx, idx[:, :-1], idx[:, 1:]), (wy, idx[:-1], idx[1:])):
        s = (a >= 0) & (b >= 0) & (w != 0)
        A[a[s], b[s]] -= w[s]
        A[b[s], a[s]] -= w[s]
    return A


class _Multigrid:
    """Symmetric multigrid cycle ``z = B r`` (float32) on clean vectors, the CG preconditioner.

    See the module docstring. The fine level has even height and width, so its restriction needs no padding.
    """

    def __init__(self, fine: _Level):
        self.levels: list[_Level] = [fine]
        omega, diag, wx, wy = fine.omega, fine.diag, fine.wx, fine.wy
        while self.levels[-1].n > _COARSEST_MAX:
            omega, diag, wx, wy = _coarsen(omega, diag, wx, wy)
            self.levels.append(_Level(omega, diag, wx, wy, fine.channels))
        A = _dense_matrix(omega, diag, wx, wy)
        ok, inv = cv2.invert(A, flags=cv2.DECOMP_CHOLESKY)
        self.coarse_inv = (inv if ok else np.linalg.inv(A)).astype(np.float32)
        self.coarse_idx = np.flatnonzero(omega)

    def _restrict(self, r: np.ndarray, k: int) -> np.ndarray:
        """``P^T r`` from level k into level k+1's ``b`` buffer (masked to the coarse cells)."""
        L, Lc = self.levels[k], self.levels[k + 1]
        h, w = L.shape[:2]
        hc, wc = Lc.shape[:2]
        pshape = (2 * hc, 2 * wc) + L.shape[2:]
        if (h, w) != pshape[:2]:
            pad = L.buf("pad", pshape)
            pad[:h, :w] = r
            r = pad
        # The separable [1, 3, 3, 1] / 4 filter, each pass evaluated only where it is sampled: along y on every row
        # (then every second row is kept), along x on the kept rows (then every second column): ~half the work of
        # one full-resolution 2-D pass.
        fy = cv2.filter2D(r, -1, _BILINEAR_T_Y, dst=L.buf("padf", pshape), anchor=(0, 1),
                          borderType=cv2.BORDER_REPLICATE)
        half = L.buf("half", (hc, 2 * wc) + L.shape[2:])
        half[...] = fy[0::2]
        fx = cv2.filter2D(half, -1, _BILINEAR_T_X, dst=L.buf("halff", half.shape), anchor=(1, 0),
                          borderType=cv2.BORDER_REPLICATE)
        b = Lc.buf("b")
        b[...] = fx[:, 0::2]
        b.reshape(-1).put(Lc._ring8f, 0.0)
        return b

    def _prolong_add(self, e: np.ndarray, k: int, x: np.ndarray) -> None:
        """``x += M P e``: bilinear interpolation of level k+1's ``e`` onto level k, on the cells of level k."""
        L = self.levels[k]
        h, w = L.shape[:2]
        hc, wc = e.shape[:2]
        up = cv2.resize(e, (2 * wc, 2 * hc), dst=L.buf("up", (2 * hc, 2 * wc) + L.shape[2:]),
                        interpolation=cv2.INTER_LINEAR)
        cv2.add(x, up[:h, :w], dst=x, mask=L.m8)

    def cycle(self, b: np.ndarray, k: int = 0) -> np.ndarray:
        """Return ``B_k b`` for a clean ``b``, in level k's ``x`` buffer.

        Chebyshev smoothing (degree 2): ``x += d0 + d1`` with ``d0 = C0 D^-1 r0``, ``r1 = r0 - A d0``,
        ``d1 = C1 d0 + C2 D^-1 r1``, i.e. ``x += (1 + C1) d0 + C2 D^-1 r1``; the same polynomial before and after
        the coarse correction, so ``B`` is symmetric.
        """
        L = self.levels[k]
        x = L.buf("x")
        if k == len(self.levels) - 1:
            x.reshape(-1, L.channels)[self.coarse_idx] = self.coarse_inv @ b.reshape(-1, L.channels)[self.coarse_idx]
            return x
        r, t = L.buf("r"), L.buf("t")
        if L.unit_links:                                  # D^-1 = 1/4: x = a b + c A b, one stencil pass
            L.poly(b, _CHEB_A, _CHEB_B, x)
        else:
            np.multiply(b, L.dinv0, out=x)
            np.subtract(b, L.apply(x, t), out=r)
            np.multiply(r, L.dinv2, out=t)
            cv2.scaleAdd(x, 1.0 + _CHEB_C1, t, dst=x)
        np.subtract(b, L.apply(x, t), out=r)
        self._prolong_add(self.cycle(self._restrict(r, k), k + 1), k, x)
        np.subtract(b, L.apply(x, t), out=r)                            # r0
        if L.unit_links:
            np.add(x, L.poly(r, _CHEB_A, _CHEB_B, t), out=x)
        else:
            d = L.buf("d")
            np.multiply(r, L.dinv0, out=d)
            np.subtract(r, L.apply(d, t), out=t)
            np.multiply(t, L.dinv2, out=t)
            cv2.scaleAdd(d, 1.0 + _CHEB_C1, x, dst=x)
            np.add(x, t, out=x)
        return x


def _pcg32(fine: _Level, mg: _Multigrid, r: np.ndarray, rtol: float, max_iter: int) -> tuple[np.ndarray, int]:
    """Preconditioned CG in float32 for ``A e = r`` (clean ``r``, overwritten); stops at ``||r_k|| <= rtol ||r_0||``."""
    goal = rtol * cv2.norm(r)
    e = np.zeros_like(r)
    q = np.empty_like(r)
    p = mg.cycle(r).copy()
    rz = float(np.dot(r.reshape(-1), p.reshape(-1)))
    for it in range(1, max_iter + 1):
        fine.apply(p, q)
        pq = float(np.dot(p.reshape(-1), q.reshape(-1)))
        if not (pq > 0.0 and rz > 0.0):          # converged to round-off: stop this round
            return e, it
        step = rz / pq
        cv2.scaleAdd(p, step, e, dst=e)
        cv2.scaleAdd(q, -step, r, dst=r)
        if cv2.norm(r) <= goal:
            return e, it
        z = mg.cycle(r)
        rz_new = float(np.dot(r.reshape(-1), z.reshape(-1)))
        cv2.scaleAdd(p, rz_new / rz, z, dst=p)
        rz = rz_new
    return e, max_iter


def _pcg32_maxnorm(fine: _Level, mg: _Multigrid, r: np.ndarray, atol: float, max_iter: int) -> np.ndarray:
    """Preconditioned CG in float32 for ``A e = r`` (clean ``r``, overwritten) until the estimated max-norm error of
    ``e`` is at most ``atol`` (see :data:`_RHO_MIN`): with ``u_k = max |alpha_k p_k|`` the size of the k-th update and
    ``rho = clip(u_k / u_{k-1}, _RHO_MIN, _RHO_MAX)`` the observed contraction, the remaining error is estimated as
    ``u_k rho / (1 - rho)`` (the geometric tail of the updates still to come)."""
    e = np.zeros_like(r)
    q = np.empty_like(r)
    p = mg.cycle(r).copy()
    rz = float(np.dot(r.reshape(-1), p.reshape(-1)))
    prev = np.inf
    for _ in range(max_iter):
        fine.apply(p, q)
        pq = float(np.dot(p.reshape(-1), q.reshape(-1)))
        if not (pq > 0.0 and rz > 0.0):          # converged to round-off
            return e
        step = rz / pq
        cv2.scaleAdd(p, step, e, dst=e)
        upd = abs(step) * cv2.norm(p, cv2.NORM_INF)
        rho = min(max(upd / prev, _RHO_MIN), _RHO_MAX)
        if upd * rho / (1.0 - rho) <= atol:
            return e
        prev = upd
        cv2.scaleAdd(q, -step, r, dst=r)
        z = mg.cycle(r)
        rz_new = float(np.dot(r.reshape(-1), z.reshape(-1)))
        cv2.scaleAdd(p, rz_new / rz, z, dst=p)
        rz = rz_new
    raise RuntimeError(f"Poisson solve did not reach an estimated max error of {atol} in {max_iter} iterations "
                       f"(last update {upd:.3g})")


def _degree(shape: tuple[int, int], edges: tuple[int, int, int, int]) -> np.ndarray:
    """``|N_p|`` over a box of ``shape`` whose top, bottom, left, right sides lie on the image border where
    ``edges`` says so: 4 less one per such side a pixel touches."""
    h, w = shape
    dy = np.full(h, 2.0)
    dx = np.full(w, 2.0)
    dy[0] -= edges[0]
    dy[-1] -= edges[1]
    dx[0] -= edges[2]
    dx[-1] -= edges[3]
    return dy[:, None] + dx[None, :]


def _solve_normal(omega: np.ndarray, edges: tuple[int, int, int, int], src: np.ndarray, tgt: np.ndarray,
                  atol: float, max_iter: int) -> np.ndarray | None:
    """The composite ``f = g + e`` in normal mode with the compiled solver, the residual formed per channel in its
    thread (float32 boxes, max-norm stopping rule); ``None`` where the problem is small enough for the dense path."""
    if np.count_nonzero(omega) <= _DIRECT_MAX:
        return None
    f, _, status, upd = compiled.solve(omega, edges, (src, tgt), atol, 0.0, max_iter)
    if status:
        raise RuntimeError(f"Poisson solve did not reach an estimated max error of {atol} in {max_iter} iterations "
                           f"(last update {upd:.3g})")
    return f


def _solve(omega: np.ndarray, edges: tuple[int, int, int, int], r0: np.ndarray, tol: float | None, max_iter: int,
           atol: float | None = None, use_compiled: bool = False) -> np.ndarray:
    """Solve ``A e = r0`` on ``Omega`` (``r0``: ``h x w x C``, zero outside ``Omega``; ``edges``: see
    :func:`_degree`); ``e`` has ``r0``'s dtype (float64 on the dense path for at most ``_DIRECT_MAX`` unknowns).

    Iterative refinement: the residual is computed in float64, the correction equation in float32 by
    multigrid-preconditioned CG, until ``||r0 - A e|| <= tol ||r0||``. ``use_compiled``: run the CG of
    :mod:`collage_core.poisson_compiled` (time spent on the numpy path counts toward the ``"auto"`` switch).
    """
    h, w, channels = r0.shape
    n = int(np.count_nonzero(omega))
    deg = _degree((h, w), edges)
    if n <= _DIRECT_MAX:
        wx = (omega[:, :-1] & omega[:, 1:]).astype(np.float64)
        wy = (omega[:-1] & omega[1:]).astype(np.float64)
        e = np.zeros((h, w, channels))
        _, sol = cv2.solve(_dense_matrix(omega, np.where(omega, deg, 0.0), wx, wy),
                           r0[omega].astype(np.float64), flags=cv2.DECOMP_CHOLESKY)
        e[omega] = sol
        return e
    norm0 = cv2.norm(r0)
    if norm0 == 0.0:
        return np.zeros((h, w, channels))
    if use_compiled:
        return _solve_compiled(omega, edges, deg, r0, tol, max_iter, atol, norm0)
    t0 = time.perf_counter()
    try:
        return _solve_numpy(omega, deg, r0, tol, max_iter, atol, norm0)
    finally:
        compiled.record_numpy(time.perf_counter() - t0)


def _residual64(omega: np.ndarray, deg: np.ndarray, r0: np.ndarray, e: np.ndarray) -> np.ndarray:
    """``r0 - A e`` in float64 for a clean ``e`` (``h x w x C``): on the fine level every link inside ``Omega`` has
    weight 1 and ``e`` is zero off ``Omega``, so ``A e = |N_p| e - (sum of the 4 neighbours)`` on ``Omega``."""
    ae = cv2.filter2D(e, -1, _CROSS64, borderType=cv2.BORDER_CONSTANT).reshape(e.shape)
    np.subtract(deg[..., None] * e, ae, out=ae)
    r = r0 - ae
    r[~omega] = 0.0
    return r


def _solve_compiled(omega: np.ndarray, edges: tuple[int, int, int, int], deg: np.ndarray, r0: np.ndarray,
                    tol: float | None, max_iter: int, atol: float | None, norm0: float) -> np.ndarray:
    """The compiled solver (:mod:`collage_core.poisson_compiled`): the same stopping rules, per channel."""
    if atol is not None:
        e, _, status, upd = compiled.solve(omega, edges, r0.astype(np.float32, copy=False), atol, 0.0, max_iter)
        if status:
            raise RuntimeError(f"Poisson solve did not reach an estimated max error of {atol} in {max_iter} "
                               f"iterations (last update {upd:.3g})")
        return e.astype(r0.dtype, copy=False)
    r064 = r0.astype(np.float64)
    e = _refine(lambda r, rtol, left: compiled.solve(omega, edges, r.astype(np.float32), 0.0, rtol, left)[:2],
                lambda e: _residual64(omega, deg, r064, e), r064, norm0, tol, max_iter)
    return e.astype(r0.dtype)


def _refine(solve_round, residual, r064: np.ndarray, norm0: float, tol: float, max_iter: int) -> np.ndarray:
    """Float64 iterative refinement: float32 CG rounds ``solve_round(r, rtol, iterations left) -> (de, its)`` on the
    float64 residual ``residual(e)`` until ``||r0 - A e|| <= tol ||r0||`` (``r064``: ``r0`` in float64)."""
    goal = tol * norm0
    e, r = None, r064
    rnorm, used = norm0, 0
    while rnorm > goal:
        if used >= max_iter:
            raise RuntimeError(f"Poisson solve did not reach tol={tol} in {max_iter} iterations "
                               f"(relative residual {rnorm / norm0:.3g})")
        de, its = solve_round(r, max(_ROUND_SLACK * goal / rnorm, _F32_RTOL_FLOOR), max_iter - used)
        used += its
        e = de.astype(np.float64) if e is None else e + de
        r = residual(e)
        previous, rnorm = rnorm, cv2.norm(r)
        if rnorm > 0.5 * previous:            # a round always gains orders of magnitude unless something is broken
            raise RuntimeError(f"Poisson solve stalled at relative residual {rnorm / norm0:.3g} (tol={tol})")
    return e


def _solve_numpy(omega: np.ndarray, deg: np.ndarray, r0: np.ndarray, tol: float | None, max_iter: int,
                 atol: float | None, norm0: float) -> np.ndarray:
    """The numpy/OpenCV solver (see the module docstring)."""
    h, w, channels = r0.shape
    # Even-sized fine grid: the extra row/column lies outside Omega (and, if there, outside the image: harmless,
    # a zero neighbour contributes nothing and |N_p| is carried by `deg`).
    h2, w2 = h + h % 2, w + w % 2
    om = np.zeros((h2, w2), bool)
    om[:h, :w] = omega
    diag = np.zeros((h2, w2), np.float32)
    np.copyto(diag[:h, :w], deg, where=omega, casting="unsafe")
    wx = (om[:, :-1] & om[:, 1:]).astype(np.float32)
    wy = (om[:-1] & om[1:]).astype(np.float32)
    fine = _Level(om, diag, wx, wy, channels, unit_links=True)
    mg = _Multigrid(fine)
    r32 = np.zeros(fine.shape, np.float32)
    r32.reshape(h2, w2, channels)[:h, :w] = r0
    if atol is not None:
        e32 = _pcg32_maxnorm(fine, mg, r32, atol, max_iter)
        return e32.reshape(h2, w2, channels)[:h, :w].astype(r0.dtype)
    r064 = np.zeros(fine.shape)
    r064.reshape(h2, w2, channels)[:h, :w] = r0
    ax = np.empty(fine.shape)
    e = _refine(lambda r, rtol, left: _pcg32(fine, mg, r.astype(np.float32), rtol, left),
                lambda e: np.subtract(r064, fine.apply(e, ax)), r064, norm0, tol, max_iter)
    return e.reshape(h2, w2, channels)[:h, :w].astype(r0.dtype)
