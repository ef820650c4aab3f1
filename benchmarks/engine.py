"""Engine overhead benchmark (run by hand: ``python benchmarks/engine.py [--nodes 1000] [--repeat 7]``).

Measures, on a chain of trivial nodes, the engine's own cost per node: validation, a cold run (fresh engine),
an identical re-run (all cached), and re-runs after changing the last / the first node. The nodes' own work is
measured too (calling ``run`` directly) and subtracted, so "µs/node" is pure engine overhead. Target: cold run
< 50 µs/node.

A second table (:func:`collage_workflow_rows`) times a real collage workflow, cold and cached, on the embedded
model.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from collage_engine import Engine, Input, Int, Node, NodeRegistry, Output, validate

Row = tuple[str, str, str]  # (what, time, per node)


class Source(Node):
    inputs = [Int("value", 0)]
    outputs = [Output("value", "INT")]

    def run(self, ctx, value):
        return (value,)


class Inc(Node):
    inputs = [Input("x", "INT"), Int("amount", 1, min=-10, max=10)]
    outputs = [Output("y", "INT")]

    def run(self, ctx, x, amount):
        return (x + amount,)


class Sink(Node):
    output_node = True
    inputs = [Input("x", "INT")]
    outputs = [Output("x", "INT")]

    def run(self, ctx, x):
        return (x,)


REGISTRY = NodeRegistry([Source, Inc, Sink])


def chain(n: int) -> dict:
    """Source -> Inc x (n - 2) -> Sink, in API format."""
    api = {"1": {"class_type": "Source", "inputs": {"value": 0}}}
    for i in range(2, n):
        api[str(i)] = {"class_type": "Inc", "inputs": {"x": [str(i - 1), 0], "amount": 1}}
    api[str(n)] = {"class_type": "Sink", "inputs": {"x": [str(n - 1), 0]}}
    return api


def best(fn: Callable[[], object], repeat: int, setup: Callable[[], object] | None = None) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs (``setup`` runs untimed before each)."""
    times = []
    for _ in range(repeat):
        if setup:
            setup()
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def engine_rows(n: int, repeat: int) -> list[Row]:
    api = chain(n)
    rows: list[Row] = []

    def row(what: str, seconds: float, per_node: bool = True) -> None:
        rows.append((what, f"{seconds * 1e3:9.2f} ms", f"{seconds / n * 1e6:7.1f} µs" if per_node else ""))

    # the nodes' own work, called directly in topological order
    src, inc, sink = Source(), Inc(), Sink()

    def direct() -> None:
        v = src.run(None, 0)[0]
        for _ in range(n - 2):
            v = inc.run(None, v, 1)[0]
        sink.run(None, v)

    t_direct = best(direct, repeat)
    t_validate = best(lambda: validate(api, REGISTRY), repeat)
    holder: dict = {}
    t_cold = best(lambda: holder["e"].run(api), repeat, setup=lambda: holder.update(e=Engine(REGISTRY)))
    eng = Engine(REGISTRY)
    assert eng.run(api)[str(n)] == (n - 2,)
    t_cached = best(lambda: eng.run(api), repeat)
    flip = {"v": 0}

    def change(node: str, field: str) -> Callable[[], object]:
        def setup() -> None:
            flip["v"] = 1 - flip["v"]
            api[node]["inputs"][field] = flip["v"] + (0 if field == "value" else 1)
        return setup

    t_last = best(lambda: eng.run(api), repeat, setup=change(str(n - 1), "amount"))
    t_first = best(lambda: eng.run(api), repeat, setup=change("1", "value"))
    row("node work alone (direct calls)", t_direct)
    row("validate", t_validate)
    row("cold run (incl. validation)", t_cold)
    row("  engine overhead, cold", t_cold - t_direct)
    row("cold run minus validation", t_cold - t_validate - t_direct)
    row("identical re-run (all cached)", t_cached)
    row("re-run, last Inc changed (2 nodes)", t_last)
    row("re-run, first node changed (all)", t_first)
    return rows


