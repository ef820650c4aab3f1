"""The projection encoder: shapes, files, training on a tiny generator, and projection started from it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import collage_nodes
from collage_core import load_discriminator, load_generator
from collage_core.checkpoints import CheckpointError
from collage_core.encoder import Encoder, EncoderConfig, load_encoder, save_encoder
from collage_core.projection import project, projection_loss
from collage_core.training.encoder_train import EncoderTrainConfig, EncoderTrainer
from collage_engine import Graph
from nodes_support import CLASS_NAMES, ROOT, TINY, TINY_D, TINY_E


def test_config_shapes_and_errors():
    cfg = EncoderConfig(resolution=64, dim_z=16, n_classes=3, ch=4)
    assert cfg.widths == [4, 8, 16, 32, 32]
    E = Encoder(cfg, class_names=["a", "b", "c"])
    z, logits = E(torch.rand(2, 3, 64, 64) * 2 - 1)
    assert z.shape == (2, 16) and logits.shape == (2, 3)
    enc = E.eval().encode(torch.zeros(3, 64, 64))  # one picture without a batch axis
    assert enc.z.shape == (1, 16) and len(enc.top_classes(2)[0]) == 2
    with pytest.raises(ValueError, match="4 \\* 2\\^n"):
        EncoderConfig(resolution=48)
    with pytest.raises(ValueError, match="reads \\(N, 3, 64, 64\\)"):
        E.encode(torch.zeros(1, 3, 32, 32))
    with pytest.raises(ValueError, match="NaN"):
        E.encode(torch.full((1, 3, 64, 64), float("nan")))
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        Encoder(cfg, class_names=["a", "b"])


def test_save_load_round_trip_and_bad_files(tmp_path):
    torch.manual_seed(0)
    E = Encoder(EncoderConfig(resolution=32, dim_z=8, n_classes=2, ch=2), class_names=["x", "y"]).eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    path = save_encoder(E, tmp_path / "e.safetensors", provenance={"note": "test"})
    E2 = load_encoder(path)
    assert E2.class_names == ["x", "y"] and E2.provenance == {"note": "test"} and not E2.training
    torch.testing.assert_close(E2.encode(x).z, E.encode(x).z)
    half = load_encoder(save_encoder(E, tmp_path / "h.safetensors", dtype=torch.float16))
    torch.testing.assert_close(half.encode(x).z, E.encode(x).z, atol=2e-2, rtol=0)
    with pytest.raises(CheckpointError, match="holds a 'generator', not an encoder"):
        load_encoder(TINY)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_encoder(bad)
    with pytest.raises(CheckpointError, match="no encoder checkpoint 'nope'"):
        load_encoder("nope")


def test_check_fits_names_the_mismatch():
    G = load_generator(TINY)
    load_encoder(TINY_E).check_fits(G)  # the tiny fixtures belong together
    other = Encoder(EncoderConfig(resolution=32, dim_z=128, n_classes=21), class_names=CLASS_NAMES)
    with pytest.raises(ValueError, match="reads 32px pictures, the generator makes 64px"):
        other.check_fits(G)
    names = Encoder(EncoderConfig(resolution=64, dim_z=128, n_classes=21), class_names=CLASS_NAMES[::-1])
    with pytest.raises(ValueError, match="classes are not the generator's"):
        names.check_fits(G)


def _cfg(tmp_path, **kw):
    base = dict(out=str(tmp_path / "enc"), generator=str(TINY), discriminator=str(TINY_D), steps=4, batch_size=4,
                ch=2, log_every=1, checkpoint_every=2, sample_every=2, device="cpu")
    base.update(kw)
    return EncoderTrainConfig(**base)


def test_training_runs_resumes_and_exports(tmp_path):
    a = EncoderTrainer(_cfg(tmp_path))
    logs = [a.step() for _ in range(2)]
    assert all(np.isfinite(list(l.values())).all() for l in logs)
    assert {"pixel", "latent", "feature", "class_acc", "loss"} <= set(logs[0])
    a.save_state()
    b = EncoderTrainer(_cfg(tmp_path))
    b.load_state(tmp_path / "enc" / "state.safetensors")
    assert b.step_count == 2
    a.step(), b.step()
    for pa, pb in zip(a.E.parameters(), b.E.parameters()):
        torch.testing.assert_close(pa, pb, atol=1e-6, rtol=0)
    path = EncoderTrainer(_cfg(tmp_path, out=str(tmp_path / "full"))).train(progress=False)
    E = load_encoder(path)
    assert E.provenance["steps"] == 4 and E.provenance["generator"] == str(TINY)
    lines = (tmp_path / "full" / "log.jsonl").read_text().splitlines()
    assert [json.loads(l)["step"] for l in lines] == [1, 2, 3, 4]
    assert (tmp_path / "full" / "samples" / "step_000004.png").is_file()
    with pytest.raises(ValueError, match="real_fraction"):
        EncoderTrainer(_cfg(tmp_path, real_fraction=1.5))


def test_trained_encoder_starts_closer_than_random(tmp_path):
    """On the generator's own pictures, E(x) must start projection nearer than random latents do."""
    torch.manual_seed(0)
    tr = EncoderTrainer(_cfg(tmp_path, steps=150, batch_size=16, lr=2e-3, w_feature=0.0, ch=4))
    for _ in range(150):
        tr.step()
    G, E = tr.G, tr.E.eval()
    gen = torch.Generator().manual_seed(5)
    z = torch.randn(16, 128, generator=gen)
    y = torch.randint(0, 21, (16,), generator=gen)
    with torch.no_grad():
        x = G.synthesize(z, classes=y)
        enc = G.synthesize(E.encode(x).z, classes=y)
        rand = G.synthesize(torch.randn(16, 128, generator=gen), classes=y)
    err_enc = ((enc - x) ** 2).mean().item()
    err_rand = ((rand - x) ** 2).mean().item()
    assert err_enc < 0.7 * err_rand, (err_enc, err_rand)


