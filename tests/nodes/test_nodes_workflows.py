"""The saved workflows: they validate and run (with the tiny generator), write PNGs carrying the workflow, give the
same images in UI and API format, and re-run exactly the nodes downstream of a change (inputs or files)."""

from __future__ import annotations

import copy
import json
import os

import numpy as np
import pytest
from PIL import Image

import collage_nodes
from collage_engine import load_workflow
from nodes_support import TINY, WORKFLOWS, api, use_tiny

NAMES = sorted(p.stem for p in (WORKFLOWS / "api").glob("*.json"))
# the BigGAN workflows need BigGAN weights: tests/nodes/test_biggan_nodes.py validates them and runs them on a tiny one
SNGAN_NAMES = [n for n in NAMES if not n.startswith("biggan_")]
EXPECTED = {"class_collage", "class_interpolation_grid", "feature_transplant", "layer_ablation_grid",
            "class_and_feature_grid", "real_image_edit", "photo_edit", "biggan_collage", "biggan_feature_transplant",
            "paint_collage"}
REG = collage_nodes.registry()


def test_the_paper_demonstrations_are_all_there():
    assert set(NAMES) == EXPECTED
    assert sorted(p.stem for p in WORKFLOWS.glob("*.json")) == NAMES


def test_templates_are_editor_graphs_with_thumbnails():
    """ComfyUI's template browser scans the top of workflows/: every file there must open as a graph (UI format,
    with nodes) and have its .jpg card; the API format lives in api/, which it does not scan."""
    from PIL import Image

    for name in NAMES:
        ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
        assert isinstance(ui.get("nodes"), list) and ui["nodes"] and "links" in ui, name
        with Image.open(WORKFLOWS / f"{name}.jpg") as thumb:
            assert thumb.format == "JPEG" and thumb.size == (384, 256), name
    assert sorted(p.stem for p in WORKFLOWS.glob("*.jpg")) == NAMES


def test_the_real_image_layouts_do_not_overlap():
    for name in NAMES:
        boxes = [(n["pos"][0], n["pos"][1], n["size"][0], n["size"][1])
                 for n in json.loads((WORKFLOWS / f"{name}.json").read_text())["nodes"]]
        for i, (x, y, w, h) in enumerate(boxes):
            for x2, y2, w2, h2 in boxes[i + 1:]:
                assert x + w <= x2 or x2 + w2 <= x or y + h <= y2 or y2 + h2 <= y, (name, (x, y, w, h), (x2, y2))


def _pngs(res) -> list[str]:
    return [item["path"] for out in res.ui.values() for item in out.get("images", [])]


@pytest.mark.parametrize("name", SNGAN_NAMES)
def test_workflow_validates_and_runs(name, tmp_path):
    wf = use_tiny(api(name), tmp_path)
    engine = collage_nodes.engine()
    v = engine.validate(wf)
    assert v.ok, v.to_dict()
    res = engine.run(wf)
    assert res.ok, res.error
    paths = _pngs(res)
    assert paths and all(os.path.isfile(p) for p in paths)
    for p in paths:
        img = Image.open(p)
        assert img.mode == "RGB" and img.size[0] >= 64
        assert json.loads(img.text["prompt"]) == wf  # the workflow that ran, API format
        ui = json.loads(img.text["workflow"])
        assert load_workflow(ui, REG)[0] == wf  # ... and the same graph in UI format
    # every workflow uses the embedded model by default
    assert all(n["inputs"]["model"] == "emoji-animals" for n in api(name).values()
               if n["class_type"] == "LoadGenerator")


@pytest.mark.parametrize("name", ["real_image_edit", "photo_edit"])
def test_real_image_workflows_start_projection_from_the_encoder(name):
    wf = api(name)
    (proj,) = [n for n in wf.values() if n["class_type"] == "ProjectImage"]
    src = wf[proj["inputs"]["encoder"][0]]
    assert src["class_type"] == "LoadEncoder" and src["inputs"]["model"] == "emoji-animals"


@pytest.mark.parametrize("name", NAMES)
def test_ui_copy_converts_back_to_the_api_graph(name):
    converted, meta = load_workflow(WORKFLOWS / f"{name}.json", REG)
    assert meta["format"] == "ui" and meta["warnings"] == []
    assert _files_absolute(converted, WORKFLOWS) == _files_absolute(api(name), WORKFLOWS / "api")


