"""What a user waits for, with the settings a user gets: the README's speeds, on an idle and on a busy machine.

    python benchmarks/user_speeds.py [--repeat 3] [--map-rows 16] [--strokes 12] [--skip-photo] [--load N]

Each case runs as a user runs it: ``neural-collage run`` as a fresh command (imports and model load included),
``neural-collage map`` over ``--map-rows`` seeds against a shell loop of ``run`` over the same seeds, and a painter
stroke (the Paint Class Map node's strokes changed, the engine re-runs the map and the generator, in one warm
process as in ``serve``). "busy" runs the same cases beside ``--load`` other programs: by default one PyTorch program
on torch's default threads (a training run or a second job, as on a shared machine), or with ``--load-kind python``
plain Python loops. Every case runs with the default thread policy (``auto``,
collage_core/threads.py), and the commands print the thread count they chose; ``--compare-threads 2`` adds the
same cases with that fixed count (torch's own default on a 2-core machine), to show what the policy saves.
No environment variable of ours or of OpenMP is set: unset ``OMP_NUM_THREADS`` first, as the script checks.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import re
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


def _spin(stop) -> None:
    """Plain Python work: one core, no threads."""
    while not stop.is_set():
        pass


def _torch_work(stop) -> None:
    """Another PyTorch program with torch's default threads (a training run, a second job): many small operations,
    each ending at a barrier of its OpenMP threads, as ours do."""
    import torch
    import torch.nn.functional as F

    x, w = torch.randn(8, 64, 32, 32), torch.randn(64, 64, 3, 3)
    with torch.no_grad():
        while not stop.is_set():
            x = F.conv2d(x, w, padding=1).tanh_()


def run_cmd(args: list[str], cwd: Path) -> tuple[float, str]:
    """Wall seconds of one command and the thread choice it printed."""
    t0 = time.perf_counter()
    res = subprocess.run([*_command(), *args], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{res.stderr[-2000:]}")
    m = re.search(r"with (\d+ threads? \([^)]*\))|\((Ray workers[^)]*|\d+ threads? \([^)]*\))\)", res.stderr)
    return wall, (m.group(1) or m.group(2)) if m else "?"


def workflow_case(name: str, repeat: int, tmp: Path, threads: str | None) -> tuple[list[float], str]:
    extra = ["--threads", threads] if threads else []
    times, chose = [], "?"
    for i in range(repeat):
        wall, chose = run_cmd(["run", name, "--out", str(tmp / f"{name}-{i}"), "-q", *extra], tmp)
        times.append(wall)
    return times, chose


def map_case(rows: int, tmp: Path, threads: str | None) -> tuple[float, float, str]:
    extra = ["--threads", threads] if threads else []
    wall, chose = run_cmd(["map", "class_collage", "--over", f"Latent.seed=0:{rows}", "--out", str(tmp / "map"),
                           "-q", *extra], tmp)
    shutil.rmtree(tmp / "map")
    shell = 0.0
    for i in range(rows):
        shell += run_cmd(["run", "class_collage", "--set", f"Latent.seed={i}", "--out", str(tmp / "loop"), "-q",
                          *extra], tmp)[0]
    shutil.rmtree(tmp / "loop", ignore_errors=True)
    return rows / wall, rows / shell, chose


def stroke_case(strokes: int, threads: str | None) -> tuple[list[float], str]:
    """Seconds from a changed ``strokes`` input to the new picture, in a warm engine (what serve does per stroke)."""
    import collage_nodes
    from collage_app.examples import workflows_folder
    from collage_core.threads import apply_threads, choose_threads

    choice = choose_threads(threads)
    apply_threads(choice)
    wf = json.loads((workflows_folder() / "api" / "paint_collage.json").read_text())
    paint = next(k for k, n in wf.items() if n["class_type"] == "PaintClassMap")
    wf = {k: n for k, n in wf.items() if n["class_type"] != "CollageSaveImage"}
    target = next(k for k, n in wf.items() if n["class_type"] == "Generate" and n["inputs"]["class_map"][0] == paint)
    engine = collage_nodes.engine()
    base = json.loads(wf[paint]["inputs"]["strokes"])
    res = engine.run(wf, targets=[target])
    assert res.ok, res.error
    times = []
    for i in range(strokes):
        x = 0.2 + 0.6 * i / max(1, strokes - 1)
        stroke = {**base[0], "points": [[x, 0.3], [x + 0.05, 0.5], [x, 0.7]]}
        wf[paint]["inputs"]["strokes"] = json.dumps([*base, stroke])
        t0 = time.perf_counter()
        res = engine.run(wf, targets=[target])
        times.append(time.perf_counter() - t0)
        assert res.ok, res.error
    return times, str(choice)


def _stroke_in_child(strokes: int, threads: str | None, q) -> None:
    q.put(stroke_case(strokes, threads))


def stroke_case_fresh(strokes: int, threads: str | None) -> tuple[list[float], str]:
    """The stroke case in a fresh process, so its thread choice is made under the current load."""
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=_stroke_in_child, args=(strokes, threads, q))
    p.start()
    out = q.get()
    p.join()
    return out


def fmt(times: list[float], unit: str = "s") -> str:
    if unit == "ms":
        return f"{statistics.median(times) * 1e3:.0f} ms (min {min(times) * 1e3:.0f}, max {max(times) * 1e3:.0f})"
    return f"{statistics.median(times):.2f} s (min {min(times):.2f}, max {max(times):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="runs of each workflow command (median shown)")
    ap.add_argument("--map-rows", type=int, default=16)
    ap.add_argument("--strokes", type=int, default=12)
    ap.add_argument("--skip-photo", action="store_true", help="leave out photo_edit (the longest case)")
    ap.add_argument("--load", type=int, default=1, help="processes of other work for 'busy' (default 1)")
    ap.add_argument("--load-kind", choices=["torch", "python"], default="torch",
                    help="'busy' work: another PyTorch program on torch's default threads (default), or Python "
                         "loops that each hold one core")
    ap.add_argument("--compare-threads", default=None, metavar="N", help="also run every case with --threads N")
    ap.add_argument("--only", choices=["idle", "busy"], help="one condition only")
    args = ap.parse_args()
    for var in ("OMP_NUM_THREADS", "NEURAL_COLLAGE_THREADS"):
        if os.environ.get(var):
            raise SystemExit(f"unset {var}: this script measures the defaults a user gets")
    load1 = os.getloadavg()[0]
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"1-min load average before start {load1:.2f}\n")
    policies = [None] + ([args.compare_threads] if args.compare_threads else [])
    conditions = [c for c in ("idle", "busy") if args.only in (None, c)]
    print("| machine | threads | case | what the user waits for |\n| --- | --- | --- | --- |")
    for cond in conditions:
        stop, spinners = None, []
        if cond == "busy":
            stop = mp.get_context("spawn").Event()
            work = _torch_work if args.load_kind == "torch" else _spin
            spinners = [mp.get_context("spawn").Process(target=work, args=(stop,), daemon=True)
                        for _ in range(args.load)]
            for s in spinners:
                s.start()
            time.sleep(3.0)  # started and busy
        try:
            for threads in policies:
                label = threads or "auto"
                with tempfile.TemporaryDirectory() as d:
                    tmp = Path(d)
                    times, chose = workflow_case("class_collage", args.repeat, tmp, threads)
                    print(f"| {cond} | {label}: {chose} | `run class_collage` (main job, fresh command) | "
                          f"{fmt(times)} |", flush=True)
                    if not args.skip_photo:
                        times, chose = workflow_case("photo_edit", 1, tmp, threads)
                        print(f"| {cond} | {label}: {chose} | `run photo_edit` (fresh command) | {fmt(times)} |",
                              flush=True)
                    rate, shell, chose = map_case(args.map_rows, tmp, threads)
                    print(f"| {cond} | {label}: {chose} | `map class_collage` over {args.map_rows} seeds | "
                          f"{rate:.1f} rows/s ({rate / shell:.1f}x a shell loop of `run`: {shell:.2f} rows/s) |",
                          flush=True)
                times, chose = stroke_case_fresh(args.strokes, threads)
                print(f"| {cond} | {label}: {chose} | painter stroke -> new picture (warm engine) | "
                      f"{fmt(times, 'ms')} |", flush=True)
        finally:
            if stop is not None:
                stop.set()
                for s in spinners:
                    s.join()
    what = "PyTorch program(s) on torch's default threads" if args.load_kind == "torch" else "Python loop(s)"
    print(f"\nbusy = {args.load} other {what} running beside; torch {_torch_version()}")


def _torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    main()
