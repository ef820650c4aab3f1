"""The multigrid-preconditioned CG of :mod:`collage_core.poisson_solver`, compiled with numba.

The same mathematics as the numpy/OpenCV path (see :mod:`collage_core.poisson`): the same level hierarchy (2x2
aggregates with the boosted Dirichlet coupling), Chebyshev smoothing, bilinear transfers and max-norm stopping rule.
What differs is the execution. The numpy path spends most of its time in Python (a V-cycle is ~30 numpy and OpenCV
calls per level); here one compiled call runs a channel's whole CG, and on the fine level the pre-smoothing +
restriction and the prolongation + post-smoothing are single sweeps down the rows. Each colour channel is its own CG
(the channels are independent systems with one matrix), taken by the calling thread and ``cv2.getNumThreads() - 1``
pool threads as each comes free (the kernels release the GIL): a channel's vectors fit the core's L2 cache, and
every channel stops by its own rule.

Layout: every level is stored with a one-cell frame of zeros (``(h + 2) x (w + 2)`` cells), so the 5-point stencil
needs no bounds check; the levels are concatenated into flat arrays (``coff[k]`` is level k's first cell). Vectors
are *clean*: zero outside omega. Links are stored one-sided: ``we[p]`` joins cell p to its east neighbour, ``ws[p]``
to its south one; both are zero unless both cells are in omega, and ``diag`` is zero off omega, so ``A x`` vanishes
off omega without a mask. On level 0 every link inside omega has weight 1, so its stencil is just ``diag`` and the
4-neighbour sum.

numba is imported by :func:`load`, never at module import, and only when a solve asks for it (see
:data:`LOAD_SECONDS`); the kernels are cached on disk (``cache=True``), so only the first run on a machine compiles
them. Work arrays are kept per thread between solves (fresh ones cost page faults, ~1 ms on the 512^2 benchmark).
"""

from __future__ import annotations

import concurrent.futures
import importlib.util
import logging
import os
import threading
import time
from typing import Literal

import cv2
import numpy as np

from .poisson_params import _CHEB_C0, _CHEB_C2, _COARSEST_MAX, _DIRICHLET_BOOST

Backend = Literal["auto", "compiled", "numpy"]
BACKENDS = ("auto", "compiled", "numpy")

# "auto": loading numba and the cached kernels costs ~0.6 s per process (and ~15 s of compilation the first time on
# a machine), far more than one solve saves (~12 -> ~4 ms on the 512^2 benchmark). So "auto" rents before it buys
# (the ski-rental rule): numpy/OpenCV until this process has spent LOAD_SECONDS in numpy solves, then the kernels
# are loaded in a background thread and used once ready. A one-shot run never pays the load; a long session pays it
# once, off its critical path. A host that knows it will composite a lot may call preload_async() at start.
LOAD_SECONDS = 0.6
AUTO_SWITCH = True          # False: "auto" stays on numpy/OpenCV in this process (reproducible runs, the test suite)

_kernels = None            # the imported kernel module
_ready = False             # preload() finished: every kernel compiled or loaded from the disk cache
_load_error: str | None = None
_loader: threading.Thread | None = None
_numpy_seconds = 0.0
_lock = threading.Lock()


def installed() -> bool:
    """Whether numba can be imported (without importing it)."""
    return importlib.util.find_spec("numba") is not None


def load():
    """Import numba and the kernels (compiled on first call, then cached on disk); raises ImportError without numba."""
    global _kernels
    if _kernels is None:
        with _lock:
            if _kernels is None:
                try:
                    from . import _poisson_numba
                except ImportError as exc:
                    raise ImportError("the compiled Poisson solver needs numba (pip install numba); "
                                      f"backend='numpy' works without it ({exc})") from exc
                _kernels = _poisson_numba
    return _kernels


def ready() -> bool:
    """Whether the kernels are loaded and warm (the next compiled solve runs at full speed)."""
    return _ready


def preload() -> float:
    """Load the kernels now and run them once on small problems, so that the next solve is fast; returns the seconds
    it took (the first time on a machine this includes compiling them, ~15 s; later ~0.6 s)."""
    global _ready, _load_error
    t0 = time.perf_counter()
    try:
        load()
        omega = np.zeros((24, 24), bool)
        omega[2:22, 3:21] = True
        r0 = np.zeros((24, 24, 1), np.float32)
        r0[2, 3:21, 0] = 1.0
        solve(omega, (0, 0, 0, 0), r0, 0.3, 0.0, 50, threads=1)
        solve(omega, (1, 1, 1, 1), (r0, r0), 0.0, 1e-3, 50, threads=1)
    except Exception as exc:
        _load_error = f"{type(exc).__name__}: {exc}"
        raise
    _ready = True
    seconds = time.perf_counter() - t0
    if seconds > 3.0:
        log.info("compiled the Poisson kernels in %.1f s (cached on disk for the next processes)", seconds)
    return seconds


