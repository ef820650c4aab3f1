"""collage_core.latents on its own: seeded sampling, truncation, and .npy files (never pickle)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from collage_core.latents import SEED_MODULUS, load_latent, sample_z, save_latent


# ------------------------------------------------------------------------------------------------ sampling
def test_sample_z_is_deterministic_per_seed_and_differs_across_seeds():
    a = sample_z(3, 16, seed=11)
    assert a.shape == (3, 16) and a.dtype == torch.float32 and a.device.type == "cpu"
    assert torch.equal(a, sample_z(3, 16, seed=11))
    assert not torch.equal(a, sample_z(3, 16, seed=12))
    assert len({tuple(r.tolist()) for r in a}) == 3  # rows are distinct draws


def test_rows_are_their_own_seeds():
    """Row i of a batch with seed s is batch 1 with seed s + i; a longer batch extends a shorter one."""
    a = sample_z(4, 8, seed=100)
    for i in range(4):
        assert torch.equal(a[i:i + 1], sample_z(1, 8, seed=100 + i))
    assert torch.equal(sample_z(6, 8, seed=100)[:4], a)
    assert torch.equal(sample_z(1, 8, seed=100)[0], torch.randn(8, generator=torch.Generator().manual_seed(100)))


def test_seeds_wrap_modulo_2_64():
    assert torch.equal(sample_z(1, 8, seed=-1), sample_z(1, 8, seed=SEED_MODULUS - 1))
    assert torch.equal(sample_z(1, 8, seed=SEED_MODULUS + 5), sample_z(1, 8, seed=5))


def test_dtype_is_a_cast_of_the_same_draw():
    a = sample_z(2, 8, seed=3)
    b = sample_z(2, 8, seed=3, dtype=torch.float64, device=torch.device("cpu"))
    assert b.dtype == torch.float64 and torch.equal(b.float(), a)


def test_standard_normal_statistics():
    z = sample_z(64, 128, seed=0)
    assert abs(float(z.mean())) < 0.05 and abs(float(z.std()) - 1) < 0.05


def test_truncation_redraws_only_the_entries_outside():
    """Entries already inside [-t, t] are the untruncated draw; the others are redrawn, not clipped."""
    t = 0.8
    plain = sample_z(8, 64, seed=21)
    cut = sample_z(8, 64, seed=21, truncation=t)
    assert float(cut.abs().max()) <= t
    inside = plain.abs() <= t
    assert torch.equal(cut[inside], plain[inside])
    outside = ~inside
    assert int(outside.sum()) > 0
    assert int((cut[outside].abs() == t).sum()) == 0  # clipping would pile them up on the bounds


def test_truncation_samples_a_truncated_normal():
    """Std of N(0, 1) truncated to [-1, 1] is sqrt(1 - 2 phi(1) / (Phi(1) - Phi(-1))) = 0.5396; clipping would
    give about 0.80."""
    phi = math.exp(-0.5) / math.sqrt(2 * math.pi)
    want = math.sqrt(1 - 2 * phi / math.erf(1 / math.sqrt(2)))
    z = sample_z(64, 128, seed=1, truncation=1.0)
    assert abs(float(z.std()) - want) < 0.02 and abs(float(z.mean())) < 0.03


def test_tiny_truncation_still_bounds_the_values():
    """With a threshold almost nothing falls under, the redraw budget runs out and the rest is clamped."""
    z = sample_z(2, 16, seed=0, truncation=1e-6)
    assert float(z.abs().max()) <= 1e-6


@pytest.mark.parametrize("kwargs, match", [
    ({"n": 0}, r"batch must be at least 1, got 0"),
    ({"dim_z": 0}, r"dim_z must be at least 1, got 0"),
    ({"truncation": -0.5}, r"truncation must be 0 \(off\) or a positive threshold, got -0.5"),
    ({"truncation": float("nan")}, r"truncation must be 0 \(off\) or a positive threshold, got nan"),
    ({"truncation": float("inf")}, r"truncation must be 0 \(off\) or a positive threshold, got inf"),
])
def test_sample_z_refuses_bad_arguments(kwargs, match):
    args = {"n": 1, "dim_z": 8, "seed": 0} | kwargs
    with pytest.raises(ValueError, match=match):
        sample_z(**args)


# ---------------------------------------------------------------------------------------------- save, load
def test_save_and_load_round_trip(tmp_path):
    z = sample_z(3, 16, seed=4)
    p = save_latent(z, tmp_path / "deep" / "dir" / "z.npy")  # parents are made
    assert p == tmp_path / "deep" / "dir" / "z.npy" and p.is_file()
    assert [f.name for f in p.parent.iterdir()] == ["z.npy"]  # no temporary left behind
    raw = np.load(p, allow_pickle=False)
    assert raw.dtype == np.float32 and raw.shape == (3, 16)
    back = load_latent(str(p), dim_z=16)
    assert back.dtype == torch.float32 and back.is_contiguous() and torch.equal(back, z)
    save_latent(z[:1] * 2, p)  # overwrites
    assert torch.equal(load_latent(p), z[:1] * 2)


def test_save_converts_to_float32_rows(tmp_path):
    z64 = torch.randn(2, 8, dtype=torch.float64, requires_grad=True)
    assert np.load(save_latent(z64, tmp_path / "a.npy")).dtype == np.float32
    flat = np.arange(8, dtype=np.int64)
    assert np.array_equal(np.load(save_latent(flat, tmp_path / "b.npy")), flat[None].astype(np.float32))
    with pytest.raises(ValueError, match=r"latents have shape \(2, 2, 2\); expected \(N, dim_z\)"):
        save_latent(np.zeros((2, 2, 2)), tmp_path / "c.npy")
    assert not (tmp_path / "c.npy").exists()


def test_load_accepts_the_original_layouts(tmp_path):
    """The original's z-example files: (1, 128) or (128,) float32; other real dtypes are converted."""
    v = np.random.default_rng(0).standard_normal(128)
    np.save(tmp_path / "flat.npy", v.astype(np.float64))
    np.save(tmp_path / "ints.npy", np.arange(6, dtype=np.int16).reshape(2, 3))
    a = load_latent(tmp_path / "flat.npy", dim_z=128)
    assert a.shape == (1, 128) and a.dtype == torch.float32
    assert torch.equal(a[0], torch.from_numpy(v.astype(np.float32)))
    assert torch.equal(load_latent(tmp_path / "ints.npy"), torch.arange(6, dtype=torch.float32).view(2, 3))


