"""Real images: crop a region to the model, project it (manifold projection), paste the edit back, Poisson."""

from __future__ import annotations

import os
from contextlib import contextmanager

import torch

from collage_core import load_discriminator
from collage_core.collage import ClassSpec
from collage_core.crop import CropInfo, MaskSizeError, crop_photo, paste_back
from collage_core.encoder import load_encoder
from collage_core.footprint import projection_bytes
from collage_core.images import image_to_uint8
from collage_core.poisson import poisson_composite
from collage_core.projection import ProjectionCancelled, project
from collage_engine import Combo, Float, Input, Int, Node, Output, String, file_fingerprint

from .base import (
    CATEGORY,
    CLASS_SPEC,
    CROP,
    DEVICES,
    DISCRIMINATOR,
    ENCODER,
    GENERATOR,
    IMAGE,
    LATENT_Z,
    MASK,
    InputError,
    blame,
    source_of,
)
from .model import DTYPES, resolve_device

CAT = f"{CATEGORY}/real image"


def _one_image(image: torch.Tensor, name: str) -> torch.Tensor:
    if image.dim() != 4 or image.shape[0] != 1 or image.shape[-1] not in (1, 3, 4):
        raise InputError(name, f"expected one IMAGE [1, H, W, C], got shape {tuple(image.shape)}")
    return image


def _one_mask(mask: torch.Tensor | None, name: str) -> torch.Tensor | None:
    if mask is None:
        return None
    m = mask if mask.dim() == 3 else mask[None]
    if m.dim() != 3 or m.shape[0] != 1:
        raise InputError(name, f"expected one MASK [1, H, W], got shape {tuple(mask.shape)}")
    return m[0]


def _checkpoint(model: object, kind: str) -> str | None:
    """The file a model input names for ``kind`` (an embedded model's file of that kind, or a path), or None."""
    from collage_core.models import embedded_model_path

    if not isinstance(model, str):
        return None
    found = embedded_model_path(model, kind)
    if found is not None:
        return str(found)
    return model if model and os.path.isfile(model) else None


@contextmanager
def _mask_size_hint(ctx):
    """A mask that cannot fit the photo, or an empty one: say which node made it and what to do."""
    try:
        yield
    except MaskSizeError as e:
        src = source_of(ctx, "mask")
        raise InputError("mask", str(e), f"set the width and height of {src} to {e.needed[0]} x {e.needed[1]}"
                         if src else None) from None
    except ValueError as e:
        if "the mask is empty" not in str(e):
            raise
        src = source_of(ctx, "mask")
        raise InputError("mask", f"the mask is all zeros{f' (from {src})' if src else ''}: there is no region to "
                                 "edit", "a picture without alpha gives an empty mask in Load Image: paint the "
                                         "region (in ComfyUI: right-click the image > Open in MaskEditor) or connect "
                                         "an Ellipse Mask / Rectangle Mask") from None


class LoadDiscriminator(Node):
    """Load the discriminator that manifold projection compares features with: an embedded model's (by name) or a
    checkpoint file (our .safetensors or the original's .npz)."""

    display_name = "Load Discriminator"
    category = CAT
    inputs = [
        String("model", "emoji-animals", description="An embedded model name or a discriminator checkpoint path.",
               path_kind="model"),
        Combo("device", DEVICES, default="auto", description="Where it runs."),
        Combo("dtype", DTYPES, default="float32", description="Weight precision."),
    ]
    outputs = [Output("discriminator", DISCRIMINATOR, "The discriminator, in eval mode.")]

    def validate(self, model=None, **_):
        if isinstance(model, str) and _checkpoint(model, "discriminator") is None:
            return [("model", f"{model!r} is neither a discriminator checkpoint nor an embedded model with one")]
        return None

    def fingerprint(self, model=None, **_):
        path = _checkpoint(model, "discriminator")
        return file_fingerprint(path) if path else None

    def run(self, ctx, model, device, dtype):
        with blame("device"):
            dev = resolve_device(device)
        with blame("model"):
            return (load_discriminator(model, device=dev, dtype=dtype),)


class LoadEncoder(Node):
    """Load the encoder that starts manifold projection near the answer (the paper's initialisation): picture ->
    latent and class scores. An embedded model's (by name) or a file written by `neural-collage train-encoder`."""

    display_name = "Load Encoder"
    category = CAT
    inputs = [
        String("model", "emoji-animals", description="An embedded model name or an encoder checkpoint path.",
               path_kind="model"),
        Combo("device", DEVICES, default="auto", description="Where it runs."),
    ]
    outputs = [Output("encoder", ENCODER, "The encoder, in eval mode.")]

    def validate(self, model=None, **_):
        if isinstance(model, str) and _checkpoint(model, "encoder") is None:
            return [("model", f"{model!r} is neither an encoder checkpoint nor an embedded model with one")]
        return None

    def fingerprint(self, model=None, **_):
        path = _checkpoint(model, "encoder")
        return file_fingerprint(path) if path else None

    def run(self, ctx, model, device):
        with blame("device"):
            dev = resolve_device(device)
        with blame("model"):
            return (load_encoder(model, device=dev),)


