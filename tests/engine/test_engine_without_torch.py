"""The engine knows nothing about GANs: it imports, and its tests pass, with torch made unimportable."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
BLOCK = "import sys; sys.modules['torch'] = None; "


def test_engine_imports_without_torch():
    code = BLOCK + "import collage_engine; print(sorted(collage_engine.__all__)[:1])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr


@pytest.mark.slow
def test_engine_tests_pass_without_torch():
    code = BLOCK + ("import pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', "
                    f"'--ignore={Path(__file__).resolve()}', '{HERE}']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                         cwd=HERE.parents[1])
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert " passed" in out.stdout and "failed" not in out.stdout
