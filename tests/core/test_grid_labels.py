"""Row and column labels of image grids (collage_core.grid_labels): text goes in bands outside the tiles, each label
stays inside its own cell, counts are checked, sizes follow the tiles."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import ImageFont

from collage_core.collage import ArgumentError
from collage_core.grid_labels import (
    MIN_LABEL_PX,
    check_labels,
    fit_label,
    join_labels,
    label_bands,
    label_size,
    labelled_grid,
    layer_range_labels,
    seed_labels,
    split_labels,
    strength_labels,
)
from collage_core.images import tile_images


def _tiles(b=6, h=64, w=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return 0.25 + 0.5 * torch.rand(b, h, w, 3, generator=g)  # mid greys: never equal to the white padding


def _ink(grid: torch.Tensor, fill: float = 1.0) -> np.ndarray:
    """Where the picture differs from the padding's grey (text, or tiles), as a boolean (H, W) map."""
    return (grid[0] != fill).any(-1).numpy()


def test_split_and_join_labels():
    assert split_labels("") == [] and split_labels("  \n ") == [] and split_labels(None) == []
    assert split_labels("cat 0, cat 0.5 ,cat 1") == ["cat 0", "cat 0.5", "cat 1"]
    assert split_labels("a, b\nc\n") == ["a, b", "c"]  # several lines: commas belong to the labels
    assert split_labels(["x", "y"]) == ["x", "y"]
    labels = ["seed 1", "layers 0-1, 2-3", "two  spaced\twords"]
    assert split_labels(join_labels(labels)) == ["seed 1", "layers 0-1, 2-3", "two spaced words"]


def test_sweep_labels():
    assert strength_labels("cat", np.linspace(0, 1, 6)) == ["cat 0", "cat 0.2", "cat 0.4", "cat 0.6", "cat 0.8",
                                                             "cat 1"]
    assert layer_range_labels([(0, 1), (3, 3), (2, 7)]) == ["layers 0-1", "layer 3", "layers 2-7"]
    assert seed_labels(11, 3) == ["seed 11", "seed 12", "seed 13"]
    assert seed_labels(2 ** 64 - 1, 2) == [f"seed {2 ** 64 - 1}", "seed 0"]


def test_label_size_follows_the_tile_with_a_minimum():
    assert label_size(64, 64) == MIN_LABEL_PX
    assert label_size(16, 16) == MIN_LABEL_PX
    assert label_size(256, 256) > label_size(128, 128) > MIN_LABEL_PX
    assert label_size(256, 96) == label_size(96, 96)  # the smaller side decides


@pytest.mark.parametrize("text", ["cat", "a very long label with many words in it",
                                  "Supercalifragilisticexpialidocious_polar_bear", "x" * 200, ""])
@pytest.mark.parametrize("max_lines", [1, 2, 4])
def test_fit_label_never_wider_than_the_cell(text, max_lines):
    font = ImageFont.load_default(size=12)
    lines = fit_label(text, font, 50, max_lines)
    assert len(lines) <= max_lines
    assert all(font.getlength(s) <= 50 for s in lines)
    if font.getlength(text) <= 50:
        assert lines == ([text] if text else [])  # what fits is left alone
    else:  # wrapped and/or shortened: the text's start, in order, ending in an ellipsis if anything was left out
        kept = "".join(lines).replace("\u2026", "").replace(" ", "")
        assert kept and text.replace(" ", "").startswith(kept)
        assert lines[-1].endswith("\u2026") == (kept != text.replace(" ", ""))


def test_fit_label_wraps_before_it_shortens():
    font = ImageFont.load_default(size=12)
    assert fit_label("layers 0-1", font, 1000, 2) == ["layers 0-1"]
    two = fit_label("spatial class interpolation", font, 80, 2)
    assert len(two) == 2 and not two[-1].endswith("\u2026") and " ".join(two) == "spatial class interpolation"
    short = fit_label("spatial class interpolation weights", font, 80, 1)
    assert len(short) == 1 and short[0].endswith("\u2026")


def test_labels_go_in_bands_and_leave_the_tiles_alone():
    imgs = _tiles(6)
    plain = tile_images(imgs, 3, 2, 1.0)
    rows, cols = ["seed 11", "seed 12"], ["cat 0", "cat 0.5", "cat 1"]
    out = labelled_grid(imgs, 3, 2, 1.0, row_labels=rows, col_labels=cols)
    top, left = label_bands(64, 64, rows, cols)
    assert top > 0 and left > 0
    assert out.shape == (1, top + plain.shape[1], left + plain.shape[2], 3)
    assert torch.equal(out[:, top:, left:], plain)  # the tiles and their padding, bit for bit
    band_top, band_left = out[0, :top], out[0, top:, :left]
    for band in (band_top, band_left):
        assert (band != 1.0).any() and float(band.min()) < 0.5  # dark text on the white padding
        assert float(band.min()) >= 0.0 and float(band.max()) <= 1.0
    assert torch.equal(out[0, :top, :left], torch.ones(top, left, 3))  # the corner stays empty
    # only the bands that have labels are added
    only_cols = labelled_grid(imgs, 3, 2, 1.0, col_labels=cols)
    assert only_cols.shape == (1, top + plain.shape[1], plain.shape[2], 3)
    assert torch.equal(labelled_grid(imgs, 3, 2, 1.0, "", ""), plain)


