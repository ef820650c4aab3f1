"""BigGAN-deep: equal to the reference package (pytorch-pretrained-biggan) on random weights, sCBN and feature-blending
invariants, loading (reference folder, native file, names, caches) and its errors. No network: downloads are faked.

No real BigGAN weights are used anywhere: every model here is tiny (channel width 4) and random.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from biggan_support import make_ours, make_reference, save_reference
from collage_core import CheckpointError, biggan_io, load_generator, save_generator
from collage_core.biggan import BigGANConfig, BigGANGenerator, stats_rows
from collage_core.imagenet_labels import IMAGENET_LABELS

TRUNCATIONS = [1.0, 0.4, 0.405, 0.33, 0.07]


@pytest.fixture(scope="module")
def ref_folder(tmp_path_factory):
    pytest.importorskip("pytorch_pretrained_biggan")
    ref = make_reference(128, ch=4, seed=0)
    return ref, save_reference(ref, tmp_path_factory.mktemp("biggan") / "tiny-128")


@pytest.fixture(scope="module")
def ours():
    return make_ours(128, ch=4, seed=1, z_dim=16)


def _classes(n: int) -> torch.Tensor:
    y = torch.zeros(n, 1000)
    y[0, 207] = 1
    y[1, 281] = 1
    y[2, 1], y[2, 980] = 0.3, 0.7  # a mixture of two classes
    y[3, :4] = 0.25  # four classes
    return y[:n]


# ------------------------------------------------------------------------------------------ the reference
@pytest.mark.parametrize("t", TRUNCATIONS)
def test_equals_the_reference_for_class_vectors(ref_folder, t):
    ref, folder = ref_folder
    G = load_generator(str(folder))
    torch.manual_seed(3)
    z, y = 0.6 * torch.randn(4, 128), _classes(4)
    with torch.no_grad():
        want = ref(z, y, t)
    got = G.synthesize(z, classes=y, truncation=t)
    assert float(want.std()) > 0.05  # not a saturated or constant picture
    assert (got - want).abs().max() < 1e-4


def test_ids_and_names_and_safetensors_folder(ref_folder, tmp_path):
    ref, folder = ref_folder
    G = load_generator(str(folder))
    assert G.class_names == list(IMAGENET_LABELS) and G.resolution == 128 and G.truncation == 0.4
    z = torch.randn(2, 128)
    with torch.no_grad():
        want = ref(z, torch.eye(1000)[[207, 281]], 0.4)
    assert (G.synthesize(z, classes=[207, 281]) - want).abs().max() < 1e-4  # default truncation 0.4
    assert (G.synthesize(z, classes=["golden retriever", "Tabby"]) - want).abs().max() < 1e-4
    st = save_reference(ref, tmp_path / "st", safetensors=True)
    assert (load_generator(str(st)).synthesize(z, classes=[207, 281]) - want).abs().max() < 1e-4


def test_a_constant_mixture_map_equals_the_reference_mixture(ref_folder):
    """sCBN mixes class vectors in embedding space: a map holding the same mixture everywhere is the reference's
    output for that soft class vector."""
    ref, folder = ref_folder
    G = load_generator(str(folder))
    z, y = torch.randn(2, 128), _classes(4)[2:]
    with torch.no_grad():
        want = ref(z, y, 0.5)
    maps = y[:, None, None, :].expand(2, 16, 16, 1000)
    assert (G.synthesize(z, class_maps=maps, truncation=0.5) - want).abs().max() < 1e-4


def test_native_round_trip(ref_folder, tmp_path):
    _, folder = ref_folder
    G = load_generator(str(folder))
    path = save_generator(G, tmp_path / "g.safetensors")
    G2 = load_generator(path)
    assert isinstance(G2, BigGANGenerator) and G2.config == G.config and G2.class_names == G.class_names
    z = torch.randn(1, 128)
    assert torch.equal(G.synthesize(z, classes=5), G2.synthesize(z, classes=5))


def test_truncation_rows_are_weighted_like_the_reference():
    assert stats_rows(1.0, 51) == (50, 0.0) and stats_rows(0.4, 51) == (20, 0.0)
    i, f = stats_rows(0.405, 51)  # between rows 20 and 21: row 20 gets f, row 21 gets 1 - f
    assert i == 20 and f == pytest.approx(0.25)


# ------------------------------------------------------------------------------------------- invariants
def test_constant_one_hot_map_equals_classes(ours):
    z = torch.randn(2, 16)
    want = ours.synthesize(z, classes=[5, 207])
    m = torch.zeros(2, 32, 32, 1000)
    m[0, ..., 5] = m[1, ..., 207] = 1
    assert (ours.synthesize(z, class_maps=m) - want).abs().max() < 1e-4
    per_layer = [m[:, :1, :1].expand(2, s, s, 1000) for s in ours.config.map_sizes]
    assert (ours.synthesize(z, class_maps=per_layer) - want).abs().max() < 1e-4


def test_a_half_map_changes_mostly_that_half(ours):
    torch.manual_seed(0)
    z = torch.randn(4, 16)
    base = ours.synthesize(z, classes=5)
    m = torch.zeros(4, 32, 32, 1000)
    m[:, :, :16, 5] = 1
    m[:, :, 16:, 900] = 1
    diff = (ours.synthesize(z, class_maps=m) - base).abs().mean(dim=(0, 1, 2))  # per column
    assert diff[64:].mean() > 1.5 * diff[:64].mean()
    layers = ours.synthesize(z, class_maps=m, classes=5, map_layers=range(0, 3))  # only the first sCBN layers
    assert not torch.allclose(layers, base) and layers.shape == base.shape


def test_blending_identical_streams_is_one_stream(ours):
    z = torch.randn(2, 16)
    want = ours.synthesize(z, classes=[1, 2])
    w = torch.zeros(2, 8, 8, 3)
    w[..., 1] = w[..., 2] = 0.5
    assert (ours.synthesize(zs=[z, z], classes=[1, 2], blends={3: w}) - want).abs().max() < 1e-4
    head = torch.zeros(1, 4, 4, 3)
    head[..., 0] = 1
    # two streams run as one batch of 4, the plain run as a batch of 2: other kernels, so a tolerance
    got = ours.synthesize(zs=[z, torch.randn(2, 16)], classes=[1, 2], blends={0: head})
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_a_transplant_changes_mostly_the_masked_part(ours):
    torch.manual_seed(1)
    z, ref = torch.randn(4, 16), torch.randn(4, 16)
    base = ours.synthesize(z, classes=7)
    w = torch.zeros(1, 8, 8, 3)
    w[:, :4, :, 1] = 1  # top half from the reference at blend point 2 (8x8)
    w[:, 4:, :, 2] = 1
    diff = (ours.synthesize(zs=[z, ref], classes=7, blends={2: w}) - base).abs().mean(dim=(0, 1, 3))  # per row
    assert diff[:64].mean() > 1.5 * diff[64:].mean()
    m = torch.zeros(4, 16, 16, 1000)
    m[..., 7] = 1
    assert ours.synthesize(zs=[z, ref], class_maps=m, blends={2: w}).shape == (4, 3, 128, 128)


def test_gradients_reach_z_for_pixel_projection(ours):
    from collage_core.projection import project

    target = ours.synthesize(torch.randn(1, 16), classes=3)
    res = project(ours, target, class_id=3, D=None, steps=3, restarts=2)
    assert res.class_id == 3 and res.steps == 3 and np.isfinite(res.loss)


def test_bad_inputs_are_named(ours):
    z = torch.randn(1, 16)
    with pytest.raises(ValueError, match="truncation"):
        ours.synthesize(z, classes=1, truncation=0.0)
    with pytest.raises(ValueError, match="truncation"):
        ours.synthesize(z, classes=1, truncation=1.5)
    with pytest.raises(ValueError, match="class_maps has 3 layers"):
        ours.synthesize(z, class_maps=[torch.zeros(1, 4, 4, 1000)] * 3)
    with pytest.raises(ValueError, match="unknown class name"):
        ours.synthesize(z, classes="no such class")
    with pytest.raises(ValueError, match="output equal to it or half"):
        BigGANConfig(layers=((False, 16, 16), (True, 16, 4)), channel_width=4)


# ---------------------------------------------------------------------------------------------- loading
def test_bad_folders_give_clear_errors(ref_folder, tmp_path):
    ref, folder = ref_folder
    bad = tmp_path / "bad"
    shutil.copytree(folder, bad)
    cfg = json.loads((bad / "config.json").read_text())
    cfg["channel_width"] = 8
    (bad / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="channel_width"):
        load_generator(str(bad))
    state = torch.load(folder / "pytorch_model.bin", weights_only=True)
    del state["generator.layers.3.bn_1.scale.weight_orig"]
    state["extra.key"] = torch.zeros(1)
    (bad / "config.json").write_text((folder / "config.json").read_text())
    torch.save(state, bad / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match=r"missing key generator\.layers\.3\.bn_1\.scale"):
        load_generator(str(bad))
    torch.save({"model": ref}, bad / "pytorch_model.bin")  # a pickled module: refused by weights_only
    with pytest.raises(CheckpointError, match="weights_only"):
        load_generator(str(bad))
    (bad / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_generator(str(bad))


@pytest.fixture
def caches(tmp_path, monkeypatch):
    ours_dir, theirs = tmp_path / "ours", tmp_path / "theirs"
    monkeypatch.setenv("NEURAL_COLLAGE_CACHE", str(ours_dir))
    monkeypatch.setenv("PYTORCH_PRETRAINED_BIGGAN_CACHE", str(theirs))
    monkeypatch.delenv("NEURAL_COLLAGE_OFFLINE", raising=False)
    return ours_dir, theirs


def test_a_name_offline_says_where_to_put_the_files(caches, monkeypatch):
    monkeypatch.setenv("NEURAL_COLLAGE_OFFLINE", "1")
    with pytest.raises(CheckpointError) as e:
        load_generator("biggan-deep-256")
    msg = str(e.value)
    assert str(caches[0] / "biggan" / "biggan-deep-256") in msg and "biggan-deep-256-pytorch_model.bin" in msg
    assert str(caches[1]) in msg


def test_a_name_from_the_reference_cache_is_converted_once(ref_folder, caches, monkeypatch):
    _, folder = ref_folder
    theirs = caches[1]
    theirs.mkdir()
    for url, src in zip(biggan_io.REFERENCE_URLS["biggan-deep-128"], ("pytorch_model.bin", "config.json")):
        name = hashlib.sha256(url.encode()).hexdigest() + ".abc"  # the reference names files by URL (+ etag) hash
        shutil.copyfile(folder / src, theirs / name)
        (theirs / f"{name}.json").write_text(json.dumps({"url": url, "etag": "x"}))
    monkeypatch.setattr(biggan_io, "_download", lambda *a: pytest.fail("no download expected"))
    G = load_generator("biggan-deep-128")
    native = caches[0] / "biggan" / "biggan-deep-128.safetensors"
    assert native.is_file() and G.provenance["name"] == "biggan-deep-128"
    shutil.rmtree(theirs)
    z = torch.randn(1, 128)
    assert torch.equal(load_generator("biggan-deep-128").synthesize(z, classes=1), G.synthesize(z, classes=1))


def test_a_name_is_downloaded_with_the_fake_downloader(ref_folder, caches, monkeypatch):
    _, folder = ref_folder
    fetched = []

    def fake(url, dest):
        fetched.append(url)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(folder / ("config.json" if url.endswith(".json") else "pytorch_model.bin"), dest)

    monkeypatch.setattr(biggan_io, "_download", fake)
    G = load_generator("biggan-deep-128")
    assert sorted(fetched) == sorted(biggan_io.REFERENCE_URLS["biggan-deep-128"]) and G.resolution == 128
    assert [p.name for p in (caches[0] / "biggan").iterdir()] == ["biggan-deep-128.safetensors"]


def test_hf_names_need_the_extra(caches, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_hub(name, *a, **k):
        if name.startswith("huggingface_hub"):
            raise ImportError(name)
        return real(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(CheckpointError, match=r"neural-collage\[hf\]"):
        load_generator("hf:someone/BigGAN-deep-128")
    assert biggan_io.is_biggan_name("hf:osanseviero/BigGAN-deep-128") and not biggan_io.is_biggan_name("hf:x")


def test_convert_command_writes_a_native_file(ref_folder, tmp_path):
    from collage_app.cli import main

    _, folder = ref_folder
    out = tmp_path / "g.safetensors"
    assert main(["convert", str(folder), str(out)]) == 0
    z = torch.randn(1, 128)
    want = load_generator(str(folder)).synthesize(z, classes=9)
    assert torch.equal(load_generator(out).synthesize(z, classes=9), want)
    assert main(["convert", str(tmp_path / "nothing"), str(out)]) == 2