def _preload_quietly() -> None:
    try:                          # a background job: yield the CPU to the session's own work (Linux: per-thread nice)
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except (AttributeError, OSError):
        pass
    try:
        preload()
    except Exception as exc:  # noqa: BLE001 -- a broken numba must not break compositing: "auto" stays on numpy
        log.warning("the compiled Poisson solver is unavailable, staying on numpy/OpenCV: %s", _load_error or exc)


def preload_async() -> threading.Thread | None:
    """Start :func:`preload` in a background thread (once per process; ``None`` without numba). The thread is not a
    daemon: a process that ends while it compiles waits for it, rather than tearing LLVM down under it."""
    global _loader
    if not installed():
        return None
    with _lock:
        if _loader is None:
            _loader = threading.Thread(target=_preload_quietly, name="poisson-preload")
            _loader.start()
        return _loader


def use_compiled(backend: str) -> bool:
    """Resolve ``backend`` for the next solve (see :data:`LOAD_SECONDS` for ``"auto"``)."""
    if backend == "numpy":
        return False
    if backend == "compiled":
        if not _ready:
            loader = _loader
            if loader is not None:
                loader.join()
            if not _ready:
                preload()
        return True
    if backend != "auto":
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if not AUTO_SWITCH:
        return False
    if _ready:
        return True
    if _load_error is None and _numpy_seconds >= LOAD_SECONDS:
        preload_async()
    return False


def record_numpy(seconds: float) -> None:
    """Count time spent in numpy solves toward the ``"auto"`` switch."""
    global _numpy_seconds
    _numpy_seconds += seconds


log = logging.getLogger(__name__)

# Work arrays up to this size are kept for the next solve, per thread (~14 arrays: a box up to ~700^2 pixels, at
# most ~30 MB per thread). Larger ones are freed after the solve: their page faults are small beside the solve.
_WORK_KEEP_BYTES = 2 << 20
_local = threading.local()


def _work(name: str, size: int, dtype=np.float32) -> np.ndarray:
    """A reusable 1-D work array of at least ``size`` elements (content undefined), per thread: fresh arrays cost
    page faults, ~1 ms per solve on the 512^2 benchmark."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    a = pool.get(name)
    if a is None or a.size < size or a.dtype != dtype:
        a = _aligned(size, dtype)
        if a.nbytes <= _WORK_KEEP_BYTES:
            pool[name] = a
    return a[:size]


_pools: dict[int, concurrent.futures.ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()
if hasattr(os, "register_at_fork"):         # a forked child has none of the pools' threads: start new pools there
    os.register_at_fork(after_in_child=_pools.clear)


def _default_threads() -> int:
    return max(1, cv2.getNumThreads())


def _executor(workers: int) -> concurrent.futures.ThreadPoolExecutor:
    """A shared pool of ``workers`` threads for the channels (the kernel releases the GIL)."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="poisson")
        return pool


def _aligned(size: int, dtype) -> np.ndarray:
    """An uninitialised 1-D array starting on a 64-byte boundary (a cache line: vector loads never straddle two)."""
    itemsize = np.dtype(dtype).itemsize
    raw = np.empty(size * itemsize + 64, np.uint8)
    start = -raw.ctypes.data % 64
    return raw[start:start + size * itemsize].view(dtype)


