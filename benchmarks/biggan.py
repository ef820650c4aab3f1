"""BigGAN-deep 256 latency: this project's generator against the reference package, in the same run.

Run by hand:  python benchmarks/biggan.py [--threads N] [--repeat R] [--batches 1,8] [--gpu]

The model is the ``biggan-deep-256`` layout at its real size (channel width 128, 1000 classes, 55.9 M parameters)
with random weights (no real weights are needed to time it): the reference ``pytorch_pretrained_biggan.BigGAN``
is built, and ours is converted from its state dict exactly as a downloaded folder would be. Cases:

* ``ref ids`` - the reference, one-hot class vectors (the only thing it can do);
* ``ids`` - ours, class ids;
* ``scbn`` - ours, a two-class sCBN map (left half one class, right half another), every sCBN layer;
* ``blend`` - ours, two streams: a reference latent transplanted into the top half at blend point 2 (8x8).

Targets (issue 16): ours >= 1.3x the reference at batch 1 on CPU, sCBN <= 25 % over class ids, the 2-stream
blend <= 2.2x one stream. ``--gpu`` adds rows on CUDA in bfloat16 at batch 1 and 64 (ours only; where present).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from collage_core.biggan import BigGANGenerator
from collage_core.biggan_io import convert_reference_state
from collage_core.checkpoints import load_state


def timeit(fn, repeat: int, sync=lambda: None, warmup: int = 1) -> float:
    """Median seconds of ``fn`` over ``repeat`` calls after ``warmup`` calls, synchronising the device around each
    (benchmarks/gpu.py uses it too)."""
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_models():
    from pytorch_pretrained_biggan import BigGAN
    from pytorch_pretrained_biggan import BigGANConfig as RefConfig

    from collage_core.biggan import PRESET_LAYERS, BigGANConfig

    torch.manual_seed(0)
    ref = BigGAN(RefConfig(output_dim=256, layers=[list(x) for x in PRESET_LAYERS[256]]))
    with torch.no_grad():
        for name, buf in ref.named_buffers():
            if name.endswith("running_vars"):
                buf.uniform_(0.5, 1.5)
            elif name.endswith("running_means"):
                buf.normal_(0, 0.1)
        ref.generator.bn.weight.fill_(1.0)
        ref.generator.bn.bias.zero_()
        ref.train()  # power iterations, so that spectral norm divides by the top singular values (finite pictures)
        for _ in range(3):
            ref(0.4 * torch.randn(1, 128), torch.eye(1000)[:1], 0.4)
    ref.eval().requires_grad_(False)
    cfg = BigGANConfig.preset(256)
    ours = BigGANGenerator(cfg)
    load_state(ours, convert_reference_state(ref.state_dict(), cfg), "reference")
    return ref, ours.eval().requires_grad_(False)


def cases(ref, G: BigGANGenerator, batch: int, device="cpu", with_ref=True):
    torch.manual_seed(1)
    z = (0.4 * torch.randn(batch, 128)).to(device, G.dtype)
    ids = torch.arange(batch, device=device) * 7 % 1000
    onehot = torch.eye(1000, device=device)[ids]
    from collage_core.maps import ClassMap
    w = torch.zeros(1, 2, 256, 256, device=device)
    w[:, 0, :, :128] = 1
    w[:, 1, :, 128:] = 1
    cmap = ClassMap(w, (207, 281))
    ref_z = torch.randn(batch, 128).to(device, G.dtype) * 0.4
    bw = torch.zeros(1, 8, 8, 3, device=device)
    bw[:, :4, :, 1] = 1
    bw[:, 4:, :, 2] = 1
    out = {}
    if with_ref:
        out["ref ids"] = lambda: ref(z, onehot, 0.4)
    out["ids"] = lambda: G.synthesize(z, classes=ids, truncation=0.4)
    out["scbn"] = lambda: G.synthesize(z, class_maps=cmap, truncation=0.4)
    out["blend"] = lambda: G.synthesize(zs=[z, ref_z], classes=ids, blends={2: bw}, truncation=0.4)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: leave as is)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--gpu", action="store_true", help="also time ours on CUDA in bfloat16 at batch 1 and 64")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    ref, G = make_models()
    print(f"BigGAN-deep 256, random weights, {sum(p.numel() for p in G.parameters()) / 1e6:.1f} M parameters, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    rows = []
    with torch.no_grad():
        for b in [int(x) for x in args.batches.split(",")]:
            t = {name: timeit(fn, args.repeat) for name, fn in cases(ref, G, b).items()}
            rows.append(("cpu fp32", b, t))
        if args.gpu and torch.cuda.is_available():
            Gc = G.to("cuda", torch.bfloat16)
            for b in (1, 64):
                t = {name: timeit(fn, args.repeat, torch.cuda.synchronize)
                     for name, fn in cases(None, Gc, b, "cuda", with_ref=False).items()}
                rows.append(("cuda bf16", b, t))
    print("\n| device | batch | reference ids | ours ids | speed-up | ours sCBN (2 classes) | sCBN / ids "
          "| ours 2-stream blend | blend / ids |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for dev, b, t in rows:
        r = t.get("ref ids")
        ms = lambda s: f"{1000 * s:.0f} ms" if s is not None else "-"  # noqa: E731
        up = f"{r / t['ids']:.2f}x" if r else "-"
        print(f"| {dev} | {b} | {ms(r)} | {ms(t['ids'])} | {up} | {ms(t['scbn'])} | "
              f"{t['scbn'] / t['ids']:.2f}x | {ms(t['blend'])} | {t['blend'] / t['ids']:.2f}x |")


if __name__ == "__main__":
    main()
