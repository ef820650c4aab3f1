"""BigGAN in the node pack: the BigGAN workflows validate as saved (no weights needed) and run on a tiny random
BigGAN-deep 256; Load Generator's truncation, Sample z's scaling and pixel-only projection."""

from __future__ import annotations

import os
import time

import pytest
import torch
from PIL import Image

import collage_nodes
from biggan_support import make_ours, make_reference, save_reference
from collage_core import biggan_io, save_generator
from collage_core.latents import sample_z
from collage_engine import Graph
from nodes_support import api, use_tiny

BIGGAN_WORKFLOWS = ["biggan_collage", "biggan_feature_transplant"]


@pytest.fixture(scope="module")
def tiny256(tmp_path_factory):
    return save_generator(make_ours(256, ch=4, seed=2, z_dim=16), tmp_path_factory.mktemp("bg") / "tiny.safetensors")


@pytest.mark.parametrize("name", BIGGAN_WORKFLOWS)
def test_biggan_workflows_validate_as_saved(name, tmp_path, monkeypatch):
    """Valid where the weights are in the cache (validation does not read them) or can be downloaded now."""
    wf = api(name)
    (load,) = [n for n in wf.values() if n["class_type"] == "LoadGenerator"]
    assert load["inputs"]["model"] == "biggan-deep-256" and load["inputs"]["truncation"] == 0.4
    monkeypatch.setenv("NEURAL_COLLAGE_CACHE", str(tmp_path))
    (tmp_path / "biggan").mkdir()
    (tmp_path / "biggan" / "biggan-deep-256.safetensors").write_bytes(b"")
    v = collage_nodes.engine().validate(wf)
    assert v.ok, v.to_dict()
    (tmp_path / "biggan" / "biggan-deep-256.safetensors").unlink()
    monkeypatch.setattr(biggan_io, "download_problem", lambda name: None)  # not here, but the server answers
    assert collage_nodes.engine().validate(wf).ok


def test_biggan_weights_that_cannot_be_had_are_a_validation_error(tmp_path, monkeypatch):
    """Not on this machine and no download possible: `validate` says so, and what to do, before anything runs."""
    monkeypatch.setenv("NEURAL_COLLAGE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PYTORCH_PRETRAINED_BIGGAN_CACHE", str(tmp_path / "reference"))
    monkeypatch.setenv("NEURAL_COLLAGE_OFFLINE", "1")
    v = collage_nodes.engine().validate(api("biggan_collage"))
    assert not v.ok
    ((nid, entry),) = v.node_errors.items()
    (err,) = entry["errors"]
    assert entry["class_type"] == "LoadGenerator" and err["extra_info"]["input_name"] == "model"
    assert "'biggan-deep-256': its weights" in err["message"] and "not on this machine" in err["message"]
    assert "downloads are off (NEURAL_COLLAGE_OFFLINE)" in err["message"]
    assert "neural-collage convert biggan-deep-256" in err["message"]
    assert str(tmp_path / "cache" / "biggan" / "biggan-deep-256") in err["message"]  # where to put the folder
    # a server that cannot be reached reads the same way, with its reason
    monkeypatch.delenv("NEURAL_COLLAGE_OFFLINE")
    monkeypatch.setattr(biggan_io, "_REACHABLE", {"s3.amazonaws.com": (time.monotonic(), "s3 cannot be reached")})
    (err,) = collage_nodes.engine().validate(api("biggan_collage")).node_errors[nid]["errors"]
    assert "not on this machine and s3 cannot be reached" in err["message"]


@pytest.mark.parametrize("name", BIGGAN_WORKFLOWS)
def test_biggan_workflows_run_on_a_tiny_biggan(name, tiny256, tmp_path):
    wf = use_tiny(api(name), tmp_path)
    for node in wf.values():
        if node["class_type"] == "LoadGenerator":
            node["inputs"]["model"] = str(tiny256)
    res = collage_nodes.engine().run(wf)
    assert res.ok, res.error
    paths = [item["path"] for out in res.ui.values() for item in out.get("images", [])]
    assert paths and all(os.path.isfile(p) for p in paths)
    assert all(256 <= Image.open(p).size[1] < 256 + 64 for p in paths)  # 256 px tiles, a grid's label band above


def test_truncation_selects_statistics_and_scales_sample_z(tiny256):
    g = Graph(collage_nodes.registry())
    G = g.node("LoadGenerator", model=str(tiny256), device="cpu", truncation=0.3)
    z = g.node("SampleZ", generator=G, seed=4, batch=2, truncation=2.0)
    res = collage_nodes.engine().run(g, targets=[G, z])
    assert res.ok, res.error
    (gen,), (zz, _) = res[G], res[z]
    assert gen.truncation == 0.3
    assert torch.allclose(zz, 0.3 * sample_z(2, 16, 4, 2.0))


def test_a_reference_folder_loads_in_the_node(tmp_path):
    pytest.importorskip("pytorch_pretrained_biggan")
    folder = save_reference(make_reference(128, ch=4, seed=5), tmp_path / "ref")
    from collage_nodes.model import LoadGenerator

    assert LoadGenerator().validate(model=str(folder), device="cpu") == []
    assert LoadGenerator().validate(model=str(tmp_path), device="cpu")  # an empty folder: an error
    g = Graph(collage_nodes.registry())
    G = g.node("LoadGenerator", model=str(folder), device="cpu")
    res = collage_nodes.engine().run(g, targets=[G])
    assert res.ok, res.error
    assert res[G][0].resolution == 128 and res[G][0].class_names[207] == "golden retriever"


def test_pixel_only_projection_with_a_named_class(tiny256):
    g = Graph(collage_nodes.registry())
    G = g.node("LoadGenerator", model=str(tiny256), device="cpu")
    z = g.node("SampleZ", generator=G, seed=1, batch=1, truncation=2.0)
    img = g.node("Generate", generator=G, z=z, classes=g.node("ClassSelect", generator=G, class_name="tabby"))
    proj = g.node("ProjectImage", generator=G, image=img, class_name="tabby", steps=2, restarts=2)
    res = collage_nodes.engine().run(g, targets=[proj])
    assert res.ok, res.error
    assert res[proj][2].names == ("tabby",)
    auto = g.node("ProjectImage", generator=G, image=img, class_name="auto", steps=2, restarts=1)
    res = collage_nodes.engine().run(g, targets=[auto])
    assert not res.ok and "needs a discriminator or an encoder" in str(res.error)
