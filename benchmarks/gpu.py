"""GPU benchmark, one command: ``python benchmarks/gpu.py`` (``--dry-run``: tiny sizes on the CPU, for the tests).

Rows (random weights of the real sizes; 256 px):

* SNGAN ``resnet_256`` (ch=48, 143 classes) and BigGAN-deep 256 (ch=128, 1000 classes), class ids, in fp32, bf16
  (weights and activations in bfloat16) and compiled (bf16, channels_last, ``torch.compile``): batch-1 latency and
  batch-64 throughput in images/s and TFLOP/s. FLOPs are counted with ``torch.utils.flop_counter.FlopCounterMode``
  on one batch-1 forward of *this* implementation (convolutions, matrix products, attention), so TFLOP/s is the
  arithmetic it really does per second;
* a projection step (SNGAN 256, batch 1: forward, MSE to a target, backward to z, Adam), fp32 and bf16 autocast;
* the painter's stroke loop: one brush stroke painted on a class map (``collage_core.strokes.paint_strokes``),
  then the picture re-rendered with the new map (SNGAN 256, batch 1, bf16);
* engine overhead with tensors cached on the device: ``workflows/api/class_collage.json`` on the embedded model
  (or the tiny test generator), an identical re-run (everything cached) and a re-run after a paint-strength change.

Without a CUDA GPU it prints one line saying so and exits 0. ``--dry-run`` runs every row at tiny sizes on the CPU
(64 and 128 px layouts, 2-4 channels per width unit, batch 2 instead of 64; compiled rows are skipped: compiling on
the CPU takes minutes), so the script
itself is tested (``tests/benchmarks/test_benchmarks_gpu.py``). No figure of a dry run means anything.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEADER = "| row | model | mode | batch | ms | images/s | TFLOP/s |"


def timeit(fn: Callable[[], object], repeat: int, sync: Callable[[], None]) -> float:
    """Median seconds of ``fn`` (after two warm-up calls: a compiled function compiles on the first), synchronising
    the device around each call: benchmarks/biggan.py's ``timeit``."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from biggan import timeit as median_time

    return median_time(fn, repeat, sync, warmup=2)


def count_flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as fc:
        fn()
    return int(fc.get_total_flops())


def make_models(dry: bool, device: str) -> dict[str, torch.nn.Module]:
    from collage_core import Generator, GeneratorConfig
    from collage_core.biggan import BigGANConfig, BigGANGenerator

    torch.manual_seed(0)
    if dry:  # the smallest layouts, 2-4 channels per width unit: seconds on a busy CPU
        sn = Generator(GeneratorConfig.from_layout("resnet_64", ch=2, n_classes=8))
        bg = BigGANGenerator(BigGANConfig.preset(128, channel_width=4, num_classes=1000))
    else:
        sn = Generator(GeneratorConfig.from_layout("resnet_256", ch=48, n_classes=143))
        bg = BigGANGenerator(BigGANConfig.preset(256, channel_width=128, num_classes=1000))
    with torch.no_grad():
        for blk in sn.blocks:
            for bn in (blk.b1, blk.b2):
                bn.gammas.W.normal_(1, 0.2)
                bn.betas.W.normal_(0, 0.2)
        for p in bg.parameters():
            if p.dim() > 1:
                p.normal_(0, 0.02)
    return {"SNGAN": sn.eval().requires_grad_(False).to(device),
            "BigGAN-deep": bg.eval().requires_grad_(False).to(device)}


def generator_rows(models, device: str, dry: bool, big: int, repeat: int, sync) -> list[tuple]:
    rows = []
    modes = ["fp32", "bf16", "compiled bf16"]
    for name, G0 in models.items():
        k = G0.config.n_classes
        for mode in modes:
            if mode.startswith("compiled") and dry:
                rows.append(("generator", f"{name} {G0.resolution}", mode, "-", "skipped (dry run)", "-", "-"))
                continue
            G = G0 if mode == "fp32" else _copy(G0).to(torch.bfloat16)
            fwd = G.forward
            if mode.startswith("compiled"):
                G = G.to(memory_format=torch.channels_last)
                fwd = torch.compile(G.forward, mode="max-autotune-no-cudagraphs")
            for b in (1, big):
                z = torch.randn(b, G.config.dim_z, device=device, dtype=G.dtype)
                conds = G._conditions(torch.arange(b) % k, None, None, "bilinear", b)
                run = (lambda: fwd([z], conds)) if name.startswith("SNGAN") else (lambda: fwd([z], conds, None, 0.4))
                with torch.no_grad():
                    flops = count_flops(lambda: G.forward([z], conds) if name.startswith("SNGAN")
                                        else G.forward([z], conds, None, 0.4)) if b == 1 else flops * big  # noqa: F821
                    t = timeit(run, repeat, sync)
                rows.append(("generator", f"{name} {G.resolution}", mode, b, f"{t * 1e3:.2f}", f"{b / t:,.1f}",
                             f"{flops / t / 1e12:.3g}"))
    return rows