def collage_workflow_rows(repeat: int) -> list[Row]:
    """A real collage workflow (``workflows/api/class_collage.json``: 10 nodes, two generated images, two PNGs) with the
    embedded model, or, while it is missing, with the tiny test generator and with a random generator of the
    embedded model's layout (resnet_64, ch=48, 21 classes). Rows: a cold run (fresh engine: model load, both
    images, PNG writing), an identical re-run (target <= 1% of cold) and re-runs after changing only the last node's
    input (the PNG saver's prefix; target <= 10% of cold) or the paint strength (3 nodes). Torch uses one thread.
    """
    import json
    import tempfile
    from pathlib import Path

    import torch

    import collage_nodes
    from collage_core import Generator, GeneratorConfig, save_generator
    from collage_core.models import list_embedded_models

    torch.set_num_threads(1)
    root = Path(__file__).resolve().parents[1]
    base = json.loads((root / "workflows" / "api" / "class_collage.json").read_text())
    tmp = Path(tempfile.mkdtemp(prefix="nc-bench-"))
    models: list[tuple[str, str]] = []
    if "emoji-animals" in list_embedded_models():
        models.append(("emoji-animals (embedded)", "emoji-animals"))
    else:
        models.append(("tiny test generator (ch=2)", str(root / "tests" / "fixtures" / "tiny_generator.safetensors")))
        torch.manual_seed(0)
        names = ["dog", "cat", "tiger", "lion", "fox", "wolf", "bear", "polar_bear", "panda", "koala", "monkey", "cow",
                 "pig", "mouse", "hamster", "rabbit", "horse", "unicorn", "frog", "raccoon", "dragon"]
        stand_in = Generator(GeneratorConfig.from_layout("resnet_64", ch=48, n_classes=21), class_names=names)
        path = save_generator(stand_in, tmp / "stand_in.safetensors")
        models.append(("random resnet_64 ch=48 (stand-in)", str(path)))
    rows: list[Row] = []
    for label, model in models:
        api = json.loads(json.dumps(base))
        api["1"]["inputs"].update(model=model, device="cpu")
        for node in api.values():
            if "output_dir" in node["inputs"]:
                node["inputs"]["output_dir"] = str(tmp / "out")
        holder: dict = {}
        t_cold = best(lambda: holder["e"].run(api).raise_for_status(), repeat,
                      setup=lambda: holder.update(e=collage_nodes.engine()))
        eng = collage_nodes.engine()
        eng.run(api).raise_for_status()
        t_cached = best(lambda: eng.run(api), repeat)
        count = {"k": 0}

        def change(node: str, field: str, value: Callable[[int], object]) -> Callable[[], object]:
            def setup() -> None:  # a new value every time: never served from the cache
                count["k"] += 1
                api[node]["inputs"][field] = value(count["k"])
            return setup

        def rerun() -> None:
            res = eng.run(api).raise_for_status()
            assert res.executed, "nothing re-ran"

        t_last = best(rerun, repeat, setup=change("10", "filename_prefix", lambda k: f"p{k}"))
        t_paint = best(rerun, repeat, setup=change("8", "strength", lambda k: 1.0 - k / 1000))

        def row(what: str, t: float) -> None:
            rows.append((f"{what}", f"{t * 1e3:9.2f} ms", f"{100 * t / t_cold:6.2f}% of cold"))

        rows.append((f"collage workflow, {label}: cold run", f"{t_cold * 1e3:9.2f} ms", ""))
        row("  identical re-run (all cached)", t_cached)
        row("  re-run, last node's input changed (1 node)", t_last)
        row("  re-run, paint strength changed (3 nodes)", t_paint)
    return rows


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    rows = engine_rows(args.nodes, args.repeat) + collage_workflow_rows(args.repeat)
    print(f"collage_engine overhead, chain of {args.nodes} trivial nodes (median of {args.repeat})\n")
    w = max(len(r[0]) for r in rows)
    print(f"| {'case':<{w}} | {'time':>12} | {'per node':>10} |")
    print(f"| {'-' * w} | {'-' * 12} | {'-' * 10} |")
    for what, t, per in rows:
        print(f"| {what:<{w}} | {t:>12} | {per:>10} |")


if __name__ == "__main__":
    main()
