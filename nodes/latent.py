"""Latent vectors z: sampling, loading and saving ``.npy`` files, batching."""

from __future__ import annotations

import os

import torch

from collage_core.grid_labels import join_labels, seed_labels
from collage_core.latents import load_latent, sample_z, save_latent
from collage_engine import Estimate, Float, Input, Int, Node, NodeOutput, Output, String

from .base import (
    CATEGORY,
    GENERATOR,
    LATENT_Z,
    OUTPUT_DIR_INPUT,
    STRING,
    InputError,
    blame,
    facts_of,
    missing_file,
    next_free_name,
)

CAT = f"{CATEGORY}/latent"


class SampleZ(Node):
    """Sample a batch of latent vectors z from a standard normal. Row i uses seed + i, so any row can be reproduced
    alone; the numbers are the same on every device."""

    display_name = "Sample z"
    category = CAT
    inputs = [
        Input("generator", GENERATOR, description="Gives the size of z and the device the latents are put on."),
        Int("seed", 0, min=0, max=2 ** 64 - 1, control_after_generate=True,
            description="Random seed of the first latent (the i-th latent of the batch uses seed + i)."),
        Int("batch", 1, min=1, max=1024, description="Number of latents (rows of a grid)."),
        Float("truncation", 0.0, min=0.0, max=4.0, step=0.05,
              description="Truncation trick: entries with |z| above this threshold are redrawn (smaller values give "
                          "more typical, less varied images); 0 turns it off. The same for every model; for a "
                          "BigGAN the latents are then multiplied by its truncation psi (Load Generator), so 2 "
                          "gives the reference's psi * truncnorm(-2, 2)."),
    ]
    outputs = [Output("z", LATENT_Z, "Latents (batch, dim_z), float32, on the generator's device."),
               Output("labels", STRING, "One label per latent ('seed 11'), one per line: connect it to Image Grid's "
                                        "row_labels.")]

    def estimate(self, generator=None, batch=1, **_):
        facts = facts_of(generator)
        return None if facts is None else (Estimate((batch, facts.dim_z), 4, generator.device, info=facts), None)

    def run(self, ctx, generator, seed, batch, truncation):
        with blame("truncation"):
            z = sample_z(batch, generator.config.dim_z, seed, truncation, device=generator.device)
        psi = getattr(generator, "truncation", None)  # BigGAN: z is psi * (truncated) normal, as its reference
        return z * float(psi) if psi is not None else z, join_labels(seed_labels(seed, batch))


class LoadZ(Node):
    """Load latent vectors from a .npy file of shape (dim_z,) or (N, dim_z), such as the original's z-example_*.npy
    (read without pickle)."""

    display_name = "Load Latent z (.npy)"
    category = CAT
    inputs = [
        Input("generator", GENERATOR, description="Gives the expected size of z and the device."),
        String("path", "", file=True, description="Path of the .npy file; a changed file is read again."),
    ]
    outputs = [Output("z", LATENT_Z, "Latents (N, dim_z), float32, on the generator's device.")]

    def validate(self, path=None, **_):
        return missing_file(path, "path", "latent file")

    def run(self, ctx, generator, path):
        with blame("path"):
            z = load_latent(path, generator.config.dim_z)
        return (z.to(generator.device),)


class SaveZ(Node):
    """Save latent vectors as a float32 (N, dim_z) .npy file named PREFIX_00001.npy, PREFIX_00002.npy, ... (never
    overwriting)."""

    display_name = "Save Latent z (.npy)"
    category = CAT
    output_node = True
    inputs = [
        Input("z", LATENT_Z, description="The latents to save."),
        String("filename_prefix", "latent", description="File name prefix, may include sub-folders (e.g. 'z/dog')."),
        String(OUTPUT_DIR_INPUT, "output", description="Folder the files go to (the CLI's --out sets it)."),
    ]

    def run(self, ctx, z, filename_prefix, output_dir):
        path = next_free_name(output_dir, filename_prefix, ".npy")
        with blame(OUTPUT_DIR_INPUT):
            save_latent(z, path)
        sub = os.path.dirname(os.path.relpath(path, output_dir))
        return NodeOutput(ui={"latents": [{"filename": os.path.basename(path), "subfolder": sub,
                                           "type": "output", "path": path}]})


class ConcatZ(Node):
    """Join two batches of latents into one (z_a's rows first), e.g. to put chosen latents in the rows of a grid."""

    display_name = "Concatenate z"
    category = CAT
    inputs = [Input("z_a", LATENT_Z, description="The first latents."),
              Input("z_b", LATENT_Z, description="The latents appended after z_a (same size, moved to z_a's device).")]
    outputs = [Output("z", LATENT_Z, "All latents, z_a then z_b.")]

    def estimate(self, z_a=None, z_b=None, **_):
        if z_a is None or z_b is None:
            return None
        return (Estimate((z_a.shape[0] + z_b.shape[0], *z_a.shape[1:]), z_a.itemsize, z_a.device, info=z_a.info),)

    def run(self, ctx, z_a, z_b):
        if z_a.shape[1:] != z_b.shape[1:]:
            raise InputError("z_b", f"latents of size {z_b.shape[1]} cannot join latents of size {z_a.shape[1]}")
        return (torch.cat([z_a, z_b.to(z_a.device)], 0),)
