"""collage_core.collage on its own: class lookup, class-map recipes (paint, sweeps, layer ranges), feature-blend
recipes, blend weights, and synthesize_collage's pairing, grouping and checks, with the tiny generator."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collage_core import Generator, GeneratorConfig
from collage_core import collage as cl
from collage_core.maps import transplant_blends
from collage_core.masks import ellipse, rectangle
from nodes_support import CLASS_NAMES, tiny_generator


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture(scope="module")
def z(G):
    return torch.randn(3, G.config.dim_z, generator=torch.Generator().manual_seed(0))


def _soft(seed: int, size: int = 64) -> torch.Tensor:
    return torch.rand(1, size, size, generator=torch.Generator().manual_seed(seed))


def _refused(argument: str, match: str, call) -> None:
    """``call()`` raises an ArgumentError (a ValueError) naming ``argument``, with a message matching ``match``."""
    with pytest.raises(cl.ArgumentError, match=match) as e:
        call()
    assert isinstance(e.value, ValueError) and e.value.argument == argument


# ----------------------------------------------------------------------------------------------- classes
def test_class_index():
    names = ["Dog", "cat", "polar_bear"]
    assert cl.class_index(names, "dog") == 0 and cl.class_index(names, " CAT ") == 1
    assert cl.class_index(names, 2) == 2 and cl.class_index(names, "2") == 2
    assert cl.class_index(["1", "0"], "0") == 1  # a name wins over an id written as a string
    with pytest.raises(ValueError, match=r"unknown class name 'zebra'; the model's classes are: Dog, cat, polar_bear"):
        cl.class_index(names, "zebra")
    with pytest.raises(ValueError, match=r"class id 3 out of range: the model has 3 classes \(0\.\.2\)"):
        cl.class_index(names, 3)
    with pytest.raises(ValueError, match=r"class id -1 out of range"):
        cl.class_index(names, "-1")


def test_select_class(G):
    spec = cl.select_class(G, "Polar_Bear")
    assert spec == cl.ClassSpec((7,), ("polar_bear",)) and spec.variants == 1
    assert cl.select_class(G, 20).names == ("dragon",)
    with pytest.raises(ValueError, match="unknown class name 'zebra'"):
        cl.select_class(G, "zebra")


def test_argument_error_is_a_value_error_with_the_argument():
    e = cl.ArgumentError("mask", "bad mask")
    assert isinstance(e, ValueError) and e.argument == "mask" and str(e) == "bad mask"


# ---------------------------------------------------------------------------------------------- layer ranges
def test_layer_range():
    assert cl.layer_range(0, -1, 8) == (0, 7)
    assert cl.layer_range(2, -3, 8) == (2, 5)
    assert cl.layer_range(3, 3, 8) == (3, 3)
    _refused("layer_start", r"sCBN layer 8 out of range: this generator has sCBN layers 0\.\.7",
             lambda: cl.layer_range(8, -1, 8, "sCBN layer"))
    _refused("layer_start", r"layer -1 out of range", lambda: cl.layer_range(-1, 3, 8))
    _refused("layer_end", r"layer -9 out of range: .* \(-1 means the last\)", lambda: cl.layer_range(0, -9, 8))
    _refused("layer_end", r"the range ends \(layer 2\) before it starts \(layer 5\)",
             lambda: cl.layer_range(5, 2, 8))


def test_parse_layer_ranges():
    assert cl.parse_layer_ranges("0-3, 4-7, 5, 2-end", 8) == [(0, 3), (4, 7), (5, 5), (2, 7)]
    assert cl.parse_layer_ranges(" 1 - 2 ;6--1; 3-", 8) == [(1, 2), (6, 7), (3, 7)]
    for text, match in [("", r"no layer ranges given"), (" , ;", r"no layer ranges given"),
                        ("0-x", r"bad layer range '0-x': write 'first-last'"),
                        ("end", r"bad layer range 'end'"),
                        ("5-2", r"bad layer range '5-2': the range ends \(layer 2\) before it starts \(layer 5\)"),
                        ("0-8", r"bad layer range '0-8': layer 8 out of range")]:
        with pytest.raises(ValueError, match=match):
            cl.parse_layer_ranges(text, 8)


def test_layer_range_sweep_modes():
    assert cl.layer_range_sweep("per block", 10) == [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)]
    assert cl.layer_range_sweep("from first layer", 6) == [(0, 1), (0, 3), (0, 5)]
    assert cl.layer_range_sweep("to last layer", 6) == [(4, 5), (2, 5), (0, 5)]
    assert cl.layer_range_sweep("single layers", 4) == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert cl.layer_range_sweep("custom", 8, "1-2, 4") == [(1, 2), (4, 4)]
    for mode in cl.LAYER_SWEEPS[:-1]:  # every range of the built-in sweeps is valid
        for a, b in cl.layer_range_sweep(mode, 8):
            assert 0 <= a <= b < 8
    _refused("mode", r"mode must be one of per block, .*, not 'diagonal'",
             lambda: cl.layer_range_sweep("diagonal", 8))
    _refused("custom", r"bad layer range '9'", lambda: cl.layer_range_sweep("custom", 8, "9"))


# ---------------------------------------------------------------------------------------------- class maps
def test_new_class_map(G):
    cm = cl.new_class_map(G, "Tiger", 2, 5)
    assert cm.weights.shape == (1, 1, 64, 64) and torch.equal(cm.weights, torch.ones(1, 1, 64, 64))
    assert cm.classes == (2,) and cm.base_class == 2 and cm.layer_ranges == ((2, 5),) and cm.n_layers == 8
    assert cm.class_names == tuple(CLASS_NAMES) and cm.variants == 1 and cm.weights.device == G.device
    assert cl.new_class_map(G, 0).layer_ranges == ((0, 7),)
    _refused("base_class", "unknown class name 'zebra'", lambda: cl.new_class_map(G, "zebra"))
    _refused("layer_start", r"sCBN layer 9 out of range", lambda: cl.new_class_map(G, 0, 9))
    _refused("layer_end", r"the range ends", lambda: cl.new_class_map(G, 0, 5, 2))


def test_paint_keeps_weights_a_partition_of_unity(G):
    """Soft masks, partial strengths, repeated and overlapping classes: weights stay >= 0 and sum to 1."""
    cm = cl.new_class_map(G, "dog")
    for i, (cls, s) in enumerate([("cat", 0.8), ("tiger", 0.5), ("cat", 1.0), ("dog", 0.3), ("fox", 0.0)]):
        cm = cl.paint_class(cm, _soft(i), cls, [s])
    assert cm.classes == (0, 1, 2, 4)  # one channel per class, in order of first use
    assert float(cm.weights.min()) >= 0
    torch.testing.assert_close(cm.weights.sum(1), torch.ones(1, 64, 64), atol=1e-6, rtol=0)
    assert float(cm.weights[:, 3].abs().max()) == 0.0  # strength 0 adds the channel but no weight


def test_paint_later_regions_win_and_the_input_is_not_modified(G):
    base = cl.new_class_map(G, "dog")
    left = rectangle(64, 64, 0, 0, 0.5, 1)
    a = cl.paint_class(base, left, "cat", [1.0])
    before = a.weights.clone()
    b = cl.paint_class(a, torch.ones(64, 64), "lion", [1.0])  # an (H, W) mask covering everything
    assert torch.equal(a.weights, before) and a.classes == (0, 1)
    assert b.classes == (0, 1, 3) and torch.equal(b.weights[:, 2], torch.ones(1, 64, 64))
    assert float(b.weights[:, :2].abs().max()) == 0.0
    c = cl.paint_class(a, left, "dog", [1.0])  # painting the base class back restores the base
    assert torch.equal(c.weights[:, 0], torch.ones(1, 64, 64)) and float(c.weights[:, 1].abs().max()) == 0.0
    half = cl.paint_class(base, left, "cat", [0.25])
    assert torch.equal(half.weights[0, :, 0, 0], torch.tensor([0.75, 0.25]))
    assert torch.equal(half.weights[0, :, 0, 63], torch.tensor([1.0, 0.0]))


def test_paint_variants_are_masks_times_strengths(G):
    """Two masks and two strengths give four variants, strength varying fastest; each is the single paint."""
    base = cl.new_class_map(G, "dog", 2, 5)
    m = torch.cat([_soft(1), ellipse(64, 64, 0.5, 0.5, 0.3, 0.3)])
    out = cl.paint_class(base, m, "cat", [0.25, 1.0])
    assert out.variants == 4 and out.layer_ranges == ((2, 5),) * 4
    for i in range(2):
        for j, s in enumerate([0.25, 1.0]):
            one = cl.paint_class(base, m[i], "cat", [s])
            assert torch.equal(out.weights[2 * i + j], one.weights[0]), (i, j)
    # V variants and a batch of V masks pair up; a single mask paints every variant
    pair = cl.ClassMapSpec(out.weights[[0, 3]], out.classes, ((0, 1), (6, 7)), out.n_layers, out.class_names)
    again = cl.paint_class(pair, m, "tiger", [1.0])
    assert again.variants == 2 and again.layer_ranges == ((0, 1), (6, 7))
    assert torch.equal(again.weights[:, 2], m)  # variant i painted with mask i
    assert cl.paint_class(out, m[:1], "tiger", [1.0]).variants == 4


def test_class_map_of_selected_variants(G):
    sw = cl.paint_class(cl.new_class_map(G, "dog"), _soft(0), "cat", [0.0, 0.5, 1.0])
    sub = sw.class_map(torch.tensor([2, 0]))
    assert sub.classes == (0, 1) and torch.equal(sub.weights, sw.weights[[2, 0]])
    assert torch.equal(sw.class_map().weights, sw.weights)


def test_paint_refuses_bad_arguments(G):
    cm = cl.new_class_map(G, "dog")
    sw = cl.paint_class(cm, _soft(0), "cat", [0.5, 1.0])
    m = _soft(1)
    _refused("class_name", "unknown class name 'zebra'", lambda: cl.paint_class(cm, m, "zebra", [1.0]))
    _refused("class_name", r"class id 21 out of range", lambda: cl.paint_class(cm, m, 21, [1.0]))
    for s in (1.5, -0.1, float("nan")):
        _refused("strengths", r"strength .* is outside \[0, 1\]", lambda s=s: cl.paint_class(cm, m, 1, [s]))
    _refused("strengths", "no strengths given", lambda: cl.paint_class(cm, m, 1, []))
    _refused("region", r"region has values in \[.*\]; a mask must lie in \[0, 1\]",
             lambda: cl.paint_class(cm, m * 2, 1, [1.0], "region"))  # the mask's name is the caller's
    _refused("mask", r"mask has shape \(64,\)", lambda: cl.paint_class(cm, torch.ones(64), 1, [1.0]))
    _refused("mask", "mask has batch 3 but the class map has 2 variants; they must match",
             lambda: cl.paint_class(sw, torch.rand(3, 64, 64), 1, [1.0]))


def test_sweep_strengths():
    assert cl.sweep_strengths(0.0, 1.0, 5) == [0.0, 0.25, 0.5, 0.75, 1.0]
    assert cl.sweep_strengths(1.0, 0.0, 3) == [1.0, 0.5, 0.0]  # descending is allowed
    assert cl.sweep_strengths(0.3, 0.9, 1) == [0.3]
    _refused("steps", "steps must be at least 1, got 0", lambda: cl.sweep_strengths(0, 1, 0))
    _refused("start", r"start 1.5 is outside \[0, 1\]", lambda: cl.sweep_strengths(1.5, 1, 2))
    _refused("end", r"end -1.0 is outside \[0, 1\]", lambda: cl.sweep_strengths(0, -1, 2))


def test_sweep_layer_ranges(G):
    sw = cl.paint_class(cl.new_class_map(G, "dog"), _soft(0), "cat", [0.5, 1.0])
    out = cl.sweep_layer_ranges(sw, [(0, 1), (2, -1)])
    assert out.variants == 4 and out.layer_ranges == ((0, 1), (2, 7), (0, 1), (2, 7))
    assert torch.equal(out.weights, sw.weights[[0, 0, 1, 1]]) and out.classes == sw.classes
    _refused("ranges", "no layer ranges given", lambda: cl.sweep_layer_ranges(sw, []))
    _refused("layer_end", r"sCBN layer 8 out of range", lambda: cl.sweep_layer_ranges(sw, [(0, 8)]))


# ------------------------------------------------------------------------------------------ feature blends
def test_add_feature_blend_builds_and_chains(G):
    ref = torch.randn(G.config.dim_z)  # one latent as a vector
    m = rectangle(32, 32, 0, 0, 1, 0.5)
    fb = cl.add_feature_blend(G, None, ref, m, 1, 3, 0.7)
    assert fb.sizes == tuple(G.config.blend_sizes) == (4, 8, 16, 32, 64) and fb.variants == 1
    (e,) = fb.entries
    assert e.reference.shape == (1, 128) and torch.equal(e.reference[0], ref) and torch.equal(e.mask, m)
    assert e.strengths == ((1, 0.7), (2, 0.7), (3, 0.7))
    fb2 = cl.add_feature_blend(G, fb, ref.numpy(), m, 0, -1, 1.0)  # numpy latents are accepted
    assert len(fb2.entries) == 2 and [b for b, _ in fb2.entries[1].strengths] == [0, 1, 2, 3, 4]
    assert len(fb.entries) == 1  # the input is not modified
    batch = cl.add_feature_blend(G, fb, torch.randn(2, 128), m, 2, 2, 0.5)
    assert batch.variants == 2


def test_add_feature_blend_refuses_bad_arguments(G):
    m = rectangle(64, 64, 0, 0, 1, 0.5)
    ref = torch.randn(1, 128)
    other = cl.FeatureBlendSpec(cl.add_feature_blend(G, None, ref, m, 0, 0, 1.0).entries, (4, 8, 16))
    cases = [
        ("blend", r"made for another generator \(blend sizes \(4, 8, 16\)",
         lambda: cl.add_feature_blend(G, other, ref, m, 0, 0, 1.0)),
        ("reference", r"reference has shape \(1, 100\); expected LATENT_Z \(N, 128\)",
         lambda: cl.add_feature_blend(G, None, torch.zeros(1, 100), m, 0, 0, 1.0)),
        ("reference", r"reference has shape \(0, 128\)",
         lambda: cl.add_feature_blend(G, None, torch.zeros(0, 128), m, 0, 0, 1.0)),
        ("reference", "reference must hold finite float values",
         lambda: cl.add_feature_blend(G, None, torch.full((1, 128), float("nan")), m, 0, 0, 1.0)),
        ("reference", "reference must hold finite float values",
         lambda: cl.add_feature_blend(G, None, torch.zeros(1, 128, dtype=torch.long), m, 0, 0, 1.0)),
        ("mask", r"mask has values in", lambda: cl.add_feature_blend(G, None, ref, m - 0.5, 0, 0, 1.0)),
        ("mask", "mask has batch 3 and reference has batch 2",
         lambda: cl.add_feature_blend(G, None, torch.randn(2, 128), torch.rand(3, 8, 8), 0, 0, 1.0)),
        ("layer_start", r"blend point 5 out of range: this generator has blend points 0\.\.4",
         lambda: cl.add_feature_blend(G, None, ref, m, 5, -1, 1.0)),
        ("layer_end", "the range ends", lambda: cl.add_feature_blend(G, None, ref, m, 3, 1, 1.0)),
        ("strength", r"strength 2.0 is outside", lambda: cl.add_feature_blend(G, None, ref, m, 0, 0, 2.0)),
    ]
    for argument, match, call in cases:
        _refused(argument, match, call)
    two = cl.add_feature_blend(G, None, torch.randn(2, 128), m, 0, 0, 1.0)
    _refused("mask", r"batch sizes of the chained blends disagree: \[2, 3\]",
             lambda: cl.add_feature_blend(G, two, torch.randn(3, 128), m, 1, 1, 1.0))


def test_blend_streams_share_equal_references(G):
    m = rectangle(16, 16, 0, 0, 0.5, 1)
    r1, r2 = torch.randn(1, 128), torch.randn(1, 128)
    fb = None
    for r in (r1, r2, r1.clone()):
        fb = cl.add_feature_blend(G, fb, r, m, 1, 1, 1.0)
    refs, index = cl.blend_streams(fb)
    assert len(refs) == 2 and torch.equal(refs[0], r1) and torch.equal(refs[1], r2) and index == [1, 2, 1]


def test_one_blend_is_transplant_blends(G):
    """One entry gives exactly the original demo's blend maps at every point it touches; untouched points are
    None (at point 0 transplant_blends writes the identity, which is the same as no blend there)."""
    m = ellipse(48, 48, 0.4, 0.6, 0.3, 0.25)
    fb = cl.add_feature_blend(G, None, torch.randn(1, 128), m, 1, 3, 0.6)
    refs, stream_of = cl.blend_streams(fb)
    ours = cl.blend_weights(fb, stream_of, len(refs) + 1, G.device)
    theirs = transplant_blends(m[0], {1: 0.6, 2: 0.6, 3: 0.6}, G.config.blend_sizes)
    assert ours[0] is None and ours[4] is None and theirs[4] is None
    assert (theirs[0][..., 0] == 1).all() and (theirs[0][..., 1:] == 0).all()
    for b in (1, 2, 3):
        assert torch.equal(ours[b], torch.from_numpy(theirs[b])), b


def test_chained_blends_composite_in_order(G):
    """Two references at one point: weights over [source, ref1, ref2, generated] sum to 1, and where the second
    mask is full at strength 1 the second reference takes everything."""
    left, top = rectangle(16, 16, 0, 0, 0.5, 1), rectangle(16, 16, 0, 0, 1, 0.5)
    fb = cl.add_feature_blend(G, None, torch.randn(1, 128), left, 0, 2, 1.0)
    fb = cl.add_feature_blend(G, fb, torch.randn(1, 128), top, 2, 2, 0.5)
    refs, stream_of = cl.blend_streams(fb)
    w = cl.blend_weights(fb, stream_of, len(refs) + 1, G.device)
    assert [x is None for x in w] == [False, False, False, True, True]
    assert w[0].shape == (1, 4, 4, 4) and w[2].shape == (1, 16, 16, 4)
    for x in w[:3]:
        torch.testing.assert_close(x.sum(-1), torch.ones(x.shape[:-1]), atol=1e-6, rtol=0)
    # point 0 starts from the source, later points from the generated stream
    assert torch.equal(w[0][0, 0, 3], torch.tensor([1.0, 0, 0, 0]))
    assert torch.equal(w[1][0, 0, 7], torch.tensor([0.0, 0, 0, 1]))
    # at point 2: top-left quarter = ref1 then half of ref2 over it; bottom-right = generated
    assert torch.equal(w[2][0, 0, 0], torch.tensor([0.0, 0.5, 0.5, 0.0]))
    assert torch.equal(w[2][0, 15, 15], torch.tensor([0.0, 0.0, 0.0, 1.0]))
    assert torch.equal(w[2][0, 0, 15], torch.tensor([0.0, 0.0, 0.5, 0.5]))


# ---------------------------------------------------------------------------------------------- rendering
@torch.no_grad()
def test_constant_one_hot_class_map_renders_like_the_class(G, z):
    """A fresh class map (one class everywhere, every layer) is the plain class: within 1e-5 (the full-size map
    is shrunk per layer with an anti-aliased filter whose float weights sum to 1 - 1.2e-7)."""
    by_map = cl.synthesize_collage(G, z, class_map=cl.new_class_map(G, "tiger"))
    by_class = cl.synthesize_collage(G, z, classes=cl.select_class(G, "tiger"))
    assert by_map.shape == (3, 3, 64, 64) and by_map.dtype == G.dtype and by_map.device == G.device
    assert float(by_map.abs().max()) <= 1.0
    assert torch.equal(by_class, G.synthesize(z, classes=2))
    torch.testing.assert_close(by_map, by_class, atol=1e-5, rtol=0)
    # a class map limited to some layers uses the base class elsewhere: painting another class there matters
    cat = cl.paint_class(cl.new_class_map(G, "tiger", 6, 7), torch.ones(64, 64), "cat", [1.0])
    out = cl.synthesize_collage(G, z, class_map=cat)
    assert torch.equal(out, G.synthesize(z, classes=2, class_maps=cat.class_map(), map_layers=range(6, 8)))
    assert float((out - by_class).abs().max()) > 1e-3


@torch.no_grad()
def test_pairwise_and_grid_pairing(G, z):
    two = cl.ClassSpec((1, 4), ("cat", "fox"))
    pair = cl.synthesize_collage(G, z[:2], classes=two)
    assert torch.equal(pair, G.synthesize(z[:2], classes=[1, 4]))
    one_latent = cl.synthesize_collage(G, z[0], classes=two)  # a (dim_z,) latent and 2 variants: 2 images
    torch.testing.assert_close(one_latent, G.synthesize(z[:1].expand(2, -1), classes=[1, 4]), atol=1e-6, rtol=0)
    grid = cl.synthesize_collage(G, z, classes=two, combine="grid")
    assert grid.shape == (6, 3, 64, 64)
    # latent-major: row r holds latent r with every variant (1e-5: other batch sizes round differently)
    for r in range(3):
        for v, k in enumerate((1, 4)):
            torch.testing.assert_close(grid[2 * r + v], G.synthesize(z[r:r + 1], classes=k)[0], atol=1e-5, rtol=0)
    with pytest.raises(cl.ArgumentError, match=r"z has 3 latents but there are 2 variants \(classes\)") as e:
        cl.synthesize_collage(G, z, classes=two)
    assert e.value.argument == "combine"


@torch.no_grad()
def test_groups_by_layer_range_and_progress(G, z):
    """Samples are rendered in groups of one sCBN layer range (and at most ``chunk``); each group reports."""
    cm = cl.paint_class(cl.new_class_map(G, "dog"), _soft(3), "cat", [1.0])
    sw = cl.sweep_layer_ranges(cm, [(0, 1), (6, 7)])
    seen = []
    grid = cl.synthesize_collage(G, z[:2], class_map=sw, combine="grid", progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 4), (2, 4), (3, 4), (4, 4)]  # ranges alternate in latent-major order
    for v, (a, b) in enumerate([(0, 1), (6, 7)]):
        want = G.synthesize(z[:2], classes=0, class_maps=cm.class_map(), map_layers=range(a, b + 1))
        torch.testing.assert_close(grid[v::2], want, atol=1e-5, rtol=0)
    seen.clear()
    cl.synthesize_collage(G, z, classes=cl.select_class(G, 0), chunk=2, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 2), (2, 2)]


@torch.no_grad()
def test_feature_blend_renders_like_synthesize(G, z):
    ref = torch.randn(1, 128, generator=torch.Generator().manual_seed(7))
    m = rectangle(64, 64, 0, 0.5, 1, 0.5)
    fb = cl.add_feature_blend(G, None, ref, m, 1, 2, 0.8)
    out = cl.synthesize_collage(G, z[:2], classes=cl.select_class(G, "dog"), feature_blend=fb)
    want = G.synthesize(zs=[z[:2], ref], classes=0, blends=transplant_blends(m[0], {1: 0.8, 2: 0.8},
                                                                           G.config.blend_sizes))
    torch.testing.assert_close(out, want, atol=1e-6, rtol=0)
    assert float((out - G.synthesize(z[:2], classes=0)).abs().max()) > 1e-3


def test_synthesize_collage_refuses_bad_arguments(G, z):
    foreign = Generator(GeneratorConfig.from_layout("resnet_64", ch=2, n_classes=3))  # other classes
    cm = cl.new_class_map(G, "dog")
    two = cl.ClassSpec((0, 1), ("dog", "cat"))
    sw3 = cl.paint_class(cm, _soft(0), "cat", [0.0, 0.5, 1.0])
    fb = cl.add_feature_blend(G, None, torch.randn(1, 128), _soft(1), 0, 0, 1.0)
    cases = [
        ("classes", "give exactly one of classes and class_map", lambda: cl.synthesize_collage(G, z)),
        ("class_map", "give exactly one of classes and class_map",
         lambda: cl.synthesize_collage(G, z, classes=two, class_map=cm)),
        ("combine", r"combine must be one of pairwise, grid, not 'zip'",
         lambda: cl.synthesize_collage(G, z, classes=two, combine="zip")),
        ("z", r"z has shape \(1, 64\); expected LATENT_Z \(N, 128\)",
         lambda: cl.synthesize_collage(G, torch.zeros(1, 64), classes=two)),
        ("class_map", "the class map was made for another generator",
         lambda: cl.synthesize_collage(foreign, z, class_map=cm)),
        ("classes", r"class ids \(0, 5\) do not fit this generator's 3 classes",
         lambda: cl.synthesize_collage(foreign, z, classes=cl.ClassSpec((0, 5), ("a", "b")))),
        ("feature_blend", "the feature blend was made for a generator of another size",
         lambda: cl.synthesize_collage(G, z, classes=two, feature_blend=cl.FeatureBlendSpec(fb.entries, (4, 8)))),
        ("feature_blend", r"variant counts disagree: class_map has 3, feature_blend has 2",
         lambda: cl.synthesize_collage(G, z[:1], class_map=sw3, feature_blend=cl.add_feature_blend(
             G, None, torch.randn(2, 128), _soft(1), 0, 0, 1.0))),
    ]
    for argument, match, call in cases:
        _refused(argument, match, call)


# ------------------------------------------------------------------------------------ small contracts (issue 26)
def test_minus_one_alone_is_the_last_layer():
    assert cl.parse_layer_ranges("-1", 8) == [(7, 7)]
    assert cl.parse_layer_ranges("0-1, -1, 3-end", 8) == [(0, 1), (7, 7), (3, 7)]
    with pytest.raises(ValueError, match="out of range"):
        cl.parse_layer_ranges("-2", 8)


@pytest.mark.parametrize("bad", [2.7, True, None, [1], float("nan")])
def test_class_index_refuses_what_is_not_a_whole_id(bad):
    with pytest.raises(ValueError, match="neither a class name nor a whole class id"):
        cl.class_index(["a", "b", "c"], bad)


def test_class_index_is_one_function_for_the_generator_and_the_collage(G):
    assert cl.class_index(G.class_names, 2.0) == 2 and cl.class_index(G.class_names, np.int64(1)) == 1
    for name in ("  tiger ", "TIGER", "2", " 2 "):
        assert G.class_index(name) == cl.class_index(G.class_names, name) == 2
    with pytest.raises(ValueError, match="neither a class name nor a whole class id"):
        G.class_index(2.7)


def test_custom_layer_ranges_are_bounded_by_the_models_layers():
    """A sweep of a megabyte of ranges would ask for a batch of hundreds of thousands: refused, naming the count."""
    from collage_core.collage import parse_layer_ranges

    with pytest.raises(ValueError, match="characters: more than the 36 different ranges of 8 layers"):
        parse_layer_ranges("0," * 450000, 8)
    with pytest.raises(ValueError, match="37 ranges: 8 layers have only 36 different ranges"):
        parse_layer_ranges(",".join(["0"] * 37), 8)
    assert len(parse_layer_ranges(",".join(f"{a}-{b}" for a in range(8) for b in range(a, 8)), 8)) == 36
