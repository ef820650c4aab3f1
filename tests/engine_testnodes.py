"""Trivial node classes for the engine tests (no GAN anywhere). ``CALLS`` counts executions per node id."""

from __future__ import annotations

import threading
from collections import Counter
from types import SimpleNamespace

import numpy as np

from collage_engine import Boolean, Combo, Float, Input, Int, Node, NodeOutput, NodeRegistry, Output, String

CALLS: Counter = Counter()
STARTED = threading.Event()


class MakeNumber(Node):
    """A number from a seed, scaled."""

    category = "test"
    inputs = [Int("seed", 0, min=0, max=2 ** 64 - 1, control_after_generate=True, description="any seed"),
              Float("scale", 1.0, min=0.0, max=10.0, step=0.5),
              Combo("mode", ["add", "mul"], default="add")]
    outputs = [Output("number", "NUMBER")]

    def run(self, ctx, seed, scale, mode):
        CALLS[ctx.node_id] += 1
        return (seed * scale if mode == "mul" else seed + scale,)


class AddNumbers(Node):
    category = "test"
    inputs = [Input("a", "NUMBER"), Input("b", "NUMBER", optional=True)]
    outputs = [Output("sum", "NUMBER")]

    def run(self, ctx, a, b):
        CALLS[ctx.node_id] += 1
        return (a + (b or 0),)


class Scale(Node):
    category = "test"
    inputs = [Input("x", "NUMBER"), Float("factor", 2.0, min=-100, max=100)]
    outputs = [Output("y", "NUMBER")]

    def run(self, ctx, x, factor):
        CALLS[ctx.node_id] += 1
        return x * factor


class ToInt(Node):
    category = "test"
    inputs = [Input("x", "NUMBER")]
    outputs = [Output("i", "INT")]

    def run(self, ctx, x):
        CALLS[ctx.node_id] += 1
        return (int(x),)


class ShowNumber(Node):
    category = "test"
    output_node = True
    inputs = [Input("x", "NUMBER"), String("label", "value"), Boolean("verbose", False, optional=True)]

    def run(self, ctx, x, label, verbose):
        CALLS[ctx.node_id] += 1
        return NodeOutput(ui={"value": [x], "label": [label]})


class LoadText(Node):
    category = "test"
    inputs = [String("path", "", file=True)]
    outputs = [Output("text", "STRING")]

    def run(self, ctx, path):
        CALLS[ctx.node_id] += 1
        with open(path, encoding="utf-8") as f:
            return (f.read(),)


class TextLength(Node):
    category = "test"
    output_node = True
    inputs = [Input("text", "STRING")]
    outputs = [Output("n", "NUMBER")]

    def run(self, ctx, text):
        CALLS[ctx.node_id] += 1
        return (len(text),)


class Fail(Node):
    category = "test"
    inputs = [Input("x", "NUMBER")]
    outputs = [Output("y", "NUMBER")]

    def run(self, ctx, x):
        CALLS[ctx.node_id] += 1
        raise ZeroDivisionError("boom in Fail")


class Slow(Node):
    """Loops until interrupted (or ``steps`` done), reporting progress."""

    category = "test"
    inputs = [Input("x", "NUMBER"), Int("steps", 1000, min=1)]
    outputs = [Output("y", "NUMBER")]

    def run(self, ctx, x, steps):
        CALLS[ctx.node_id] += 1
        STARTED.set()
        for _ in ctx.iterate(range(steps)):
            threading.Event().wait(0.001)
        return (x,)


class Blob(Node):
    """``size`` bytes on the host (numpy) or on a fake "cuda" device."""

    category = "test"
    inputs = [Int("size", 100, min=0), Combo("where", ["host", "device"], default="host"), Int("tag", 0)]
    outputs = [Output("blob", "BLOB")]

    def run(self, ctx, size, where, tag):
        CALLS[ctx.node_id] += 1
        return (np.zeros(size, np.uint8) if where == "host" else FakeDeviceTensor(size),)


class Hog(Node):
    """Takes ``mb`` MiB of host memory, 64 MiB at a time, every page written (never checks for an interrupt)."""

    category = "test"
    inputs = [Int("mb", 64, min=1, max=1 << 20)]
    outputs = [Output("blob", "BLOB")]

    def run(self, ctx, mb):
        held = []
        for _ in range(0, mb, 64):
            held.append(np.ones(64 << 20, np.uint8))
            threading.Event().wait(0.005)
        return (len(held),)


class Stubborn(Node):
    """Sleeps ``seconds`` without ever checking for an interrupt (as a long native call would)."""

    category = "test"
    inputs = [Float("seconds", 30.0, min=0.0, max=3600.0)]
    outputs = [Output("y", "NUMBER")]

    def run(self, ctx, seconds):
        STARTED.set()
        threading.Event().wait(seconds)
        return (seconds,)


class BlobSink(Node):
    category = "test"
    output_node = True
    inputs = [Input("blob", "BLOB")]

    def run(self, ctx, blob):
        CALLS[ctx.node_id] += 1
        return ()


class Random(Node):
    category = "test"
    always_run = True
    inputs = []
    outputs = [Output("n", "NUMBER")]

    def run(self, ctx):
        CALLS[ctx.node_id] += 1
        return (float(CALLS[ctx.node_id]),)


class Passthrough(Node):
    category = "test"
    inputs = [Input("anything", "*")]
    outputs = [Output("same", "*")]

    def run(self, ctx, anything):
        CALLS[ctx.node_id] += 1
        return (anything,)


class Checked(Node):
    category = "test"
    inputs = [Int("lo", 0), Int("hi", 1), Combo("pick", lambda: ["x", "y"])]
    outputs = [Output("n", "NUMBER")]

    def validate(self, lo, hi, **_):
        return [] if lo < hi else [f"lo ({lo}) must be smaller than hi ({hi})"]

    def run(self, ctx, lo, hi, pick):
        CALLS[ctx.node_id] += 1
        return (hi - lo,)


class RandomDraw(Node):
    category = "test"
    inputs = [Int("seed", 0, min=0, max=2 ** 64 - 1)]
    outputs = [Output("value", "NUMBER")]

    def run(self, ctx, seed):
        import torch
        CALLS[ctx.node_id] += 1
        return (float(torch.rand(1, generator=ctx.generator(seed))),)


class FakeDeviceTensor:
    """Looks like a tensor to the cache's size measurement, "living" on a CUDA device."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.device = SimpleNamespace(type="cuda")

    def element_size(self) -> int:
        return 1

    def nelement(self) -> int:
        return self.n


NODES = [MakeNumber, AddNumbers, Scale, ToInt, ShowNumber, LoadText, TextLength, Fail, Slow, Blob, BlobSink,
         Random, Passthrough, Checked, RandomDraw, Hog, Stubborn]


def make_registry() -> NodeRegistry:
    return NodeRegistry(NODES)


def make_engine():
    """An engine over the test nodes (a module-level factory: picklable, for a server's worker process)."""
    from collage_engine import Engine

    return Engine(make_registry())


def chain_workflow(n: int = 3, seed: int = 1) -> dict:
    """MakeNumber -> Scale x n -> ShowNumber, in API format (ids "1".."n+2")."""
    api: dict = {"1": {"class_type": "MakeNumber", "inputs": {"seed": seed, "scale": 1.0, "mode": "add"}}}
    for i in range(2, n + 2):
        api[str(i)] = {"class_type": "Scale", "inputs": {"x": [str(i - 1), 0], "factor": 2.0}}
    api[str(n + 2)] = {"class_type": "ShowNumber", "inputs": {"x": [str(n + 1), 0], "label": "out"}}
    return api
