"""Manifold projection speed and reconstruction quality.

Run by hand:  python benchmarks/projection.py [--threads N] [--model emoji-animals] [--skip-256] [--skip-speed]
              [--quality-steps 200] [--max-targets 18]

Table 1: projection steps per second (generator forward, discriminator features, backward to z, Adam) with 1 and
8 restarts optimised as one batch, for the embedded model and for the 256 layout of the released dog-and-cat
model (random weights: G ch=48, D ch=48, 143 classes). The original Chainer code takes 5.97 s per step for the
256 layout on this CPU (performance-anchors.md; not re-measured here).

Table 2: reconstruction quality (PSNR and discriminator-feature loss) after 0, 25, 50 and 200 steps on held-out
pictures (the OpenMoji heads kept out of the embedded model's training data): random starts (1 and 4), pixel-space
restarts (the best 4 of 64 random latents by the objective), the encoder's start E(x), and E(x) plus 3 pixel-space
restarts.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

from collage_core import (
    Discriminator,
    DiscriminatorConfig,
    Generator,
    GeneratorConfig,
    load_discriminator,
    load_generator,
)
from collage_core.encoder import load_encoder
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
    ap.add_argument("--max-targets", type=int, default=18, help="at most this many held-out pictures")
    ap.add_argument("--skip-speed", action="store_true", help="only the quality table")
    ap.add_argument("--encoder", default=None, help="encoder checkpoint (default: the model's own)")
    ap.add_argument("--starts", default="random,random4,pixel,encoder,encoder+pixel",
                    help="rows of the quality table, comma-separated (default: all): random (1 start), random4, "
                         "pixel (pixel-space restarts), encoder, encoder+pixel")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    G, D = load_generator(args.model), load_discriminator(args.model)
    print(f"torch {torch.__version__}, {args.threads} threads, CPU, float32\n")
    print("| model | restarts | steps/s | ms per step | ms per restart-step | original / ours |")
    print("| --- | --- | --- | --- | --- | --- |")
    models = [] if args.skip_speed else [(f"{args.model} ({G.resolution}px)", G, D)]
    if not args.skip_256 and not args.skip_speed:
        models.append(("256 layout, random weights", *random_256()))
    for name, g, d in models:
        for r in (1, 8):
            sps = steps_per_second(g, d, r)
            orig = f"{ORIGINAL_256_STEP_S * sps:.1f}x" if "256" in name and r == 1 else "-"
            print(f"| {name} | {r} | {sps:.2f} | {1e3 / sps:,.0f} | {1e3 / sps / r:,.0f} | {orig} |", flush=True)

    targets = held_out_targets(G, Path(args.heldout))[: args.max_targets]
    if not targets:
        print(f"\n(no held-out pictures under {args.heldout}; skipping the quality table)")
        return
    E = None
    try:
        E = load_encoder(args.encoder or args.model)
    except ValueError:
        print(f"\n({args.encoder or args.model}: no encoder, the encoder rows are skipped)")
    marks = [m for m in (25, 50, 200) if m <= args.quality_steps]
    rows_known = {"random": ("random", 1, False, 0), "random4": ("random", 4, False, 0),
                  "pixel": ("pixel-space restarts (best of 64)", 4, False, 64), "encoder": ("encoder", 1, True, 0),
                  "encoder+pixel": ("encoder + 3 pixel-space restarts", 4, True, 64)}
    wanted = [w.strip() for w in args.starts.split(",") if w.strip()]
    unknown = [w for w in wanted if w not in rows_known]
    if unknown:
        ap.error(f"--starts: unknown row(s) {unknown}; known: {', '.join(rows_known)}")
    starts = [rows_known[w] for w in wanted if E is not None or not rows_known[w][2]]
    print(f"\nReconstruction on {len(targets)} held-out OpenMoji pictures (class given), mean over pictures: "
          "PSNR in dB / discriminator-feature loss (negative cosine similarity, -1 is best) of the best candidate "
          "by the objective after N steps")
    print("| start | restarts | " + " | ".join(f"{m} steps" for m in [0, *marks]) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in [0, *marks]) + " |")
    for label, r, use_e, init in starts:
        rows: dict[int, list[tuple[float, float]]] = {m: [] for m in [0, *marks]}
        for _, k, tgt in targets:
            res = project(G, tgt, k, D, steps=max(marks), restarts=r, seed=0, record_z=True,
                          encoder=E if use_e else None, init_samples=init)
            with torch.no_grad():
                tfeat = D.feature_vector(tgt)
                at = [(0, torch.from_numpy(res.z_start))]
                at += [(m, torch.from_numpy(res.z_trajectory[m - 1])) for m in marks]
                for m, z in at:
                    x = G.synthesize(z, classes=[k] * r)
                    loss = projection_loss(x, tgt, D, tfeat)
                    best = int(loss.total.argmin())  # the candidate the objective picks
                    rows[m].append((psnr(x[best:best + 1], tgt), float(loss.feature[best])))
        cells = [f"{statistics.mean(p for p, _ in rows[m]):.2f} / {statistics.mean(f for _, f in rows[m]):.3f}"
                 for m in [0, *marks]]
        print(f"| {label} | {r} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