def level_shapes(h: int, w: int) -> np.ndarray:
    """Interior shapes of every possible level of an ``h x w`` box: the even-padded box, then halving (rounding
    up) down to 1 x 1."""
    shapes = [(h + h % 2, w + w % 2)]
    while shapes[-1] != (1, 1):
        a, b = shapes[-1]
        shapes.append(((a + 1) // 2, (b + 1) // 2))
    return np.array(shapes, np.int64)


def solve(omega: np.ndarray, edges: tuple[int, int, int, int], rhs: np.ndarray | tuple[np.ndarray, np.ndarray],
          atol: float, rtol: float, max_iter: int, threads: int | None = None):
    """Solve ``A e = r0`` on the masked cells of one box by multigrid-preconditioned CG in float32, one channel per
    thread (at most ``threads``, default ``cv2.getNumThreads()``; the kernels release the GIL).

    ``omega``: ``h x w`` bool; ``edges``: whether the box's top, bottom, left and right sides lie on the image border
    (they set ``|N_p|``). ``rhs``: ``r0`` (``h x w x C``, zero off ``omega``), or ``(src, tgt)`` in normal mode
    (float32 ``h x w x C`` boxes): then ``r0`` is formed per channel (``normal_rhs``) and the source is added, so the
    result is the composite ``f = g + e`` rather than ``e``. ``atol > 0``: stop on the estimated max-norm error;
    else on the relative residual ``rtol``. Returns ``(e or f, iterations, status, last update)``: float32
    ``h x w x C``; status 1 if ``max_iter`` ran out (in some channel).
    """
    K = load()
    h, w = omega.shape
    normal = isinstance(rhs, tuple)
    C = rhs[0].shape[2] if normal else rhs.shape[2]
    dims = level_shapes(h, w)
    coff = np.zeros(len(dims) + 1, np.int64)
    np.cumsum((dims[:, 0] + 2) * (dims[:, 1] + 2), out=coff[1:])
    n_cells = int(coff[-1])
    om, diag, we, ws, d0, d2 = (_work(name, n_cells) for name in ("om", "diag", "we", "ws", "d0", "d2"))
    o8 = omega.view(np.uint8)
    L = K.build(o8, np.asarray(edges, np.int64), _DIRICHLET_BOOST, _CHEB_C0, _CHEB_C2, _COARSEST_MAX, dims, coff,
                om, diag, we, ws, d0, d2, _work("dd", int(coff[1])))
    dims, coff = dims[:L], coff[:L + 1]
    cidx = np.zeros(_COARSEST_MAX if L > 1 else int(np.count_nonzero(omega)), np.int64)
    chol = K.coarse_factor(dims, coff, om, diag, we, ws, L - 1, cidx).astype(np.float32)
    cidx = cidx[:chol.shape[0]]
    cells = (dims, coff, om, diag, we, ws, d0, d2, cidx, chol)
    out = np.empty((h, w, C), np.float32)
    jobs = [(cells, o8, tuple(a[..., c] for a in rhs) if normal else rhs[..., c], out[..., c], atol, rtol, max_iter)
            for c in range(C)]
    results = _run_jobs(jobs, min(C, threads if threads is not None else _default_threads()))
    its = max(r[0] for r in results)
    status = max(r[1] for r in results)
    upd = max(r[2] for r in results)
    return out, its, status, upd


def _run_jobs(jobs: list, workers: int) -> list:
    """Run the channel jobs on this thread and ``workers - 1`` pool threads, each taking the next job when free (the
    calling thread works too: no wake-up to wait for, and no thread idles while a job is left)."""
    if workers <= 1:
        return [_solve_channel(*job) for job in jobs]
    results = [None] * len(jobs)
    taken = iter(range(len(jobs)))
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                k = next(taken, None)
            if k is None:
                return
            results[k] = _solve_channel(*jobs[k])

    pool = _executor(workers - 1)
    helpers = [pool.submit(work) for _ in range(workers - 1)]
    try:
        work()
    finally:                                  # the helpers read this thread's level arrays: wait for them always
        for f in helpers:
            f.exception()
    for f in helpers:
        f.result()
    return results


def _solve_channel(cells: tuple, o8: np.ndarray, rhs, out: np.ndarray, atol: float, rtol: float, max_iter: int):
    """One channel (``rhs``: an ``h x w`` view of ``r0``, or the ``(src, tgt)`` views; ``out``: ``h x w`` view);
    work arrays from this thread's pool."""
    K = load()
    dims, coff = cells[0], cells[1]
    W = int(dims[0, 1]) + 2
    n0 = (int(dims[0, 0]) + 2) * W
    if isinstance(rhs, tuple):
        src, tgt = rhs
        r0 = _work("r0", src.size).reshape(src.shape)
        K.normal_rhs(o8, src, tgt, r0)
    else:
        r0 = rhs
    e = _work("e", n0)
    vec = int(coff[-1])
    X, B, R, T = (_work(name, vec) for name in ("X", "B", "R", "T"))
    tmp = _work("tmp", max(W, cells[8].size))
    p, q = _work("p", n0), _work("q", n0)
    res = K.pcg(*cells, r0, out, e, X, B, R, T, tmp, p, q, atol, rtol, max_iter)
    if isinstance(rhs, tuple):
        np.add(out, src, out=out)
    return res
