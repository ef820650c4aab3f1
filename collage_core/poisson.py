"""Poisson image compositing ("seamless cloning"), exact and fast, with numpy + OpenCV only.

This is the post-processing step of neural collage: the GAN-edited region of a projected photo is pasted back into
the real photo so that its *gradients* are kept while its colours adapt to the surrounding photo.

The discrete problem
--------------------
All images are placed in the target frame. Let ``f*`` be the target, ``g`` the source, ``alpha`` the mask and
``Omega = {p : alpha_p > 0}`` the pixels to solve for. For a pixel ``p`` let ``N_p`` be its 4-neighbours *that lie
inside the image*. The composite ``f`` equals ``f*`` outside ``Omega`` and solves, for every ``p`` in ``Omega`` and
independently for every colour channel, the discrete Poisson equation of Perez, Gangnet & Blake (2003, eq. 7)::

    |N_p| f_p - sum_{q in N_p, q in Omega} f_q  =  sum_{q in N_p, q not in Omega} f*_q  +  sum_{q in N_p} v_pq

with the guidance field ``v``::

    mode="normal":  v_pq = g_p - g_q
    mode="mixed":   v_pq = f*_p - f*_q   if |f*_p - f*_q| > |g_p - g_q|   else   g_p - g_q     (per channel)

In words: inside the mask the discrete Laplacian of ``f`` equals the divergence of ``v`` (the source Laplacian in
normal mode), with the Dirichlet condition ``f = f*`` on the pixels just outside the mask. Write the system as
``A f = b``. The solver works on the correction ``e = f - g``, i.e. ``A e = r0 = b - A g``: in normal mode ``e`` is
the discrete harmonic function with boundary values ``f* - g`` (``r0`` lives on the pixels next to the boundary);
in mixed mode ``r0`` also carries the divergence of ``v - grad g``. Consequences of the formulation:

* **Image border.** Neighbours outside the image are simply absent from ``N_p``: where the mask touches the image
  border the condition there is the natural, zero-flux one (``df/dn = dv/dn``), exactly as in Perez et al.
  Nothing is cropped or shifted (OpenCV's ``seamlessClone`` zeroes the mask's outermost rows and columns and solves
  on the whole bounding rectangle, so it neither clones pixels on the image border nor keeps pixels outside the
  mask).
* **Several components.** 4-connected components of ``Omega`` never share an equation, so each one (or each cluster
  of nearby ones, whichever is cheaper) is solved on its own bounding box; the result is the same as one joint solve.
* **Soft masks.** ``Omega`` is ``alpha > 0``; after solving, the result is blended with the target by the soft
  alpha: ``out = f* + alpha * (f - f*)``. Where ``alpha == 1`` the output is the Poisson solution itself.
* **Solvability.** Every component of ``Omega`` touches a Dirichlet pixel unless ``Omega`` is the whole image
  (then ``f`` is defined only up to a constant): that case raises :class:`ValueError`.

Solver
------
Unknowns live on the bounding box of a component cluster plus a 1-pixel frame (clipped to the image): nothing
outside it is read or converted, so the cost does not depend on the image size. ``A`` is symmetric positive
definite; ``A e = r0`` is solved by conjugate gradients preconditioned with one multigrid cycle, in float32, inside
a float64 iterative refinement loop that stops when ``||r0 - A e||_2 <= tol * ||r0||_2`` (float64 residual):

* every level is "constant 5-point stencil (one ``cv2.filter2D`` pass) + a sparse correction" at the few cells
  where the stencil differs (image border; mask boundary on coarse levels);
* coarse operators on 2x2 aggregates: half the aggregated link weights (the plain coarse Laplacian inside), with a
  boosted Dirichlet coupling (see :func:`_coarsen`), so thin mask parts and many components coarsen correctly;
* transfers: cell-centred bilinear prolongation (``cv2.resize``) and its exact transpose (``cv2.sepFilter2D`` with
  ``[1, 3, 3, 1] / 4``), restricted to the masked cells;
* smoother: Chebyshev polynomial of degree 2 in ``D^-1 A`` on ``[1/2, 2]`` (``D`` = diagonal), before and after
  the coarse correction (V-cycle); on the fine level (``D = 4``) each smoothing step is one stencil pass
  (``x += a r + b A r``); coarsest level (at most 64 cells): dense inverse.

The V-cycle is a symmetric positive definite preconditioner whatever the coarse operators are: with ``S`` the
smoother, ``w = (I - S A) v`` and ``B_c`` the (recursively SPD) coarse solve,
``v^T A B A v = ||v||_A^2 - ||w||_A^2 + (P^T A w)^T B_c (P^T A w) > 0`` because the Chebyshev polynomial is bounded
by 1 on the spectrum of ``D^-1 A`` (Gershgorin: within ``(0, 2]``). So CG cannot break down, even for masks whose
Dirichlet boundary is a single pixel (where a W-cycle with these coarse operators over-corrects).

About 6-10 CG iterations for any mask size at ``tol=1e-6`` (the default for float targets), which keeps the error
around 1e-4 grey level (``tests/core/test_poisson.py`` compares with the direct solve). Integer targets, whose output
is rounded, default to a max-norm stopping rule instead (``atol=0.3`` grey level, :func:`_pcg32_maxnorm`): one
float32 CG run, no float64 refinement, stopped when ``u_k * rho / (1 - rho) <= atol`` with ``u_k`` the largest
entry of the k-th CG update and ``rho`` its observed contraction clipped to ``[0.3, 0.9]``. Measured on the
benchmark and test masks, the true max error after the k-th update was at most 0.37 ``u_k`` (0.06-0.37), so the
estimate (>= 0.43 ``u_k``) errs on the safe side; 4 iterations on the 512^2 benchmark ellipse (max error 0.09 grey
level) against 5-6 at the former integer default ``tol=1e-5``. Tiny problems are solved densely.

Tried and measured, not kept (512^2 benchmark masks and the exactness-test masks): a full-multigrid start (nested
iteration) cut the first iterate's error only 2-3x and saved no iteration; two fine-level smoothing sweeps instead
of one saved no iteration on the ellipse; geometric coarse levels (plain 5-point Laplacian on the 2x2-aggregated
mask, any rule from "any of 4" to "all 4" cells) needed 5-7 iterations or diverged near the image border; a
stationary V-cycle iteration converges ~2x slower per cycle than CG.

Why not a fast (DST) Poisson solver on the bounding box: as the preconditioner of CG on the masked pixels it needs
~15 iterations for 0.07 grey level on the 512^2 benchmark ellipse (the fictitious-domain preconditioner has a
condition number ~1/h), each a forward and an inverse 3-channel DST-I of the 269x207 box (~1.4 ms each with
``scipy.fft``, 2 workers, measured on a loaded 2-core machine; scipy is not a dependency): about twice the whole
multigrid solve, which gets there in 5-6 cycles of a few stencil passes each.

The slow ``scipy.sparse`` reference that the tests and ``benchmarks/poisson.py`` compare with lives in
:mod:`collage_core.poisson_reference`.

Dtype contract
--------------
* ``source``/``target``: ``HxW``, ``HxWx1``, ``HxWx3`` or ``HxWx4``, dtype ``uint8``, ``uint16``, ``float16``,
  ``float32`` or ``float64`` (any channel order, the same for both). Integer images of different depth are rescaled
  to the target's range (``uint8 -> uint16`` multiplies by 257); mixing an integer and a float image raises
  ``ValueError`` (the float range is unknown).
* A grey source is broadcast to a colour target; a colour source into a grey target raises ``ValueError``. With a
  4-channel (RGBA/BGRA) target the three colour channels are solved and the target's alpha channel is returned
  unchanged; a source's alpha channel is ignored (multiply it into ``mask`` if it should matter).
* ``mask``: ``HxW`` (or ``HxWx1``) ``bool``, integer or float. Floats must lie in ``[0, 1]``; integers whose maximum
  is at most 1 are binary, otherwise ``uint8`` is divided by 255 and ``uint16`` by 65535.
* The output has the target's shape and dtype (a new array). Integer outputs are rounded and clipped to the dtype's
  range; float outputs are not clipped. Pixels with ``alpha == 0`` are copied from the target bit-exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

__all__ = ["poisson_composite"]

Mode = Literal["normal", "mixed"]

_TOL_FLOAT = 1e-6                # default tol for float targets
_ATOL_INT = 0.3                  # integer targets (rounded output): stop at an estimated max error of 0.3 level
_RHO_MIN, _RHO_MAX = 0.3, 0.9    # bounds of the contraction factor in the max-norm error estimate
_DIRECT_MAX = 256                # at most this many unknowns: dense direct solve
_COARSEST_MAX = 64              # coarsening stops once a level has at most this many cells
_DIRICHLET_BOOST = 1.4           # see _coarsen
_ROUND_SLACK = 0.8               # a float32 CG round aims at this fraction of the remaining goal
_F32_RTOL_FLOOR = 2e-7           # a float32 CG round is not asked to reduce its residual further than this
_CLUSTER_OVERHEAD_PX = 64 * 64   # merging two component boxes pays if it adds at most this many pixels
_MAX_CLUSTER_COMPONENTS = 64     # more components than this: one box around all of them

_F32, _F64 = np.dtype(np.float32), np.dtype(np.float64)
_CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float64)
_CROSS8 = np.array([[0, 1, 0], [1, 1, 1], [0, 1, 0]], np.uint8)
_LAPLACE = {_F32: np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float32)}
_LAPLACE[_F64] = _LAPLACE[_F32].astype(np.float64)
_BILINEAR_T = np.array([0.25, 0.75, 0.75, 0.25], np.float32)
_BILINEAR_T_Y, _BILINEAR_T_X = _BILINEAR_T.reshape(4, 1), _BILINEAR_T.reshape(1, 4)

# Chebyshev smoother of degree 2 for D^-1 A on [lmin, lmax] = [1/2, 2] (Gershgorin: lambda_max(D^-1 A) <= 2):
# d0 = C0 D^-1 r0,  d1 = C1 d0 + C2 D^-1 (r0 - A d0),  x += d0 + d1.
_CHEB_THETA, _CHEB_DELTA = 1.25, 0.75
_CHEB_RHO0 = _CHEB_DELTA / _CHEB_THETA
_CHEB_RHO1 = 1.0 / (2.0 * _CHEB_THETA / _CHEB_DELTA - _CHEB_RHO0)
_CHEB_C0 = 1.0 / _CHEB_THETA
_CHEB_C1 = _CHEB_RHO1 * _CHEB_RHO0
_CHEB_C2 = 2.0 * _CHEB_RHO1 / _CHEB_DELTA
# With D = 4 I (fine level): d0 + d1 = a r0 + b A r0, a = ((1 + C1) C0 + C2) / 4, b = -C0 C2 / 16.
_CHEB_A = ((1.0 + _CHEB_C1) * _CHEB_C0 + _CHEB_C2) / 4.0
_CHEB_B = -_CHEB_C0 * _CHEB_C2 / 16.0


# ----------------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------------

def poisson_composite(source: np.ndarray, target: np.ndarray, mask: np.ndarray, mode: Mode = "normal",
                      offset: tuple[int, int] | None = None, *, tol: float | None = None, atol: float | None = None,
                      max_iter: int = 100) -> np.ndarray:
    """Seamlessly clone ``source`` into ``target`` inside ``mask`` (exact discrete Poisson solution).

    Args:
        source: image whose gradients are kept, ``HxW[xC]`` (see the module docstring for dtypes and channels).
        target: image that receives the clone; the output has its shape and dtype.
        mask: ``HxW`` weights in ``[0, 1]`` (bool, integer or float), in the *source* frame. Pixels with weight > 0
            are solved for; soft weights blend the solution with the target afterwards.
        mode: ``"normal"`` (guidance = source gradient) or ``"mixed"`` (per pixel pair and channel, the larger of the
            source and target gradients).
        offset: ``None``: source, target and mask share one frame and must have the same height and width.
            ``(dy, dx)``: source pixel ``(y, x)`` lands on target pixel ``(y + dy, x + dx)``; ``mask`` must match the
            source's size, the target may have any size, and mask pixels that land outside the target are dropped.
            Where a guidance pixel falls outside the source, the source is extended by edge replication.
        tol: stop when the float64 residual ``||r0 - A e||`` is at most ``tol * ||r0||``, where ``r0`` is the
            residual of the source itself (``e = f - g``, see the module docstring). Default for float targets:
            ``1e-6`` (error ~1e-4 grey level).
        atol: instead of ``tol``, stop once the *estimated max-norm error* of the solution is at most ``atol`` (in
            the target's value units) -- one float32 CG run, no float64 refinement; see :func:`_pcg32_maxnorm`.
            Default for integer targets (whose output is rounded): ``0.3``, so the 8-bit result is the exact one
            rounded, give or take one level where the exact value lies within the error of a rounding boundary.
            Passing both ``tol`` and ``atol`` raises ``ValueError``.
        max_iter: conjugate-gradient iteration limit per component cluster (``RuntimeError`` if exceeded).

    Returns:
        The composite, same shape and dtype as ``target``; a new array.

    Raises:
        ValueError: size mismatch, empty mask, mask covering the whole target, unsupported ndim/channels/dtype,
            non-finite values, mask values outside ``[0, 1]``, unknown mode, bad ``tol``/``max_iter``/``offset``.
    """
    if (tol is not None and not tol > 0) or (atol is not None and not atol > 0) or max_iter < 1:
        raise ValueError(f"tol and atol must be > 0 and max_iter >= 1, got tol={tol}, atol={atol}, "
                         f"max_iter={max_iter}")
    if tol is not None and atol is not None:
        raise ValueError("pass tol (relative residual) or atol (max error), not both")
    prob = _prepare(source, target, mask, mode, offset)
    if tol is None and atol is None:
        if prob.out.dtype.kind == "u":
            atol = _ATOL_INT
        else:
            tol = _TOL_FLOAT
    for box, omega in _clusters(prob):
        src, tgt = prob.source_at(box), prob.target_at(box)
        r0 = _initial_residual(src, tgt, omega, prob.mode)
        e = _solve(omega, _degree(box, prob.height, prob.width), r0, tol, max_iter, atol)
        e += src
        prob.write(box, omega, e, tgt)
    return prob.out


# ----------------------------------------------------------------------------------------------------------------------
# Input handling
# ----------------------------------------------------------------------------------------------------------------------

_IMAGE_DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)


def _as_image(name: str, a) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim not in (2, 3):
        raise ValueError(f"{name} must be HxW or HxWxC, got an array of shape {a.shape}")
    if a.ndim == 3 and a.shape[2] not in (1, 3, 4):
        raise ValueError(f"{name} must have 1, 3 or 4 channels, got shape {a.shape}")
    if a.dtype.type not in _IMAGE_DTYPES:
        raise ValueError(f"{name} has unsupported dtype {a.dtype}; use uint8, uint16, float16, float32 or float64")
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {a.shape})")
    return a


def _as_mask(mask) -> tuple[np.ndarray, float]:
    """Return the mask as a 2-D array and the divisor that maps its values to ``[0, 1]``."""
    m = np.asarray(mask)
    if m.ndim == 3 and m.shape[2] == 1:
        m = m[..., 0]
    if m.ndim != 2:
        raise ValueError(f"mask must be HxW (or HxWx1), got an array of shape {m.shape}")
    if m.dtype == np.bool_:
        return m, 1.0
    if np.issubdtype(m.dtype, np.integer):
        lo, hi = (int(m.min()), int(m.max())) if m.size else (0, 0)
        if lo < 0:
            raise ValueError(f"mask has negative values (min {lo})")
        if hi <= 1:
            return m, 1.0
        if m.dtype == np.uint8:
            return m, 255.0
        if m.dtype == np.uint16:
            return m, 65535.0
        raise ValueError(f"integer mask of dtype {m.dtype} must hold 0/1 values, got max {hi}; "
                         "use bool, uint8 (0..255), uint16 (0..65535) or float in [0, 1]")
    if np.issubdtype(m.dtype, np.floating):
        if not np.isfinite(m).all():
            raise ValueError("mask has NaN or infinite values")
        if m.size and (m.min() < 0 or m.max() > 1):
            raise ValueError(f"float mask values must lie in [0, 1], got [{m.min()}, {m.max()}]")
        return m, 1.0
    raise ValueError(f"mask has unsupported dtype {m.dtype}")


def _dtype_scale(src_dtype: np.dtype, tgt_dtype: np.dtype) -> float:
    s_int, t_int = np.issubdtype(src_dtype, np.integer), np.issubdtype(tgt_dtype, np.integer)
    if s_int != t_int:
        raise ValueError(f"source dtype {src_dtype} and target dtype {tgt_dtype} mix integer and float images; "
                         "convert one so both use the same value range")
    if s_int:
        return float(np.iinfo(tgt_dtype).max) / float(np.iinfo(src_dtype).max)
    return 1.0


Box = tuple[int, int, int, int]   # (y0, y1, x0, x1) in the target frame


@dataclass
class _Problem:
    """Validated inputs. Region accessors convert only the pixels of the region they return."""

    source: np.ndarray          # original array, HsxWs[xC]
    target: np.ndarray          # original array
    mask: np.ndarray            # 2-D mask in the source frame
    mask_div: float             # mask / mask_div is alpha in [0, 1]
    dy: int
    dx: int
    mode: str
    src_scale: float            # source values * src_scale are in the target's range
    channels: int               # channels solved: 1 or 3
    out: np.ndarray             # copy of the target that receives the solved pixels

    @property
    def height(self) -> int:
        return self.target.shape[0]

    @property
    def width(self) -> int:
        return self.target.shape[1]

    def _from_source_frame(self, a: np.ndarray, box: Box, clip: bool) -> np.ndarray:
        """Window ``box`` (target frame) of a source-frame array; outside: edge-replicated or zero."""
        y0, y1, x0, x1 = box
        sy0, sy1, sx0, sx1 = y0 - self.dy, y1 - self.dy, x0 - self.dx, x1 - self.dx
        hs, ws = a.shape[:2]
        if sy0 >= 0 and sx0 >= 0 and sy1 <= hs and sx1 <= ws:
            return a[sy0:sy1, sx0:sx1]
        ys, xs = np.arange(sy0, sy1), np.arange(sx0, sx1)
        if clip:
            return a[np.ix_(np.clip(ys, 0, hs - 1), np.clip(xs, 0, ws - 1))]
        out = np.zeros((y1 - y0, x1 - x0) + a.shape[2:], a.dtype)
        vy, vx = (ys >= 0) & (ys < hs), (xs >= 0) & (xs < ws)
        if vy.any() and vx.any():
            out[np.ix_(vy, vx)] = a[np.ix_(ys[vy], xs[vx])]
        return out

    def mask_at(self, box: Box) -> np.ndarray:
        """Raw mask values over ``box`` (zero where the mask does not reach)."""
        return self._from_source_frame(self.mask, box, clip=False)

    def alpha_at(self, box: Box) -> np.ndarray:
        a = self.mask_at(box).astype(np.float64)
        if self.mask_div != 1.0:
            a /= self.mask_div
        return a

    @property
    def work(self) -> type:
        """Dtype of the region arrays: float64 for float64 targets, else float32 (exact for 8/16-bit values)."""
        return np.float64 if self.target.dtype == np.float64 else np.float32

    def source_at(self, box: Box) -> np.ndarray:
        """Source over ``box`` as ``h x w x C`` in the target's value range (edge-replicated outside the source)."""
        s = self.source if self.source.ndim == 3 else self.source[..., None]
        s = self._from_source_frame(s, box, clip=True)[..., :3].astype(self.work)
        if s.shape[2] == 1 and self.channels == 3:
            s = np.repeat(s, 3, axis=2)
        if self.src_scale != 1.0:
            s *= self.src_scale
        if self.source.dtype.kind == "f" and not np.isfinite(s).all():
            raise ValueError("source has NaN or infinite values in the masked region")
        return s

    def target_at(self, box: Box) -> np.ndarray:
        y0, y1, x0, x1 = box
        t = self.target if self.target.ndim == 3 else self.target[..., None]
        t = t[y0:y1, x0:x1, :self.channels].astype(self.work)
        if self.target.dtype.kind == "f" and not np.isfinite(t).all():
            raise ValueError("target has NaN or infinite values in the masked region")
        return t

    def write(self, box: Box, omega: np.ndarray, f: np.ndarray, tgt: np.ndarray) -> None:
        """Store the solution ``f`` (``h x w x C`` over ``box``, overwritten) at the pixels ``omega``.

        Soft masks blend: ``f* + alpha (f - f*)`` where ``alpha < 1``. Integer outputs are rounded and clipped.
        """
        c = self.channels
        if self.mask.dtype != np.bool_ and not (self.mask.dtype.kind in "ui" and self.mask_div == 1.0):
            alpha = self.alpha_at(box)
            soft = omega & (alpha < 1.0)
            if soft.any():
                a = np.repeat(np.where(soft, alpha, 1.0)[..., None], c, axis=2)
                f -= tgt
                f *= a
                f += tgt
        dt = self.out.dtype
        if dt.kind == "u":
            info = np.iinfo(dt)
            f = np.clip(np.rint(f, out=f), info.min, info.max, out=f)
        y0, y1, x0, x1 = box
        where = omega if c == 1 else np.repeat(omega[..., None], c, axis=2)
        view = self.out[y0:y1, x0:x1] if self.out.ndim == 2 else self.out[y0:y1, x0:x1, :c]
        np.copyto(view, f.reshape(view.shape), where=where.reshape(view.shape), casting="unsafe")


def _prepare(source, target, mask, mode: str, offset) -> _Problem:
    if mode not in ("normal", "mixed"):
        raise ValueError(f"mode must be 'normal' or 'mixed', got {mode!r}")
    src = _as_image("source", source)
    tgt = _as_image("target", target)
    m, div = _as_mask(mask)
    tgt_c = 1 if tgt.ndim == 2 else tgt.shape[2]
    src_c = 1 if src.ndim == 2 else src.shape[2]
    channels = 1 if tgt_c == 1 else 3
    if channels == 1 and src_c != 1:
        raise ValueError(f"target is single-channel (shape {tgt.shape}) but source has {src_c} channels "
                         f"(shape {src.shape}); convert the source to greyscale first")
    if offset is None:
        dy = dx = 0
        if not (src.shape[:2] == tgt.shape[:2] == m.shape):
            raise ValueError(f"source {src.shape[:2]}, target {tgt.shape[:2]} and mask {m.shape} must have the same "
                             "height and width (or pass offset=(dy, dx) to place a source of another size)")
    else:
        try:
            dy, dx = offset
            if int(dy) != dy or int(dx) != dx or isinstance(dy, bool) or isinstance(dx, bool):
                raise TypeError
            dy, dx = int(dy), int(dx)
        except (TypeError, ValueError):
            raise ValueError(f"offset must be None or a pair of integers (dy, dx), got {offset!r}") from None
        if src.shape[:2] != m.shape:
            raise ValueError(f"mask {m.shape} must have the source's height and width {src.shape[:2]}")
    scale = _dtype_scale(src.dtype, tgt.dtype)
    return _Problem(src, tgt, m, div, dy, dx, mode, scale, channels, tgt.copy())


# ----------------------------------------------------------------------------------------------------------------------
# Regions: bounding boxes and component clusters
# ----------------------------------------------------------------------------------------------------------------------

def _clusters(prob: _Problem) -> list[tuple[Box, np.ndarray]]:
    """Boxes (component bounding boxes plus a 1-pixel frame, clipped to the image) and each box's ``Omega``.

    4-connected components are independent problems; boxes are merged greedily while the merged box is not much
    larger than the two separate ones, so a scattered mask costs the sum of its parts, not its overall bounding box.
    """
    H, W = prob.height, prob.width
    rows = np.flatnonzero(prob.mask.any(axis=1))
    cols = np.flatnonzero(prob.mask.any(axis=0))
    empty = ValueError("mask is empty (no pixel > 0 inside the target)")
    if not rows.size:
        raise empty
    y0, y1 = max(int(rows[0]) + prob.dy, 0), min(int(rows[-1]) + 1 + prob.dy, H)
    x0, x1 = max(int(cols[0]) + prob.dx, 0), min(int(cols[-1]) + 1 + prob.dx, W)
    if y0 >= y1 or x0 >= x1:
        raise empty
    inside = prob.mask_at((y0, y1, x0, x1)) > 0
    if not inside.any():
        raise empty
    if (y0, y1, x0, x1) == (0, H, 0, W) and inside.all():
        raise ValueError("mask covers the whole target: there is no boundary to fix the solution "
                         "(the Poisson problem is singular); leave at least one target pixel outside the mask")
    count, labels, stats, _ = cv2.connectedComponentsWithStats(inside.view(np.uint8), connectivity=4,
                                                               ltype=cv2.CV_32S)

    def frame(by0: int, by1: int, bx0: int, bx1: int) -> Box:
        return max(by0 - 1, 0), min(by1 + 1, H), max(bx0 - 1, 0), min(bx1 + 1, W)

    if count == 2 or count - 1 > _MAX_CLUSTER_COMPONENTS:
        groups = [(list(range(1, count)), frame(y0, y1, x0, x1))]
    else:
        groups = _merge_boxes([([k], frame(y0 + int(stats[k, 1]), y0 + int(stats[k, 1] + stats[k, 3]),
                                           x0 + int(stats[k, 0]), x0 + int(stats[k, 0] + stats[k, 2])))
                               for k in range(1, count)])
    out = []
    for ids, box in groups:
        if len(groups) == 1:
            out.append((box, _crop_to(inside, box, (y0, y1, x0, x1))))
            continue
        by0, by1, bx0, bx1 = box
        oy0, oy1, ox0, ox1 = max(by0, y0), min(by1, y1), max(bx0, x0), min(bx1, x1)
        lab = labels[oy0 - y0:oy1 - y0, ox0 - x0:ox1 - x0]
        sel = lab == ids[0] if len(ids) == 1 else np.isin(lab, ids)
        out.append((box, _crop_to(sel, box, (oy0, oy1, ox0, ox1))))
    return out


def _crop_to(sel: np.ndarray, box: Box, win: Box) -> np.ndarray:
    """``Omega`` of ``box`` from the selection ``sel`` defined over the mask window ``win``."""
    by0, by1, bx0, bx1 = box
    wy0, wy1, wx0, wx1 = win
    oy0, oy1, ox0, ox1 = max(by0, wy0), min(by1, wy1), max(bx0, wx0), min(bx1, wx1)
    omega = np.zeros((by1 - by0, bx1 - bx0), bool)
    omega[oy0 - by0:oy1 - by0, ox0 - bx0:ox1 - bx0] = sel[oy0 - wy0:oy1 - wy0, ox0 - wx0:ox1 - wx0]
    return omega


def _merge_boxes(groups: list[tuple[list[int], Box]]) -> list[tuple[list[int], Box]]:
    """Greedily merge boxes while ``area(union) <= area(a) + area(b) + _CLUSTER_OVERHEAD_PX`` (at most 64 boxes)."""
    def area(b: Box) -> int:
        return (b[1] - b[0]) * (b[3] - b[2])

    groups = list(groups)
    merged = True
    while merged:
        merged = False
        i = 0
        while i < len(groups):
            j = i + 1
            while j < len(groups):
                a, b = groups[i][1], groups[j][1]
                u = (min(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), max(a[3], b[3]))
                if area(u) <= area(a) + area(b) + _CLUSTER_OVERHEAD_PX:
                    groups[i] = (groups[i][0] + groups[j][0], u)
                    del groups[j]
                    merged = True
                else:
                    j += 1
            i += 1
    return groups


def _degree(box: Box, H: int, W: int) -> np.ndarray:
    """``|N_p|``: the number of 4-neighbours inside the image, for each pixel of the box."""
    y0, y1, x0, x1 = box
    ys, xs = np.arange(y0, y1), np.arange(x0, x1)
    dy = 2 - (ys == 0).astype(np.int8) - (ys == H - 1)
    dx = 2 - (xs == 0).astype(np.int8) - (xs == W - 1)
    return (dy[:, None] + dx[None, :]).astype(np.float64)


def _initial_residual(src: np.ndarray, tgt: np.ndarray, omega: np.ndarray, mode: str) -> np.ndarray:
    """``r0 = b - A g`` on ``Omega``, zero elsewhere (``h x w x C``, the dtype of ``src``).

    ``r0_p = sum_{q in N_p, q not in Omega} (f*_q - g_q) + sum_{q in N_p} (v_pq - (g_p - g_q))``; the second sum is
    zero in normal mode and, in mixed mode, runs over the links where the target gradient was chosen. For integer
    images every term is an integer, so ``r0`` is exact in float32.
    """
    m8 = omega.view(np.uint8)
    phi = np.zeros_like(src)
    cv2.subtract(tgt, src, dst=phi, mask=1 - m8)                        # f* - g outside Omega
    kernel = _CROSS.astype(src.dtype)
    r0 = cv2.filter2D(phi, -1, kernel, borderType=cv2.BORDER_CONSTANT).reshape(src.shape)
    if mode == "mixed":
        for axis in (0, 1):
            n = src.shape[axis]
            a, b = [slice(None)] * 2, [slice(None)] * 2
            a[axis], b[axis] = slice(1, n), slice(0, n - 1)
            dg = src[tuple(a)] - src[tuple(b)]           # g_{p+1} - g_p along the axis
            dt = tgt[tuple(a)] - tgt[tuple(b)]
            delta = np.where(np.abs(dt) > np.abs(dg), dt - dg, 0.0).astype(src.dtype)
            r0[tuple(b)] -= delta                        # p with its "next" neighbour: v - (g_p - g_q) = -delta
            r0[tuple(a)] += delta                        # p with its "previous" neighbour: +delta
    return cv2.bitwise_and(r0, r0, mask=m8).reshape(src.shape)


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
    for it in range(1, max_iter + 1):
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


def _solve(omega: np.ndarray, deg: np.ndarray, r0: np.ndarray, tol: float | None, max_iter: int,
           atol: float | None = None) -> np.ndarray:
    """Solve ``A e = r0`` on ``Omega`` (``r0``: ``h x w x C``, zero outside ``Omega``); ``e`` has ``r0``'s dtype
    (float64 on the dense path for at most ``_DIRECT_MAX`` unknowns).

    Iterative refinement: the residual is computed in float64, the correction equation in float32 by
    multigrid-preconditioned CG, until ``||r0 - A e|| <= tol ||r0||``.
    """
    h, w, channels = r0.shape
    n = int(np.count_nonzero(omega))
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
    goal = None if tol is None else tol * norm0
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
    r064 = e = None
    ax = np.empty(fine.shape)
    rnorm, used = norm0, 0
    while rnorm > goal:
        if used >= max_iter:
            raise RuntimeError(f"Poisson solve did not reach tol={tol} in {max_iter} iterations "
                               f"(relative residual {rnorm / norm0:.3g})")
        de, its = _pcg32(fine, mg, r32, max(_ROUND_SLACK * goal / rnorm, _F32_RTOL_FLOOR), max_iter - used)
        used += its
        if e is None:
            e = de.astype(np.float64)
            r064 = np.zeros(fine.shape)
            r064.reshape(h2, w2, channels)[:h, :w] = r0
        else:
            e += de
        r = np.subtract(r064, fine.apply(e, ax))
        previous, rnorm = rnorm, cv2.norm(r)
        if rnorm > 0.5 * previous:            # a round always gains orders of magnitude unless something is broken
            raise RuntimeError(f"Poisson solve stalled at relative residual {rnorm / norm0:.3g} (tol={tol})")
        r32 = r.astype(np.float32)
    return e.reshape(h2, w2, channels)[:h, :w].astype(r0.dtype)
