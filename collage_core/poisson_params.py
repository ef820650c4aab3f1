"""The parameters both Poisson solvers share (:mod:`collage_core.poisson_solver`, numpy/OpenCV, and
:mod:`collage_core.poisson_compiled`, numba): the multigrid's coarsening and smoother, and the stopping rules. One
place, so that the two compute the same mathematics."""

from __future__ import annotations

_RHO_MIN, _RHO_MAX = 0.3, 0.9    # bounds of the contraction factor in the max-norm error estimate
_DIRECT_MAX = 256                # at most this many unknowns: dense direct solve
_COARSEST_MAX = 64              # coarsening stops once a level has at most this many cells
_DIRICHLET_BOOST = 1.4           # see poisson_solver._coarsen
_ROUND_SLACK = 0.8               # a float32 CG round aims at this fraction of the remaining goal
_F32_RTOL_FLOOR = 2e-7           # a float32 CG round is not asked to reduce its residual further than this

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