class CropToModel(Node):
    """Cut a square region out of a photo and resize it to the model's resolution: the bounding box of the mask plus
    a margin (or, without a mask, the centred square), moved to stay inside the photo."""

    display_name = "Crop to Model"
    category = CAT
    inputs = [
        Input("photo", IMAGE, description="The full photo [1, H, W, C] (any size)."),
        Input("generator", GENERATOR, description="The model (gives the resolution)."),
        Input("mask", MASK, optional=True,
              description="The region to edit, at the photo's size; its bounding box (plus margin) is cropped."),
        Float("margin", 0.25, min=0.0, max=2.0, step=0.05,
              description="Context around the mask's box, as a fraction of the box's longer side on each side."),
    ]
    outputs = [Output("image", IMAGE, "The crop at the model's resolution."),
               Output("mask", MASK, "The mask cropped the same way (ones without a mask)."),
               Output("crop", CROP, "Where the crop came from (for Paste Back).")]

    def run(self, ctx, photo, generator, mask=None, margin=0.25):
        photo = _one_image(photo, "photo")
        m = _one_mask(mask, "mask")
        with blame("mask", "margin"), _mask_size_hint(ctx):
            crop, mcrop, info = crop_photo(image_to_uint8(photo)[0], generator.resolution,
                                           None if m is None else m.cpu().numpy(), margin)
        dev = generator.device
        image = torch.from_numpy(crop).float().div(255.0)[None].to(dev)
        return image, torch.from_numpy(mcrop)[None].to(dev), info


class ProjectImage(Node):
    """Manifold projection: find the latent whose image matches a picture, as the original (negative cosine similarity
    of discriminator features + 0.2 x pixel MSE, Adam on z, lr 0.075). Several random starts (and, with class
    'auto', the top classes by discriminator score) are optimised as one batch and the best is kept."""

    display_name = "Project Image"
    category = CAT
    inputs = [
        Input("generator", GENERATOR, description="The model."),
        Input("image", IMAGE, description="The picture [1, r, r, C] at the model's resolution (Crop to Model)."),
        Input("discriminator", DISCRIMINATOR, optional=True,
              description="For the feature term; without it the projection is pixel-only."),
        Input("encoder", ENCODER, optional=True,
              description="Starts the first restart of every class at E(picture) (the paper's initialisation) and, "
                          "with class 'auto', ranks the classes; without it every start is random."),
        String("class_name", "auto",
               description="The picture's class (name or id), or 'auto' to try the top classes (by the encoder, "
                           "else by the discriminator)."),
        Int("top_k", 3, min=1, max=32, description="With class 'auto': how many top classes to try."),
        Int("steps", 200, min=1, max=5000, description="Adam steps (the original: 200)."),
        Int("restarts", 4, min=1, max=64, description="Starting points per class, optimised together."),
        Int("init_samples", 0, min=0, max=4096,
            description="Pixel-space restarts: score this many random latents per class by the loss and start the "
                        "random restarts from the best of them (0 = plain random starts)."),
        Float("lr", 0.075, min=1e-5, max=1.0, step=0.005, description="Adam step size (the original: 0.075)."),
        Float("pixel_weight", 0.2, min=0.0, max=100.0, step=0.05,
              description="Weight of the pixel MSE term (the original: 0.2)."),
        Int("patience", 0, min=0, max=5000,
            description="Stop when the loss has not improved for this many steps (0 = run all steps)."),
        Int("seed", 0, min=0, max=2 ** 63 - 1, description="Seed of the random starting points."),
        Int("narrow_after", 0, min=0, max=5000, optional=True,  # optional: saved API workflows stay valid
            description="After this many steps go on with the best candidate alone (its own trajectory, one "
                        "forward per step instead of one per candidate; 0 = all candidates to the end)."),
    ]
    outputs = [Output("z", LATENT_Z, "The best latent (1, dim_z)."),
               Output("reconstruction", IMAGE, "G(z) for that latent."),
               Output("classes", CLASS_SPEC, "The class it was projected with.")]

    def run(self, ctx, generator, image, discriminator=None, encoder=None, class_name="auto", top_k=3, steps=200,
            restarts=4, init_samples=0, lr=0.075, pixel_weight=0.2, patience=0, seed=0, narrow_after=0):
        image = _one_image(image, "image")
        r = generator.resolution
        if tuple(image.shape[1:3]) != (r, r):
            raise InputError("image", f"the picture is {image.shape[2]}x{image.shape[1]}, the model makes {r}x{r}: "
                                      f"crop it with Crop to Model first")
        target = image[..., :3].permute(0, 3, 1, 2).to(generator.device, torch.float32) * 2 - 1
        auto = class_name.strip().lower() == "auto"
        if auto and discriminator is None and encoder is None:
            raise InputError("class_name", "'auto' needs a discriminator or an encoder; connect one or name the class")
        with blame("class_name"):
            cls = None if auto else generator.class_index(class_name)
        if encoder is not None:
            with blame("encoder"):
                encoder.check_fits(generator)
        candidates = restarts * (top_k if auto else 1)  # optimised together: autograd holds all their activations
        ctx.reserve(projection_bytes(generator, discriminator, candidates),
                    f"the projection's working memory ({candidates} candidates: restarts x classes)")
        try:
            res = project(generator, target, cls, discriminator, steps=steps, lr=lr, pixel_weight=pixel_weight,
                          restarts=restarts, top_k_classes=top_k if auto else None, patience=patience or None,
                          narrow_after=narrow_after or None, seed=seed, encoder=encoder, init_samples=init_samples,
                          progress=lambda t, n, loss: ctx.progress(t, n),
                          cancel=lambda: ctx.check_cancelled() or False)
        except ProjectionCancelled as e:  # pragma: no cover - check_cancelled raises first
            raise InputError("steps", str(e)) from None
        recon = ((res.reconstruction.clamp(-1, 1) + 1) / 2).permute(0, 2, 3, 1).float()
        k = res.class_id
        return res.z, recon, ClassSpec((k,), (generator.class_names[k],))