def _files_absolute(wf: dict, folder) -> dict:
    """``wf`` with relative file inputs made absolute from ``folder`` (the UI and API files name the same picture
    from two folders: examples/x.png and ../examples/x.png)."""
    import os

    wf = copy.deepcopy(wf)
    for node in wf.values():
        cls = REG.get(node["class_type"])
        for inp in cls.inputs if cls else ():
            value = node["inputs"].get(inp.name)
            if inp.file and isinstance(value, str) and value and not os.path.isabs(value):
                node["inputs"][inp.name] = os.path.normpath(folder / value)
    return wf


def _tiny_ui(ui: dict, out_dir) -> dict:
    ui = copy.deepcopy(ui)
    for node in ui["nodes"]:
        if node["type"] == "LoadGenerator":
            node["widgets_values"][:2] = [str(TINY), "cpu"]
        if node["type"] == "CollageSaveImage":
            node["widgets_values"][1] = str(out_dir)
    return ui


@pytest.mark.parametrize("name", ["class_and_feature_grid", "feature_transplant"])
def test_ui_and_api_formats_give_identical_images(name, tmp_path):
    ui = _tiny_ui(json.loads((WORKFLOWS / f"{name}.json").read_text()), tmp_path / "ui")
    r_ui = collage_nodes.engine().run(ui)
    r_api = collage_nodes.engine().run(use_tiny(api(name), tmp_path / "api"))
    assert r_ui.ok and r_api.ok
    a, b = _pngs(r_ui), _pngs(r_api)
    assert len(a) == len(b) == 1
    assert np.array_equal(np.asarray(Image.open(a[0])), np.asarray(Image.open(b[0])))
    # the UI-format run embeds the editor JSON it was given
    assert json.loads(Image.open(a[0]).text["workflow"]) == ui


def test_changed_input_reruns_exactly_its_descendants(tmp_path):
    wf = use_tiny(api("class_collage"), tmp_path)
    titles = {n["_meta"]["title"]: nid for nid, n in wf.items()}
    engine = collage_nodes.engine()
    first = engine.run(wf)
    assert first.ok and sorted(first.executed, key=int) == sorted(wf, key=int)
    assert engine.run(wf).executed == []  # identical: all cached

    def rerun(title, **inputs):
        wf[titles[title]]["inputs"].update(inputs)
        res = engine.run(wf)
        assert res.ok, res.error
        return {wf[n]["_meta"]["title"] for n in res.executed}

    assert rerun("Paint cat", strength=0.5) == {"Paint cat", "Collage", "Save collage"}
    assert rerun("Region", radius_x=0.2) == {"Region", "Soft edge", "Paint cat", "Collage", "Save collage"}
    assert rerun("Save source", filename_prefix="other") == {"Save source"}
    assert rerun("Base class", base_class="wolf") == {"Base class", "Source image", "Save source", "Paint cat",
                                                       "Collage", "Save collage"}
    assert rerun("Latent", seed=8) == {"Latent", "Source image", "Save source", "Collage", "Save collage"}
    assert rerun("Paint cat", strength=1.0) == {"Paint cat", "Collage", "Save collage"}
    assert engine.run(wf).executed == []


def _mask_file_workflow(mask_path, image_path, out_dir) -> dict:
    wf = use_tiny(api("class_collage"), out_dir)
    wf["6"] = {"class_type": "CollageLoadMask", "inputs": {"path": str(mask_path), "channel": "luminance",
                                                           "invert": False, "threshold": 0.0},
               "_meta": {"title": "Mask file"}}
    wf["12"] = {"class_type": "CollageLoadImage", "inputs": {"path": str(image_path)}, "_meta": {"title": "Picture"}}
    wf["13"] = {"class_type": "CollageInvertMask", "inputs": {"mask": ["12", 1]}, "_meta": {"title": "Alpha"}}
    wf["14"] = {"class_type": "PaintClass", "inputs": {"class_map": ["8", 0], "mask": ["13", 0], "class_name": "fox",
                                                       "strength": 1.0}, "_meta": {"title": "Paint fox"}}
    wf["9"]["inputs"]["class_map"] = ["14", 0]
    return wf


