"""Manifold projection speed and reconstruction quality.

Run by hand:  python benchmarks/projection.py [--threads N] [--model emoji-animals] [--skip-256] [--quality-steps 200]

Table 1: projection steps per second (generator forward, discriminator features, backward to z, Adam) with 1 and
8 restarts optimised as one batch, for the embedded model and for the 256 layout of the released dog-and-cat
model (random weights: G ch=48, D ch=48, 143 classes). The original Chainer code takes 5.97 s per step for the
256 layout on this CPU (performance-anchors.md; not re-measured here).

Table 2: reconstruction PSNR after 50/100/200 steps on held-out pictures (the OpenMoji heads kept out of the
embedded model's training data), starting from the same random latents, with 1 and 4 restarts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from collage_core import (Discriminator, DiscriminatorConfig, Generator, GeneratorConfig, load_discriminator,
                          load_generator)
from collage_core.images import from_uint8
from collage_core.projection import project, projection_loss, psnr

ROOT = Path(__file__).resolve().parents[1]
ORIGINAL_256_STEP_S = 5.97


def steps_per_second(G, D, restarts: int, steps: int = 3) -> float:
    target = torch.rand(1, 3, G.resolution, G.resolution) * 2 - 1
    project(G, target, 0, D, steps=1, restarts=restarts)  # warm-up
    times = []
    for _ in range(2):
        t = time.perf_counter()
        project(G, target, 0, D, steps=steps, restarts=restarts)
        times.append((time.perf_counter() - t) / steps)
    return 1.0 / statistics.median(times)


def random_256():
    torch.manual_seed(0)
    G = Generator(GeneratorConfig.from_layout("resnet_256", ch=48, n_classes=143)).eval().requires_grad_(False)
    D = Discriminator(DiscriminatorConfig.from_layout("snresnet_256", ch=48, n_classes=143)).eval()
    return G, D.requires_grad_(False)


def held_out_targets(G, folder: Path) -> list[tuple[str, int, torch.Tensor]]:
    from collage_core.training.dataset import load_rgb

    out = []
    for f in sorted(folder.glob("*/*.png")):
        name = f.parent.name
        if name in G.class_names:
            out.append((name, G.class_names.index(name), from_uint8(load_rgb(f, G.resolution))))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--model", default="emoji-animals")
    ap.add_argument("--heldout", default=str(ROOT / "benchmarks" / "data" / "heldout_openmoji"),
                    help="folder of <class>/<picture>.png held out of training")
    ap.add_argument("--skip-256", action="store_true")
    ap.add_argument("--quality-steps", type=int, default=200)
    ap.add_argument("--max-targets", type=int, default=6)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G, D = load_generator(args.model), load_discriminator(args.model)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU, float32\n")
    print("| model | restarts | steps/s | ms per step | ms per restart-step | original / ours |")
    print("| --- | --- | --- | --- | --- | --- |")
    models = [(f"{args.model} ({G.resolution}px)", G, D)]
    if not args.skip_256:
        models.append(("256 layout, random weights", *random_256()))
    for name, g, d in models:
        for r in (1, 8):
            sps = steps_per_second(g, d, r)
            orig = f"{ORIGINAL_256_STEP_S * sps:.1f}x" if "256" in name and r == 1 else "-"
            print(f"| {name} | {r} | {sps:.2f} | {1e3 / sps:,.0f} | {1e3 / sps / r:,.0f} | {orig} |", flush=True)

    targets = held_out_targets(G, Path(args.heldout))[: args.max_targets]
    if not targets:
        print(f"\n(no held-out pictures under {args.heldout}; skipping the PSNR table)")
        return
    marks = [m for m in (50, 100, 200) if m <= args.quality_steps]
    print(f"\nReconstruction PSNR (dB) on {len(targets)} held-out pictures, mean over pictures")
    print("| restarts | start | " + " | ".join(f"{m} steps" for m in marks) + " | pixel-only, 200 steps |")
    print("| --- | --- | " + " | ".join("---" for _ in marks) + " | --- |")
    for r in (1, 4):
        rows = {m: [] for m in [0, *marks]}
        pix = []
        for _, k, tgt in targets:
            res = project(G, tgt, k, D, steps=max(marks), restarts=r, seed=0, record_z=True)
            with torch.no_grad():
                tfeat = D.feature_vector(tgt)
                z0 = torch.randn(r, G.config.dim_z, generator=torch.Generator().manual_seed(0))
                for m, z in [(0, z0)] + [(m, torch.from_numpy(res.z_trajectory[m - 1])) for m in marks]:
                    x = G.synthesize(z, classes=[k] * r)
                    best = int(projection_loss(x, tgt, D, tfeat).total.argmin())  # pick by the objective
                    rows[m].append(psnr(x[best:best + 1], tgt))
            p = project(G, tgt, k, None, steps=max(marks), restarts=r, seed=0)
            pix.append(psnr(p.reconstruction, tgt))
        print(f"| {r} | {statistics.mean(rows[0]):.2f} | " +
              " | ".join(f"{statistics.mean(rows[m]):.2f}" for m in marks) + f" | {statistics.mean(pix):.2f} |",
              flush=True)


if __name__ == "__main__":
    sys.exit(main())
