"""Tests of collage_core.poisson: exact Poisson compositing (CPU, small images, a few seconds in all)."""

from __future__ import annotations

import numpy as np
import pytest

from collage_core.poisson import poisson_composite
from collage_core.poisson_reference import poisson_composite_reference

pytest.importorskip("scipy")   # the reference solver needs it

H, W = 72, 90


def _image(seed: int, h: int = H, w: int = W, c: int = 3) -> np.ndarray:
    """Smooth colours + texture + a few hard edges, float64 in [0, 255]."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:h, :w] / max(h, w)
    base = 120 + 80 * np.sin(3 * xx + seed)[..., None] * np.cos(2 * yy - seed)[..., None] * rng.random(c)
    edges = 50.0 * (((xx * 5).astype(int) + (yy * 4).astype(int)) % 2)[..., None]
    img = np.clip(base + edges + 20 * rng.random((h, w, c)), 0, 255)
    return img if c > 1 else img[..., 0]


def _ellipse(h: int = H, w: int = W, cy: float = 0.5, cx: float = 0.5, ry: float = 0.3, rx: float = 0.3) -> np.ndarray:
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy * h) / (ry * h)) ** 2 + ((xx - cx * w) / (rx * w)) ** 2 <= 1.0


def _poisson_residual(f: np.ndarray, src: np.ndarray, tgt: np.ndarray, omega: np.ndarray, mode: str = "normal"):
    """Residual of the discrete Poisson equation at every pixel of omega, computed independently (per channel)."""
    h, w = omega.shape
    res = np.zeros(f.shape)
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        ys, xs = np.nonzero(omega)
        qy, qx = ys + dy, xs + dx
        ok = (qy >= 0) & (qy < h) & (qx >= 0) & (qx < w)
        ys, xs, qy, qx = ys[ok], xs[ok], qy[ok], qx[ok]
        v = src[ys, xs] - src[qy, qx]
        if mode == "mixed":
            tv = tgt[ys, xs] - tgt[qy, qx]
            v = np.where(np.abs(tv) > np.abs(v), tv, v)
        # |N_p| f_p - sum_q f_q - sum_q v_pq  (f_q = f*_q outside omega, and f already holds that)
        res[ys, xs] += f[ys, xs] - f[qy, qx] - v
    return res[omega]


@pytest.fixture(scope="module")
def pair():
    return _image(1), _image(2)


# --------------------------------------------------------------------------------------------------------------------
# Core properties
# --------------------------------------------------------------------------------------------------------------------

def test_outside_mask_untouched_and_dtype_kept(pair):
    src, tgt = (a.astype(np.uint8) for a in pair)
    mask = _ellipse()
    out = poisson_composite(src, tgt, mask)
    assert out.dtype == np.uint8 and out.shape == tgt.shape
    assert np.array_equal(out[~mask], tgt[~mask])
    assert (out[mask] != tgt[mask]).any()             # something did happen inside
    assert out is not tgt and np.shares_memory(out, tgt) is False


@pytest.mark.parametrize("mode", ["normal", "mixed"])
def test_solves_the_discrete_poisson_equation(pair, mode):
    src, tgt = pair
    mask = _ellipse()
    out = poisson_composite(src, tgt, mask, mode=mode)
    res = _poisson_residual(out, src, tgt, mask, mode)
    assert np.abs(res).max() < 1e-3                    # values are ~0..255; CG stops at 1e-6 relative
    # The unsolved target would not satisfy it.
    assert np.abs(_poisson_residual(tgt, src, tgt, mask, mode)).max() > 10


@pytest.mark.parametrize("mode", ["normal", "mixed"])
def test_matches_sparse_reference(pair, mode):
    src, tgt = pair
    mask = _ellipse()
    ours = poisson_composite(src, tgt, mask, mode=mode)
    ref = poisson_composite_reference(src, tgt, mask, mode=mode)
    assert np.abs(ours - ref).max() < 1e-3
    ours8 = poisson_composite(src.astype(np.uint8), tgt.astype(np.uint8), mask, mode=mode)
    ref8 = poisson_composite_reference(src.astype(np.uint8), tgt.astype(np.uint8), mask, mode=mode)
    assert np.abs(ours8.astype(int) - ref8).max() <= 1
    assert (ours8 == ref8).mean() > 0.99


def test_tighter_tolerance_gets_closer_to_reference(pair):
    src, tgt = pair
    mask = _ellipse()
    ref = poisson_composite_reference(src, tgt, mask)
    loose = np.abs(poisson_composite(src, tgt, mask, tol=1e-3) - ref).max()
    tight = np.abs(poisson_composite(src, tgt, mask, tol=1e-10) - ref).max()
    assert tight < 1e-7 and tight < loose


def test_boundary_values_come_from_target(pair):
    """Source = target + constant: the guidance is the target's own gradient, so the solution is the target."""
    _, tgt = pair
    mask = _ellipse()
    assert np.abs(poisson_composite(tgt + 37.0, tgt, mask) - tgt).max() < 1e-4
    assert np.abs(poisson_composite(tgt + 37.0, tgt, mask, tol=1e-12) - tgt).max() < 1e-9
    # Pixels of the outer boundary ring are the target's, the first inner ring is pulled towards them.
    src, _ = pair
    out = poisson_composite(src, tgt, mask)
    ring = np.zeros_like(mask)
    ring[1:-1, 1:-1] = ~mask[1:-1, 1:-1] & (mask[:-2, 1:-1] | mask[2:, 1:-1] | mask[1:-1, :-2] | mask[1:-1, 2:])
    assert np.array_equal(out[ring], tgt[ring])


