"""Generator latency on this machine: class ids, a two-class sCBN map, two-stream feature blending.

sCBN cases: "scbn" passes the two-class map as a compact ``ClassMap`` (what the nodes use) at full resolution,
resized per layer; "scbn-dense-input" passes the original per-layer layout (N, H, W, n_classes) over all classes,
which has to be scanned for the classes in use. The plain baseline always uses the dense maps.
Blending cases: "blend" is the feature-blending demo's deep transplant (reference mixed in at blend points
0, 2 and 3); "blend-every-layer" mixes the reference in at every point, so both input streams run to the end.

Run by hand:  python benchmarks/generator.py [--threads N] [--repeat R] [--layouts 128,256] [--batches 1,8]

Models have random weights of the real sizes: the 128 layout of the ImageNet SNGAN (ch=64, 1000 classes) and
the 256 layout of the released dog-and-cat model (ch=48, 143 classes). Every case is timed for this project's
generator and, in the same run, for a plain PyTorch restatement (``benchmarks/plain_generator.py``: literal
up-sampling, dense one-hot sCBN, every stream through every block). The table also gives the ratio against the
original Chainer implementation's figures measured on this CPU (../shared/reference/performance-anchors.md, the
December 2026 re-measurement where it exists, each labelled with its date); those were not re-measured here
(Chainer is not installed), so treat that column as indicative. The original blends at every layer: its blend
figure is compared with "blend-every-layer" only.

``--bf16`` adds a table: class ids in float32 against bfloat16 (weights cast, and float32 weights under CPU
autocast), timed interleaved in the same run, with how far the 0..255 pictures move (max and mean grey levels).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from plain_generator import PlainGenerator  # noqa: E402

from collage_core import Generator, GeneratorConfig  # noqa: E402
from collage_core.maps import transplant_blends  # noqa: E402

# The original Chainer code on this CPU (../shared/reference/performance-anchors.md), seconds, with the date of
# its measurement: (layout, case, batch) -> (seconds, when). "Dec 2026": re-measured in one run, 2 threads, the
# original rebuilt beside this project (the newer figures, used wherever they exist); "Nov 2026": the first anchors.
# The original blends at *every* layer, so its blend figure is paired with our "blend-every-layer" case only.
ORIGINAL = {
    ("128", "ids", 1): (0.346, "Dec 2026"), ("128", "scbn", 1): (0.485, "Dec 2026"),
    ("128", "blend-every-layer", 1): (1.683, "Dec 2026"), ("128", "ids", 8): (6.564, "Dec 2026"),
    ("128", "scbn", 8): (9.05, "Nov 2026"), ("128", "blend-every-layer", 8): (29.2, "Nov 2026"),
    ("256", "ids", 1): (1.195, "Dec 2026"), ("256", "scbn", 1): (0.931, "Dec 2026"),
    ("256", "blend-every-layer", 1): (3.038, "Dec 2026"),
    ("256", "ids", 8): (22.1, "Nov 2026"), ("256", "scbn", 8): (21.2, "Nov 2026"),
    ("256", "blend-every-layer", 8): (60.9, "Nov 2026"),
}
LAYOUTS = {"128": ("resnet", 64, 1000), "256": ("resnet_256", 48, 143)}


def timeit(fn, repeat: int) -> float:
    fn()  # warm-up (allocations, oneDNN kernels)
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_model(layout: str) -> Generator:
    name, ch, k = LAYOUTS[layout]
    torch.manual_seed(0)
    G = Generator(GeneratorConfig.from_layout(name, ch=ch, n_classes=k))
    with torch.no_grad():
        for blk in G.blocks:
            for bn in (blk.b1, blk.b2):
                bn.gammas.W.normal_(1, 0.2)
                bn.betas.W.normal_(0, 0.2)
    return G.eval().requires_grad_(False)


def cases(G: Generator, n: int):
    cfg = G.config
    R, K = cfg.resolution, cfg.n_classes
    z = torch.randn(n, cfg.dim_z)
    ids = torch.arange(n) % K
    # a two-class map: left half class 1, right half class 3 (dense, original layout, at every layer)
    dense = []
    for s in cfg.map_sizes:
        m = torch.zeros(n, s, s, K)
        m[:, :, : s // 2, 1] = 1
        m[:, :, s // 2:, 3] = 1
        dense.append(m)
    from collage_core.maps import ClassMap
    half = torch.zeros(n, 2, R, R)
    half[:, 0, :, : R // 2] = 1
    half[:, 1, :, R // 2:] = 1
    compact = ClassMap(half, (1, 3))
    mask = torch.zeros(R, R)
    mask[R // 4: 3 * R // 4, R // 4: 3 * R // 4] = 1
    # the demo's deep transplant: head mixes source and reference, two later points mix in the reference
    blends = transplant_blends(mask.numpy(), {0: 1.0, 2: 0.5, 3: 1.0}, cfg.blend_sizes)
    full = [torch.from_numpy(b).expand(n, -1, -1, -1) if b is not None else
            torch.tensor([0.0, 0.0, 1.0]).expand(n, s, s, 3) for b, s in zip(blends, cfg.blend_sizes)]
    every = transplant_blends(mask.numpy(), {b: 1.0 for b in range(cfg.n_blend_layers)}, cfg.blend_sizes)
    zs = [z, torch.randn(n, cfg.dim_z)]
    plain = PlainGenerator(G)
    return {
        "ids": (lambda: G.synthesize(z, classes=ids), lambda: plain(z, ids)),
        "scbn": (lambda: G.synthesize(z, class_maps=compact), lambda: plain(z, dense)),
        "scbn-dense-input": (lambda: G.synthesize(z, class_maps=dense), lambda: plain(z, dense)),
        "blend": (lambda: G.synthesize(zs=zs, classes=ids, blends=blends), lambda: plain(None, ids, zs, full)),
        "blend-every-layer": (lambda: G.synthesize(zs=zs, classes=ids, blends=every),
                              lambda: plain(None, ids, zs, [torch.from_numpy(b).expand(n, -1, -1, -1) for b in every])),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--layouts", default="128,256")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--bf16", action="store_true", help="also compare bfloat16 with float32 (speed, grey levels)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    import os
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeat} runs, float32, CPU, "
          f"load {os.getloadavg()[0]:.2f} at the start\n")
    print("| layout | batch | case | ours | plain PyTorch | plain / ours | original (anchor) | original / ours |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    summary = []
    for layout in args.layouts.split(","):
        G = make_model(layout)
        for n in (int(b) for b in args.batches.split(",")):
            res = {}
            with torch.no_grad():
                for case, (ours, plain) in cases(G, n).items():
                    t_ours, t_plain = timeit(ours, args.repeat), timeit(plain, args.repeat)
                    res[case] = t_ours
                    orig, when = ORIGINAL.get((layout, case, n), (None, ""))
                    print(f"| {layout} | {n} | {case} | {t_ours * 1e3:,.0f} ms | {t_plain * 1e3:,.0f} ms | "
                          f"{t_plain / t_ours:.2f}x | {'-' if orig is None else f'{orig * 1e3:,.0f} ms ({when})'} | "
                          f"{'-' if orig is None else f'{orig / t_ours:.1f}x'} |", flush=True)
            summary.append((layout, n, res["scbn"] / res["ids"] - 1, res["blend"] / res["ids"],
                            res["blend-every-layer"] / res["ids"]))
    print("\n| layout | batch | sCBN overhead over class ids | two-stream blend / one stream (transplant at "
          "points 0,2,3) | (every point) |")
    print("| --- | --- | --- | --- | --- |")
    for layout, n, ovh, blend, every in summary:
        print(f"| {layout} | {n} | {ovh:+.0%} | {blend:.2f}x | {every:.2f}x |")
    if args.bf16:
        bf16_table(args)


def bf16_table(args) -> None:
    """Class ids: float32 against bfloat16 weights and against float32 weights under bf16 autocast, interleaved."""
    import copy

    print("\n| layout | batch | float32 | bf16 weights | speed-up | grey levels max / mean | fp32 weights + autocast "
          "| speed-up | grey levels max / mean |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for layout in args.layouts.split(","):
        G = make_model(layout)
        Gb = copy.deepcopy(G).to(torch.bfloat16)
        for n in (int(b) for b in args.batches.split(",")):
            torch.manual_seed(5)
            z = torch.randn(n, G.config.dim_z)
            ids = torch.arange(n) % G.config.n_classes
            fns = {"fp32": lambda: G.synthesize(z, classes=ids),
                   "bf16": lambda: Gb.synthesize(z, classes=ids).float()}

            def auto():
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    return G.synthesize(z, classes=ids).float()
            fns["autocast"] = auto
            times = {k: [] for k in fns}
            with torch.no_grad():
                outs = {k: f() for k, f in fns.items()}  # warm-up and the pictures
                for _ in range(args.repeat):
                    for k, f in fns.items():
                        t = time.perf_counter()
                        f()
                        times[k].append(time.perf_counter() - t)
            med = {k: statistics.median(v) for k, v in times.items()}

            def grey(k):
                to8 = lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round()  # noqa: E731
                d = (to8(outs[k]) - to8(outs["fp32"])).abs()
                return f"{d.max().item():.0f} / {d.mean().item():.2f}"
            print(f"| {layout} | {n} | {med['fp32'] * 1e3:,.0f} ms | {med['bf16'] * 1e3:,.0f} ms | "
                  f"{med['fp32'] / med['bf16']:.2f}x | {grey('bf16')} | {med['autocast'] * 1e3:,.0f} ms | "
                  f"{med['fp32'] / med['autocast']:.2f}x | {grey('autocast')} |", flush=True)


if __name__ == "__main__":
    main()
