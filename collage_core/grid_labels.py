"""Row and column labels for image grids: which latent each row is, which sweep step each column.

:func:`labelled_grid` tiles an ``IMAGE`` batch ``(B, H, W, C)`` like :func:`~collage_core.images.tile_images` and
adds a band of text above the columns and/or left of the rows; the tiles' pixels are not touched. Labels are
drawn with Pillow's built-in scalable font (``ImageFont.load_default(size=...)``, Pillow >= 10.1), at a size
relative to the tile (:func:`label_size`, never below :data:`MIN_LABEL_PX`), wrapped to the width of their
cell and shortened with an ellipsis when they still do not fit: a label never runs into its neighbour's cell.

Labels travel between nodes as one string, one label per line (:func:`join_labels`); :func:`split_labels` also
reads one line of comma-separated labels, as a user types them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from .collage import ArgumentError
from .images import tile_images

__all__ = ["MIN_LABEL_PX", "split_labels", "join_labels", "strength_labels", "layer_range_labels", "seed_labels",
           "label_size", "fit_label", "grid_layout",
           "check_labels", "label_bands", "labelled_grid"]

MIN_LABEL_PX = 12       # the smallest font size (pixels): readable on the 64 px tiles of the embedded model
COLUMN_LINES = 2        # a column label wraps onto at most this many lines
ELLIPSIS = "\u2026"


def split_labels(text: str | Sequence[str] | None) -> list[str]:
    """Labels from text: one per line if the text has several lines, else comma-separated; surrounding blanks are
    dropped and empty text gives no labels (a sequence of strings is taken as it is)."""
    if text is None:
        return []
    if not isinstance(text, str):
        return [str(t) for t in text]
    text = text.strip()
    if not text:
        return []
    parts = text.splitlines() if "\n" in text or "\r" in text else text.split(",")
    return [p.strip() for p in parts]


def join_labels(labels: Sequence[str]) -> str:
    """Labels as one string, one per line (what sweep nodes output; :func:`split_labels` reads it back)."""
    return "\n".join(" ".join(str(label).split()) for label in labels)


def strength_labels(class_name: str, strengths: Sequence[float]) -> list[str]:
    """Labels of a strength sweep: ``["cat 0", "cat 0.25", ...]`` (``%g``, so ``0.6000000000000001`` reads 0.6)."""
    return [f"{class_name} {float(s):g}" for s in strengths]


def layer_range_labels(ranges: Sequence[tuple[int, int]]) -> list[str]:
    """Labels of a layer-range sweep: ``"layers 0-1"`` for an inclusive range, ``"layer 3"`` for one layer."""
    return [f"layer {a}" if a == b else f"layers {a}-{b}" for a, b in ranges]


def seed_labels(seed: int, batch: int) -> list[str]:
    """Labels of ``batch`` latents sampled from ``seed``: latent ``i`` is seed ``(seed + i) mod 2**64`` (as
    :func:`~collage_core.latents.sample_z` draws them)."""
    from .latents import SEED_MODULUS

    return [f"seed {(int(seed) + i) % SEED_MODULUS}" for i in range(int(batch))]


def label_size(tile_h: int, tile_w: int) -> int:
    """Font size in pixels for tiles of ``tile_h x tile_w``: an eighth of the smaller side, at least
    :data:`MIN_LABEL_PX` (12 px on 64 px tiles, 32 px on 256 px ones)."""
    return max(MIN_LABEL_PX, round(min(int(tile_h), int(tile_w)) / 8))


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _shorten(text: str, font, width: float) -> str:
    """``text`` cut at the end and ended with an ellipsis so that it fits ``width`` (nothing if not even the ellipsis
    fits: cells narrower than a letter get no text rather than text over their neighbours)."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text.rstrip() + ELLIPSIS) > width:
        text = text[:-1]
    if text:
        return text.rstrip() + ELLIPSIS
    return ELLIPSIS if font.getlength(ELLIPSIS) <= width else ""


def fit_label(text: str, font, width: float, max_lines: int) -> list[str]:
    """``text`` as at most ``max_lines`` lines no wider than ``width`` pixels in ``font``: wrapped at spaces (a word
    too long for a line is broken), the last line shortened with an ellipsis if text is left over."""
    words = str(text).split()
    lines: list[str] = []
    line = ""
    while words:
        word = words.pop(0)
        trial = f"{line} {word}" if line else word
        if font.getlength(trial) <= width:
            line = trial
            continue
        if line:  # the word starts the next line
            lines.append(line)
            line = ""
            words.insert(0, word)
        else:  # a word alone is too wide: break it where it stops fitting
            cut = max((k for k in range(1, len(word) + 1) if font.getlength(word[:k]) <= width), default=1)
            lines.append(word[:cut])
            if word[cut:]:
                words.insert(0, word[cut:])
        if len(lines) == max_lines:
            break
    if line and len(lines) < max_lines:
        lines.append(line)
        line = ""
    rest = " ".join(([line] if line else []) + words)
    if rest and lines:
        lines[-1] = _shorten(f"{lines[-1]} {rest}", font, width)
    return [_shorten(s, font, width) for s in lines]  # a single character may be wider than the cell


def grid_layout(batch: int, columns: int) -> tuple[int, int]:
    """``(rows, columns)`` of the grid :func:`~collage_core.images.tile_images` makes of ``batch`` images."""
    cols = max(1, min(int(columns), int(batch)))
    return (int(batch) + cols - 1) // cols, cols


