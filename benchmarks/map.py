"""Batch runs: a shell loop of ``neural-collage run`` vs ``neural-collage map`` in-process vs on Ray (run by hand).

    python benchmarks/map.py [--rows 200] [--shell-rows 50] [--workers 2] [--workflow workflows/class_collage.json]

Every path is timed end to end as a command (a fresh process: imports, model load, Ray start included) on the same
seeds (``Latent.seed=0:ROWS``) of the same workflow, in the same run, with ``OMP_NUM_THREADS`` = ``--threads``
(default 1) for every process, Ray workers included. The shell loop is run over ``--shell-rows`` rows only (each
run costs a whole process) and its rate is compared. The second table splits each map's time into the start (to the
first finished row), the steady rows/s, and the engine's own seconds per row (the manifest's ``seconds``); for Ray,
"overhead per row" = workers / steady rows/s - engine seconds per row: what a row costs a worker beyond running the
workflow (Ray Data scheduling, serialisation, the manifest). Ray Data progress bars and logs are off.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _command() -> list[str]:
    exe = Path(sys.executable).with_name("neural-collage")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "collage_app.cli"]


def shell_loop(workflow: str, rows: int, out: Path, env: dict) -> float:
    """``for i in $(seq 0 ROWS-1); do neural-collage run ...; done`` - as a user would write it."""
    cmd = " ".join(_command())
    script = (f'for i in $(seq 0 {rows - 1}); do {cmd} run "{workflow}" --set Latent.seed=$i --out "{out}/seed-$i" '
              f"--device cpu -q > /dev/null 2>&1 || exit 1; done")
    t0 = time.perf_counter()
    subprocess.run(["bash", "-c", script], check=True, env=env, cwd=ROOT)
    return time.perf_counter() - t0


def map_command(workflow: str, rows: int, out: Path, env: dict, extra: list[str]) -> tuple[float, float, list[dict]]:
    """``neural-collage map`` as a command: its wall time, its start time (Unix) and its manifest."""
    start = time.time()
    t0 = time.perf_counter()
    subprocess.run([*_command(), "map", workflow, "--over", f"Latent.seed=0:{rows}", "--out", str(out),
                    "--device", "cpu", "-q", *extra], check=True, env=env, cwd=ROOT, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    recs = [json.loads(line) for line in (out / "manifest.jsonl").read_text().splitlines()]
    assert len(recs) == rows and all(r["status"] == "ok" for r in recs), "a row failed"
    return wall, start, recs


def split(start: float, recs: list[dict]) -> tuple[float, float, float]:
    """(seconds to the first finished row, steady rows/s after it, median engine seconds per row)."""
    done = sorted(r["finished_at"] for r in recs)
    steady = (len(done) - 1) / (done[-1] - done[0]) if len(done) > 1 and done[-1] > done[0] else float("nan")
    return done[0] - start, steady, statistics.median(r["seconds"] for r in recs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workflow", default="workflows/class_collage.json")
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--shell-rows", type=int, default=50, help="rows of the shell loop (each is a whole process)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every process")
    ap.add_argument("--no-ray", action="store_true")
    args = ap.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "RAY_DATA_DISABLE_PROGRESS_BARS": "1"}
    tmp = Path(tempfile.mkdtemp(prefix="map-bench-"))
    try:
        results = []  # (path, rows, wall)
        shell = shell_loop(args.workflow, args.shell_rows, tmp / "shell", env)
        results.append(("shell loop of `neural-collage run`", args.shell_rows, shell))
        wall, start, recs = map_command(args.workflow, args.rows, tmp / "inproc", env, [])
        results.append(("`neural-collage map` (in-process)", args.rows, wall))
        splits = [("in-process", 1, *split(start, recs))]
        equal = None
        if not args.no_ray:
            extra = ["--ray", "local", "--workers", str(args.workers)]
            wall, start, recs = map_command(args.workflow, args.rows, tmp / "ray", env, extra)
            results.append((f"`neural-collage map --ray local --workers {args.workers}`", args.rows, wall))
            splits.append((f"Ray, {args.workers} workers", args.workers, *split(start, recs)))
            # the PNGs' workflow text names their folder, which differs: compare the pixels
            equal = _pixels_equal(tmp / "inproc", tmp / "ray")
        shell_rate = args.shell_rows / shell
        print(f"\n{args.workflow}, {args.rows} rows (seeds; the shell loop: {args.shell_rows}), CPU, "
              f"OMP_NUM_THREADS={args.threads}, {os.cpu_count()} CPUs\n")
        print("| path | rows | wall | rows/s | vs shell loop |")
        print("| --- | --- | --- | --- | --- |")
        for name, rows, wall in results:
            print(f"| {name} | {rows} | {wall:.1f} s | {rows / wall:.2f} | {rows / wall / shell_rate:.1f}x |")
        print("\n| map | start (to the first row) | steady rows/s | engine s/row (median) | overhead per row |")
        print("| --- | --- | --- | --- | --- |")
        for name, workers, first, steady, engine_s in splits:
            over = workers / steady - engine_s
            print(f"| {name} | {first:.2f} s | {steady:.1f} | {engine_s * 1000:.1f} ms | {over * 1000:.1f} ms |")
        print(f"\nshell loop: {1000 / shell_rate:.0f} ms per row (a process each: imports, model load, one run)")
        if equal is not None:
            print("Ray pictures bit-equal to the in-process ones (pixels):", "yes" if equal else "NO")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _pixels_equal(a: Path, b: Path) -> bool:
    import numpy as np
    from PIL import Image

    pa = sorted(p.relative_to(a) for p in a.rglob("*.png"))
    return pa == sorted(p.relative_to(b) for p in b.rglob("*.png")) and all(
        np.array_equal(np.asarray(Image.open(a / p)), np.asarray(Image.open(b / p))) for p in pa)


if __name__ == "__main__":
    main()