class PasteBack(Node):
    """Put an edited crop back into the full-resolution photo, only inside the mask: scaled back to the crop's box,
    then Poisson-blended (seamless), with mixed gradients, or alpha-blended. Pixels outside the mask are untouched."""

    display_name = "Paste Back"
    category = CAT
    inputs = [
        Input("photo", IMAGE, description="The original photo [1, H, W, C]."),
        Input("edited", IMAGE, description="The edited crop at the model's resolution [1, r, r, C]."),
        Input("crop", CROP, description="From Crop to Model."),
        Input("mask", MASK, description="Where to paste, at the photo's size [1, H, W]."),
        Combo("method", ["poisson", "mixed", "alpha"], default="poisson",
              description="poisson: seamless (source gradients); mixed: keep the stronger of photo and edit "
                          "gradients; alpha: plain blend by the mask."),
        Float("feather", 0.0, min=0.0, max=64.0, step=0.5,
              description="For alpha: Gaussian softening of the mask edge, in photo pixels (inside the mask only)."),
    ]
    outputs = [Output("image", IMAGE, "The photo with the edit.")]

    def run(self, ctx, photo, edited, crop, mask, method="poisson", feather=0.0):
        photo = _one_image(photo, "photo")
        edited = _one_image(edited, "edited")
        m = _one_mask(mask, "mask")
        if not isinstance(crop, CropInfo):
            raise InputError("crop", "connect the crop output of Crop to Model")
        if method != "alpha":
            ctx.reserve(_poisson_bytes(m), "the Poisson solve's working memory")
        with blame("mask", "method", "edited"), _mask_size_hint(ctx):
            out = paste_back(image_to_uint8(photo)[0], image_to_uint8(edited)[0], crop, m.cpu().numpy(),
                             method=method, feather=feather)
        return (torch.from_numpy(out).float().div(255.0)[None].to(photo.device),)


def _poisson_bytes(mask: torch.Tensor) -> int:
    """Host bytes a Poisson composite takes at its peak, for an ``[H, W]`` or ``[1, H, W]`` mask: the pictures as
    float32 and uint8 (about 24 bytes a pixel) and the solver's arrays over the mask's bounding box (3 channels on
    every multigrid level: 300 bytes a pixel of the box measured on a 2048² picture with a large ellipse)."""
    h, w = mask.shape[-2:]
    inside = mask.reshape(-1, h, w)[0] > 0
    rows = torch.nonzero(inside.any(dim=1)).flatten()
    cols = torch.nonzero(inside.any(dim=0)).flatten()
    box = 0 if rows.numel() == 0 else int(rows[-1] - rows[0] + 3) * int(cols[-1] - cols[0] + 3)
    return int(h) * int(w) * 24 + box * 320


class PoissonComposite(Node):
    """Seamless cloning of a source image into a target of the same size inside a mask (Poisson equation with the
    target as the boundary condition). Works with masks touching the border, several regions and soft masks; pixels
    outside the mask keep the target's exact values."""

    display_name = "Poisson Composite"
    category = CAT
    inputs = [
        Input("source", IMAGE, description="Where the content comes from [1, H, W, C]."),
        Input("target", IMAGE, description="The picture it goes into [1, H, W, C] (same size)."),
        Input("mask", MASK, description="Where to clone [1, H, W] (soft masks blend by their value)."),
        Combo("mode", ["normal", "mixed"], default="normal",
              description="normal: the source's gradients; mixed: per pixel the stronger of source and target."),
    ]
    outputs = [Output("image", IMAGE, "The composite.")]

    def run(self, ctx, source, target, mask, mode="normal"):
        s, t = _one_image(source, "source"), _one_image(target, "target")
        m = _one_mask(mask, "mask")
        ctx.reserve(_poisson_bytes(m), "the Poisson solve's working memory")
        with blame("mask", "source", "mode"):
            out = poisson_composite(image_to_uint8(s)[0], image_to_uint8(t)[0], m.cpu().numpy(), mode=mode)
        return (torch.from_numpy(out).float().div(255.0)[None].to(t.device),)
