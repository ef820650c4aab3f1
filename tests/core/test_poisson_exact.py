"""Exactness of the fast Poisson composite on 8-bit pictures: the default solve (``tol=atol=None`` -> for integer
targets, stop at an estimated max error of ``atol=0.3`` grey level) must give the sparse reference's result within
one grey level, on the mask shapes the benchmark uses and on awkward sizes (CPU, small pictures, a few seconds in
all). Both solvers: numpy/OpenCV and the compiled one (skipped without numba)."""

from __future__ import annotations

import numpy as np
import pytest

from collage_core.poisson import poisson_composite
from collage_core.poisson_reference import poisson_composite_reference

pytest.importorskip("scipy")   # the reference solver needs it

try:
    import numba  # noqa: F401
    _NO_NUMBA = False
except ImportError:                                               # pragma: no cover
    _NO_NUMBA = True
BACKENDS = ["numpy", pytest.param("compiled", marks=pytest.mark.skipif(_NO_NUMBA, reason="numba not installed"))]


def _picture(seed: int, h: int, w: int) -> np.ndarray:
    """uint8 photo-like picture: smooth colours, pixel noise and hard edges (what makes the boundary data rough)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    base = 110 + 70 * np.sin(4 * xx + seed)[..., None] * np.cos(3 * yy - seed)[..., None] * rng.random(3)
    edges = 60.0 * (((xx * 6).astype(int) + (yy * 5).astype(int)) % 2)[..., None]
    return np.clip(base + edges + 40 * rng.random((h, w, 3)), 0, 255).astype(np.uint8)


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy * h) / (ry * h)) ** 2 + ((xx - cx * w) / (rx * w)) ** 2 <= 1.0


def _blobs(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    for cy, cx in ((0.2, 0.2), (0.2, 0.75), (0.5, 0.5), (0.8, 0.25), (0.78, 0.8)):
        m |= _ellipse(h, w, cy, cx, 0.1, 0.09)
    return m


def _rectangle(h: int, w: int) -> np.ndarray:
    m = np.zeros((h, w), bool)
    m[h // 5: h - h // 4, w // 6: w - w // 3] = True
    return m


def _all_but_last_column(h: int, w: int) -> np.ndarray:
    m = np.ones((h, w), bool)
    m[:, -1] = False
    return m


CASES = {
    "ellipse": (128, 128, lambda h, w: _ellipse(h, w, 0.5, 0.5, 0.26, 0.2)),
    "border-cut ellipse": (128, 128, lambda h, w: _ellipse(h, w, 0.0, 0.35, 0.36, 0.28)),
    "five blobs": (128, 128, _blobs),
    "odd sizes": (97, 61, lambda h, w: _ellipse(h, w, 0.45, 0.55, 0.3, 0.33)),
    "non-square": (70, 157, lambda h, w: _ellipse(h, w, 0.5, 0.4, 0.35, 0.3) | _ellipse(h, w, 0.5, 0.8, 0.3, 0.1)),
    "touches the corner": (90, 110, lambda h, w: _ellipse(h, w, 1.0, 1.0, 0.5, 0.45)),
    "touches all four edges": (80, 96, lambda h, w: _ellipse(h, w, 0.5, 0.5, 0.62, 0.62)),
    "full rectangle": (91, 120, _rectangle),
    "all but the last column": (48, 52, _all_but_last_column),
}


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("mode", ["normal", "mixed"])
def test_uint8_matches_the_reference_within_one_grey_level(case, mode, backend):
    h, w, make = CASES[case]
    mask = make(h, w)
    assert mask.any() and not mask.all()
    src, tgt = _picture(1, h, w), _picture(2, h, w)
    ours = poisson_composite(src, tgt, mask, mode=mode, backend=backend).astype(int)
    ref = poisson_composite_reference(src, tgt, mask, mode=mode).astype(int)
    diff = np.abs(ours - ref)
    assert diff.max() <= 1, case
    # Rounding flips only where the exact value lies within the float error (<= 0.3) of x.5: a few pixels in 100.
    assert (diff[mask] == 0).mean() > 0.97, case
    assert np.array_equal(ours[~mask], tgt[~mask])            # outside the mask: the target, bit-exact
    assert np.abs(ours[mask] - tgt[mask].astype(int)).max() > 5, case    # the composite did change the inside


@pytest.mark.parametrize("case", ["ellipse", "border-cut ellipse", "five blobs", "odd sizes", "touches the corner",
                                  "non-square", "full rectangle", "all but the last column"])
@pytest.mark.parametrize("mode", ["normal", "mixed"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_max_error_stopping_rule_keeps_the_float_error_below_atol(case, mode, backend):
    """``atol`` (the integer default, 0.3) bounds the max error of the float solution before rounding, and a looser
    ``atol`` really stops earlier (larger error), so the rule is what decides when to stop."""
    h, w, make = CASES[case]
    mask = make(h, w)
    src, tgt = _picture(3, h, w).astype(np.float64), _picture(4, h, w).astype(np.float64)
    ref = poisson_composite_reference(src, tgt, mask, mode=mode)
    err = {a: np.abs(poisson_composite(src, tgt, mask, mode=mode, atol=a, backend=backend) - ref)[mask].max()
           for a in (0.3, 30.0)}
    assert err[0.3] <= 0.3, err
    assert err[30.0] <= 30.0, err
    assert err[30.0] > err[0.3], err


def test_default_tolerance_depends_on_the_output_dtype():
    h, w, make = CASES["ellipse"]
    mask = make(h, w)
    src, tgt = _picture(5, h, w), _picture(6, h, w)
    assert np.array_equal(poisson_composite(src, tgt, mask), poisson_composite(src, tgt, mask, atol=0.3))
    srcf, tgtf = src.astype(np.float32), tgt.astype(np.float32)
    default = poisson_composite(srcf, tgtf, mask)
    assert np.array_equal(default, poisson_composite(srcf, tgtf, mask, tol=1e-6))
    # and the float default is tighter than the integer one
    ref = poisson_composite_reference(srcf, tgtf, mask)
    assert np.abs(default - ref).max() < 1e-2
    assert np.abs(default - ref).max() < np.abs(poisson_composite(srcf, tgtf, mask, atol=0.3) - ref).max()


def test_tol_and_atol_are_exclusive_and_positive():
    h, w, make = CASES["ellipse"]
    src, tgt, mask = _picture(1, h, w), _picture(2, h, w), make(h, w)
    with pytest.raises(ValueError, match="not both"):
        poisson_composite(src, tgt, mask, tol=1e-5, atol=0.3)
    with pytest.raises(ValueError, match="atol"):
        poisson_composite(src, tgt, mask, atol=0.0)


def test_empty_mask_is_rejected():
    src, tgt = _picture(1, 40, 50), _picture(2, 40, 50)
    with pytest.raises(ValueError, match="empty"):
        poisson_composite(src, tgt, np.zeros((40, 50), bool))


def test_full_mask_is_rejected_as_singular():
    src, tgt = _picture(1, 40, 50), _picture(2, 40, 50)
    with pytest.raises(ValueError, match="whole target"):
        poisson_composite(src, tgt, np.ones((40, 50), np.uint8))
