"""Feature blending: transplant a reference latent's features under a mask at chosen blend points."""

from __future__ import annotations

from collage_core.collage import add_feature_blend
from collage_engine import Float, Input, Int, Node, Output

from .base import CATEGORY, FEATURE_BLEND, GENERATOR, LATENT_Z, MASK, blame

MAX_POINT = 15


class FeatureBlend(Node):
    """Transplant the features of a reference latent into the generated image under a mask, at blend points
    layer_start..layer_end (0 = the 4x4 head after l1, point b = the output of the b-th up-sampling block, at
    4 * 2^b pixels) with a strength: h = h (1 - s m) + s m h_ref. Chain several (optional input 'blend') for more
    references, masks or per-point strengths; they apply in chain order. The mask is resized to each point's
    resolution (bilinear)."""

    display_name = "Feature Blend"
    category = f"{CATEGORY}/feature"
    inputs = [
        Input("generator", GENERATOR, description="The model (gives blend points and device)."),
        Input("reference", LATENT_Z, description="Latent(s) whose features are transplanted (batch 1 or one per "
                                                 "variant)."),
        Input("mask", MASK, description="Where to transplant, [B, H, W] or [H, W] in [0, 1], any size."),
        Int("layer_start", 1, min=0, max=MAX_POINT, description="First blend point (0 = the head after l1)."),
        Int("layer_end", 1, min=-1, max=MAX_POINT, description="Last blend point, inclusive (-1 = the last)."),
        Float("strength", 1.0, min=0.0, max=1.0, step=0.01,
              description="How much of the reference's features replace the generated ones under the mask."),
        Input("blend", FEATURE_BLEND, optional=True, description="A blend to extend (chain), applied first."),
    ]
    outputs = [Output("feature_blend", FEATURE_BLEND, "The blend recipe, for Generate.")]

    def run(self, ctx, generator, reference, mask, layer_start, layer_end, strength, blend=None):
        with blame("mask", "reference", "layer_start", "layer_end", "strength", "blend"):
            return (add_feature_blend(generator, blend, reference, mask, layer_start, layer_end, strength),)
