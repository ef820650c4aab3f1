"""Each node of the pack on its own, with the tiny generator: values, shapes, dtypes, ranges, devices."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

from collage_core import maps
from collage_core.collage import ClassMapSpec, ClassSpec, FeatureBlendSpec
from nodes_support import CLASS_NAMES, TINY, call, tiny_generator


@pytest.fixture(scope="module")
def G():
    return tiny_generator()


# ------------------------------------------------------------------------------------------------- model
def test_load_generator(G):
    (g,) = call("LoadGenerator", model=str(TINY), device="cpu")
    assert g.class_names == CLASS_NAMES and g.resolution == 64 and not g.training
    assert g.device.type == "cpu" and g.dtype == torch.float32
    assert all(not p.requires_grad for p in g.parameters())
    (gb,) = call("LoadGenerator", model=str(TINY), device="auto", dtype="bfloat16")
    assert gb.dtype == torch.bfloat16


def test_load_generator_validation_and_fingerprint(tmp_path):
    import collage_nodes

    cls = collage_nodes.registry()["LoadGenerator"]
    assert cls().validate(model=str(TINY), device="cpu") == []
    errs = cls().validate(model="no-such-model", device="cpu")
    assert len(errs) == 1 and errs[0][0] == "model" and "no-such-model" in errs[0][1]
    if not torch.cuda.is_available():
        assert cls().validate(model=str(TINY), device="cuda")[0][0] == "device"
    copy = tmp_path / "g.safetensors"
    copy.write_bytes(TINY.read_bytes())
    fp1 = cls().fingerprint(model=str(copy))
    copy.write_bytes(TINY.read_bytes() + b"")
    st = copy.stat()
    import os
    os.utime(copy, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    assert cls().fingerprint(model=str(copy)) != fp1


# ------------------------------------------------------------------------------------------------ latents
def test_sample_z(G):
    z, _ = call("SampleZ", generator=G, seed=5, batch=3)
    assert z.shape == (3, 128) and z.dtype == torch.float32 and z.device == G.device
    z1, _ = call("SampleZ", generator=G, seed=6, batch=1)
    assert torch.equal(z[1:2], z1)  # row i of a batch is seed + i alone
    assert torch.equal(call("SampleZ", generator=G, seed=5, batch=3)[0], z)  # deterministic
    zt, _ = call("SampleZ", generator=G, seed=5, batch=3, truncation=0.5)
    assert float(zt.abs().max()) <= 0.5 and not torch.equal(zt, z)
    zmax, _ = call("SampleZ", generator=G, seed=2 ** 64 - 1, batch=2)  # wraps around instead of failing
    assert torch.equal(zmax[1], call("SampleZ", generator=G, seed=0)[0][0])
    assert abs(float(call("SampleZ", generator=G, seed=1, batch=64)[0].std()) - 1) < 0.05


def test_sample_z_labels_name_each_rows_seed(G):
    """The labels output names the seed that reproduces each latent alone (Image Grid's row_labels)."""
    z, labels = call("SampleZ", generator=G, seed=5, batch=3)
    assert labels.splitlines() == ["seed 5", "seed 6", "seed 7"]
    for i, label in enumerate(labels.splitlines()):
        alone, _ = call("SampleZ", generator=G, seed=int(label.split()[1]), batch=1)
        assert torch.equal(alone[0], z[i])
    _, wrapped = call("SampleZ", generator=G, seed=2 ** 64 - 1, batch=2)
    assert wrapped.splitlines() == [f"seed {2 ** 64 - 1}", "seed 0"]


def test_load_and_save_z(G, tmp_path):
    z = np.random.default_rng(0).standard_normal((1, 128)).astype(np.float32)
    np.save(tmp_path / "z-example_0.npy", z)  # the original's layout
    np.save(tmp_path / "flat.npy", z[0].astype(np.float64))
    (a,) = call("LoadZ", generator=G, path=str(tmp_path / "z-example_0.npy"))
    (b,) = call("LoadZ", generator=G, path=str(tmp_path / "flat.npy"))
    assert a.shape == b.shape == (1, 128) and a.dtype == b.dtype == torch.float32
    assert torch.equal(a, torch.from_numpy(z)) and torch.equal(a, b)
    zz, _ = call("SampleZ", generator=G, seed=1, batch=2)
    call("SaveZ", z=zz, filename_prefix="lat/z", output_dir=str(tmp_path))
    call("SaveZ", z=zz, filename_prefix="lat/z", output_dir=str(tmp_path))
    files = sorted(p.name for p in (tmp_path / "lat").iterdir())
    assert files == ["z_00001.npy", "z_00002.npy"]
    saved = np.load(tmp_path / "lat" / "z_00001.npy", allow_pickle=False)
    assert saved.dtype == np.float32 and saved.shape == (2, 128) and np.array_equal(saved, zz.numpy())
    (c,) = call("LoadZ", generator=G, path=str(tmp_path / "lat" / "z_00002.npy"))
    assert torch.equal(c, zz)


def test_concat_z(G):
    a, _ = call("SampleZ", generator=G, seed=1, batch=2)
    b, _ = call("SampleZ", generator=G, seed=9, batch=1)
    (c,) = call("ConcatZ", z_a=a, z_b=b)
    assert c.shape == (3, 128) and torch.equal(c[:2], a) and torch.equal(c[2:], b)


# ------------------------------------------------------------------------------------------------ classes
def test_class_select(G):
    assert call("ClassSelect", generator=G, class_name="Cat")[0] == ClassSpec((1,), ("cat",))
    assert call("ClassSelect", generator=G, class_name="20")[0] == ClassSpec((20,), ("dragon",))
    assert call("ClassSelect", generator=G, class_name=" polar_bear ")[0].ids == (7,)


def test_class_map_and_paint_match_class_map_from_regions(G):
    (cm,) = call("ClassMap", generator=G, base_class="dog")
    assert isinstance(cm, ClassMapSpec) and cm.weights.shape == (1, 1, 64, 64) and cm.classes == (0,)
    assert cm.layer_ranges == ((0, 7),) and cm.n_layers == 8 and float(cm.weights.min()) == 1.0
    (m,) = call("CollageEllipseMask")
    (p1,) = call("PaintClass", class_map=cm, mask=m, class_name="cat", strength=0.8)
    (r,) = call("CollageRectangleMask", x=0.5, w=0.5)
    (p2,) = call("PaintClass", class_map=p1, mask=r, class_name="tiger", strength=1.0)
    ref = maps.class_map_from_regions(0, [(m[0], 1, 0.8), (r[0], 2, 1.0)])
    assert p2.classes == ref.classes == (0, 1, 2)
    assert torch.equal(p2.weights, ref.weights)
    assert torch.allclose(p2.weights.sum(1), torch.ones(1, 64, 64)) and float(p2.weights.min()) >= 0
    (p3,) = call("PaintClass", class_map=p2, mask=m, class_name="cat", strength=0.5)  # no duplicate channel
    assert p3.classes == (0, 1, 2)
    (p0,) = call("PaintClass", class_map=cm, mask=m, class_name="cat", strength=0.0)
    assert torch.equal(p0.weights[:, 0], cm.weights[:, 0]) and float(p0.weights[:, 1].abs().max()) == 0


def test_paint_resizes_masks_and_makes_variants_from_mask_batches(G):
    (cm,) = call("ClassMap", generator=G, base_class="dog")
    (small,) = call("CollageRectangleMask", width=32, height=32, w=0.5)
    (p,) = call("PaintClass", class_map=cm, mask=small, class_name="cat")
    assert p.weights.shape == (1, 2, 64, 64)
    assert float(p.weights[0, 1, :, :31].min()) > 0.99 and float(p.weights[0, 1, :, 33:].max()) < 0.01
    (a,) = call("CollageRectangleMask", w=0.5)
    (b,) = call("CollageEllipseMask")
    masks2 = torch.cat([a, b])
    (p2,) = call("PaintClass", class_map=cm, mask=masks2, class_name="cat")
    assert p2.variants == 2 and p2.layer_ranges == ((0, 7), (0, 7))
    assert torch.equal(p2.weights[1:, 1], b.clamp(0, 1) * 1.0)
    (p3,) = call("PaintClass", class_map=p2, mask=b, class_name="fox")  # batch 1 mask on 2 variants
    assert p3.variants == 2


def test_paint_class_sweep(G):
    (cm,) = call("ClassMap", generator=G, base_class="dog")
    (m,) = call("CollageEllipseMask")
    sw, labels = call("PaintClassSweep", class_map=cm, mask=m, class_name="cat", start=0.0, end=1.0, steps=5)
    assert sw.variants == 5 and sw.layer_ranges == ((0, 7),) * 5
    assert len(labels.splitlines()) == sw.variants
    for i, s in enumerate([0.0, 0.25, 0.5, 0.75, 1.0]):
        (one,) = call("PaintClass", class_map=cm, mask=m, class_name="cat", strength=s)
        assert torch.equal(sw.weights[i:i + 1], one.weights)
        name, strength = labels.splitlines()[i].split()
        assert name == "cat" and float(strength) == pytest.approx(s)
    _, by_id = call("PaintClassSweep", class_map=cm, mask=m, class_name="2", start=0.0, end=0.6, steps=4)
    assert by_id.splitlines() == ["tiger 0", "tiger 0.2", "tiger 0.4", "tiger 0.6"]  # an id labels with its name
    masks2 = torch.stack([m, 1 - m]) if m.dim() == 2 else torch.cat([m, 1 - m])
    sw2, labels2 = call("PaintClassSweep", class_map=cm, mask=masks2, class_name="cat", steps=2)
    assert sw2.variants == 4 and labels2.splitlines() == ["cat 0", "cat 1"] * 2  # strength varies fastest


def test_layer_range_sweep(G):
    (cm,) = call("ClassMap", generator=G, base_class="dog")
    expect = {"per block": [(0, 1), (2, 3), (4, 5), (6, 7)], "from first layer": [(0, 1), (0, 3), (0, 5), (0, 7)],
              "to last layer": [(6, 7), (4, 7), (2, 7), (0, 7)], "single layers": [(i, i) for i in range(8)]}
    for mode, ranges in expect.items():
        sw, labels = call("LayerRangeSweep", class_map=cm, mode=mode)
        assert list(sw.layer_ranges) == ranges and sw.variants == len(ranges)
        assert labels.splitlines() == [f"layer {a}" if a == b else f"layers {a}-{b}" for a, b in ranges]
    sw, labels = call("LayerRangeSweep", class_map=cm, mode="custom", custom="0-1; 3, 2-end, 5--1")
    assert list(sw.layer_ranges) == [(0, 1), (3, 3), (2, 7), (5, 7)]
    assert labels.splitlines() == ["layers 0-1", "layer 3", "layers 2-7", "layers 5-7"]
    (m,) = call("CollageEllipseMask")
    p, _ = call("PaintClassSweep", class_map=cm, mask=m, class_name="cat", steps=2)
    sw2, _ = call("LayerRangeSweep", class_map=p, mode="per block")  # 2 strengths x 4 ranges, range fastest
    assert sw2.variants == 8 and sw2.layer_ranges[:5] == ((0, 1), (2, 3), (4, 5), (6, 7), (0, 1))
    assert torch.equal(sw2.weights[3], p.weights[0]) and torch.equal(sw2.weights[4], p.weights[1])
    (narrow,) = call("ClassMap", generator=G, base_class="dog", layer_start=2, layer_end=5)
    assert narrow.layer_ranges == ((2, 5),)


# ------------------------------------------------------------------------------------------------ feature
def test_feature_blend_recipe(G):
    zr, _ = call("SampleZ", generator=G, seed=3)
    (m,) = call("CollageRectangleMask", h=0.5, w=1.0)
    (fb,) = call("FeatureBlend", generator=G, reference=zr, mask=m, layer_start=1, layer_end=3, strength=0.7)
    assert isinstance(fb, FeatureBlendSpec) and fb.sizes == (4, 8, 16, 32, 64)
    assert fb.entries[0].strengths == ((1, 0.7), (2, 0.7), (3, 0.7))
    (fb2,) = call("FeatureBlend", generator=G, reference=zr, mask=m, layer_start=0, layer_end=-1, strength=1.0,
                  blend=fb)
    assert len(fb2.entries) == 2 and [b for b, _ in fb2.entries[1].strengths] == [0, 1, 2, 3, 4]
    assert len(fb.entries) == 1  # the input is not modified


# ---------------------------------------------------------------------------------------------- generate
def test_generate_image_type(G):
    z, _ = call("SampleZ", generator=G, seed=1, batch=2)
    (c,) = call("ClassSelect", generator=G, class_name="cat")
    (img,) = call("Generate", generator=G, z=z, classes=c)
    assert img.shape == (2, 64, 64, 3) and img.dtype == torch.float32 and img.device == G.device
    assert 0.0 <= float(img.min()) and float(img.max()) <= 1.0 and img.is_contiguous()
    Gb = tiny_generator("bfloat16")
    (img_b,) = call("Generate", generator=Gb, z=z, classes=c)
    assert img_b.dtype == torch.float32 and float((img_b - img).abs().mean()) < 0.05


# ------------------------------------------------------------------------------------------------ masks
def test_rectangle_mask():
    (m,) = call("CollageRectangleMask")  # the left half
    assert m.shape == (1, 64, 64) and m.dtype == torch.float32
    assert float(m[0, :, :32].min()) == 1.0 and float(m[0, :, 32:].max()) == 0.0
    (aa,) = call("CollageRectangleMask", width=10, height=10, x=0.25, y=0.0, w=0.5, h=1.0)
    assert torch.allclose(aa[0, 0], torch.tensor([0, 0, .5, 1, 1, 1, 1, .5, 0, 0]))  # covered fractions
    assert math.isclose(float(aa.sum()), 50.0, rel_tol=1e-5)
    (full,) = call("CollageRectangleMask", w=1.0, h=1.0)
    assert float(full.min()) == 1.0


def test_ellipse_mask():
    (m,) = call("CollageEllipseMask", width=128, height=64, center_x=0.5, center_y=0.5, radius_x=0.25,
                radius_y=0.25)
    assert m.shape == (1, 64, 128) and 0 <= float(m.min()) and float(m.max()) == 1.0
    area = math.pi * (0.25 * 128) * (0.25 * 64)
    assert abs(float(m.sum()) - area) / area < 0.01
    assert float(m[0, 32, 64]) == 1.0 and float(m[0, 0, 0]) == 0.0
    assert 0 < int(((m > 0) & (m < 1)).sum())  # anti-aliased edge
    assert torch.equal(m[0], m[0].flip(1))  # symmetric


def test_feather_invert_combine_threshold():
    (m,) = call("CollageRectangleMask")
    (f,) = call("CollageFeatherMask", mask=m, sigma=2.0)
    assert f.shape == m.shape and 0 <= float(f.min()) and float(f.max()) <= 1
    assert 0.2 < float(f[0, 10, 31]) < 1 and 0 < float(f[0, 10, 32]) < 0.8  # soft across the edge
    assert float(f[0, 10, 5]) == pytest.approx(1.0) and float(f[0, 10, 60]) == pytest.approx(0.0, abs=1e-6)
    assert torch.allclose(call("CollageFeatherMask", mask=m, sigma=0.0)[0], m)
    (inv,) = call("CollageInvertMask", mask=m)
    assert torch.equal(inv, 1 - m)
    (e,) = call("CollageEllipseMask")
    ops = {"union": torch.maximum(m, e), "intersection": torch.minimum(m, e), "add": (m + e).clamp(0, 1),
           "subtract": (m - e).clamp(0, 1), "multiply": m * e, "difference": (m - e).abs()}
    for op, want in ops.items():
        assert torch.allclose(call("CollageCombineMasks", mask_a=m, mask_b=e, op=op)[0], want), op
    (small,) = call("CollageEllipseMask", width=32, height=32)
    assert call("CollageCombineMasks", mask_a=m, mask_b=small, op="union")[0].shape == (1, 64, 64)
    (t,) = call("CollageThresholdMask", mask=f, level=0.5)
    assert set(torch.unique(t).tolist()) <= {0.0, 1.0}
    assert torch.equal(t, (f >= 0.5).float())
    (h,) = call("CollageFeatherMask", mask=torch.ones(64, 64) * 0.5, sigma=1.0)  # [H, W] input is accepted
    assert h.shape == (1, 64, 64)


def test_load_mask(tmp_path):
    rgba = np.zeros((8, 6, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255  # opaque top half
    rgba[..., 1] = np.arange(6, dtype=np.uint8)[None] * 40
    Image.fromarray(rgba, "RGBA").save(tmp_path / "m.png")
    (a,) = call("CollageLoadMask", path=str(tmp_path / "m.png"), channel="alpha")
    assert a.shape == (1, 8, 6) and float(a[0, :4].min()) == 1.0 and float(a[0, 4:].max()) == 0.0
    (r,) = call("CollageLoadMask", path=str(tmp_path / "m.png"), channel="red")
    assert float(r.min()) == 1.0
    (g,) = call("CollageLoadMask", path=str(tmp_path / "m.png"), channel="green", invert=True)
    assert torch.allclose(g[0, 0], 1 - torch.arange(6) * 40 / 255.0)
    (t,) = call("CollageLoadMask", path=str(tmp_path / "m.png"), channel="green", threshold=0.5)
    assert t[0, 0].tolist() == [0, 0, 0, 0, 1, 1]
    grey = (np.arange(16, dtype=np.uint8).reshape(4, 4) * 17)
    Image.fromarray(grey, "L").save(tmp_path / "l.png")
    (lum,) = call("CollageLoadMask", path=str(tmp_path / "l.png"))
    assert torch.allclose(lum[0], torch.from_numpy(grey / 255.0).float(), atol=1e-6)


# ------------------------------------------------------------------------------------------------ images
def test_load_image(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img, mask = call("CollageLoadImage", path=str(tmp_path / "a.png"))
    assert img.shape == (1, 5, 7, 3) and img.dtype == torch.float32 and mask.shape == (1, 5, 7)
    assert torch.allclose(img[0], torch.from_numpy(rgb / 255.0).float()) and float(mask.abs().max()) == 0
    rgba = np.concatenate([rgb, np.full((5, 7, 1), 64, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "b.png")
    img, mask = call("CollageLoadImage", path=str(tmp_path / "b.png"))
    assert img.shape == (1, 5, 7, 3) and torch.allclose(mask, torch.full((1, 5, 7), 1 - 64 / 255.0))


def test_image_grid_and_batch():
    imgs = torch.stack([torch.full((4, 3, 3), i / 10.0) for i in range(5)])
    (g,) = call("CollageImageGrid", images=imgs, columns=2, padding=1, pad_value=1.0)
    assert g.shape == (1, 3 * 4 + 2, 2 * 3 + 1, 3)
    assert float(g[0, 0, 0, 0]) == 0.0 and float(g[0, 0, 4, 0]) == pytest.approx(0.1)
    assert float(g[0, 5, 0, 0]) == pytest.approx(0.2) and float(g[0, 4, 0, 0]) == 1.0  # pad row
    assert float(g[0, 10, 0, 0]) == pytest.approx(0.4) and float(g[0, 10, 5, 0]) == 1.0  # empty last cell
    (b,) = call("CollageImageBatch", image_a=imgs[:2], image_b=imgs[2:])
    assert torch.equal(b, imgs)


def test_image_grid_labels():
    """Typed labels: a band above the columns and one left of the rows; the tiles are those of the plain grid."""
    imgs = torch.stack([torch.full((64, 64, 3), 0.2 + i / 10.0) for i in range(6)])
    (plain,) = call("CollageImageGrid", images=imgs, columns=3, padding=2, pad_value=1.0)
    (g,) = call("CollageImageGrid", images=imgs, columns=3, padding=2, pad_value=1.0,
                row_labels="seed 1, seed 2", col_labels="cat 0\ncat 0.5\ncat 1")
    top, left = g.shape[1] - plain.shape[1], g.shape[2] - plain.shape[2]
    assert top > 0 and left > 0 and torch.equal(g[:, top:, left:], plain)
    assert (g[0, :top, left:] < 0.5).any() and (g[0, top:, :left] < 0.5).any()  # text in both bands
    with pytest.raises(Exception, match=r"input 'row_labels': 3 row label\(s\) for 2 rows"):
        call("CollageImageGrid", images=imgs, columns=3, row_labels="a, b, c")


def test_image_grid_labels_flow_from_the_sweeps(G):
    """Sample z and the sweeps label the grid they make, through links: the bands appear without typed text, and
    the same labels typed by hand give the same picture."""
    import collage_nodes
    from collage_engine import Graph

    g = Graph(collage_nodes.registry())
    gen = g.node("LoadGenerator", model=str(TINY), device="cpu")
    z = g.node("SampleZ", generator=gen, seed=11, batch=2)
    cm = g.node("ClassMap", generator=gen, base_class="dog")
    mask = g.node("CollageEllipseMask")
    sweep = g.node("PaintClassSweep", class_map=cm, mask=mask, class_name="cat", steps=3)
    layers = g.node("LayerRangeSweep", class_map=sweep, mode="custom", custom="0-1, 2-end")
    img = g.node("Generate", generator=gen, z=z, class_map=layers, combine="grid")
    grid = g.node("CollageImageGrid", images=img, columns=6, row_labels=z.out("labels"),
                  col_labels=layers.out("labels"))
    plain = g.node("CollageImageGrid", images=img, columns=6)
    res = collage_nodes.engine().run(g.to_api(), targets=[grid.id, plain.id, z.id, layers.id, img.id])
    res.raise_for_status()
    labelled, unlabelled = res[grid.id][0], res[plain.id][0]
    assert res[z.id][1].splitlines() == ["seed 11", "seed 12"]
    assert res[layers.id][1].splitlines() == [f"layers {r}" for _ in range(3) for r in ("0-1", "2-7")]
    top, left = labelled.shape[1] - unlabelled.shape[1], labelled.shape[2] - unlabelled.shape[2]
    assert top > 0 and left > 0 and torch.equal(labelled[:, top:, left:], unlabelled)
    (typed,) = call("CollageImageGrid", images=res[img.id][0], columns=6, row_labels="seed 11, seed 12",
                    col_labels=", ".join(res[layers.id][1].splitlines()))
    assert torch.equal(typed, labelled)
    # before the run the linked labels are unknown: the memory estimate assumes the largest bands, never too small
    from collage_engine import Estimate

    grid_node = collage_nodes.registry()["CollageImageGrid"]()
    (est,) = grid_node.estimate(images=Estimate(tuple(res[img.id][0].shape), 4), columns=6, row_labels=None,
                                col_labels=None)
    assert est.shape[1] >= labelled.shape[1] and est.shape[2] >= labelled.shape[2]
    (typed_est,) = grid_node.estimate(images=Estimate(tuple(res[img.id][0].shape), 4), columns=6,
                                      row_labels="seed 11, seed 12",
                                      col_labels=", ".join(res[layers.id][1].splitlines()))
    assert typed_est.shape == tuple(typed.shape)  # typed labels: the exact size


def test_save_image_writes_pngs(tmp_path):
    imgs = torch.rand(2, 8, 8, 3)
    call("CollageSaveImage", images=imgs, filename_prefix="sub/pic", output_dir=str(tmp_path))
    files = sorted(p.name for p in (tmp_path / "sub").iterdir())
    assert files == ["pic_00001.png", "pic_00002.png"]
    back = np.asarray(Image.open(tmp_path / "sub" / "pic_00002.png"))
    assert back.shape == (8, 8, 3) and np.array_equal(back, np.clip(imgs[1].numpy() * 255, 0, 255).astype(np.uint8))
