"""Generate adds nothing to the core: its images equal Generator.synthesize with the same maps, classes and blends."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from collage_core.collage import blend_streams, blend_weights
from collage_core.images import to_image
from collage_core.maps import class_map_from_regions, transplant_blends
from nodes_support import call, tiny_generator


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


@pytest.fixture(scope="module")
def parts(G):
    z, _ = call("SampleZ", generator=G, seed=4, batch=3)
    ref, _ = call("SampleZ", generator=G, seed=40, batch=1)
    (ell,) = call("CollageEllipseMask", center_x=0.4, radius_x=0.35)
    (soft,) = call("CollageFeatherMask", mask=ell, sigma=2.0)
    (rect,) = call("CollageRectangleMask", y=0.5, h=0.5, w=1.0)
    (base,) = call("ClassMap", generator=G, base_class="dog")
    return z, ref, soft, rect, base


def test_generate_with_class_map_equals_synthesize(G, parts):
    z, _, soft, rect, base = parts
    (cm,) = call("PaintClass", class_map=base, mask=soft, class_name="cat", strength=0.8)
    (cm,) = call("PaintClass", class_map=cm, mask=rect, class_name="panda", strength=1.0)
    (img,) = call("Generate", generator=G, z=z, class_map=cm)
    ref = class_map_from_regions(0, [(soft[0], 1, 0.8), (rect[0], 8, 1.0)])
    with torch.no_grad():
        want = to_image(G.synthesize(z, class_maps=ref))
    assert torch.equal(img, want)
    with torch.no_grad():  # and the map changes the picture where painted
        plain = to_image(G.synthesize(z, classes=0))
    assert float((img - plain).abs().amax(dim=(0, 3))[48:, :].mean()) > 0.01


def test_generate_with_class_equals_synthesize(G, parts):
    z = parts[0]
    (c,) = call("ClassSelect", generator=G, class_name="lion")
    (img,) = call("Generate", generator=G, z=z, classes=c)
    with torch.no_grad():
        assert torch.equal(img, to_image(G.synthesize(z, classes=3)))


def test_layer_range_is_map_layers(G, parts):
    z, _, soft, _, _ = parts
    (base,) = call("ClassMap", generator=G, base_class="dog", layer_start=2, layer_end=5)
    (cm,) = call("PaintClass", class_map=base, mask=soft, class_name="cat")
    (img,) = call("Generate", generator=G, z=z, class_map=cm)
    ref = class_map_from_regions(0, [(soft[0], 1, 1.0)])
    with torch.no_grad():
        want = to_image(G.synthesize(z, classes=0, class_maps=ref, map_layers=range(2, 6)))
        full = to_image(G.synthesize(z, class_maps=ref))
    assert torch.equal(img, want) and not torch.equal(img, full)


def test_feature_blend_equals_transplant_blends(G, parts):
    z, ref, soft, rect, _ = parts
    (c,) = call("ClassSelect", generator=G, class_name="dog")
    sizes = G.config.blend_sizes
    (fb,) = call("FeatureBlend", generator=G, reference=ref, mask=rect, layer_start=1, layer_end=2, strength=0.7)
    (img,) = call("Generate", generator=G, z=z, classes=c, feature_blend=fb)
    with torch.no_grad():
        want = to_image(G.synthesize(zs=[z, ref], classes=0, blends=transplant_blends(rect[0], {1: .7, 2: .7}, sizes)))
    assert torch.equal(img, want)
    # chained blends of the same reference share its stream: per-point strengths
    (a,) = call("FeatureBlend", generator=G, reference=ref, mask=soft, layer_start=0, layer_end=0, strength=0.5)
    (b,) = call("FeatureBlend", generator=G, reference=ref, mask=soft, layer_start=3, layer_end=3, strength=1.0,
                blend=a)
    assert len(blend_streams(b)[0]) == 1
    (img2,) = call("Generate", generator=G, z=z, classes=c, feature_blend=b)
    with torch.no_grad():
        want2 = to_image(G.synthesize(zs=[z, ref], classes=0,
                                      blends=transplant_blends(soft[0], {0: .5, 3: 1.0}, sizes)))
    assert torch.allclose(img2, want2, atol=1e-6)


def test_feature_blend_with_class_map(G, parts):
    z, ref, soft, rect, base = parts
    (cm,) = call("PaintClass", class_map=base, mask=soft, class_name="cat")
    (fb,) = call("FeatureBlend", generator=G, reference=ref, mask=rect, layer_start=1, layer_end=1, strength=1.0)
    (img,) = call("Generate", generator=G, z=z, class_map=cm, feature_blend=fb)
    with torch.no_grad():
        want = to_image(G.synthesize(zs=[z, ref], class_maps=class_map_from_regions(0, [(soft[0], 1, 1.0)]),
                                     blends=transplant_blends(rect[0], {1: 1.0}, G.config.blend_sizes),
                                     classes=0, map_layers=range(8)))
    assert torch.equal(img, want)


def test_several_references_composite_in_order(G, parts):
    z, ref, soft, rect, _ = parts
    ref2, _ = call("SampleZ", generator=G, seed=41)
    (a,) = call("FeatureBlend", generator=G, reference=ref, mask=rect, layer_start=1, layer_end=2, strength=1.0)
    (b,) = call("FeatureBlend", generator=G, reference=ref2, mask=soft, layer_start=2, layer_end=2, strength=0.6,
                blend=a)
    refs, stream_of = blend_streams(b)
    assert len(refs) == 2 and stream_of == [1, 2]
    w = blend_weights(b, stream_of, 3, G.device)
    assert w[0] is None and w[3] is None and w[4] is None
    assert w[2].shape == (1, 16, 16, 4) and torch.allclose(w[2].sum(-1), torch.ones(1, 16, 16))
    # where the second mask is 1, the second reference wins with its strength; the first keeps the rest
    (c,) = call("ClassSelect", generator=G, class_name="dog")
    (img,) = call("Generate", generator=G, z=z, classes=c, feature_blend=b)
    assert img.shape == (3, 64, 64, 3)


def test_grid_crosses_latents_and_variants(G, parts):
    z, _, soft, _, base = parts
    sweep, _ = call("PaintClassSweep", class_map=base, mask=soft, class_name="cat", start=0.0, end=1.0, steps=4)
    (grid,) = call("Generate", generator=G, z=z[:2], class_map=sweep, combine="grid")
    assert grid.shape == (8, 64, 64, 3)
    with torch.no_grad():
        for r in range(2):
            for v, s in enumerate([0.0, 1 / 3, 2 / 3, 1.0]):
                want = to_image(G.synthesize(z[r:r + 1], class_maps=class_map_from_regions(0, [(soft[0], 1, s)])))
                assert torch.allclose(grid[r * 4 + v], want[0], atol=1e-5), (r, v)
    (pair,) = call("Generate", generator=G, z=z[:1], class_map=sweep)  # pairwise: one latent, 4 variants
    assert torch.allclose(pair, grid[:4], atol=1e-5)


def test_layer_sweep_grid(G, parts):
    z, _, soft, _, base = parts
    (cm,) = call("PaintClass", class_map=base, mask=soft, class_name="cat")
    sw, _ = call("LayerRangeSweep", class_map=cm, mode="per block")
    (grid,) = call("Generate", generator=G, z=z[:2], class_map=sw, combine="grid")
    ref = class_map_from_regions(0, [(soft[0], 1, 1.0)])
    with torch.no_grad():
        for v, (a, b) in enumerate([(0, 1), (2, 3), (4, 5), (6, 7)]):
            want = to_image(G.synthesize(z[:2], classes=0, class_maps=ref, map_layers=range(a, b + 1)))
            assert torch.allclose(grid[v::4], want, atol=1e-5), (a, b)


def test_pairwise_batches_must_agree(G, parts):
    z, _, soft, _, base = parts
    sweep, _ = call("PaintClassSweep", class_map=base, mask=soft, class_name="cat", steps=2)
    with pytest.raises(ValueError, match="input 'combine': z has 3 latents but there are 2 variants"):
        call("Generate", generator=G, z=z, class_map=sweep)
    (both,) = call("Generate", generator=G, z=z[:2], class_map=sweep)
    assert both.shape[0] == 2


def test_generate_chunks_do_not_change_results(G, parts):
    from collage_core.collage import synthesize_collage

    z, _, soft, _, base = parts
    sweep, _ = call("PaintClassSweep", class_map=base, mask=soft, class_name="cat", steps=3)
    seen = []
    a = synthesize_collage(G, z, class_map=sweep, combine="grid", chunk=2, progress=lambda d, t: seen.append((d, t)))
    b = synthesize_collage(G, z, class_map=sweep, combine="grid")
    assert seen[-1] == (5, 5) and torch.allclose(a, b, atol=1e-5)
    assert np.isfinite(a.numpy()).all()
