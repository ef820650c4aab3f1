"""Generate: render latents with a class or a class map (sCBN), optionally with feature blending."""

from __future__ import annotations

from collage_core.collage import COMBINE_MODES, synthesize_collage
from collage_core.images import to_image
from collage_engine import Combo, Estimate, Input, Node, Output

from .base import (
    CATEGORY,
    CLASS_MAP,
    CLASS_SPEC,
    FEATURE_BLEND,
    GENERATOR,
    IMAGE,
    LATENT_Z,
    InputError,
    blame,
    facts_of,
)

COMBINE = list(COMBINE_MODES)


class Generate(Node):
    """Render images from latents with a class (Class Select) or an sCBN class map (Class Map / Paint Class / sweeps),
    optionally with feature blending. combine = pairwise: latent i with variant i (a batch of 1 repeats);
    grid: every latent with every variant, one row per latent (feed Image Grid with columns = variants)."""

    display_name = "Generate"
    category = f"{CATEGORY}/generate"
    inputs = [
        Input("generator", GENERATOR, description="The model."),
        Input("z", LATENT_Z, description="Latents (N, dim_z)."),
        Input("classes", CLASS_SPEC, optional=True, description="A class for every pixel (give this or class_map)."),
        Input("class_map", CLASS_MAP, optional=True, description="An sCBN class map (give this or classes)."),
        Input("feature_blend", FEATURE_BLEND, optional=True, description="Feature transplants to apply."),
        Combo("combine", COMBINE, default="pairwise",
              description="pairwise: latent i with variant i; grid: every latent with every variant (rows = "
                          "latents, columns = variants)."),
    ]
    outputs = [Output("images", IMAGE, "Images (N, H, W, 3) float32 in [0, 1], on the generator's device.")]

    def estimate(self, generator=None, z=None, classes=None, class_map=None, combine="pairwise", **_):
        facts, spec = facts_of(generator), class_map if class_map is not None else classes
        if facts is None or z is None or spec is None:
            return None
        n, v = z.shape[0], spec.shape[0]
        rows = n * v if combine == "grid" else max(n, v)
        return (Estimate((rows, facts.resolution, facts.resolution, 3), 4, z.device),)

    def run(self, ctx, generator, z, classes=None, class_map=None, feature_blend=None, combine="pairwise"):
        if (classes is None) == (class_map is None):
            raise InputError("classes", "connect exactly one of 'classes' and 'class_map'")
        with blame("z", "classes", "class_map", "feature_blend", "combine"):
            x = synthesize_collage(generator, z, classes=classes, class_map=class_map, feature_blend=feature_blend,
                                   combine=combine, progress=ctx.progress)
        return (to_image(x),)