def _write(tmp_path, name, array):
    np.save(tmp_path / name, array, allow_pickle=True)
    return tmp_path / name


@pytest.mark.parametrize("make, match", [
    (lambda d: d / "missing.npy", r"latent file not found: .*missing\.npy"),
    (lambda d: _write(d, "obj.npy", np.array([{"a": 1}], dtype=object)), r"needs pickle to load, which is refused"),
    (lambda d: _write(d, "str.npy", np.array(["a", "b"])), r"holds a <U1 array; expected numbers"),
    (lambda d: _write(d, "bool.npy", np.ones((1, 4), bool)), r"holds a bool array; expected numbers"),
    (lambda d: _write(d, "cube.npy", np.zeros((1, 2, 3), np.float32)),
     r"holds an array of shape \(1, 2, 3\); expected \(dim_z,\) or \(N, dim_z\)"),
    (lambda d: _write(d, "norows.npy", np.zeros((0, 8), np.float32)), r"holds an array of shape \(0, 8\)"),
    (lambda d: _write(d, "scalar.npy", np.float32(1)), r"holds an array of shape \(\)"),
    (lambda d: _write(d, "nan.npy", np.full((2, 128), np.nan, np.float32)), r"contains NaN or infinite values"),
    (lambda d: _write(d, "inf.npy", np.r_[np.inf, np.zeros(127)]), r"contains NaN or infinite values"),
    (lambda d: _write(d, "size.npy", np.zeros((1, 100), np.float32)),
     r"holds latents of size 100; the generator expects 128"),
])
def test_load_refuses_bad_files(tmp_path, make, match):
    with pytest.raises(ValueError, match=match):
        load_latent(make(tmp_path), dim_z=128)


def test_load_refuses_non_npy_files(tmp_path):
    with pytest.raises(ValueError, match="no latent file given"):
        load_latent("")
    np.savez(tmp_path / "a.npz", z=np.zeros(8))
    with pytest.raises(ValueError, match=r"a\.npz is an \.npz archive; expected a single \.npy array"):
        load_latent(tmp_path / "a.npz")
    (tmp_path / "t.npy").write_text("0.1 0.2 0.3\n")
    with pytest.raises(ValueError, match=r"t\.npy is not a readable \.npy file \(no \.npy header\)"):
        load_latent(tmp_path / "t.npy")
    with pytest.raises(ValueError, match="latent file not found"):
        load_latent(tmp_path)  # a directory


def test_truncated_file_is_reported_as_unreadable_not_as_pickle(tmp_path):
    p = save_latent(sample_z(2, 16, seed=0), tmp_path / "z.npy")
    p.write_bytes(p.read_bytes()[:-20])  # e.g. a copy cut short
    with pytest.raises(ValueError) as e:
        load_latent(p)
    assert "pickle" not in str(e.value) and "not a readable .npy file" in str(e.value)


def test_save_latent_refuses_what_load_latent_would_refuse(tmp_path):
    z = torch.randn(3, 8)
    z[1, 2] = float("nan")
    z[2, 0] = float("inf")
    with pytest.raises(ValueError, match=r"latent row\(s\) 1, 2 hold NaN or infinite values"):
        save_latent(z, tmp_path / "bad.npy")
    assert not (tmp_path / "bad.npy").exists() and not list(tmp_path.iterdir())
