"""Suite-wide settings."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True, scope="session")
def _poisson_auto_stays_on_numpy():
    """``backend="auto"`` switches to the compiled Poisson solver once a process has spent 0.6 s in numpy solves,
    i.e. at a point of this suite that depends on the machine's speed. Two composites compared in one test could then
    come from different solvers (one grey level apart). The suite keeps "auto" on numpy (even after a test has loaded
    the kernels); the compiled solver is tested by name (``backend="compiled"``), and the switch itself in a fresh
    process (test_poisson_compiled.py)."""
    try:
        from collage_core import poisson_compiled
    except ImportError:             # the engine's own tests also run without torch (test_engine_without_torch.py)
        yield
        return
    saved = poisson_compiled.AUTO_SWITCH
    poisson_compiled.AUTO_SWITCH = False
    yield
    poisson_compiled.AUTO_SWITCH = saved
