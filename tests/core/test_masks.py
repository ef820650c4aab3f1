"""collage_core.masks on its own: checking, resizing, shapes, feathering, set operations, thresholds, channels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from collage_core import masks
from collage_core.maps import resize_mask


def _rand(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------------------------------------------------ as_mask_batch
def test_as_mask_batch_normalises_layout_and_dtype():
    m = masks.as_mask_batch(np.array([[0.0, 0.5], [1.0, 0.25]]))  # numpy float64 (H, W)
    assert m.shape == (1, 2, 2) and m.dtype == torch.float32
    assert m[0].tolist() == [[0.0, 0.5], [1.0, 0.25]]
    b = masks.as_mask_batch(torch.tensor([[[True, False]]]))
    assert b.dtype == torch.float32 and b.tolist() == [[[1.0, 0.0]]]
    t = _rand(3, 4, 5)
    assert torch.equal(masks.as_mask_batch(t), t)


def test_as_mask_batch_clips_rounding_slack_only():
    m = masks.as_mask_batch(torch.tensor([[1 + 0.5 * masks.RANGE_TOLERANCE, -0.5 * masks.RANGE_TOLERANCE]]))
    assert m.tolist() == [[[1.0, 0.0]]]  # inside the tolerance: clipped to exactly [0, 1]
    with pytest.raises(ValueError, match=r"values in \[0, 1\.001\]; a mask must lie in \[0, 1\]"):
        masks.as_mask_batch(torch.tensor([[0.0, 1.001]]))


@pytest.mark.parametrize("value, match", [
    (torch.zeros(4), r"my_mask has shape \(4,\); expected a MASK \[B, H, W\] or \[H, W\]"),
    (torch.zeros(1, 1, 4, 4), r"my_mask has shape \(1, 1, 4, 4\); expected a MASK"),
    (torch.zeros(0, 4, 4), r"my_mask is empty \(shape \(0, 4, 4\)\)"),
    (torch.zeros(4, 4, dtype=torch.int64), r"my_mask has dtype torch.int64; expected float values in \[0, 1\]"),
    (torch.tensor([[0.5, float("nan")]]), r"my_mask contains NaN or infinite values"),
    (torch.tensor([[0.5, float("inf")]]), r"my_mask contains NaN or infinite values"),
    (torch.tensor([[-0.5, 0.5]]), r"my_mask has values in \[-0\.5, 0\.5\]"),
    (np.full((2, 2), 255, np.uint8), r"my_mask has values in \[255, 255\]"),  # an 8-bit picture is not a mask
])
def test_as_mask_batch_refuses_non_masks(value, match):
    with pytest.raises(ValueError, match=match):
        masks.as_mask_batch(value, "my_mask")


# --------------------------------------------------------------------------------------- resize, broadcast
def test_resize_masks_keeps_batch_range_and_constants():
    m = _rand(3, 12, 20)
    assert masks.resize_masks(m, (12, 20)) is m  # already that size: untouched
    r = masks.resize_masks(m, (5, 7))
    assert r.shape == (3, 5, 7) and r.dtype == torch.float32
    assert 0 <= float(r.min()) and float(r.max()) <= 1
    for i in range(3):  # each mask of the batch on its own, (height, width) order
        assert np.array_equal(r[i].numpy(), resize_mask(m[i].numpy(), (5, 7), "bilinear"))
    assert masks.resize_masks(m, 9).shape == (3, 9, 9)
    const = torch.full((2, 8, 8), 0.3)
    torch.testing.assert_close(masks.resize_masks(const, (16, 4)), torch.full((2, 16, 4), 0.3), atol=1e-6, rtol=0)


def test_resize_masks_nearest_keeps_binary_masks_binary():
    m = (_rand(1, 10, 10) > 0.5).float()
    up = masks.resize_masks(m, 40, method="nearest")
    assert set(torch.unique(up).tolist()) <= {0.0, 1.0}
    assert torch.equal(up[0, ::4, ::4], m[0])  # every source pixel becomes a 4x4 block


def test_broadcast_batches():
    a, b = torch.zeros(1, 2, 2), torch.ones(3, 2, 2)
    x, y = masks.broadcast_batches(a, b)
    assert x.shape == y.shape == (3, 2, 2) and float(x.abs().max()) == 0.0
    x, y = masks.broadcast_batches(b, a)
    assert x is b and y.shape == (3, 2, 2)
    same = torch.zeros(3, 2, 2)
    assert masks.broadcast_batches(same, b)[0] is same
    with pytest.raises(ValueError, match="left has batch 2 and right has batch 3; they must match"):
        masks.broadcast_batches(torch.zeros(2, 2, 2), b, "left", "right")


# ----------------------------------------------------------------------------------------------- shapes
def test_rectangle_covers_exact_fractions():
    """Each pixel holds the fraction of its area inside, so the sum is the area in pixels, at any position."""
    m = masks.rectangle(37, 23, x=0.13, y=0.27, w=0.41, h=0.33)
    assert m.shape == (1, 23, 37) and m.dtype == torch.float32
    assert math.isclose(float(m.sum()), (0.41 * 37) * (0.33 * 23), rel_tol=1e-5)
    assert float(m.max()) == 1.0 and 0 < float(m[m > 0].min()) < 1
    # on a 4x4 grid a rectangle from 0.125 to 0.625 covers columns 0..2 by 1/2, 1, 1/2
    r = masks.rectangle(4, 1, x=0.125, y=0.0, w=0.5, h=1.0)
    assert r[0, 0].tolist() == [0.5, 1.0, 0.5, 0.0]


def test_rectangle_edge_cases():
    clipped = masks.rectangle(8, 8, x=-0.25, y=0.5, w=0.5, h=1.0)  # partly outside: only the inside counts
    assert float(clipped[0, 4:, :2].min()) == 1.0 and float(clipped.sum()) == 8.0
    assert float(masks.rectangle(8, 8, 0.2, 0.2, 0.0, 0.5).abs().max()) == 0.0  # zero width
    assert float(masks.rectangle(8, 8, 1.5, 0.0, 0.5, 1.0).abs().max()) == 0.0  # entirely outside
    assert float(masks.rectangle(3, 5, -1.0, -1.0, 3.0, 3.0).min()) == 1.0  # covers everything


@pytest.mark.parametrize("call, match", [
    (lambda: masks.rectangle(0, 8, 0, 0, 1, 1), r"mask size must be at least 1x1, got 0x8"),
    (lambda: masks.rectangle(8, 8, 0, 0, -0.1, 1), r"rectangle size must not be negative, got w=-0.1, h=1"),
    (lambda: masks.rectangle(8, 8, float("nan"), 0, 1, 1), r"x must be finite, got nan"),
    (lambda: masks.rectangle(8, 8, 0, 0, 1, float("inf")), r"h must be finite, got inf"),
    (lambda: masks.ellipse(8, -1, 0.5, 0.5, 0.2, 0.2), r"mask size must be at least 1x1, got 8x-1"),
    (lambda: masks.ellipse(8, 8, 0.5, 0.5, -0.2, 0.2), r"radii must not be negative, got rx=-0.2, ry=0.2"),
    (lambda: masks.ellipse(8, 8, 0.5, float("nan"), 0.2, 0.2), r"cy must be finite, got nan"),
])
def test_shapes_refuse_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_ellipse_coverage_is_a_multiple_of_the_sample_fraction():
    s = 4
    m = masks.ellipse(20, 12, cx=0.37, cy=0.61, rx=0.3, ry=0.45, supersample=s)
    assert m.shape == (1, 12, 20) and 0 <= float(m.min()) and float(m.max()) == 1.0
    counts = m * s * s
    torch.testing.assert_close(counts, counts.round(), atol=1e-5, rtol=0)
    binary = masks.ellipse(20, 12, 0.37, 0.61, 0.3, 0.45, supersample=1)
    assert set(torch.unique(binary).tolist()) <= {0.0, 1.0}


def test_ellipse_area_and_degenerate_radii():
    m = masks.ellipse(100, 60, cx=0.5, cy=0.5, rx=0.3, ry=0.2)
    area = math.pi * (0.3 * 100) * (0.2 * 60)
    assert abs(float(m.sum()) - area) / area < 0.005
    assert float(m[0, 30, 50]) == 1.0 and float(m[0, 30, 15]) == 0.0  # centre in, outside the x radius out
    assert torch.equal(m[0], m[0].flip(0))  # symmetric about the centre row
    assert torch.equal(masks.ellipse(5, 4, 0.5, 0.5, 0.0, 0.3), torch.zeros(1, 4, 5))
    half = masks.ellipse(40, 40, cx=0.0, cy=0.5, rx=0.25, ry=0.25)  # centred on the left edge: half inside
    assert abs(float(half.sum()) - math.pi * 10 * 10 / 2) / (math.pi * 50) < 0.01


# ------------------------------------------------------------------------------------------------ feather
def test_feather_stays_a_mask_and_is_separable_blur():
    m = masks.rectangle(32, 24, 0.25, 0.25, 0.5, 0.5)
    batch = torch.cat([m, masks.ellipse(32, 24, 0.5, 0.5, 0.3, 0.3)])
    f = masks.feather(batch, 1.5)
    assert f.shape == (2, 24, 32) and f.dtype == torch.float32
    assert 0 <= float(f.min()) and float(f.max()) <= 1
    torch.testing.assert_close(f[:1], masks.feather(m, 1.5), atol=1e-6, rtol=0)  # each mask on its own
    # a Gaussian of std 1.5 px truncated at 3 sigma (radius 5), edges replicated: one 2-D convolution
    k = torch.exp(-0.5 * (torch.arange(-5.0, 6.0) / 1.5) ** 2)
    k = k / k.sum()
    ref = F.conv2d(F.pad(batch[:, None], (5, 5, 5, 5), mode="replicate"), (k[:, None] * k[None, :])[None, None])
    torch.testing.assert_close(f, ref[:, 0], atol=1e-6, rtol=0)
    # softer edge, same centre: strictly between 0 and 1 at the border, ~1 deep inside, ~0 far outside
    assert 0.3 < float(f[0, 12, 8]) < 0.7
    assert float(f[0, 12, 16]) == pytest.approx(1.0, abs=1e-6) and float(f[0, 0, 0]) == pytest.approx(0.0, abs=1e-6)
    # the blur of a centred symmetric mask stays symmetric
    torch.testing.assert_close(f[0], f[0].flip(1), atol=1e-6, rtol=0)


def test_feather_replicates_edges():
    """A constant mask stays constant, also with a kernel wider than the mask (edges replicate, no dark border)."""
    for shape, sigma in (((1, 16, 16), 2.0), ((1, 3, 5), 4.0)):
        torch.testing.assert_close(masks.feather(torch.full(shape, 0.7), sigma), torch.full(shape, 0.7),
                                   atol=1e-6, rtol=0)
    edge = torch.zeros(1, 8, 8)
    edge[..., :4] = 1
    f = masks.feather(edge, 1.0)
    assert float(f[0, :, 0].min()) == pytest.approx(1.0, abs=1e-5)  # no fall-off at the picture border


def test_feather_of_a_one_pixel_wide_mask_replicates_too():
    col = torch.ones(1, 6, 1)
    torch.testing.assert_close(masks.feather(col, 1.0), col, atol=1e-6, rtol=0)
    torch.testing.assert_close(masks.feather(col.transpose(1, 2), 1.0), col.transpose(1, 2), atol=1e-6, rtol=0)


def test_feather_zero_and_bad_sigma():
    m = _rand(1, 5, 5)
    assert masks.feather(m, 0) is m
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="sigma must be a non-negative number of pixels"):
            masks.feather(m, bad)


# --------------------------------------------------------------------------------------- set operations
def test_invert():
    m = _rand(2, 3, 3)
    assert torch.equal(masks.invert(m), 1 - m)
    torch.testing.assert_close(masks.invert(masks.invert(m)), m, atol=1e-7, rtol=0)


def test_combine_values():
    a = torch.tensor([[[0.0, 0.25, 0.75, 1.0]]])
    b = torch.tensor([[[0.5, 0.5, 0.5, 0.5]]])
    want = {"union": [0.5, 0.5, 0.75, 1.0], "intersection": [0.0, 0.25, 0.5, 0.5], "add": [0.5, 0.75, 1.0, 1.0],
            "subtract": [0.0, 0.0, 0.25, 0.5], "multiply": [0.0, 0.125, 0.375, 0.5],
            "difference": [0.5, 0.25, 0.25, 0.5]}
    assert set(want) == set(masks.COMBINE_OPS)
    for op, w in want.items():
        assert masks.combine(a, b, op)[0, 0].tolist() == w, op


def test_combine_resizes_and_broadcasts():
    a = _rand(2, 16, 16)
    b = torch.ones(1, 4, 4)
    u = masks.combine(a, b, "union")
    assert u.shape == (2, 16, 16) and float(u.min()) == 1.0  # b resized to a's size and repeated
    i = masks.combine(a, b, "intersection")
    assert torch.equal(i, a)
    assert masks.combine(torch.ones(1, 4, 4), _rand(3, 4, 4), "multiply").shape == (3, 4, 4)
    with pytest.raises(ValueError, match="mask_a has batch 2 and mask_b has batch 3"):
        masks.combine(a, _rand(3, 16, 16), "add")
    with pytest.raises(ValueError, match="op must be one of union, intersection, .*, not 'xor'"):
        masks.combine(a, a, "xor")


def test_threshold():
    m = torch.tensor([[[0.0, 0.49, 0.5, 0.51, 1.0]]])
    assert masks.threshold(m, 0.5)[0, 0].tolist() == [0.0, 0.0, 1.0, 1.0, 1.0]  # >= level
    assert float(masks.threshold(m, 0.0).min()) == 1.0
    assert masks.threshold(m, 1.0)[0, 0].tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]
    assert masks.threshold(m, 0.5).dtype == torch.float32
    for bad in (-0.1, 1.5, float("nan")):
        with pytest.raises(ValueError, match="threshold must be in"):
            masks.threshold(m, bad)


# ------------------------------------------------------------------------------------------ from pictures
def test_from_image_channels():
    rgba = torch.tensor([[[[1.0, 0.0, 0.0, 0.2], [0.0, 1.0, 0.0, 0.4], [0.0, 0.0, 1.0, 0.6], [1.0, 1.0, 1.0, 1.0]]]])
    lum = masks.from_image(rgba, "luminance")
    assert lum.shape == (1, 1, 4)
    torch.testing.assert_close(lum[0, 0], torch.tensor([0.299, 0.587, 0.114, 1.0]), atol=1e-6, rtol=0)
    assert masks.from_image(rgba, "red")[0, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert masks.from_image(rgba, "green")[0, 0].tolist() == [0.0, 1.0, 0.0, 1.0]
    assert masks.from_image(rgba, "blue")[0, 0].tolist() == [0.0, 0.0, 1.0, 1.0]
    torch.testing.assert_close(masks.from_image(rgba, "alpha")[0, 0], torch.tensor([0.2, 0.4, 0.6, 1.0]))
    rgb = rgba[..., :3]
    alpha = torch.full((1, 1, 4), 0.5)
    assert torch.equal(masks.from_image(rgb, "alpha", alpha), alpha)  # a separate alpha for an RGB picture
    grey = torch.full((2, 3, 3, 1), 0.25)
    for ch in ("luminance", "red", "blue"):  # one channel is the mask, whatever colour is asked for
        assert torch.equal(masks.from_image(grey, ch), torch.full((2, 3, 3), 0.25))


@pytest.mark.parametrize("image, channel, match", [
    (torch.zeros(1, 2, 2, 3), "hue", r"channel must be one of luminance, alpha, red, green, blue, not 'hue'"),
    (torch.zeros(2, 2, 3), "red", r"image has shape \(2, 2, 3\); expected an IMAGE \[B, H, W, C\]"),
    (torch.zeros(1, 2, 2, 2), "red", r"image has shape \(1, 2, 2, 2\)"),
    (torch.zeros(1, 2, 2, 3), "alpha", r"the image has no alpha channel"),
])
def test_from_image_refuses(image, channel, match):
    with pytest.raises(ValueError, match=match):
        masks.from_image(image, channel)


def test_load_mask_from_a_picture(tmp_path):
    from PIL import Image

    la = np.zeros((3, 4, 2), np.uint8)
    la[..., 0] = 51  # grey 0.2
    la[1:, :, 1] = 255  # opaque below the first row
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    lum = masks.load_mask(tmp_path / "la.png")
    assert lum.shape == (1, 3, 4) and lum.dtype == torch.float32
    torch.testing.assert_close(lum, torch.full((1, 3, 4), 0.2), atol=1e-6, rtol=0)
    alpha = masks.load_mask(str(tmp_path / "la.png"), channel="alpha")
    assert float(alpha[0, 0].max()) == 0.0 and float(alpha[0, 1:].min()) == 1.0


def _ellipse_supersampled_at_once(width, height, cx, cy, rx, ry, s=8):
    """The ellipse as it was computed before it was banded: every sample of the picture at once, in float64."""
    xs = (torch.arange(width * s, dtype=torch.float64) + 0.5) / (width * s)
    ys = (torch.arange(height * s, dtype=torch.float64) + 0.5) / (height * s)
    inside = ((xs[None, :] - cx) / rx) ** 2 + ((ys[:, None] - cy) / ry) ** 2 <= 1.0
    return inside.double().view(height, s, width, s).mean(dim=(1, 3)).float()[None]


@pytest.mark.parametrize("args", [(64, 64, .5, .5, .3, .2), (100, 37, .1, .9, .4, .6), (33, 80, .5, .5, 2, 2),
                                  (50, 50, -.5, .5, .2, .2), (300, 200, .5, .5, .001, .5), (257, 513, .7, .2, .45, .3)])
def test_the_banded_ellipse_equals_sampling_the_whole_picture(args):
    # exact by construction, on any CPU: the same float64 sample coordinates and comparisons, and each pixel the
    # mean of 64 zeros and ones (an exact sum, an exact division by 64)
    assert torch.equal(masks.ellipse(*args), _ellipse_supersampled_at_once(*args))


def test_a_large_ellipse_is_sampled_in_bands_of_bounded_size(monkeypatch):
    """4096² at 8x would be 8 GB of samples at once; the banded version asks torch for small arrays only."""
    biggest = []
    real_arange = torch.arange

    def spy(*a, **kw):
        t = real_arange(*a, **kw)
        biggest.append(t.numel())
        return t
    monkeypatch.setattr(torch, "arange", spy)
    m = masks.ellipse(4096, 4096, 0.5, 0.5, 0.02, 0.02)  # a small ellipse: only its box is sampled
    assert m.shape == (1, 4096, 4096) and abs(float(m.sum()) - math.pi * (0.02 * 4096) ** 2) < 5
    assert max(biggest) <= 8 * 200  # samples along one side of the box, not of the picture
