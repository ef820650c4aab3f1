"""The compiled Poisson solver (:mod:`collage_core.poisson_compiled`) and the ``backend`` choice of
:func:`poisson_composite`. Exactness on the shared mask cases is in ``test_poisson_exact.py`` (both backends); here:
agreement with the numpy solver on every input kind, threads, errors, and the ``"auto"`` rule. CPU, small pictures;
the first run on a machine compiles the kernels (~15 s, then cached)."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from collage_core import poisson_compiled
from collage_core.poisson import poisson_composite

pytest.importorskip("numba")


def _picture(seed: int, h: int, w: int, c: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    base = 120 + 60 * np.sin(5 * xx + seed)[..., None] * np.cos(4 * yy)[..., None] * rng.random(c)
    return np.clip(base + 50 * rng.random((h, w, c)), 0, 255).astype(np.uint8)


def _ellipse(h: int, w: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy * h) / (ry * h)) ** 2 + ((xx - cx * w) / (rx * w)) ** 2 <= 1.0


@pytest.fixture(scope="module", autouse=True)
def _kernels():
    poisson_compiled.preload()


def _both(src, tgt, mask, **kw):
    return (poisson_composite(src, tgt, mask, backend="compiled", **kw),
            poisson_composite(src, tgt, mask, backend="numpy", **kw))


@pytest.mark.parametrize("kind", ["rgb", "grey", "rgba", "grey source into rgb", "uint16", "soft mask", "offset",
                                  "mixed"])
def test_compiled_agrees_with_numpy_on_every_input_kind(kind):
    h, w = 120, 150
    src, tgt = _picture(1, h, w), _picture(2, h, w)
    mask = _ellipse(h, w, 0.5, 0.45, 0.33, 0.3)
    kw = {}
    if kind == "grey":
        src, tgt = src[..., 0], tgt[..., 0]
    elif kind == "rgba":
        tgt = np.concatenate([tgt, np.full((h, w, 1), 77, np.uint8)], axis=2)
    elif kind == "grey source into rgb":
        src = src[..., 0]
    elif kind == "uint16":
        src, tgt = src.astype(np.uint16) * 257, tgt.astype(np.uint16) * 257
    elif kind == "soft mask":
        mask = np.clip(1.5 - 2.0 * np.hypot(*(np.mgrid[:h, :w] - np.array([h / 2, w / 2])[:, None, None])) / h,
                       0, 1).astype(np.float32)
    elif kind == "offset":
        tgt = _picture(2, 200, 230)
        kw["offset"] = (40, 50)
    elif kind == "mixed":
        kw["mode"] = "mixed"
    comp, ref = _both(src, tgt, mask, **kw)
    assert comp.shape == ref.shape and comp.dtype == ref.dtype
    # both stop within an estimated 0.3 level (in the target's own units, uint16 too) of the exact value, so after
    # rounding they are at most one level apart
    assert np.abs(comp.astype(np.int64) - ref.astype(np.int64)).max() <= 1, kind
    if kind == "rgba":
        assert (comp[..., 3] == 77).all()


def test_float_targets_meet_the_residual_tolerance_on_both_backends():
    h, w = 96, 110
    src, tgt = _picture(3, h, w).astype(np.float32), _picture(4, h, w).astype(np.float32)
    mask = _ellipse(h, w, 0.55, 0.5, 0.3, 0.35)
    comp, ref = _both(src, tgt, mask)                       # default tol=1e-6: float64 iterative refinement
    assert np.abs(comp - ref).max() < 2e-3


def test_masks_on_the_image_border_and_several_components():
    h, w = 100, 140
    src, tgt = _picture(5, h, w), _picture(6, h, w)
    mask = _ellipse(h, w, 0.0, 0.0, 0.5, 0.4) | _ellipse(h, w, 1.0, 1.0, 0.3, 0.2) | _ellipse(h, w, 0.5, 0.6, 0.1, 0.1)
    comp, ref = _both(src, tgt, mask)
    assert np.abs(comp.astype(int) - ref).max() <= 1
    assert np.array_equal(comp[~mask], tgt[~mask])


def test_channels_in_threads_give_the_same_result_as_one_thread():
    """Each channel's CG runs the same instruction sequence whichever thread runs it, so the thread count changes
    nothing, bit for bit (same machine and kernels; this is the contract being tested, hence the exact check)."""
    h, w = 130, 120
    src, tgt = _picture(7, h, w), _picture(8, h, w)
    mask = _ellipse(h, w, 0.5, 0.5, 0.35, 0.35)
    from collage_core.poisson import _initial_residual
    r0 = _initial_residual(src.astype(np.float32), tgt.astype(np.float32), mask, "normal")
    one = poisson_compiled.solve(mask, (1, 1, 1, 1), r0, 0.3, 0.0, 100, threads=1)
    three = poisson_compiled.solve(mask, (1, 1, 1, 1), r0, 0.3, 0.0, 100, threads=3)
    np.testing.assert_array_equal(one[0], three[0])
    assert one[1:] == three[1:]


def test_an_iteration_limit_that_is_too_small_raises():
    h, w = 80, 90
    src, tgt = _picture(9, h, w), _picture(10, h, w)
    mask = _ellipse(h, w, 0.5, 0.5, 0.4, 0.4)
    with pytest.raises(RuntimeError, match="did not reach"):
        poisson_composite(src, tgt, mask, backend="compiled", max_iter=1)
    with pytest.raises(RuntimeError, match="did not reach"):
        poisson_composite(src.astype(np.float32), tgt.astype(np.float32), mask, backend="compiled", max_iter=1)


def test_unknown_backend_is_refused():
    src, tgt = _picture(1, 20, 20), _picture(2, 20, 20)
    with pytest.raises(ValueError, match="backend"):
        poisson_composite(src, tgt, _ellipse(20, 20, 0.5, 0.5, 0.3, 0.3), backend="gpu")


def _run(code: str) -> str:
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_one_shot_auto_runs_never_import_numba():
    """A fresh process that composites once with the default backend stays on numpy/OpenCV: numba's ~0.6 s load
    would cost more than the solve saves."""
    out = _run("""
        import sys
        import numpy as np
        from collage_core.poisson import poisson_composite
        yy, xx = np.mgrid[:200, :200]
        mask = (yy - 100) ** 2 + (xx - 90) ** 2 < 70 ** 2
        rng = np.random.default_rng(0)
        src, tgt = (rng.integers(0, 256, (200, 200, 3), dtype=np.uint8) for _ in range(2))
        poisson_composite(src, tgt, mask)
        print("numba" in sys.modules)
    """)
    assert out.strip() == "False"


def test_auto_switches_once_the_numpy_time_would_have_paid_for_the_load():
    """The ski-rental rule: after LOAD_SECONDS of numpy solves a background thread loads the kernels, and the solves
    after it finished use them (run in a fresh process, so that this test's own preload does not count)."""
    out = _run("""
        import numpy as np
        from collage_core import poisson_compiled as pc
        from collage_core import poisson_solver
        from collage_core.poisson import poisson_composite
        calls = []
        real = poisson_solver._solve
        yy, xx = np.mgrid[:120, :120]
        mask = (yy - 60) ** 2 + (xx - 60) ** 2 < 45 ** 2
        rng = np.random.default_rng(0)
        src, tgt = (rng.integers(0, 256, (120, 120, 3), dtype=np.uint8) for _ in range(2))
        first = poisson_composite(src, tgt, mask)
        print(pc.ready(), pc._loader is None)
        pc.record_numpy(pc.LOAD_SECONDS)          # as if the session had spent that long in numpy solves
        poisson_composite(src, tgt, mask)         # still numpy; starts the loader
        pc._loader.join()
        print(pc.ready(), pc.use_compiled("auto"))
        again = poisson_composite(src, tgt, mask)
        print(int(np.abs(first.astype(int) - again).max()) <= 1)
    """)
    assert out.split() == ["False", "True", "True", "True", "True"]


def _composite_in_child(queue) -> None:                              # pragma: no cover - runs in the child
    h, w = 90, 100
    src, tgt = _picture(11, h, w), _picture(12, h, w)
    out = poisson_composite(src, tgt, _ellipse(h, w, 0.5, 0.5, 0.35, 0.35), backend="compiled")
    queue.put(int(out.sum()))


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_can_still_composite():
    """The channel threads do not survive fork: the child must start its own pool, not wait on the parent's."""
    h, w = 90, 100
    src, tgt = _picture(11, h, w), _picture(12, h, w)
    expected = int(poisson_composite(src, tgt, _ellipse(h, w, 0.5, 0.5, 0.35, 0.35), backend="compiled").sum())
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_composite_in_child, args=(queue,))
    child.start()
    child.join(timeout=120)
    if child.is_alive():
        child.kill()
        pytest.fail("the forked child hung in the compiled Poisson solve")
    assert child.exitcode == 0
    assert queue.get(timeout=5) == expected


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(h=st.integers(20, 90), w=st.integers(20, 90), seed=st.integers(0, 10_000),
       density=st.floats(0.2, 0.8), smooth=st.floats(0.5, 4.0))
def test_random_masks_match_the_sparse_reference(h, w, seed, density, smooth):
    """Random blobs (holes, thin bridges, pieces on the border, single pixels): the compiled solve is the exact one
    rounded, within one grey level, and the target is untouched outside the mask."""
    pytest.importorskip("scipy")
    from collage_core.poisson_reference import poisson_composite_reference

    rng = np.random.default_rng(seed)
    field = cv2.GaussianBlur(rng.random((h, w)), (0, 0), smooth)
    mask = field > np.quantile(field, 1.0 - density)
    mask[0, 0] = False                                         # never the whole picture
    src, tgt = _picture(seed, h, w), _picture(seed + 1, h, w)
    out = poisson_composite(src, tgt, mask, backend="compiled")
    ref = poisson_composite_reference(src, tgt, mask)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1
    assert np.array_equal(out[~mask], tgt[~mask])