def test_each_label_stays_inside_its_own_cell():
    """Long labels are wrapped and shortened: the text of column k lies over column k only, and that of row r
    beside row r only."""
    imgs = _tiles(6)
    long = "a long label that could never fit one sixty-four pixel tile"
    cols = ["cat 0", long, "Supercalifragilisticexpialidocious"]
    rows = [long, "seed 12"]
    out = labelled_grid(imgs, 3, 2, 1.0, row_labels=rows, col_labels=cols)
    top, left = label_bands(64, 64, rows, cols)
    ink = _ink(out)
    for k, label in enumerate(cols):
        x0 = left + k * 66
        cells = ink[:top, x0:x0 + 64]
        assert cells.any(), label
        if k + 1 < len(cols):
            assert not ink[:top, x0 + 64:x0 + 66].any()  # nothing in the gap between two column labels
    assert not ink[:top, :left].any()
    for r in range(2):
        y0 = top + r * 66
        assert ink[y0:y0 + 64, :left].any()
        assert not ink[y0 + 64:y0 + 66, :left].any()  # nor between two row labels
    assert left <= max(64, 6 * label_size(64, 64)) + 1  # a long row label wraps instead of widening the band


def test_tiles_narrower_than_a_letter_get_no_text_over_their_neighbours():
    font = ImageFont.load_default(size=12)
    assert all(font.getlength(s) <= 3 for s in fit_label("cat 0.5", font, 3, 2))
    out = labelled_grid(_tiles(3, 6, 6), 3, 1, 1.0, col_labels="cat 0, cat 0.5, cat 1")
    top = out.shape[1] - 6
    assert torch.equal(out[:, top:], tile_images(_tiles(3, 6, 6), 3, 1, 1.0))
    ink = _ink(out)
    for k in range(2):
        assert not ink[:top, k * 7 + 6].any()  # the padding column between two cells stays clear
    rows = labelled_grid(_tiles(3, 6, 6), 1, 1, 1.0, row_labels="seed 1, seed 2, seed 3")  # rows lower than a line
    left = rows.shape[2] - 6
    assert torch.equal(rows[:, :, left:], tile_images(_tiles(3, 6, 6), 1, 1, 1.0))
    assert not _ink(rows)[:, :left].any()  # no text rather than text across three rows


def test_dark_padding_gets_light_text_and_the_grey_is_kept():
    imgs = _tiles(4)
    out = labelled_grid(imgs, 2, 3, 0.0, row_labels="a, b", col_labels="c, d")
    top, left = label_bands(64, 64, "a, b", "c, d")
    assert torch.equal(out[:, top:, left:], tile_images(imgs, 2, 3, 0.0))
    assert float(out[0, :top].max()) > 0.5 and float(out[0, :top].min()) == 0.0


def test_an_alpha_channel_is_not_written_on():
    imgs = torch.cat([_tiles(2), torch.full((2, 64, 64, 1), 0.5)], -1)
    out = labelled_grid(imgs, 2, 2, 1.0, col_labels="x, y")
    top, _ = label_bands(64, 64, "", "x, y")
    assert (out[0, :top, :, :3] != 1.0).any() and torch.equal(out[0, :top, :, 3], torch.ones_like(out[0, :top, :, 3]))


def test_label_count_must_match_rows_and_columns():
    imgs = _tiles(6)
    with pytest.raises(ArgumentError, match=r"2 column label\(s\) for 3 columns") as e:
        labelled_grid(imgs, 3, col_labels="a, b")
    assert e.value.argument == "col_labels"
    with pytest.raises(ArgumentError, match=r"3 row label\(s\) for 2 rows") as e:
        labelled_grid(imgs, 3, row_labels="a\nb\nc")
    assert e.value.argument == "row_labels"
    with pytest.raises(ArgumentError, match="set columns to 6") as e:  # the sweep has 6 steps, the grid 3 columns
        check_labels(12, 3, None, join_labels(strength_labels("cat", np.linspace(0, 1, 6))))
    assert e.value.argument == "col_labels"
    assert check_labels(6, 3, None, None) == ([], [])  # not known yet: passes
    assert check_labels(5, 3, "r1, r2", "c1, c2, c3") == (["r1", "r2"], ["c1", "c2", "c3"])  # a short last row


def test_bands_for_unknown_labels_bound_the_real_ones():
    """label_bands(None) is what a memory estimate assumes before linked labels are known: never too small."""
    texts = ["x", "seed 123456789", "layers 10-11", "a long label that wraps onto two lines and more", "W" * 40]
    for size in (64, 128, 256):
        top_max, left_max = label_bands(size, size, None, None)
        for t in texts:
            top, left = label_bands(size, size, t, t)
            assert 0 < top <= top_max and 0 < left <= left_max
        grid = labelled_grid(_tiles(1, size, size), 1, 0, 1.0, row_labels=texts[3], col_labels=texts[3])
        assert grid.shape[1] <= top_max + size and grid.shape[2] <= left_max + size
    assert label_bands(256, 256, "a", "b")[0] > label_bands(64, 64, "a", "b")[0]  # bigger tiles, bigger text
