"""Loading a generator: an embedded model by name, or a checkpoint file."""

from __future__ import annotations

import os

import torch

from collage_core import biggan_io, load_generator
from collage_core.models import embedded_model_path, list_embedded_models
from collage_engine import Combo, Estimate, Float, Node, Output, String, file_fingerprint

from .base import CATEGORY, DEVICES, GENERATOR, ModelFacts, blame

DTYPES = ["float32", "bfloat16", "float16"]


def resolve_device(name: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; ``ValueError`` for a device this machine lacks."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"{name!r} chosen but CUDA is not available on this machine (use auto or cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ValueError("'mps' chosen but Apple's MPS is not available on this machine (use auto or cpu)")
    return name


def is_model_name(value: str, kind: str = "model") -> bool:
    """True for a name that means a model without being a file path (an embedded model's name, biggan-deep-256,
    hf:owner/repo)."""
    return kind == "model" and (embedded_model_path(value) is not None or biggan_io.is_biggan_name(value))


def model_names_hint(kind: str) -> str:
    """For file errors of model inputs: the embedded models a workflow may name instead of a file."""
    return f"embedded models: {', '.join(list_embedded_models()) or 'none installed'}" if kind == "model" else ""


def model_file(model: str) -> str | None:
    """The checkpoint file an input value names (embedded model, path, or a BigGAN folder's weights), or None."""
    found = embedded_model_path(model)
    if found is not None:
        return str(found)
    if model and biggan_io.is_reference_folder(model):
        return next(str(p) for p in (os.path.join(model, w) for w in biggan_io.WEIGHTS_NAMES) if os.path.isfile(p))
    return model if model and os.path.isfile(model) else None


class LoadGenerator(Node):
    """Load a class-conditional generator: an embedded model by name or a checkpoint file (our .safetensors or the
    original Chainer .npz snapshot), or a BigGAN-deep (biggan-deep-128/256/512, a folder with config.json and
    pytorch_model.bin, or hf:owner/repo). Everything made from it (latents, class maps, images) lives on its
    device."""

    display_name = "Load Generator"
    category = f"{CATEGORY}/model"
    inputs = [
        String("model", "emoji-animals",
               description="An embedded model name (emoji-animals) or the path of a generator checkpoint (.safetensors "
                           "written by this project, or the original's .npz); a relative path is looked up next to the "
                           "workflow file, then in the working folder (in serve: in its models folder). BigGAN-deep: "
                           "biggan-deep-128, -256 or -512 (from the cache, else downloaded once), a folder with "
                           "config.json and pytorch_model.bin, or hf:owner/repo.",
               path_kind="model"),
        Combo("device", DEVICES, default="auto",
              description="Where the model runs and its results live: auto (CUDA if present, else CPU), cpu, cuda, "
                          "mps. The CLI's --device overrides it."),
        Combo("dtype", DTYPES, default="float32",
              description="Weight precision: float32 (exact), bfloat16 or float16 (faster on GPUs; images are still "
                          "returned as float32)."),
        Float("truncation", 0.4, min=0.02, max=1.0, step=0.02, optional=True,
              description="BigGAN only (SNGAN-family models ignore it): the truncation psi in (0, 1]. It selects "
                          "the BN statistics BigGAN keeps per truncation, and Sample z multiplies its latents by it, "
                          "so Sample z with truncation 2 gives the reference's psi * truncnorm(-2, 2). Smaller: more "
                          "typical pictures."),
    ]
    outputs = [Output("generator", GENERATOR, "The generator, in eval mode, on the chosen device.")]

    def validate(self, model=None, device=None, **_):
        errors = []
        if isinstance(model, str) and biggan_io.is_biggan_name(model):
            problem = biggan_io.availability_problem(model)  # on this machine, or downloadable now
            if problem:
                errors.append(("model", problem))
        elif isinstance(model, str) and model_file(model) is None:
            names = ", ".join(list_embedded_models()) or "none installed"
            errors.append(("model", f"{model!r} is neither a checkpoint file nor an embedded model "
                                    f"(embedded: {names})"))
        if isinstance(device, str):
            try:
                resolve_device(device)
            except ValueError as e:
                errors.append(("device", str(e)))
        return errors

    def fingerprint(self, model=None, **_):
        path = model_file(model) if isinstance(model, str) else None
        return file_fingerprint(path) if path else None

    def estimate(self, model=None, device="auto", dtype="float32", **_):
        facts = ModelFacts.read(model)
        if facts is None:
            return None
        path = model_file(model)
        size = os.path.getsize(path) if path else 0
        on_host = device == "cpu" or (device == "auto" and not torch.cuda.is_available())
        return (Estimate((size * (2 if dtype == "float32" else 1),), 1, "cpu" if on_host else "cuda", info=facts),)

    def run(self, ctx, model, device, dtype, truncation=0.4):
        with blame("device"):
            dev = resolve_device(device)
        with blame("model"):
            G = load_generator(model, device=dev, dtype=dtype)
        if hasattr(G, "truncation"):
            with blame("truncation"):
                if not 0.0 < float(truncation) <= 1.0:
                    raise ValueError(f"truncation must be in (0, 1], got {truncation}")
                G.truncation = float(truncation)
        return (G,)