def check_labels(batch: int, columns: int, row_labels: str | Sequence[str] | None,
                 col_labels: str | Sequence[str] | None) -> tuple[list[str], list[str]]:
    """The row and column labels (:func:`split_labels`) of a grid of ``batch`` images in rows of ``columns``;
    :class:`~collage_core.collage.ArgumentError` naming ``row_labels`` / ``col_labels`` if there are labels but not
    one per row / column. ``None`` (labels not known yet) passes."""
    n_rows, n_cols = grid_layout(batch, columns)
    out = []
    for labels, count, argument, what, hint in (
            (row_labels, n_rows, "row_labels", "row", f"{batch} images in rows of {n_cols}"),
            (col_labels, n_cols, "col_labels", "column", f"{batch} images in rows of {columns}")):
        got = split_labels(labels)
        if got and len(got) != count:
            if what == "column" and count < batch:
                hint += f": set columns to {len(got)} if the labels are right"
            raise ArgumentError(argument, f"{len(got)} {what} label(s) for {count} {what}s ({hint}); give one label "
                                          f"per {what}, comma-separated or one per line, or none")
        out.append(got)
    return out[0], out[1]


class _Layout:
    """Font, line height, margins and the wrapped lines of every label of one grid."""

    def __init__(self, tile_h: int, tile_w: int, rows: list[str], cols: list[str], size: int | None = None):
        self.size = int(size) if size else label_size(tile_h, tile_w)
        self.font = _font(self.size)
        ascent, descent = self.font.getmetrics()
        self.line = ascent + descent
        self.margin = max(2, self.size // 4)
        self.col_width = max(1, tile_w - 2)  # a pixel of room each side for the glyphs' side bearings
        self.row_width = max(tile_w, 6 * self.size) - 2 * self.margin  # a class name fits on 64 px tiles
        self.cols = [fit_label(t, self.font, self.col_width, COLUMN_LINES) for t in cols]
        lines = tile_h // self.line  # rows lower than a line of text get none (rather than text over their neighbours)
        self.rows = [fit_label(t, self.font, self.row_width, lines) if lines else [] for t in rows]

    def bands(self) -> tuple[int, int]:
        top = max((len(lines) for lines in self.cols), default=0)
        top = top * self.line + 2 * self.margin if self.cols else 0
        left = max((self.font.getlength(s) for lines in self.rows for s in lines), default=0.0)
        left = int(np.ceil(left)) + 2 * self.margin if self.rows else 0
        return top, left


def label_bands(tile_h: int, tile_w: int, row_labels: str | Sequence[str] | None,
                col_labels: str | Sequence[str] | None, size: int | None = None) -> tuple[int, int]:
    """``(top, left)``: the height of the column-label band and the width of the row-label band that
    :func:`labelled_grid` adds for these labels (0 where there are none). A label of ``None`` stands for labels not
    known yet and gives the largest band they could need."""
    probe = _Layout(tile_h, tile_w, [], [], size)
    rows, cols = split_labels(row_labels), split_labels(col_labels)
    top, left = _Layout(tile_h, tile_w, rows, cols, size).bands()
    if col_labels is None:
        top = COLUMN_LINES * probe.line + 2 * probe.margin
    if row_labels is None:
        left = probe.row_width + 2 * probe.margin + 1
    return top, left


def labelled_grid(images: torch.Tensor, columns: int, pad: int = 2, fill: float = 1.0,
                  row_labels: str | Sequence[str] | None = None, col_labels: str | Sequence[str] | None = None,
                  size: int | None = None) -> torch.Tensor:
    """Tile ``images (B, H, W, C)`` with :func:`~collage_core.images.tile_images` and write ``row_labels`` left of
    the rows and ``col_labels`` above the columns (text or a list, see :func:`split_labels`; empty = no band).

    The bands have the padding's grey level ``fill``, the text is black on light padding and white on dark; the
    tiles keep their exact values. ``size`` is the font size in pixels (default :func:`label_size`). Raises
    :class:`~collage_core.collage.ArgumentError` naming ``row_labels`` / ``col_labels`` when their count is not the
    grid's number of rows / columns. Returns ``(1, top + H', left + W', C)`` on the images' device.
    """
    grid = tile_images(images, columns, pad, fill)
    b, h, w, c = images.shape
    rows, cols = check_labels(b, columns, row_labels, col_labels)
    if not rows and not cols:
        return grid
    layout = _Layout(h, w, rows, cols, size)
    top, left = layout.bands()
    _, gh, gw, _ = grid.shape
    ink = Image.new("L", (left + gw, top + gh), 0)
    draw = ImageDraw.Draw(ink)
    font = layout.font
    for k, lines in enumerate(layout.cols):  # bottom-aligned above each column, centred on it
        cx = left + k * (w + pad) + w / 2
        y = top - layout.margin - len(lines) * layout.line
        for i, s in enumerate(lines):
            draw.text((round(cx - font.getlength(s) / 2), y + i * layout.line), s, font=font, fill=255)
    for r, lines in enumerate(layout.rows):  # left-aligned, centred on each row
        y = top + r * (h + pad) + (h - len(lines) * layout.line) // 2
        for i, s in enumerate(lines):
            draw.text((layout.margin, y + i * layout.line), s, font=font, fill=255)
    alpha = torch.from_numpy(np.asarray(ink, np.float32) / 255.0).to(grid.device)[..., None]
    alpha[top:, left:] = 0.0  # the tiles are never written on
    out = grid.new_full((top + gh, left + gw, c), float(fill))
    out[top:, left:] = grid[0]
    colour = slice(0, min(c, 3))  # an alpha channel keeps the padding's value
    text_level = 0.0 if float(fill) >= 0.5 else 1.0
    out[..., colour] = out[..., colour] * (1.0 - alpha) + text_level * alpha
    return out[None]
