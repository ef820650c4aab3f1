"""Masks: from files, parametric shapes (fractions of the picture), feathering, invert, combine, threshold."""

from __future__ import annotations

from collage_core import masks
from collage_core.images import load_image
from collage_engine import Boolean, Combo, Estimate, Float, Input, Int, Node, Output, String

from .base import CATEGORY, MASK, blame, missing_file, picture_size, reserve_decoding

CAT = f"{CATEGORY}/mask"
CHANNELS = list(masks.CHANNELS)
COMBINE_OPS = list(masks.COMBINE_OPS)
_SIZE = dict(min=1, max=4096)


def _frac(name: str, default: float, what: str, lo: float = 0.0, hi: float = 1.0):
    return Float(name, default, min=lo, max=hi, step=0.01, description=what)


class CollageLoadMask(Node):
    """Load a mask from a picture file: its luminance, alpha (opaque = 1) or one colour channel, optionally inverted
    and thresholded. Masks of any size are resized where they are used."""

    display_name = "Load Mask"
    category = CAT
    inputs = [
        String("path", "", file=True, extra={"image_upload": True},
               description="Path of a picture file; a changed file is read again. In the editors: a picture of the "
                           "input folder, with an upload button and a preview."),
        Combo("channel", CHANNELS, default="luminance",
              description="What becomes the mask: luminance (white = 1), alpha (opaque = 1; the file must have "
                          "alpha), red, green or blue."),
        Boolean("invert", False, description="Use 1 - mask."),
        Float("threshold", 0.0, min=0.0, max=1.0, step=0.01,
              description="0 keeps soft values; above 0, pixels at or above it become 1 and the others 0 (after "
                          "invert)."),
    ]
    outputs = [Output("mask", MASK, "(1, H, W) float32 in [0, 1], on the CPU.")]

    def validate(self, path=None, **_):
        return missing_file(path, "path", "mask file")

    def estimate(self, path=None, **_):
        size = picture_size(path)
        return None if size is None else (Estimate((1, size[1], size[0])),)

    def run(self, ctx, path, channel, invert, threshold):
        reserve_decoding(ctx, path)
        with blame("path"):
            image, alpha = load_image(path)
        with blame("channel"):
            m = masks.from_image(image, channel, alpha)
        if invert:
            m = masks.invert(m)
        return (masks.threshold(m, threshold) if threshold > 0 else m,)


class CollageRectangleMask(Node):
    """A rectangle mask (1 inside), positioned in fractions of the picture so it fits any resolution; edge pixels
    hold their covered fraction. Default: the left half."""

    display_name = "Rectangle Mask"
    category = CAT
    inputs = [
        Int("width", 64, **_SIZE, description="Mask width in pixels (the model's resolution avoids resizing)."),
        Int("height", 64, **_SIZE, description="Mask height in pixels."),
        _frac("x", 0.0, "Left edge, fraction of the width (0 = left)."),
        _frac("y", 0.0, "Top edge, fraction of the height (0 = top)."),
        _frac("w", 0.5, "Width, fraction of the picture's width."),
        _frac("h", 1.0, "Height, fraction of the picture's height."),
    ]
    outputs = [Output("mask", MASK, "(1, height, width) float32 in [0, 1].")]

    def estimate(self, width=64, height=64, **_):
        return (Estimate((1, height, width)),)

    def run(self, ctx, width, height, x, y, w, h):
        with blame("w"):
            return (masks.rectangle(width, height, x, y, w, h),)


class CollageEllipseMask(Node):
    """An ellipse mask (1 inside), centre and radii in fractions of the picture; edges anti-aliased."""

    display_name = "Ellipse Mask"
    category = CAT
    inputs = [
        Int("width", 64, **_SIZE, description="Mask width in pixels (the model's resolution avoids resizing)."),
        Int("height", 64, **_SIZE, description="Mask height in pixels."),
        _frac("center_x", 0.5, "Centre, fraction of the width."),
        _frac("center_y", 0.5, "Centre, fraction of the height."),
        _frac("radius_x", 0.3, "Horizontal radius, fraction of the width."),
        _frac("radius_y", 0.3, "Vertical radius, fraction of the height."),
    ]
    outputs = [Output("mask", MASK, "(1, height, width) float32 in [0, 1].")]

    def estimate(self, width=64, height=64, **_):
        return (Estimate((1, height, width)),)

    def run(self, ctx, width, height, center_x, center_y, radius_x, radius_y):
        with blame("radius_x"):
            return (masks.ellipse(width, height, center_x, center_y, radius_x, radius_y),)


class CollageFeatherMask(Node):
    """Soften a mask's edges with a Gaussian blur, for smooth collage borders."""

    display_name = "Feather Mask"
    category = CAT
    inputs = [Input("mask", MASK, description="The mask to soften, [B, H, W] or [H, W]."),
              Float("sigma", 2.0, min=0.0, max=64.0, step=0.5,
                    description="Blur standard deviation in pixels of the mask (0 = unchanged).")]
    outputs = [Output("mask", MASK, "The softened mask, same size.")]

    def run(self, ctx, mask, sigma):
        with blame("mask"):
            m = masks.as_mask_batch(mask, "mask")
        with blame("sigma"):
            return (masks.feather(m, sigma),)


class CollageInvertMask(Node):
    """1 - mask: swap inside and outside."""

    display_name = "Invert Mask"
    category = CAT
    inputs = [Input("mask", MASK, description="The mask to invert.")]
    outputs = [Output("mask", MASK, "1 - mask.")]

    def run(self, ctx, mask):
        with blame("mask"):
            return (masks.invert(masks.as_mask_batch(mask, "mask")),)


class CollageCombineMasks(Node):
    """Combine two masks: union (max), intersection (min), add, subtract (clipped to [0, 1]), multiply or difference.
    mask_b is resized to mask_a's size; a batch of 1 repeats."""

    display_name = "Combine Masks"
    category = CAT
    inputs = [Input("mask_a", MASK, description="The first mask (gives the size)."),
              Input("mask_b", MASK, description="The second mask."),
              Combo("op", COMBINE_OPS, default="union", description="How to combine them.")]
    outputs = [Output("mask", MASK, "The combined mask.")]

    def run(self, ctx, mask_a, mask_b, op):
        with blame("mask_a"):
            a = masks.as_mask_batch(mask_a, "mask_a")
        with blame("mask_b"):
            return (masks.combine(a, masks.as_mask_batch(mask_b, "mask_b"), op),)


class CollageThresholdMask(Node):
    """Make a mask hard: 1 where it is at or above the level, else 0."""

    display_name = "Threshold Mask"
    category = CAT
    inputs = [Input("mask", MASK, description="The mask to threshold."),
              Float("level", 0.5, min=0.0, max=1.0, step=0.01, description="Values at or above it become 1.")]
    outputs = [Output("mask", MASK, "A mask of zeros and ones.")]

    def run(self, ctx, mask, level):
        with blame("mask"):
            return (masks.threshold(masks.as_mask_batch(mask, "mask"), level),)