def test_projection_starts_from_the_encoder_and_screens_random_starts():
    G, D, E = load_generator(TINY), load_discriminator(TINY_D), load_encoder(TINY_E)
    target = torch.rand(1, 3, 64, 64) * 2 - 1
    r = project(G, target, [2, 5], D, steps=1, restarts=3, encoder=E, seed=0)
    enc_z = E.encode(target).z
    with torch.no_grad():
        start = projection_loss(G.synthesize(enc_z.expand(2, -1), classes=[2, 5]), target, D).total
    # candidates are (restart, class); restart 0 of each class starts at E(target)
    assert r.candidates[0] == (0, 2) and r.candidates[3] == (0, 5)
    np.testing.assert_allclose(r.history[0, [0, 3]], start.numpy(), atol=1e-5)
    # pixel-space restarts: the screened starts are the best of many random ones, so better than plain random
    plain = project(G, target, 2, D, steps=1, restarts=4, seed=1)
    screened = project(G, target, 2, D, steps=1, restarts=4, seed=1, init_samples=64)
    assert screened.history[0].max() <= np.median(plain.history[0])
    # class 'auto' with an encoder and no discriminator: the encoder ranks the classes
    auto = project(G, target, None, None, steps=1, encoder=E, top_k_classes=2)
    assert [c for _, c in auto.candidates] == E.encode(target).top_classes(2)[0]
    with pytest.raises(ValueError, match="init_samples"):
        project(G, target, 2, D, steps=1, init_samples=-1)


def test_project_image_node_with_encoder():
    g = Graph(collage_nodes.registry())
    G = g.node("LoadGenerator", model=str(TINY), device="cpu")
    photo = g.node("CollageLoadImage", path=str(ROOT / "workflows" / "examples" / "openmoji_dog.png"))
    crop = g.node("CropToModel", photo=photo.out(0), generator=G)
    E = g.node("LoadEncoder", model=str(TINY_E), device="cpu")
    proj = g.node("ProjectImage", generator=G, image=crop.out(0), encoder=E, class_name="auto", steps=2,
                  restarts=2, init_samples=8)
    res = collage_nodes.engine().run(g, targets=[proj])
    assert res.ok, res.error
    z, recon, classes = res[proj]
    assert z.shape == (1, 128) and recon.shape == (1, 64, 64, 3)
    bad = Graph(collage_nodes.registry())
    e = bad.node("LoadEncoder", model="no-such-model")
    bad.node("ProjectImage", generator=bad.node("LoadGenerator", model=str(TINY), device="cpu"),
             image=bad.node("CollageLoadImage", path=str(ROOT / "workflows" / "examples" / "openmoji_dog.png")),
             encoder=e, class_name="dog")
    v = collage_nodes.engine().validate(bad)
    assert "neither an encoder checkpoint nor an embedded model" in json.dumps(v.node_errors)


def test_load_encoder_is_exported_beside_the_other_loaders():
    import collage_core
    from collage_core import encoder

    assert collage_core.load_encoder is encoder.load_encoder and "load_encoder" in collage_core.__all__