def _rewrite(path, array, mode):
    st = path.stat()
    Image.fromarray(array, mode).save(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))  # a new mtime even on coarse clocks


def test_changed_file_reruns_its_loader(tmp_path):
    mask = np.zeros((64, 64), np.uint8)
    mask[:, :32] = 255
    Image.fromarray(mask, "L").save(tmp_path / "mask.png")
    rgba = np.zeros((64, 64, 4), np.uint8)
    rgba[:16, :, 3] = 255
    Image.fromarray(rgba, "RGBA").save(tmp_path / "pic.png")
    wf = _mask_file_workflow(tmp_path / "mask.png", tmp_path / "pic.png", tmp_path / "out")
    engine = collage_nodes.engine()
    assert engine.run(wf).ok
    assert engine.run(wf).executed == []
    below_mask = {"6", "7", "8", "14", "9", "10"}  # mask file, feather, paint cat, paint fox, collage, save
    _rewrite(tmp_path / "mask.png", 255 - mask, "L")
    res = engine.run(wf)
    assert res.ok and set(res.executed) == below_mask
    rgba[:32, :, 3] = 255
    _rewrite(tmp_path / "pic.png", rgba, "RGBA")
    res = engine.run(wf)
    assert res.ok and set(res.executed) == {"12", "13", "14", "9", "10"}
    assert engine.run(wf).executed == []


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("name", ["class_and_feature_grid", "layer_ablation_grid"])
def test_results_stay_on_the_generator_device(name, tmp_path):
    import torch

    wf = use_tiny(api(name), tmp_path)
    for n in wf.values():
        if n["class_type"] == "LoadGenerator":
            n["inputs"]["device"] = "cuda"
    gen = next(nid for nid, n in wf.items() if n["class_type"] == "Generate")
    grid = next(nid for nid, n in wf.items() if n["class_type"] == "CollageImageGrid")
    z = next(nid for nid, n in wf.items() if n["class_type"] == "SampleZ")
    res = collage_nodes.engine().run(wf, targets=[gen, grid, z])
    assert res.ok, res.error
    assert res[gen][0].device.type == res[grid][0].device.type == res[z][0].device.type == "cuda"
    cpu = collage_nodes.engine().run(use_tiny(api(name), tmp_path), targets=[gen, z])
    assert torch.equal(res[z][0].cpu(), cpu[z][0])  # the same latents on every device
    assert torch.allclose(res[gen][0].cpu(), cpu[gen][0], atol=2e-3)


@pytest.mark.parametrize("title, make", [("Generator", "make_tiny_generator"),
                                         ("Discriminator", "make_tiny_discriminator"),
                                         ("Encoder", "make_tiny_encoder")])
def test_rewritten_checkpoint_reruns_its_loader(title, make, tmp_path):
    """A checkpoint rewritten at the same path is read again (the loaders fingerprint their files)."""
    import nodes_support

    wf = use_tiny(api("real_image_edit"), tmp_path / "out")
    (nid,) = [k for k, n in wf.items() if n["_meta"]["title"] == title]
    path = tmp_path / f"{title}.safetensors"
    getattr(nodes_support, make)(path, seed=0)
    wf[nid]["inputs"]["model"] = str(path)
    engine = collage_nodes.engine()
    assert engine.run(wf).ok and engine.run(wf).executed == []
    st = path.stat()
    getattr(nodes_support, make)(path, seed=1)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    res = engine.run(wf)
    assert res.ok and nid in res.executed


def test_rewritten_latent_file_reruns_its_loader(tmp_path):
    from collage_core.latents import sample_z, save_latent

    wf = use_tiny(api("class_collage"), tmp_path / "out")
    (nid,) = [k for k, n in wf.items() if n["class_type"] == "SampleZ"]
    path = save_latent(sample_z(1, 128, seed=0), tmp_path / "z.npy")
    wf[nid] = {"class_type": "LoadZ", "inputs": {"generator": wf[nid]["inputs"]["generator"], "path": str(path)},
               "_meta": {"title": "Latent file"}}
    engine = collage_nodes.engine()
    assert engine.run(wf).ok and engine.run(wf).executed == []
    st = path.stat()
    save_latent(sample_z(1, 128, seed=1), path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10 ** 9))
    res = engine.run(wf)
    assert res.ok and nid in res.executed
