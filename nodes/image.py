"""Pictures: load, save as PNG with the workflow embedded, tile a batch into a (labelled) grid, join batches."""

from __future__ import annotations

import os

import torch

from collage_core.grid_labels import check_labels, grid_layout, label_bands, labelled_grid
from collage_core.images import image_to_uint8, load_image, save_png
from collage_engine import Estimate, Float, Input, Int, Node, NodeOutput, Output, String

from .base import (
    CATEGORY,
    IMAGE,
    MASK,
    OUTPUT_DIR_INPUT,
    InputError,
    blame,
    host_bytes,
    missing_file,
    next_free_name,
    picture_size,
    reserve_decoding,
)
from .runner import png_text

CAT = f"{CATEGORY}/image"


class CollageLoadImage(Node):
    """Load a picture file as an IMAGE, with ComfyUI's mask (1 - alpha; all zeros without alpha)."""

    display_name = "Load Image"
    category = CAT
    inputs = [String("path", "", file=True, extra={"image_upload": True},
                     description="Path of a PNG, JPEG, WebP, ... file; a changed file is read again. In the "
                                 "editors: a picture of the input folder, with an upload button and a preview.")]
    outputs = [Output("image", IMAGE, "The picture, (1, H, W, 3) float32 in [0, 1], on the CPU."),
               Output("mask", MASK, "1 - alpha, (1, H, W) (as ComfyUI's LoadImage; zeros if there is no alpha).")]

    def validate(self, path=None, **_):
        return missing_file(path, "path", "image file")

    def estimate(self, path=None, **_):
        size = picture_size(path)
        return None if size is None else (Estimate((1, size[1], size[0], 3)), Estimate((1, size[1], size[0])))

    def run(self, ctx, path):
        reserve_decoding(ctx, path)
        with blame("path"):
            image, alpha = load_image(path)
        mask = 1.0 - alpha if alpha is not None else torch.zeros(image.shape[:3])
        return image, mask


class CollageSaveImage(Node):
    """Save every image of a batch as PNG (PREFIX_00001.png, ...; never overwriting) with the workflow embedded like
    ComfyUI does: tEXt chunks 'prompt' (API JSON) and 'workflow' (UI JSON), so the file opens in the editor."""

    display_name = "Save Image (PNG + workflow)"
    category = CAT
    output_node = True
    inputs = [
        Input("images", IMAGE, description="The images to save (moved to the CPU)."),
        String("filename_prefix", "neural-collage",
               description="File name prefix, may include sub-folders (e.g. 'grids/interpolation')."),
        String(OUTPUT_DIR_INPUT, "output", description="Folder the files go to (the CLI's --out sets it)."),
    ]

    def run(self, ctx, images, filename_prefix, output_dir):
        if images.dim() != 4:
            raise InputError("images", f"expected an IMAGE [B, H, W, C], got shape {tuple(images.shape)}")
        text = png_text(ctx)
        saved = []
        for u8 in image_to_uint8(images):
            path = next_free_name(output_dir, filename_prefix, ".png")
            with blame(OUTPUT_DIR_INPUT):
                save_png(u8 if u8.shape[-1] != 1 else u8[..., 0], path, text)
            saved.append({"filename": os.path.basename(path), "subfolder": os.path.dirname(
                os.path.relpath(path, output_dir or ".")), "type": "output", "path": path})
        return NodeOutput(ui={"images": saved})


class CollageImageGrid(Node):
    """Tile a batch of images row by row into one picture, e.g. the output of Generate with combine = grid (one row
    per latent, one column per variant of a sweep), with optional labels left of the rows and above the columns."""

    display_name = "Image Grid"
    category = CAT
    inputs = [
        Input("images", IMAGE, description="The batch to tile, in row-major order."),
        Int("columns", 4, min=1, max=256, description="Images per row (set it to the number of sweep steps)."),
        Int("padding", 2, min=0, max=64, description="Pixels between cells."),
        Float("pad_value", 1.0, min=0.0, max=1.0, step=0.05, description="Grey level of the padding (1 = white)."),
        String("row_labels", "", optional=True,
               description="One label per row, comma-separated (or one per line); empty = none. Connect the labels "
                           "output of Sample z to label the latents, or type your own."),
        String("col_labels", "", optional=True,
               description="One label per column, comma-separated (or one per line); empty = none. Connect the "
                           "labels output of a sweep (Paint Class Sweep, Layer Range Sweep), or type your own."),
    ]
    outputs = [Output("image", IMAGE, "One picture (1, H', W', C) on the images' device; labels add a band above "
                                      "and/or left of the tiles.")]

    @staticmethod
    def _shape(b, h, w, c, columns, padding, row_labels="", col_labels=""):
        rows, cols = grid_layout(b, columns)
        top, left = label_bands(h, w, row_labels, col_labels)  # labels not known yet (linked): the largest bands
        return (1, top + rows * h + (rows - 1) * padding, left + cols * w + (cols - 1) * padding, c)

    def estimate(self, images=None, columns=4, padding=2, row_labels="", col_labels="", **_):
        if not isinstance(images, Estimate) or len(images.shape) != 4 or not isinstance(columns, int) \
                or not isinstance(padding, int):
            return None
        labels = [v if isinstance(v, str) else None for v in (row_labels, col_labels)]  # None: linked, not known
        with blame("row_labels", "col_labels"):  # counts of typed labels are checked before anything runs
            check_labels(images.shape[0], columns, *labels)
        return (Estimate(self._shape(*images.shape, columns, padding, *labels), images.itemsize),)

    def run(self, ctx, images, columns, padding, pad_value, row_labels="", col_labels=""):
        if images.dim() == 4 and images.device.type == "cpu":
            shape = self._shape(*images.shape, columns, padding, row_labels, col_labels)
            ctx.reserve(images.element_size() * shape[1] * shape[2] * shape[3], "the grid")
        with blame("images", "row_labels", "col_labels"):
            return (labelled_grid(images, columns, padding, pad_value, row_labels, col_labels),)


class CollageImageBatch(Node):
    """Join two image batches of the same size into one (image_a first), e.g. a source next to its collage."""

    display_name = "Image Batch"
    category = CAT
    inputs = [Input("image_a", IMAGE, description="The first images."),
              Input("image_b", IMAGE, description="Images of the same height, width and channels, appended after "
                                                  "image_a (moved to image_a's device).")]
    outputs = [Output("images", IMAGE, "image_a then image_b.")]

    def estimate(self, image_a=None, image_b=None):
        if isinstance(image_a, Estimate) and isinstance(image_b, Estimate) and len(image_a.shape) == 4 \
                and image_a.shape[1:] == image_b.shape[1:]:
            return (Estimate((image_a.shape[0] + image_b.shape[0], *image_a.shape[1:]), image_a.itemsize),)
        return None

    def run(self, ctx, image_a, image_b):
        if image_a.dim() != 4 or image_b.dim() != 4 or image_a.shape[1:] != image_b.shape[1:]:
            raise InputError("image_b", f"shape {tuple(image_b.shape)} does not fit image_a's {tuple(image_a.shape)} "
                                        f"(batches must share height, width and channels)")
        ctx.reserve(host_bytes(image_a, image_b), "the joined batch")
        return (torch.cat([image_a, image_b.to(image_a.device)], 0),)
