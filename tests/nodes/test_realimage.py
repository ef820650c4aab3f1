"""Real-image editing: cropping to the model, pasting back inside the mask only, and the nodes around them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import collage_nodes
from collage_core.crop import crop_photo, crop_to_model, mask_bbox, paste_back, square_box
from collage_engine import Graph
from nodes_support import ROOT, TINY, TINY_D


def _photo(h=90, w=140, seed=0):
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 / w, y * 255 / h, (x + y) * 127 / (w + h)], -1)
    return np.clip(base + rng.normal(0, 8, base.shape), 0, 255).astype(np.uint8)


def _disc(h, w, cy, cx, r):
    y, x = np.mgrid[0:h, 0:w]
    return ((y - cy) ** 2 + (x - cx) ** 2 <= r * r).astype(np.float32)


def test_square_box_contains_the_mask_and_stays_inside():
    m = _disc(90, 140, 20, 125, 12)  # near the right border
    x0, y0, x1, y1 = mask_bbox(m)
    b = square_box((90, 140), (x0, y0, x1, y1), margin=0.25)
    assert b.size == b.x1 - b.x0 == b.y1 - b.y0 >= 31
    assert b.x0 <= x0 and b.y0 <= y0 and b.x1 >= x1 and b.y1 >= y1
    assert 0 <= b.x0 and b.x1 <= 140 and 0 <= b.y0 and b.y1 <= 90  # shifted inside
    big = square_box((90, 140), (0, 0, 140, 90), margin=0.5)  # larger than the photo: centred, padded
    assert big.size > 140 and crop_to_model(_photo(), big, 32).shape == (32, 32, 3)
    with pytest.raises(ValueError, match="mask is empty"):
        mask_bbox(np.zeros((4, 4)))


def test_crop_photo_and_paste_back_only_inside_the_mask():
    photo = _photo()
    m = _disc(90, 140, 45, 60, 18)
    crop, mcrop, info = crop_photo(photo, 64, m, margin=0.25)
    assert crop.shape == (64, 64, 3) and mcrop.shape == (64, 64) and info.photo_size == (90, 140)
    assert mcrop.max() == pytest.approx(1.0) and 0.3 < mcrop.mean() < 0.7
    edited = np.full((64, 64, 3), (200, 30, 30), np.uint8)  # a red edit with strong stripes (for mixed gradients)
    edited[::4] = (30, 30, 200)
    for method in ("poisson", "mixed", "alpha"):
        out = paste_back(photo, edited, info, m, method=method, feather=2.0)
        assert out.shape == photo.shape and out.dtype == np.uint8
        assert np.array_equal(out[m == 0], photo[m == 0]), method  # outside untouched, bit for bit
        assert np.abs(out[m > 0].astype(int) - photo[m > 0]).mean() > 5, method  # inside changed
    alpha = paste_back(photo, edited, info, m, method="alpha")
    centre = alpha[45, 60].astype(int)
    assert (centre[0] > 150 or centre[2] > 150) and centre[1] < 80  # the plain blend shows the edit's colours
    with pytest.raises(ValueError, match="the mask is 10x10 but the photo is 140x90"):
        paste_back(photo, edited, info, np.ones((10, 10)))
    with pytest.raises(ValueError, match="crop was taken from a 140x90 photo"):
        paste_back(photo[:50], edited, info, m[:50])
    with pytest.raises(ValueError, match="method must be"):
        paste_back(photo, edited, info, m, method="magic")


def test_paste_back_with_a_box_over_the_border():
    photo = _photo(60, 60)
    m = _disc(60, 60, 5, 55, 8)  # touches two borders
    crop, _, info = crop_photo(photo, 32, m, margin=0.5)
    out = paste_back(photo, crop, info, m)  # pasting the unedited crop back changes almost nothing
    assert np.array_equal(out[m == 0], photo[m == 0])
    assert np.abs(out.astype(int) - photo).max() < 60


def _graph(photo_path, steps=2, discriminator=True, class_name="auto"):
    g = Graph(collage_nodes.registry())
    G = g.node("LoadGenerator", model=str(TINY), device="cpu")
    photo = g.node("CollageLoadImage", path=str(photo_path))
    edit = g.node("CollageEllipseMask", width=451, height=300, center_x=0.55, center_y=0.47, radius_x=0.3,
                  radius_y=0.4)
    crop = g.node("CropToModel", photo=photo.out(0), generator=G, mask=edit)
    kw = {"discriminator": g.node("LoadDiscriminator", model=str(TINY_D), device="cpu")} if discriminator else {}
    proj = g.node("ProjectImage", generator=G, image=crop.out(0), class_name=class_name, steps=steps, restarts=2,
                  **kw)
    cmap = g.node("PaintClass", class_map=g.node("ClassMap", generator=G, base=proj.out(2)), mask=crop.out(1),
                  class_name="tiger")
    edited = g.node("Generate", generator=G, z=proj.out(0), class_map=cmap)
    back = g.node("PasteBack", photo=photo.out(0), edited=edited, crop=crop.out(2), mask=edit)
    return g, photo, edit, proj, back


def test_real_image_nodes_end_to_end():
    g, photo, edit, proj, back = _graph(ROOT / "workflows" / "examples" / "chelsea.png")
    res = collage_nodes.engine().run(g, targets=[back, photo, edit, proj])
    assert res.ok, res.error
    (out,) = res[back]
    (img, _) = res[photo]
    (mask,) = res[edit]
    z, recon, classes = res[proj]
    assert out.shape == img.shape == (1, 300, 451, 3)
    outside = mask[0] == 0
    assert torch.equal(out[0][outside], img[0][outside])
    assert z.shape == (1, 128) and recon.shape == (1, 64, 64, 3) and classes.variants == 1


def test_project_image_errors_name_the_input():
    g, *_ , back = _graph(ROOT / "workflows" / "examples" / "chelsea.png", discriminator=False)
    res = collage_nodes.engine().run(g, targets=[back])
    assert res.status == "error" and res.error["input_name"] == "class_name"
    assert "'auto' needs a discriminator" in res.error["exception_message"]
    g2, *_, back2 = _graph(ROOT / "workflows" / "examples" / "chelsea.png", discriminator=False, class_name="cat")
    assert collage_nodes.engine().run(g2, targets=[back2]).ok  # pixel-only projection


def test_an_empty_mask_says_what_to_do(tmp_path):
    """A picture without alpha through Load Image gives an all-zero mask: Crop to Model says so and how to paint one."""
    import json

    from collage_app.cli import main

    wf = json.loads((ROOT / "workflows" / "api" / "photo_edit.json").read_text())
    wf["4"]["inputs"]["radius_x"] = 0.0  # an ellipse of width 0: an empty mask
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    import contextlib
    import io

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["run", str(path), "--set", f"Generator.model={TINY}", "--set", f"Discriminator.model={TINY_D}",
                     "--set", "Photo.path=" + str(ROOT / "workflows" / "examples" / "chelsea.png"),
                     "--out", str(tmp_path / "out"), "-q"])
    text = err.getvalue()
    assert code == 1 and "node 5 (CropToModel 'Crop') failed: input 'mask': the mask is all zeros (from node 4" in text
    assert "Open in MaskEditor" in text
