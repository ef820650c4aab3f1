"""Shared helpers of the node-pack tests: the tiny random generator fixture and workflow helpers.

``tests/fixtures/tiny_generator.safetensors`` stands in for the embedded ``emoji-animals`` model (same layout
``resnet_64``, same 21 class names) until that model exists; it was written by :func:`make_tiny_generator`
(``python tests/nodes_support.py`` rewrites it).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).parent / "fixtures"
TINY = FIXTURES / "tiny_generator.safetensors"
TINY_D = FIXTURES / "tiny_discriminator.safetensors"
TINY_E = FIXTURES / "tiny_encoder.safetensors"
WORKFLOWS = ROOT / "workflows"
CLASS_NAMES = ["dog", "cat", "tiger", "lion", "fox", "wolf", "bear", "polar_bear", "panda", "koala", "monkey", "cow",
               "pig", "mouse", "hamster", "rabbit", "horse", "unicorn", "frog", "raccoon", "dragon"]


def assert_pictures_close(a, b, levels: int = 1, what: str = "pictures") -> None:
    """Two uint8 pictures (arrays or PNG paths) of the same shape that differ by at most ``levels`` grey levels.

    For pictures computed in different processes, thread counts or batch compositions: their floats may differ by a
    few ulps (CPU kernels, AVX-512 vs AVX2, OpenMP reductions), which can move a rounded pixel by one level."""
    import numpy as np
    from PIL import Image

    a, b = (np.asarray(Image.open(x)) if isinstance(x, (str, Path)) else np.asarray(x) for x in (a, b))
    assert a.shape == b.shape, f"{what}: shapes {a.shape} and {b.shape}"
    worst = int(np.abs(a.astype(np.int16) - b.astype(np.int16)).max()) if a.size else 0
    assert worst <= levels, f"{what} differ by {worst} grey levels (allowed {levels})"


def make_tiny_generator(path: Path = TINY, seed: int = 0) -> Path:
    """A random ``resnet_64`` generator with ch=2 and the embedded model's 21 classes; the per-class sCBN scales and
    shifts are random too, so that classes (and class maps) change the picture."""
    from collage_core import Generator, GeneratorConfig, save_generator

    torch.manual_seed(seed)
    G = Generator(GeneratorConfig.from_layout("resnet_64", ch=2, n_classes=21), class_names=CLASS_NAMES)
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("gammas.W"):
                p.copy_(1.0 + 0.5 * torch.randn_like(p))
            elif name.endswith("betas.W"):
                p.copy_(0.5 * torch.randn_like(p))
    return save_generator(G, path, provenance={"source": "tests/nodes_support.py", "note": "random weights"})


def make_tiny_discriminator(path: Path = TINY_D, seed: int = 0) -> Path:
    """A random ``snresnet_64`` discriminator with ch=2 and 21 classes, for the real-image nodes."""
    from collage_core import Discriminator, DiscriminatorConfig, save_discriminator

    torch.manual_seed(seed)
    D = Discriminator(DiscriminatorConfig.from_layout("snresnet_64", ch=2, n_classes=21))
    return save_discriminator(D, path, provenance={"source": "tests/nodes_support.py", "note": "random weights"})


def make_tiny_encoder(path: Path = TINY_E, seed: int = 0) -> Path:
    """A random encoder (ch=2) for the tiny generator: 64px pictures, 128-d latents, the 21 classes."""
    from collage_core.encoder import Encoder, EncoderConfig, save_encoder

    torch.manual_seed(seed)
    E = Encoder(EncoderConfig(resolution=64, dim_z=128, n_classes=21, ch=2), class_names=CLASS_NAMES)
    return save_encoder(E, path, provenance={"source": "tests/nodes_support.py", "note": "random weights"})


def api(name: str) -> dict:
    """A workflow of workflows/api/ (the API format)."""
    return json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())


def use_tiny(api: dict, out_dir: Path | None = None) -> dict:
    """Point every LoadGenerator / LoadDiscriminator / LoadEncoder at the tiny models (and every saver at
    ``out_dir``)."""
    for node in api.values():
        tiny = {"LoadGenerator": TINY, "LoadDiscriminator": TINY_D, "LoadEncoder": TINY_E}.get(node["class_type"])
        if tiny is not None:
            node["inputs"]["model"] = str(tiny)
            node["inputs"]["device"] = "cpu"
        if node["class_type"] == "ProjectImage":  # a few steps are enough to exercise the path
            node["inputs"]["steps"] = min(node["inputs"]["steps"], 3)
            node["inputs"]["restarts"] = min(node["inputs"]["restarts"], 2)
        if out_dir is not None and "output_dir" in node["inputs"]:
            node["inputs"]["output_dir"] = str(out_dir)
        path = node["inputs"].get("path")
        if isinstance(path, str) and path and not os.path.isabs(path):  # as the CLI does: next to the workflow
            node["inputs"]["path"] = os.path.normpath(WORKFLOWS / "api" / path)
    return api


if __name__ == "__main__":
    print(make_tiny_generator(), make_tiny_discriminator(), make_tiny_encoder())


_G = {}


def tiny_generator(dtype: str = "float32"):
    """The tiny generator, loaded once per dtype (eval mode, CPU)."""
    from collage_core import load_generator

    if dtype not in _G:
        _G[dtype] = load_generator(TINY, dtype=dtype)
    return _G[dtype]


def ctx(node_id: str = "1", class_type: str = "Test", prompt_id: str = "test"):
    import threading

    from collage_engine import Context

    return Context(node_id, class_type, prompt_id, None, threading.Event())


def call(class_type: str, **inputs):
    """Run one node of the pack directly (declared defaults fill missing inputs); return its output tuple."""
    import collage_nodes
    from collage_engine import MISSING

    cls = collage_nodes.registry()[class_type]
    kw = {i.name: (inputs[i.name] if i.name in inputs else (None if i.default is MISSING else i.default))
          for i in cls.inputs}
    unknown = set(inputs) - set(kw)
    assert not unknown, f"{class_type} has no inputs {unknown}"
    # run_reported: errors reported on inputs as the node declares (error_inputs), as the engine does
    out = cls().run_reported(ctx(class_type=class_type), **kw)
    return tuple(out) if isinstance(out, tuple) else (out,)
