"""Benchmark of collage_core.poisson against OpenCV's seamlessClone and the scipy.sparse reference.

Run by hand::

    python benchmarks/poisson.py            # 512^2 and 2048^2
    python benchmarks/poisson.py --sizes 512 --repeats 5

For each size and mask (an ellipse covering ~16% of the image, an ellipse cut by the image border, five separate
ellipses) it prints the median wall time of ``cv2.seamlessClone(..., NORMAL_CLONE)`` and of
:func:`poisson_composite` (8-bit pictures, default settings) with the compiled solver (what the default
``backend="auto"`` settles on in a long-running process: the script first runs default composites until "auto" has
switched and prints after how many, then times the default call) and with the numpy/OpenCV solver
(``backend="numpy"``, what a one-shot run uses); the three are called in turn (the order rotating every round), so a
change of machine load hits them alike. Then the ratios, the time of :func:`poisson_composite_reference` (scipy
``spsolve`` over the masked pixels, run once by default because it is slow), the machine load, and the max / mean
absolute difference inside the mask, in grey levels, of the 8-bit results against the 8-bit (rounded) reference.
``ours-ref float`` compares the float64 results before rounding with the stopping rule the 8-bit default uses
(``atol=0.3``: estimated max error 0.3 grey level), i.e. the error that rounding then hides. OpenCV places the
mask's bounding box centred on ``p``; ``p`` is chosen so that the placement is the identity, and OpenCV gets a fresh
copy of the mask on every call (it overwrites the one it is given). ``OCV px changed outside``: pixels outside the
mask that OpenCV modified. Needs scipy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import cv2
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from collage_core import poisson_compiled  # noqa: E402
from collage_core.poisson import poisson_composite  # noqa: E402
from collage_core.poisson_reference import poisson_composite_reference  # noqa: E402


def textured(n: int, seed: int) -> np.ndarray:
    """A deterministic photo-like uint8 image: smooth colours, fine texture and hard edges."""
    rng = np.random.default_rng(seed)
    base = cv2.resize(rng.random((8, 8, 3)), (n, n), interpolation=cv2.INTER_CUBIC) * 200
    tex = cv2.GaussianBlur(rng.random((n, n, 3)), (0, 0), 1.5) * 80
    yy, xx = np.mgrid[:n, :n]
    edges = ((xx // max(n // 7, 1) + yy // max(n // 5, 1)) % 2)[..., None] * 60.0
    return np.clip(base + tex + edges, 0, 255).astype(np.uint8)


def ellipse(n: int, cy: float, cx: float, ry: float, rx: float) -> np.ndarray:
    yy, xx = np.mgrid[:n, :n]
    return ((yy - cy * n) / (ry * n)) ** 2 + ((xx - cx * n) / (rx * n)) ** 2 <= 1.0


def masks(n: int) -> dict[str, np.ndarray]:
    multi = np.zeros((n, n), bool)
    for cy, cx in ((0.2, 0.2), (0.2, 0.75), (0.5, 0.5), (0.8, 0.25), (0.78, 0.8)):
        multi |= ellipse(n, cy, cx, 0.1, 0.09)
    return {
        "ellipse": ellipse(n, 0.5, 0.5, 0.26, 0.2),
        "border": ellipse(n, 0.0, 0.35, 0.36, 0.28),
        "5 blobs": multi,
    }


def median_time(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def interleaved(fns: list, repeats: int) -> list[tuple[float, object]]:
    """Median wall time of each function, the functions called in turn (so a change of load hits them alike). Round
    r starts at function r mod k, so each function follows each other one equally often: what runs just before a
    call (a cache it evicted, OpenCV's worker threads still spinning after their job) weighs on all of them alike."""
    times = [[] for _ in fns]
    outs = [f() for f in fns]                                        # warm-up
    for r in range(repeats):
        for i in range(len(fns)):
            k = (r + i) % len(fns)
            t0 = time.perf_counter()
            outs[k] = fns[k]()
            times[k].append(time.perf_counter() - t0)
    return [(statistics.median(t), o) for t, o in zip(times, outs)]


def opencv_clone(src: np.ndarray, tgt: np.ndarray, mask: np.ndarray):
    ys, xs = np.nonzero(mask)
    x0, x1, y0, y1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    center = (int(x0 + (x1 - x0) // 2), int(y0 + (y1 - y0) // 2))     # identity placement of the bounding box
    m8 = mask.astype(np.uint8) * 255
    # A fresh mask for every call: OpenCV 5.0's seamlessClone overwrites the mask array it is given (on the 512^2
    # ellipse 42,831 mask pixels become 14,700), so reusing it makes every second call wrong. The copy is timed.
    return lambda: cv2.seamlessClone(src, tgt, m8.copy(), center, cv2.NORMAL_CLONE)


def diff(a: np.ndarray, b: np.ndarray, mask: np.ndarray) -> str:
    d = np.abs(a.astype(np.float64) - b.astype(np.float64))[mask]
    return f"{d.max():.4g} / {d.mean():.4f}"


def auto_switch(limit_s: float = 120.0) -> str:
    """Run default composites (``backend="auto"``) of the 512^2 ellipse in this fresh process until "auto" has
    switched to the compiled kernels; say after how many, and how long."""
    src, tgt, mask = textured(512, 1), textured(512, 2), masks(512)["ellipse"]
    t0, calls = time.perf_counter(), 0
    while not poisson_compiled.ready() and time.perf_counter() - t0 < limit_s:
        poisson_composite(src, tgt, mask)
        calls += 1
    if not poisson_compiled.ready():
        raise SystemExit(f"'auto' did not switch to the compiled kernels within {limit_s:.0f} s")
    return (f"the default backend 'auto' ran {calls} composites of the 512^2 ellipse on numpy/OpenCV "
            f"({time.perf_counter() - t0:.1f} s, the kernels loading in the background meanwhile), then switched; "
            "the 'compiled' column is what it runs from then on")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), platform.machine())
    except OSError:
        return platform.processor() or platform.machine()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[512, 2048])
    ap.add_argument("--repeats", type=int, default=9, help="runs of OpenCV and ours, in turn (median)")
    ap.add_argument("--ref-repeats", type=int, default=1, help="runs of the scipy reference at sizes <= 1024")
    ap.add_argument("--threads", type=int, default=None, help="cv2.setNumThreads (default: OpenCV's own)")
    args = ap.parse_args()
    if args.threads is not None:
        cv2.setNumThreads(args.threads)

    compiled = poisson_compiled.installed()
    if compiled:
        import numba
        note = f"numba {numba.__version__}: " + auto_switch()
    else:
        note = "numba is not installed: no compiled column"
    print(f"# {cpu_model()}, {os.cpu_count()} CPUs, python {platform.python_version()}, "
          f"numpy {np.__version__}, opencv {cv2.__version__}; threads: cv2 {cv2.getNumThreads()} (ours and "
          "seamlessClone), numpy single-threaded; load: os.getloadavg() 1-minute average at the start of each row")
    print(f"# {note}")
    head = (f"{'size':>5} {'mask':8} {'masked px':>10} {'load':>5} {'OpenCV ms':>10} {'compiled':>8} {'numpy':>8} "
            f"{'OCV/comp':>8} {'OCV/np':>7} {'ref ms':>7} | {'ours-ref max/mean':>18} {'OCV-ref max/mean':>18} "
            f"{'ours-ref float max':>18} {'comp-np max':>11} {'OCV px changed outside':>22}")
    print(head)
    print("-" * len(head))
    nan = float("nan")
    for n in args.sizes:
        src, tgt = textured(n, 1), textured(n, 2)
        srcf, tgtf = src.astype(np.float64), tgt.astype(np.float64)
        for name, mask in masks(n).items():
            load = os.getloadavg()[0]
            fns = [lambda: poisson_composite(src, tgt, mask, backend="numpy"), opencv_clone(src, tgt, mask)]
            if compiled:                        # the default backend, switched by auto_switch(): the compiled kernels
                fns.append(lambda: poisson_composite(src, tgt, mask))
            try:
                timed = interleaved(fns, args.repeats)
            except cv2.error as exc:                                                    # pragma: no cover
                print(f"# OpenCV failed on {name} {n}: {str(exc).splitlines()[-1]}")
                timed = interleaved(fns[:1] + fns[2:], args.repeats)
                timed.insert(1, (nan, None))
            (t_np, ours_np), (t_ocv, ocv) = timed[:2]
            t_comp, ours = timed[2] if compiled else (nan, ours_np)
            ref_runs = args.ref_repeats if n <= 1024 else 1
            t_ref, reff = median_time(lambda: poisson_composite_reference(srcf, tgtf, mask), ref_runs)
            ref8 = np.clip(np.rint(reff), 0, 255).astype(np.uint8)
            oursf = poisson_composite(srcf, tgtf, mask, atol=0.3,      # the 8-bit default's rule, before rounding
                                      backend="compiled" if compiled else "numpy")
            ocv_cols = ("n/a", "n/a", "n/a", "n/a") if ocv is None else (
                f"{t_ocv / t_comp:8.2f}", f"{t_ocv / t_np:7.2f}", diff(ocv, ref8, mask),
                str(int((ocv != tgt).any(-1)[~mask].sum())))
            comp_np = int(np.abs(ours.astype(int) - ours_np.astype(int)).max())
            print(f"{n:>5} {name:8} {int(mask.sum()):>10} {load:>5.1f} {t_ocv * 1e3:>10.1f} {t_comp * 1e3:>8.1f} "
                  f"{t_np * 1e3:>8.1f} {ocv_cols[0]:>8} {ocv_cols[1]:>7} {t_ref * 1e3:>7.0f} | "
                  f"{diff(ours, ref8, mask):>18} {ocv_cols[2]:>18} {np.abs(oursf - reff)[mask].max():>18.2e} "
                  f"{comp_np:>11} {ocv_cols[3]:>22}")
            sys.stdout.flush()


if __name__ == "__main__":
    main()