def test_constant_source_gives_harmonic_interpolation():
    """With a constant source the guidance vanishes: inside, f is the discrete harmonic extension of the boundary.
    A linear function is discrete-harmonic, so a linear target must be reproduced exactly inside the mask."""
    yy, xx = np.mgrid[:H, :W].astype(np.float64)
    tgt = np.stack([0.7 * xx + 0.2 * yy + 10, -0.3 * xx + 1.1 * yy + 90, 0.5 * xx - 0.5 * yy + 120], axis=-1)
    src = np.full_like(tgt, 42.0)
    mask = _ellipse()
    assert np.abs(poisson_composite(src, tgt, mask) - tgt).max() < 1e-3          # values ~100, tol 1e-6
    assert np.abs(poisson_composite(src, tgt, mask, tol=1e-12) - tgt).max() < 1e-9
    # A non-linear boundary: compare with the independent direct solve.
    tgt2 = tgt + 30 * np.sin(xx / 7)[..., None]
    out2 = poisson_composite(src, tgt2, mask)
    assert np.abs(out2 - poisson_composite_reference(src, tgt2, mask)).max() < 1e-3
    assert np.abs(_poisson_residual(out2, src, tgt2, mask)).max() < 1e-3


def test_mixed_keeps_strong_target_edges_normal_does_not():
    yy, xx = np.mgrid[:H, :W]
    tgt = np.where(xx < W // 2, 40.0, 200.0)[..., None].repeat(3, axis=2)   # strong vertical edge
    src = np.full((H, W, 3), 128.0) + 0.5 * yy[..., None]                  # flat, weak gradient
    mask = _ellipse(rx=0.35, ry=0.35)
    row = H // 2
    normal = poisson_composite(src, tgt, mask, mode="normal")
    mixed = poisson_composite(src, tgt, mask, mode="mixed")
    step_normal = abs(normal[row, W // 2, 0] - normal[row, W // 2 - 1, 0])
    step_mixed = abs(mixed[row, W // 2, 0] - mixed[row, W // 2 - 1, 0])
    assert step_mixed == pytest.approx(160.0, abs=1e-3)    # the target's edge is kept
    assert step_normal < 5.0                                # the source's flat gradient is kept
    inside = mask[row]
    assert np.abs(np.diff(normal[row, inside, 0])).max() < 5.0     # no edge anywhere along the row
    assert np.abs(np.diff(mixed[row, inside, 0])).max() > 150.0
    # Elsewhere the source gradient wins: the source's texture shows in mixed mode where the target is flat.
    tex = src + 10.0 * (np.indices((H, W)).sum(0) % 2)[..., None]          # checkerboard texture
    mixed_tex = poisson_composite(tex, tgt, mask, mode="mixed")
    flat = mask & (np.abs(np.arange(W) - W // 2) > 3)[None, :] & np.roll(mask, 1, 1) & np.roll(mask, -1, 1)
    assert np.abs(mixed_tex - np.roll(mixed_tex, 1, axis=1))[flat].mean() > 8.0


# --------------------------------------------------------------------------------------------------------------------
# Masks OpenCV gets wrong
# --------------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("corner", [(0.0, 0.0), (1.0, 1.0), (0.5, 0.0)])
def test_mask_touching_the_image_border(pair, corner):
    src, tgt = pair
    mask = _ellipse(cy=corner[0], cx=corner[1], ry=0.45, rx=0.4)
    assert mask[0].any() or mask[-1].any() or mask[:, 0].any() or mask[:, -1].any()
    out = poisson_composite(src, tgt, mask)
    assert np.array_equal(out[~mask], tgt[~mask])
    assert np.abs(out - poisson_composite_reference(src, tgt, mask)).max() < 1e-3
    assert np.abs(_poisson_residual(out, src, tgt, mask)).max() < 1e-3


def test_several_components(pair):
    src, tgt = pair
    mask = (_ellipse(cy=0.25, cx=0.2, ry=0.15, rx=0.12) | _ellipse(cy=0.7, cx=0.8, ry=0.2, rx=0.15)
            | _ellipse(cy=0.75, cx=0.25, ry=0.1, rx=0.1))
    mask[5:8, 40:43] = True                                            # a tiny one (direct solve path)
    mask[0, W - 4:] = True                                             # one on the border
    out = poisson_composite(src, tgt, mask)
    ref = poisson_composite_reference(src, tgt, mask)
    assert np.array_equal(out[~mask], tgt[~mask])
    assert np.abs(out - ref).max() < 1e-3
    # Components are independent: solving them one at a time gives the same image.
    from scipy import ndimage
    labels, count = ndimage.label(mask)
    assert count == 5
    seq = tgt.copy()
    for k in range(1, count + 1):
        seq = poisson_composite(src, seq, labels == k)
    assert np.abs(seq - out).max() < 1e-3


def test_far_apart_components_are_solved_in_separate_boxes(monkeypatch, pair):
    import collage_core.poisson as P
    src, tgt = (np.pad(a, ((0, 400), (0, 400), (0, 0)), mode="reflect") for a in pair)
    mask = np.zeros(src.shape[:2], bool)
    mask[10:30, 10:30] = True
    mask[440:460, 450:470] = True
    sizes = []
    real = P._solve

    def spy(omega, *a, **k):
        sizes.append(omega.size)
        return real(omega, *a, **k)

    monkeypatch.setattr(P, "_solve", spy)
    out = poisson_composite(src, tgt, mask)
    assert sorted(sizes) == [22 * 22, 22 * 22]                  # two 20x20 squares plus their 1-pixel frames
    assert np.abs(out - poisson_composite_reference(src, tgt, mask)).max() < 1e-3


def test_dirichlet_boundary_of_a_single_pixel():
    """Everything but one pixel is masked: an almost pure-Neumann problem (the hardest case for the solver)."""
    n = 160
    src, tgt = _image(5, n, n), _image(6, n, n)
    mask = np.ones((n, n), bool)
    mask[n // 3, n // 2] = False
    out = poisson_composite(src, tgt, mask)
    assert out[n // 3, n // 2].tolist() == tgt[n // 3, n // 2].tolist()
    assert np.abs(_poisson_residual(out, src, tgt, mask)).max() < 1e-3
    # The solution is the source shifted by the constant that matches the single boundary pixel.
    assert np.abs(out - (src + (tgt[n // 3, n // 2] - src[n // 3, n // 2]))).max() < 1e-3


def test_soft_mask_blends_the_binary_solution(pair):
    src, tgt = pair
    yy, xx = np.mgrid[:H, :W]
    d = np.sqrt(((yy - H / 2) / (0.35 * H)) ** 2 + ((xx - W / 2) / (0.35 * W)) ** 2)
    alpha = np.clip((1.0 - d) * 4.0, 0.0, 1.0)                      # 1 in the middle, ramps to 0
    assert 0 < ((alpha > 0) & (alpha < 1)).mean() < 0.5
    out = poisson_composite(src, tgt, alpha)
    hard = poisson_composite(src, tgt, alpha > 0)
    expect = tgt + alpha[..., None] * (hard - tgt)
    assert np.abs(out - expect).max() < 1e-9
    assert np.array_equal(out[alpha == 1], hard[alpha == 1])
    assert np.array_equal(out[alpha == 0], tgt[alpha == 0])
    assert np.abs(out - poisson_composite_reference(src, tgt, alpha)).max() < 1e-3
    # uint8 masks 0..255 are soft too (divided by 255); 0/1 masks are binary.
    a8 = np.round(alpha * 255).astype(np.uint8)
    assert np.abs(poisson_composite(src, tgt, a8) - (tgt + (a8 / 255.0)[..., None] * (hard - tgt))).max() < 1e-9
    assert np.array_equal(poisson_composite(src, tgt, (alpha > 0).astype(np.uint8)), hard)


def test_small_mask_uses_the_direct_path(pair):
    src, tgt = pair
    mask = np.zeros((H, W), bool)
    mask[30:37, 40:48] = True
    out = poisson_composite(src, tgt, mask)
    assert np.abs(out - poisson_composite_reference(src, tgt, mask)).max() < 1e-9


def test_offset_placement_equals_same_frame_composite(pair):
    big_src, tgt = pair
    src = big_src[10:50, 20:70]
    mask = _ellipse(40, 50, ry=0.4, rx=0.4)
    dy, dx = 20, 30
    canvas = tgt.copy()
    canvas[dy:dy + 40, dx:dx + 50] = src
    full_mask = np.zeros((H, W), bool)
    full_mask[dy:dy + 40, dx:dx + 50] = mask
    a = poisson_composite(src, tgt, mask, offset=(dy, dx))
    b = poisson_composite(canvas, tgt, full_mask)
    assert np.abs(a - b).max() < 1e-9
    # Partly outside the target: the part that lands outside is dropped, and the rest touches the border.
    c = poisson_composite(src, tgt, mask, offset=(-15, 60))
    canvas2 = np.pad(tgt, ((15, 0), (0, 20), (0, 0)))
    canvas2[0:40, 60:110] = src
    full2 = np.zeros(canvas2.shape[:2], bool)
    full2[0:40, 60:110] = mask
    d = poisson_composite(canvas2[15:, :W], tgt, full2[15:, :W])
    assert np.abs(c - d).max() < 1e-9
    assert np.array_equal(c[~full2[15:, :W]], tgt[~full2[15:, :W]])


# --------------------------------------------------------------------------------------------------------------------
# Channels and dtypes
# --------------------------------------------------------------------------------------------------------------------

def test_grayscale(pair):
    src, tgt = pair[0][..., 1], pair[1][..., 1]
    mask = _ellipse()
    out = poisson_composite(src, tgt, mask)
    assert out.shape == (H, W)
    assert np.abs(out - poisson_composite_reference(src, tgt, mask)).max() < 1e-3
    assert np.abs(out - poisson_composite(pair[0], pair[1], mask)[..., 1]).max() < 1e-3
    # HxWx1 keeps its shape.
    out1 = poisson_composite(src[..., None], tgt[..., None], mask)
    assert out1.shape == (H, W, 1) and np.abs(out1[..., 0] - out).max() < 1e-9


def test_grey_source_is_broadcast_to_colour_target(pair):
    src, tgt = pair
    mask = _ellipse()
    grey = src[..., 0]
    out = poisson_composite(grey, tgt, mask)
    assert np.abs(out - poisson_composite(np.repeat(grey[..., None], 3, axis=2), tgt, mask)).max() < 1e-9


def test_colour_source_into_grey_target_is_rejected(pair):
    with pytest.raises(ValueError, match="greyscale"):
        poisson_composite(pair[0], pair[1][..., 0], _ellipse())


def test_rgba_keeps_target_alpha(pair):
    src, tgt = (a.astype(np.uint8) for a in pair)
    mask = _ellipse()
    alpha_t = np.random.default_rng(3).integers(0, 256, (H, W, 1), dtype=np.uint8)
    tgt4 = np.concatenate([tgt, alpha_t], axis=2)
    src4 = np.concatenate([src, np.zeros((H, W, 1), np.uint8)], axis=2)
    out = poisson_composite(src4, tgt4, mask)
    assert out.shape == (H, W, 4) and out.dtype == np.uint8
    assert np.array_equal(out[..., 3], alpha_t[..., 0])
    assert np.array_equal(out[..., :3], poisson_composite(src, tgt, mask))


def test_uint16_and_depth_conversion(pair):
    src, tgt = pair
    mask = _ellipse()
    src16, tgt16 = (np.round(a * 257).astype(np.uint16) for a in pair)
    out = poisson_composite(src16, tgt16, mask)
    assert out.dtype == np.uint16
    assert np.abs(out.astype(int) - poisson_composite_reference(src16, tgt16, mask)).max() <= 1
    # A uint8 source into a uint16 target is scaled by 257 (65535 / 255).
    src8 = src.astype(np.uint8)
    a = poisson_composite(src8, tgt16, mask)
    b = poisson_composite(src8.astype(np.uint16) * 257, tgt16, mask)
    assert np.array_equal(a, b)
    # Values are clipped to the dtype's range, not wrapped.
    bright = np.full((H, W, 3), 65535, np.uint16)
    assert poisson_composite(bright, np.full((H, W, 3), 65000, np.uint16), mask).min() >= 65000 - 1


def test_float32_and_float16(pair):
    src, tgt = pair
    mask = _ellipse()
    ref = poisson_composite_reference(src, tgt, mask)
    out32 = poisson_composite(src.astype(np.float32), tgt.astype(np.float32), mask)
    assert out32.dtype == np.float32 and np.abs(out32 - ref).max() < 1e-3
    out16 = poisson_composite((src / 255).astype(np.float16), (tgt / 255).astype(np.float16), mask)
    assert out16.dtype == np.float16 and np.abs(out16.astype(float) * 255 - ref).max() < 0.5


# --------------------------------------------------------------------------------------------------------------------
# Bad inputs
# --------------------------------------------------------------------------------------------------------------------

def test_size_mismatch_names_the_sizes(pair):
    src, tgt = pair
    with pytest.raises(ValueError, match=r"\(72, 90\).*\(72, 89\)"):
        poisson_composite(src, tgt[:, :89], _ellipse())
    with pytest.raises(ValueError, match=r"mask \(72, 91\)"):
        poisson_composite(src, tgt, np.zeros((72, 91), bool))
    with pytest.raises(ValueError, match=r"mask \(10, 10\).*\(72, 90\)"):
        poisson_composite(src, tgt, np.ones((10, 10), bool), offset=(0, 0))


def test_empty_mask(pair):
    src, tgt = pair
    with pytest.raises(ValueError, match="empty"):
        poisson_composite(src, tgt, np.zeros((H, W), bool))
    with pytest.raises(ValueError, match="empty"):           # everything lands outside the target
        poisson_composite(src, tgt, _ellipse(), offset=(H + 5, 0))
    with pytest.raises(ValueError, match="empty"):
        poisson_composite_reference(src, tgt, np.zeros((H, W)))


def test_mask_covering_everything_is_singular(pair):
    with pytest.raises(ValueError, match="whole target"):
        poisson_composite(pair[0], pair[1], np.ones((H, W), bool))


@pytest.mark.parametrize("bad, what", [
    (np.zeros((2, H, W, 3)), "source"),
    (np.zeros((H, W, 2)), "source"),
    (np.zeros((H, W, 3), np.int32), "source"),
])
def test_bad_images(pair, bad, what):
    with pytest.raises(ValueError, match=what):
        poisson_composite(bad, pair[1], _ellipse())


@pytest.mark.parametrize("mask, msg", [
    (np.zeros((H, W, 3), bool), "mask must be HxW"),
    (np.full((H, W), 1.5), r"\[0, 1\]"),
    (np.full((H, W), np.nan), "NaN"),
    (np.full((H, W), -1, np.int16), "negative"),
    (np.full((H, W), 7, np.int32), "0/1"),
])
def test_bad_masks(pair, mask, msg):
    with pytest.raises(ValueError, match=msg):
        poisson_composite(pair[0], pair[1], mask)


def test_other_bad_arguments(pair):
    src, tgt = pair
    mask = _ellipse()
    with pytest.raises(ValueError, match="mode"):
        poisson_composite(src, tgt, mask, mode="monochrome")
    with pytest.raises(ValueError, match="mix integer and float"):
        poisson_composite(src.astype(np.uint8), tgt, mask)
    with pytest.raises(ValueError, match="offset"):
        poisson_composite(src, tgt, mask, offset=(1.5, 0))
    with pytest.raises(ValueError, match="NaN"):
        bad = src.copy()
        bad[H // 2, W // 2] = np.nan
        poisson_composite(bad, tgt, mask)
    with pytest.raises(ValueError, match="tol"):
        poisson_composite(src, tgt, mask, tol=0)
