"""Issue 25: nodes whose working memory is not an output reserve it before they allocate, so the run's memory
budget refuses them cleanly (a node error naming the node) instead of the process being killed."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from PIL import Image

import collage_nodes
from collage_core.footprint import projection_bytes
from collage_engine import Context, MemoryBudgetError
from nodes_support import TINY_D, api, tiny_generator, use_tiny

MiB = 1 << 20


def _ctx(limit: int, asked: list) -> Context:
    def reserve(nbytes, what):
        asked.append((nbytes, what))
        if nbytes > limit:
            raise MemoryBudgetError(f"{what} would take {nbytes} bytes")
    return Context("5", "Test", "p", None, threading.Event(), reserve=reserve)


def test_projection_reserves_its_candidates_working_memory():
    from collage_core import load_discriminator

    G, D = tiny_generator(), load_discriminator(TINY_D)
    one = projection_bytes(G, D, 1)
    assert one > 0 and projection_bytes(G, D, 64 * 32) == 64 * 32 * one
    node = collage_nodes.registry()["ProjectImage"]()
    r = G.resolution
    image = torch.rand(1, r, r, 3)
    asked: list = []
    with pytest.raises(MemoryBudgetError, match="2048 candidates"):
        node.run(_ctx(100 * one, asked), G, image, D, None, "auto", 32, 5000, 64)
    assert asked == [(2048 * one, asked[0][1])]
    asked.clear()
    z, recon, classes = node.run(_ctx(100 * one, asked), G, image, D, None, "auto", 2, 2, 2)
    assert asked[0][0] == 4 * one and recon.shape == (1, r, r, 3)


def test_the_projection_estimate_is_not_far_below_what_a_step_takes():
    """The per-candidate figure covers what autograd holds: one forward and backward of 8 candidates through the tiny
    models takes no more than the estimate (tensors alive at the peak, counted by the allocator's own hooks)."""
    from collage_core import load_discriminator

    G, D = tiny_generator(), load_discriminator(TINY_D)
    est = projection_bytes(G, D, 8)
    live, peak = 0, 0

    def pack(t):
        nonlocal live, peak
        live += t.numel() * t.element_size()
        peak = max(peak, live)
        return t
    z = torch.randn(8, G.config.dim_z, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        x = G.synthesize(z, classes=torch.zeros(8, dtype=torch.long))
        loss = D(x, torch.zeros(8, dtype=torch.long)).sum() + x.square().mean()
    loss.backward()
    assert 0 < peak <= est, (peak, est)


def test_load_image_reserves_the_decoding_peak_from_the_header(tmp_path):
    path = tmp_path / "big.png"
    Image.fromarray(np.zeros((3000, 4000, 4), np.uint8), "RGBA").save(path)  # 12 MP, compresses to little
    for name in ("CollageLoadImage", "CollageLoadMask"):
        cls = collage_nodes.registry()[name]
        asked: list = []
        kw = {i.name: i.default for i in cls.inputs if i.name != "path"}
        with pytest.raises(MemoryBudgetError, match="4000x3000 picture"):
            cls().run(_ctx(100 * MiB, asked), path=str(path), **kw)
        assert asked[0][0] >= 12_000_000 * 16  # at least the float32 image and mask it makes


def test_poisson_composite_reserves_its_region(tmp_path):
    cls = collage_nodes.registry()["PoissonComposite"]
    src, dst = torch.rand(1, 300, 400, 3), torch.rand(1, 300, 400, 3)
    mask = torch.zeros(1, 300, 400)
    mask[0, 100:200, 100:300] = 1
    asked: list = []
    with pytest.raises(MemoryBudgetError, match="Poisson"):
        cls().run(_ctx(MiB, asked), src, dst, mask)
    small, big = asked[0][0], None
    mask[0, 10:290, 10:390] = 1
    asked.clear()
    with pytest.raises(MemoryBudgetError):
        cls().run(_ctx(MiB, asked), src, dst, mask)
    big = asked[0][0]
    assert big > small  # the larger region asks for more
    out, = cls().run(_ctx(1 << 40, []), src, dst, mask)
    assert out.shape == (1, 300, 400, 3)


def test_the_photo_edit_workflow_runs_within_a_modest_budget(tmp_path):
    """The reservations do not get in the way of normal use: the saved real-image workflow runs within 512 MiB."""
    res = collage_nodes.engine(max_memory=512 * MiB).run(use_tiny(api("photo_edit"), tmp_path))
    assert res.ok, res.error


def test_doubling_latents_is_refused_before_anything_runs():
    """Concatenate z says how big its output is: 14 doublings of a batch of 1024 are refused at validation, at the
    ConcatZ that passes the budget, with nothing run."""
    wf = use_tiny(api("class_collage"))
    wf["2"]["inputs"]["batch"] = 1024
    prev = ["2", 0]
    for i in range(14):
        wf[str(30 + i)] = {"class_type": "ConcatZ", "inputs": {"z_a": prev, "z_b": prev}}
        prev = [str(30 + i), 0]
    wf["9"]["inputs"]["z"] = prev
    engine = collage_nodes.engine(max_memory=256 * MiB)
    res = engine.run(wf)
    assert res.status == "invalid" and res.executed == []
    (nid, entry), = res.errors["node_errors"].items()
    assert entry["class_type"] == "ConcatZ" and "memory budget" in json.dumps(entry)
