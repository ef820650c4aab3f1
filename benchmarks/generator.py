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
original Chainer implementation's figures measured on this CPU (../shared/reference/performance-anchors.md);
those were not re-measured here (Chainer is not installed), so treat that column as indicative.
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

# The original Chainer code on this CPU (performance-anchors.md), seconds: (layout, case, batch) -> time
ORIGINAL = {
    ("128", "ids", 1): 0.330, ("128", "ids", 8): 7.86, ("128", "scbn", 1): 0.389, ("128", "scbn", 8): 9.05,
    ("128", "blend", 1): 1.76, ("128", "blend", 8): 29.2,
    ("256", "ids", 1): 1.21, ("256", "ids", 8): 22.1, ("256", "scbn", 1): 0.93, ("256", "scbn", 8): 21.2,
    ("256", "blend", 1): 2.88, ("256", "blend", 8): 60.9,
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
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, median of {args.repeat} runs, float32, CPU\n")
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
                    orig = ORIGINAL.get((layout, case, n))
                    print(f"| {layout} | {n} | {case} | {t_ours * 1e3:,.0f} ms | {t_plain * 1e3:,.0f} ms | "
                          f"{t_plain / t_ours:.2f}x | {'-' if orig is None else f'{orig * 1e3:,.0f} ms'} | "
                          f"{'-' if orig is None else f'{orig / t_ours:.1f}x'} |", flush=True)
            summary.append((layout, n, res["scbn"] / res["ids"] - 1, res["blend"] / res["ids"],
                            res["blend-every-layer"] / res["ids"]))
    print("\n| layout | batch | sCBN overhead over class ids | two-stream blend / one stream (transplant at "
          "points 0,2,3) | (every point) |")
    print("| --- | --- | --- | --- | --- |")
    for layout, n, ovh, blend, every in summary:
        print(f"| {layout} | {n} | {ovh:+.0%} | {blend:.2f}x | {every:.2f}x |")


if __name__ == "__main__":
    main()
