"""Checkpoints: original .npz snapshots (inference, strict loading, clear errors) and the native format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import reference_numpy as ref
from collage_core import CheckpointError, load_discriminator, load_generator, save_discriminator, save_generator
from collage_core.config import DiscriminatorConfig

GOLDEN = Path(__file__).parents[1] / "fixtures" / "original_golden"


def test_native_generator_roundtrip(tmp_path):
    G = load_generator(GOLDEN / "gen_small_scbn.npz")
    G.class_names = ["a", "b", "c", "d", "e"]
    p = save_generator(G, tmp_path / "g.safetensors", provenance={"trained_by": "test"})
    G2 = load_generator(p)
    assert G2.config == G.config and G2.class_names == G.class_names
    assert G2.provenance == {"trained_by": "test"}
    z = torch.randn(2, 128)
    with torch.no_grad():
        assert torch.equal(G.synthesize(z, classes=[0, 4]), G2.synthesize(z, classes=["a", "e"]))


def test_native_fp16_and_dtype(tmp_path):
    G = load_generator(GOLDEN / "gen_small_scbn.npz")
    p = save_generator(G, tmp_path / "g16.safetensors", dtype=torch.float16)
    assert p.stat().st_size < 0.6 * (GOLDEN / "gen_small_scbn.npz").stat().st_size
    G16 = load_generator(p)  # loads back as float32
    assert G16.dtype == torch.float32
    z = torch.randn(1, 128)
    with torch.no_grad():
        d = (G.synthesize(z, classes=[1]) - G16.synthesize(z, classes=[1])).abs().max()
    assert d < 0.05
    Gb = load_generator(p, dtype="bfloat16")
    assert Gb.dtype == torch.bfloat16


def test_native_discriminator_roundtrip(tmp_path):
    D = load_discriminator(GOLDEN / "dis_small.npz")
    p = save_discriminator(D, tmp_path / "d.safetensors")
    D2 = load_discriminator(p)
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    with torch.no_grad():
        assert torch.equal(D.feature_vector(x), D2.feature_vector(x))
        assert torch.equal(D(x, torch.tensor([3])), D2(x, torch.tensor([3])))


def test_discriminator_256_layout_matches_reference(tmp_path):
    cfg = DiscriminatorConfig.from_layout("snresnet_256", ch=2, n_classes=4)
    blocks = [(b.in_channels, b.hidden_channels, b.out_channels, b.learnable_sc) for b in cfg.blocks]
    st = ref.random_discriminator_state(blocks, 4, seed=1)
    np.savez(tmp_path / "d256.npz", **st)
    D = load_discriminator(tmp_path / "d256.npz")
    assert D.config.resolution == 256 and D.config.blocks == cfg.blocks
    x = np.random.default_rng(0).uniform(-1, 1, (2, 3, 256, 256)).astype(np.float32)
    with torch.no_grad():
        f = D.feature_vector(x).numpy()
    assert f.shape == (2, 32 * 4 * 4)
    np.testing.assert_allclose(f, ref.dis_features(st, x), atol=1e-4, rtol=1e-4)


def test_partial_generator_lists_missing_keys(tmp_path):
    st = dict(np.load(GOLDEN / "gen_small_scbn.npz"))
    del st["block3/c2/b"], st["b7/gamma"]
    st["block9/extra/W"] = np.zeros(3, np.float32)
    st["block4/c1/W"] = np.zeros((32, 32, 1, 1), np.float32)
    np.savez(tmp_path / "bad.npz", **st)
    with pytest.raises(CheckpointError) as e:
        load_generator(tmp_path / "bad.npz")
    msg = str(e.value)
    assert "missing keys (2): b7.gamma, block3.c2.b" in msg
    assert "unexpected keys (1): block9.extra.W" in msg
    assert "block4.c1.W: file (32, 32, 1, 1) vs model (32, 32, 3, 3)" in msg


def test_discriminator_file_as_generator(tmp_path):
    with pytest.raises(CheckpointError, match="not a generator snapshot"):
        load_generator(GOLDEN / "dis_small.npz")


def test_corrupt_and_missing_files(tmp_path):
    bad = tmp_path / "corrupt.npz"
    bad.write_bytes(b"PK\x03\x04 this is not a zip")
    with pytest.raises(CheckpointError, match="not a readable .npz"):
        load_generator(bad)
    with pytest.raises(CheckpointError, match="not found"):
        load_generator(tmp_path / "nope.npz")
    with pytest.raises(CheckpointError, match="not an embedded model name"):
        load_generator("no-such-model")
    st = tmp_path / "junk.safetensors"
    st.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json}      ")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_generator(st)


def test_pickled_npz_is_refused(tmp_path):
    p = tmp_path / "evil.npz"
    np.savez(p, **{"l1/W": np.array([object()], dtype=object)})
    with pytest.raises(CheckpointError, match="pickle"):
        load_generator(p)


def test_nan_weights_refused(tmp_path):
    st = dict(np.load(GOLDEN / "gen_small_scbn.npz"))
    st["l1/W"] = st["l1/W"].copy()
    st["l1/W"][0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", **st)
    with pytest.raises(CheckpointError, match="l1.W contains NaN"):
        load_generator(tmp_path / "nan.npz")


def test_native_without_metadata(tmp_path):
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    with pytest.raises(CheckpointError, match="without neural-collage metadata"):
        load_generator(tmp_path / "plain.safetensors")
    G = load_generator(GOLDEN / "gen_small_scbn.npz")
    p = save_generator(G, tmp_path / "g.safetensors")
    with pytest.raises(CheckpointError, match="not a discriminator"):
        load_discriminator(p)
