"""photo_edit against the main job, as fresh commands, and the projection's reconstruction before/after.

    python benchmarks/photo_edit.py [--repeat 3] [--skip-speed] [--skip-quality] [--no-before] [--max-targets 18]
                                    [--rows before,after]

Speed: ``--repeat`` rounds, each running ``neural-collage run workflows/class_collage.json`` (the main job),
``neural-collage run workflows/photo_edit.json`` (default settings, as shipped) and, unless ``--no-before``, the
same photo_edit with the projection settings it shipped with before (``BEFORE``, set with ``--set``) — fresh
commands one after the other, so the three see the same machine load; medians over the rounds, the load average
before each command and the thread count each chose (default thread policy, ``auto``). The start-up (imports,
model loads, the rest of the graph) is measured the same way with ``--set Project.steps=1``.

Quality: the projection of the 18 held-out OpenMoji heads (``benchmarks/data/heldout_openmoji``, kept out of the
embedded model's training data) with the Project node's settings of ``workflows/api/photo_edit.json`` against
``BEFORE``, the head's class given (the workflow names its class too), the embedded encoder and discriminator:
mean PSNR (dB) and discriminator-feature loss (negative cosine similarity of D's feature vectors, -1 is best) of
the projection's result, the steps it ran and its time in this process.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))

# The Project node's settings in workflows/photo_edit.json before issue 27 (the original's 200 steps, 4 starts).
BEFORE = {"steps": 200, "restarts": 4, "init_samples": 0, "lr": 0.075, "pixel_weight": 0.2, "patience": 0,
          "seed": 0, "narrow_after": 0}
PROJECT_KEYS = tuple(BEFORE)


def _command() -> list[str]:
    exe = Path(sys.executable).with_name("neural-collage")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "collage_app.cli"]


def run_cmd(args: list[str], cwd: Path) -> tuple[float, str, float]:
    """Wall seconds of one fresh command, the thread count it chose, and the 1-minute load average before it."""
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = subprocess.run([*_command(), *args], cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if res.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{res.stderr[-2000:]}")
    m = re.search(r"with (\d+ threads?)", res.stderr)
    return wall, m.group(1) if m else "?", load


def workflow_settings() -> dict:
    wf = json.loads((ROOT / "workflows" / "api" / "photo_edit.json").read_text())
    (node,) = [n for n in wf.values() if n["class_type"] == "ProjectImage"]
    return {k: node["inputs"][k] for k in PROJECT_KEYS if k in node["inputs"]}


def speed(repeat: int, before: bool) -> None:
    sets = [f"--set=Project.{k}={v}" for k, v in BEFORE.items() if k in workflow_settings()]
    cases = [("main job (class_collage)", ["run", str(ROOT / "workflows" / "class_collage.json")]),
             ("photo_edit (defaults)", ["run", str(ROOT / "workflows" / "photo_edit.json")]),
             ("photo_edit start-up only (steps=1)", ["run", str(ROOT / "workflows" / "photo_edit.json"),
                                                     "--set=Project.steps=1"])]
    if before:
        cases.append(("photo_edit, settings before", ["run", str(ROOT / "workflows" / "photo_edit.json"), *sets]))
    walls: dict[str, list[float]] = {c: [] for c, _ in cases}
    loads: dict[str, list[float]] = {c: [] for c, _ in cases}
    threads: dict[str, set[str]] = {c: set() for c, _ in cases}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            for name, args in cases:  # interleaved: every round runs every case once, in the same order
                wall, th, load = run_cmd([*args, "--out", str(Path(tmp) / str(i)), "-q"], Path(tmp))
                walls[name].append(wall)
                loads[name].append(load)
                threads[name].add(th)
                print(f"  round {i + 1}: {name}: {wall:.2f} s ({th}, load {load:.2f})", flush=True)
    main_s = statistics.median(walls[cases[0][0]])
    print(f"\nFresh commands, {repeat} interleaved rounds, medians; {os.cpu_count()} CPUs, default thread policy\n")
    print("| command | wall (median) | runs | / main job | threads chosen | load avg before (median) |")
    print("| --- | ---: | --- | ---: | --- | ---: |")
    for name, _ in cases:
        med = statistics.median(walls[name])
        runs = ", ".join(f"{w:.1f}" for w in walls[name])
        print(f"| {name} | {med:.2f} s | {runs} | {med / main_s:.2f}x | {', '.join(sorted(threads[name]))} | "
              f"{statistics.median(loads[name]):.2f} |")


def quality(max_targets: int, threads: int, which: list[str]) -> None:
    from projection import held_out_targets

    from collage_core import load_discriminator, load_generator
    from collage_core.encoder import load_encoder
    from collage_core.projection import project, psnr

    torch.set_num_threads(threads)
    G, D, E = load_generator("emoji-animals"), load_discriminator("emoji-animals"), load_encoder("emoji-animals")
    targets = held_out_targets(G, ROOT / "benchmarks" / "data" / "heldout_openmoji")[:max_targets]
    after = workflow_settings()
    rows = {}
    for label, s in (("before", BEFORE), ("after (workflow defaults)", after)):
        if label.split()[0] not in which:
            continue
        kw = dict(s)
        kw["patience"] = kw.get("patience") or None
        kw["narrow_after"] = kw.get("narrow_after") or None
        out = []
        for _, k, tgt in targets:
            t0 = time.perf_counter()
            r = project(G, tgt, k, D, encoder=E, **kw)
            out.append((psnr(r.reconstruction, tgt), r.feature_loss, r.steps, time.perf_counter() - t0))
        rows[label] = (s, out)
    print(f"\nReconstruction of {len(targets)} held-out OpenMoji heads (class given, encoder start), "
          f"{threads} thread(s), load avg {os.getloadavg()[0]:.2f} at the end\n")
    print("| settings | PSNR (dB, mean) | D-feature loss (mean, -1 best) | steps (mean) | s per head (mean) |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, (s, out) in rows.items():
        desc = ", ".join(f"{k} {v}" for k, v in s.items() if k != "seed")
        print(f"| {label}: {desc} | {statistics.mean(o[0] for o in out):.2f} | "
              f"{statistics.mean(o[1] for o in out):.3f} | {statistics.mean(o[2] for o in out):.0f} | "
              f"{statistics.mean(o[3] for o in out):.2f} |")
    if len(rows) < 2:
        return
    b, a = rows["before"][1], rows["after (workflow defaults)"][1]
    better_p = sum(x[0] >= y[0] - 1e-3 for x, y in zip(a, b))
    better_f = sum(x[1] <= y[1] + 1e-4 for x, y in zip(a, b))
    print(f"\nafter >= before on {better_p}/{len(a)} heads in PSNR, on {better_f}/{len(a)} in D-feature loss")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-speed", action="store_true")
    ap.add_argument("--skip-quality", action="store_true")
    ap.add_argument("--no-before", action="store_true", help="speed: skip photo_edit with the settings before")
    ap.add_argument("--max-targets", type=int, default=18)
    ap.add_argument("--rows", default="before,after", help="quality rows to compute (one each per process, to "
                    "run them side by side)")
    ap.add_argument("--threads", type=int, default=1, help="quality part: torch threads (results barely depend on it)")
    args = ap.parse_args()
    if "OMP_NUM_THREADS" in os.environ or "NEURAL_COLLAGE_THREADS" in os.environ:
        print("note: OMP_NUM_THREADS / NEURAL_COLLAGE_THREADS is set; the commands use it instead of the auto policy")
    print(f"torch {torch.__version__}; load avg at start {os.getloadavg()}; settings now: {workflow_settings()}")
    if not args.skip_speed:
        speed(args.repeat, not args.no_before)
    if not args.skip_quality:
        quality(args.max_targets, args.threads, args.rows.split(","))


if __name__ == "__main__":
    sys.exit(main())