def _copy(G):
    import copy

    return copy.deepcopy(G)


def projection_rows(models, device: str, repeat: int, sync) -> list[tuple]:
    G = models["SNGAN"]
    rows = []
    target = torch.rand(1, 3, G.resolution, G.resolution, device=device) * 2 - 1
    conds = G._conditions([1], None, None, "bilinear", 1)
    for mode in ("fp32", "bf16 autocast"):
        z = torch.randn(1, G.config.dim_z, device=device, requires_grad=True)
        opt = torch.optim.Adam([z], lr=0.05)

        def step():
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.split(":")[0], dtype=torch.bfloat16, enabled=mode != "fp32"):
                loss = torch.nn.functional.mse_loss(G.forward([z], conds).float(), target)
            loss.backward()
            opt.step()

        t = timeit(step, repeat, sync)
        rows.append(("projection step", f"SNGAN {G.resolution}", mode, 1, f"{t * 1e3:.2f}", f"{1 / t:,.1f}", "-"))
    return rows


def stroke_rows(models, device: str, repeat: int, sync) -> list[tuple]:
    from collage_core.collage import new_class_map, synthesize_collage
    from collage_core.strokes import paint_strokes

    G = _copy(models["SNGAN"]).to(torch.bfloat16)
    z = torch.randn(1, G.config.dim_z, device=device, dtype=G.dtype)
    cm = new_class_map(G, 0)
    state = {"i": 0, "cm": cm}

    def stroke():
        i = state["i"] = state["i"] + 1
        x = 0.2 + 0.6 * ((i * 37) % 100) / 100
        s = [{"class": 1 + i % 3, "size": 0.12, "softness": 0.5, "points": [[x, 0.3], [x + 0.05, 0.5]]}]
        state["cm"] = paint_strokes(state["cm"], json.dumps(s))
        with torch.no_grad():
            synthesize_collage(G, z, class_map=state["cm"])

    t = timeit(stroke, repeat, sync)
    return [("painter stroke -> picture", f"SNGAN {G.resolution}", "bf16", 1, f"{t * 1e3:.2f}", f"{1 / t:,.1f}", "-")]


def engine_rows(device: str, repeat: int, sync) -> list[tuple]:
    import collage_nodes
    from collage_core.models import list_embedded_models

    api = json.loads((ROOT / "workflows" / "api" / "class_collage.json").read_text())
    model = "emoji-animals" if "emoji-animals" in list_embedded_models() else \
        str(ROOT / "tests" / "fixtures" / "tiny_generator.safetensors")
    out = tempfile.mkdtemp(prefix="nc-gpu-bench-")
    api["1"]["inputs"].update(model=model, device=device)
    for node in api.values():
        if "output_dir" in node["inputs"]:
            node["inputs"]["output_dir"] = out
    eng = collage_nodes.engine()
    eng.run(api).raise_for_status()
    label = "emoji-animals" if model == "emoji-animals" else "tiny test generator"
    t_cached = timeit(lambda: eng.run(api).raise_for_status(), repeat, sync)
    count = {"k": 0}

    def paint():
        count["k"] += 1
        api["8"]["inputs"]["strength"] = 1.0 - count["k"] / 1000  # a new value: never served from the cache
        eng.run(api).raise_for_status()

    t_paint = timeit(paint, repeat, sync)
    return [("engine, identical re-run (cached on device)", label, "fp32", 1, f"{t_cached * 1e3:.2f}", "-", "-"),
            ("engine, paint strength changed (3 nodes)", label, "fp32", 1, f"{t_paint * 1e3:.2f}", "-", "-")]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dry-run", action="store_true", help="tiny sizes on the CPU (tests the script, not a GPU)")
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--batch", type=int, default=64, help="the throughput batch (dry run: 2)")
    args = ap.parse_args(argv)
    if args.dry_run:
        device, big, repeat = "cpu", 2, 1
        sync = lambda: None  # noqa: E731
        print(f"gpu.py dry run on the CPU (tiny sizes, figures mean nothing): torch {torch.__version__}, "
              f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f}")
    else:
        if not torch.cuda.is_available():
            print(f"gpu.py: no CUDA GPU available (torch {torch.__version__}, CUDA build: {torch.version.cuda}): "
                  "skipped. Run with --dry-run for the CPU smoke test.")
            return 0
        device, big, repeat = "cuda", args.batch, args.repeat
        sync = torch.cuda.synchronize
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        print(f"gpu.py on {torch.cuda.get_device_name()}: torch {torch.__version__}, CUDA {torch.version.cuda}, "
              f"median of {repeat}, fp32 without TF32")
    models = make_models(args.dry_run, device)
    rows = generator_rows(models, device, args.dry_run, big, repeat, sync)
    rows += projection_rows(models, device, repeat, sync)
    rows += stroke_rows(models, device, repeat, sync)
    rows += engine_rows(device, repeat, sync)
    print()
    print(HEADER)
    print("| --- | --- | --- | ---: | ---: | ---: | ---: |")
    for r in rows:
        print("| " + " | ".join(str(x) for x in r) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
