"""Where a training iteration's time goes, and which settings are fastest on this machine.

Run by hand:  python benchmarks/training.py --data data/emoji-64 [--threads N] [--iterations 6]

Table 1: one iteration of the embedded model's recipe split into its parts (the ``record_function`` labels of
``Trainer.step``: G forward for the D steps, D forward/backward, the G step, DiffAugment, optimisers, EMA),
in ms per iteration and as a fraction of the whole.

Table 2: ms per iteration and generator samples per second for precision (fp32 / bf16 autocast), memory layout
(channels_last), batch size and D steps per G step, all timed in the same run; the ratio column compares each
row's samples per second with the first row's.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

from collage_core.training.trainer import TrainConfig, Trainer

LABELS = ("augment real", "G forward (D step)", "DiffAugment", "D forward", "R1 penalty", "D backward",
          "optimiser (D)", "G forward (G step)", "D forward (G step)", "G step backward (D, G)", "optimiser (G)",
          "EMA of G")


def make_trainer(data: str, out: str, **kw) -> Trainer:
    base = dict(data=data, out=out, ch=32, dis_ch=32, n_dis=2, batch_size=32, amp="bf16", channels_last=True)
    base.update(kw)
    return Trainer(TrainConfig(**base))


def time_iterations(tr: Trainer, n: int, warmup: int = 2) -> float:
    for _ in range(warmup):
        tr.step()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        tr.step()
        times.append(time.perf_counter() - t)
    return statistics.mean(times)  # a mean, so a lazy regulariser's occasional step counts


def breakdown(tr: Trainer, n: int) -> tuple[dict[str, float], float]:
    """ms per iteration of each labelled part (profiler wall time of the labelled ranges) and the total."""
    for _ in range(2):
        tr.step()
    t = time.perf_counter()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(n):
            tr.step()
    total = (time.perf_counter() - t) / n * 1000
    parts: dict[str, float] = defaultdict(float)
    for ev in prof.events():
        if ev.name in LABELS:
            parts[ev.name] += ev.time_range.elapsed_us() / 1000 / n
    return dict(parts), total


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", required=True, help="prepared dataset folder (neural-collage data emoji-animals)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--iterations", type=int, default=6, help="timed iterations per row (mean)")
    ap.add_argument("--ch", type=int, default=32)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = tempfile.mkdtemp(prefix="nc-train-bench-")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, ch={args.ch}\n")

    tr = make_trainer(args.data, out, ch=args.ch, dis_ch=args.ch)
    parts, total = breakdown(tr, args.iterations)
    print("Table 1: one iteration (batch 32, 2 D steps, bf16 autocast, channels_last), under the profiler\n")
    print("| part | ms per iteration | share |")
    print("| --- | --- | --- |")
    for name in LABELS:
        if name in parts:
            print(f"| {name} | {parts[name]:.0f} | {parts[name] / total:.0%} |")
    rest = total - sum(parts.values())
    print(f"| other (latents, loss, logging) | {rest:.0f} | {rest / total:.0%} |")
    print(f"| **total** | {total:.0f} | 100% |\n")

    rows = [
        ("fp32", dict(amp="off", channels_last=False)),
        ("fp32, channels_last", dict(amp="off", channels_last=True)),
        ("bf16", dict(amp="bf16", channels_last=False)),
        ("bf16, channels_last", dict()),
        ("bf16, channels_last, batch 16", dict(batch_size=16)),
        ("bf16, channels_last, batch 64", dict(batch_size=64)),
        ("bf16, channels_last, 1 D step", dict(n_dis=1)),
        ("bf16, channels_last, R1 every 16 D steps", dict(r1_gamma=0.1)),
        ("bf16, channels_last, LeCam", dict(lecam=0.3)),
    ]
    print("Table 2: settings (mean of timed iterations; samples/s counts generator samples seen by the G step)\n")
    print("| setting | ms per iteration | G samples/s | vs first row |")
    print("| --- | --- | --- | --- |")
    base = None
    for label, kw in rows:
        kw = {"ch": args.ch, "dis_ch": args.ch, **kw}
        tr = make_trainer(args.data, out, **kw)
        n = args.iterations if "r1_gamma" not in kw else max(args.iterations, 16)
        s = time_iterations(tr, n)
        rate = tr.cfg.batch_size / s
        base = base or rate
        print(f"| {label} | {s * 1000:.0f} | {rate:.1f} | {rate / base:.2f}x |")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
