"""benchmarks/gpu.py: skips cleanly without a GPU, and its CPU dry run prints a complete, sane table."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu.py"


def _load():
    spec = importlib.util.spec_from_file_location("bench_gpu", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _table(out: str) -> list[list[str]]:
    lines = [ln for ln in out.splitlines() if ln.startswith("| ")]
    assert lines and lines[0] == _load().HEADER, out
    return [[c.strip() for c in ln.strip("|").split("|")] for ln in lines[2:]]


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present: the script would benchmark it")
def test_without_a_gpu_it_says_so_and_exits_0():
    r = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "no CUDA GPU available" in r.stdout and "skipped" in r.stdout
    assert "| row |" not in r.stdout  # no table of made-up figures


def test_dry_run_prints_every_row(capsys):
    assert _load().main(["--dry-run"]) == 0
    rows = _table(capsys.readouterr().out)
    gen = [r for r in rows if r[0] == "generator"]
    models = sorted({r[1] for r in gen})
    assert models == ["BigGAN-deep 128", "SNGAN 64"]
    for m in models:
        for mode in ("fp32", "bf16"):
            got = {int(r[3]): r for r in gen if r[1] == m and r[2] == mode}
            assert sorted(got) == [1, 2], (m, mode, got)
            for b, r in got.items():
                ms, ips, tflops = float(r[4]), float(r[5].replace(",", "")), float(r[6])
                assert ms > 0 and tflops > 0
                assert ips == pytest.approx(b / (ms / 1e3), rel=0.02, abs=0.06)  # images/s is batch / time
        assert [r[4] for r in gen if r[1] == m and r[2] == "compiled bf16"] == ["skipped (dry run)"]
    # FLOPs grow with the batch: TFLOP/s * time is the batch's FLOP count, about twice batch 1's
    for m in models:
        f = {int(r[3]): float(r[6]) * float(r[4]) for r in gen if r[1] == m and r[2] == "fp32"}
        assert f[2] == pytest.approx(2 * f[1], rel=0.05)
    kinds = [r[0] for r in rows]
    assert kinds.count("projection step") == 2
    assert "painter stroke -> picture" in kinds
    eng = [r for r in rows if r[0].startswith("engine")]
    assert len(eng) == 2 and all(float(r[4]) > 0 for r in eng)
