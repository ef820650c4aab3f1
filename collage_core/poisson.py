"""Poisson image compositing ("seamless cloning"), exact and fast: numpy + OpenCV, or the same solver compiled.

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

Backends. ``backend="numpy"`` runs the solver above with numpy and OpenCV; ``backend="compiled"`` runs the same
mathematics compiled with numba (:mod:`collage_core.poisson_compiled`: one CG per colour channel, the channels on
as many threads as OpenCV uses, fused sweeps; 3.7-5x ``seamlessClone`` on the 512^2 benchmark ellipse against
1.2-1.5x for numpy, which spends most of its time in Python).
The default ``"auto"`` uses numpy until the process has spent ``poisson_compiled.LOAD_SECONDS`` (0.6 s) in numpy
solves, then loads the kernels in the background: numba's own load (~0.6 s per process, ~15 s of compilation the
first time on a machine) would cost a one-shot run far more than it saves. Both stop by the same rules; their 8-bit
results differ by at most one grey level where the exact value lies near a rounding boundary.

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

from . import poisson_compiled as compiled
from .poisson_compiled import Backend
from .poisson_solver import _solve, _solve_normal

__all__ = ["poisson_composite"]

Mode = Literal["normal", "mixed"]

_TOL_FLOAT = 1e-6                # default tol for float targets
_ATOL_INT = 0.3                  # integer targets (rounded output): stop at an estimated max error of 0.3 level
_CLUSTER_OVERHEAD_PX = 64 * 64   # merging two component boxes pays if it adds at most this many pixels
_MAX_CLUSTER_COMPONENTS = 64     # more components than this: one box around all of them
_CROSS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float64)

# ----------------------------------------------------------------------------------------------------------------------
# Public API
# ----------------------------------------------------------------------------------------------------------------------

def poisson_composite(source: np.ndarray, target: np.ndarray, mask: np.ndarray, mode: Mode = "normal",
                      offset: tuple[int, int] | None = None, *, tol: float | None = None, atol: float | None = None,
                      max_iter: int = 100, backend: Backend = "auto") -> np.ndarray:
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
        backend: ``"numpy"`` (numpy + OpenCV), ``"compiled"`` (the same solver compiled with numba, see
            :mod:`collage_core.poisson_compiled`; ``ImportError`` without numba) or ``"auto"``: numpy until this
            process has spent ``poisson_compiled.LOAD_SECONDS`` in numpy solves, then compiled if numba is there
            (``poisson_compiled.preload()`` switches at once). Results agree within the stopping tolerance.

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
    use = compiled.use_compiled(backend)
    for box, omega in _clusters(prob):
        src, tgt = prob.source_at(box), prob.target_at(box)
        edges = _edges(box, prob.height, prob.width)
        f = None
        if use and prob.mode == "normal" and atol is not None and src.dtype == np.float32:
            f = _solve_normal(omega, edges, src, tgt, atol, max_iter)
        if f is None:
            r0 = _initial_residual(src, tgt, omega, prob.mode)
            f = _solve(omega, edges, r0, tol, max_iter, atol, use)
            f += src
        prob.write(box, omega, f, tgt)
    return prob.out


# ----------------------------------------------------------------------------------------------------------------------
# Input handling
# ----------------------------------------------------------------------------------------------------------------------

_IMAGE_DTYPES = (np.uint8, np.uint16, np.float16, np.float32, np.float64)
_CV_COPY_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.float32, np.float64))


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
        view = self.out[y0:y1, x0:x1] if self.out.ndim == 2 else self.out[y0:y1, x0:x1, :c]
        f = f.reshape(view.shape).astype(dt, copy=False)
        if dt in _CV_COPY_DTYPES and view.strides[-1] == dt.itemsize and view.strides[1] == dt.itemsize * c:
            # A masked copy that takes the 2-D mask for any channel count; 10x faster than copyto with a repeated mask.
            if cv2.copyTo(f, omega.view(np.uint8), view) is view:
                return
        where = omega if c == 1 else np.repeat(omega[..., None], c, axis=2)
        np.copyto(view, f, where=where.reshape(view.shape), casting="unsafe")


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
    inside = prob.mask_at((y0, y1, x0, x1))
    inside = inside if inside.dtype == np.bool_ else inside > 0
    if not inside.any():
        raise empty
    if (y0, y1, x0, x1) == (0, H, 0, W) and inside.all():
        raise ValueError("mask covers the whole target: there is no boundary to fix the solution "
                         "(the Poisson problem is singular); leave at least one target pixel outside the mask")
    # Labels first (2.5x cheaper than with stats); the component boxes only when there are several to cluster.
    count, labels = cv2.connectedComponents(inside.view(np.uint8), connectivity=4, ltype=cv2.CV_32S)
    if 2 < count <= _MAX_CLUSTER_COMPONENTS + 1:
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


def _edges(box: Box, H: int, W: int) -> tuple[int, int, int, int]:
    """Whether the box's top, bottom, left and right sides lie on the image border (where ``|N_p| < 4``)."""
    y0, y1, x0, x1 = box
    return int(y0 == 0), int(y1 == H), int(x0 == 0), int(x1 == W)


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
