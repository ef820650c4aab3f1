"""Manifold projection beyond the golden steps: restarts, class search, early stop, cancellation, pixel-only."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from collage_core import load_discriminator, load_generator
from collage_core.images import from_uint8
from collage_core.projection import ProjectionCancelled, image_to_model_range, project, psnr, rank_classes

GOLDEN = Path(__file__).parents[1] / "fixtures" / "original_golden"


@pytest.fixture(scope="module")
def models():
    return load_generator(GOLDEN / "gen_small_scbn.npz"), load_discriminator(GOLDEN / "dis_small.npz")


@pytest.fixture(scope="module")
def target(models):
    """A held-out picture the generator can make: class 2 from a latent the projection never sees."""
    G, _ = models
    with torch.no_grad():
        return G.synthesize(torch.randn(1, 128, generator=torch.Generator().manual_seed(42)), classes=[2])


def test_single_start_reproduces_original_trajectory(models):
    G, D = models
    g = np.load(GOLDEN / "golden_small.npz")
    gt = image_to_model_range(torch.from_numpy(g["opt_gt_uint8"])).permute(2, 0, 1)[None]
    r = project(G, gt, int(g["opt_class"][0]), D, steps=len(g["opt_loss"]), z_init=g["opt_z0"], record_z=True)
    np.testing.assert_allclose(r.history[:, 0], g["opt_loss"], atol=1e-4)
    np.testing.assert_allclose(r.z_trajectory[:, 0], g["opt_z"][:, 0], atol=1e-4)
    torch.testing.assert_close(r.z, torch.from_numpy(g["opt_z"][-1]), atol=1e-4, rtol=0)


def test_loss_falls_and_psnr_improves(models, target):
    G, D = models
    start = torch.randn(2, 128, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = [psnr(G.synthesize(z[None], classes=[2]), target) for z in start]
    r = project(G, target, 2, D, steps=20, restarts=2, seed=0)
    h = r.history  # (steps, candidates)
    mean = h.mean(axis=1)
    assert mean[-1] < mean[0] - 0.05, "the loss must fall"
    # monotone on average: a moving average of the mean loss never rises by more than noise
    smooth = np.convolve(mean, np.ones(5) / 5, mode="valid")
    assert (np.diff(smooth) < 0.01).all()
    assert psnr(r.reconstruction, target) > max(before) + 1.0
    assert r.loss <= h[-1].min() + 0.05


def test_restarts_keep_the_best(models, target):
    G, D = models
    one = project(G, target, 2, D, steps=4, restarts=1, seed=3)
    many = project(G, target, 2, D, steps=4, restarts=3, seed=3)
    assert many.loss <= one.loss + 1e-5  # the first restart of `many` is `one`'s start
    assert len(many.candidates) == 3 and many.history.shape == (4, 3)


def test_class_search_and_pixel_only(models, target):
    G, D = models
    top = rank_classes(D, target, 3)
    assert len(top) == 3 and len(set(top)) == 3
    r = project(G, target, None, D, steps=2, restarts=1, top_k_classes=3)
    assert r.class_id in top and [c for _, c in r.candidates] == top
    p = project(G, target, 2, None, steps=8, restarts=1)
    assert p.feature_loss == 0.0 and p.history[-1].mean() < p.history[0].mean()


def test_early_stop_progress_and_cancel(models, target):
    G, D = models
    seen = []
    r = project(G, target, 2, D, steps=200, lr=1e-7, patience=2, progress=lambda t, n, l: seen.append((t, n)))
    assert r.stopped_early and r.steps < 10 and seen[-1] == (r.steps, 200)
    calls = iter(range(100))
    with pytest.raises(ProjectionCancelled, match="after 2 of 50 steps"):
        project(G, target, 2, D, steps=50, cancel=lambda: next(calls) >= 2)


@pytest.mark.parametrize("kwargs, match", [
    (dict(target=torch.zeros(1, 3, 64, 64), class_id=0), r"expected \(1, 3, 128, 128\)"),
    (dict(target=torch.full((1, 3, 128, 128), float("nan")), class_id=0), "NaN"),
    (dict(target=torch.zeros(1, 3, 128, 128), class_id=9), "class id 9 out of range"),
    (dict(target=torch.zeros(1, 3, 128, 128), class_id=None), "give class_id"),
])
def test_bad_inputs(models, kwargs, match):
    G, _ = models
    with pytest.raises(ValueError, match=match):
        project(G, steps=1, **kwargs)


def test_uint8_conventions():
    u8 = np.array([[[0, 128, 255]]], np.uint8)
    assert from_uint8(u8)[0, :, 0, 0].tolist() == pytest.approx([-1.0, 128 / 127.5 - 1, 1.0], abs=1e-6)
    assert from_uint8(u8, "original-projection")[0, 2, 0, 0].item() == pytest.approx(0.9921875)


def test_batched_candidates_match_unbatched(models, target):
    """Candidates optimised as one batch follow the trajectories each has alone (nothing couples them)."""
    G, D = models
    starts = torch.randn(3, 128, generator=torch.Generator().manual_seed(5))
    batch = project(G, target, 2, D, steps=5, restarts=3, z_init=starts, record_z=True)
    for i in range(3):
        alone = project(G, target, 2, D, steps=5, restarts=1, z_init=starts[i:i + 1], record_z=True)
        np.testing.assert_allclose(batch.history[:, i], alone.history[:, 0], atol=1e-4)
        # Adam divides by sqrt(v): float noise of the batched convolutions moves z by ~1e-3 (seen: 1.2e-3)
        np.testing.assert_allclose(batch.z_trajectory[:, i], alone.z_trajectory[:, 0], atol=5e-3)


def test_narrow_after_goes_on_with_the_best_candidate_alone(models, target):
    """narrow_after=k: after k steps only the lowest-loss candidate is optimised, along the very trajectory it has
    in the full batch; the dropped ones read inf (loss) and NaN (z) from then on."""
    G, D = models
    starts = torch.randn(3, 128, generator=torch.Generator().manual_seed(6))
    full = project(G, target, 2, D, steps=8, restarts=3, z_init=starts, record_z=True)
    narrow = project(G, target, 2, D, steps=8, restarts=3, z_init=starts, record_z=True, narrow_after=3)
    keep = int(np.argmin(full.history[3]))
    np.testing.assert_allclose(narrow.history[:3], full.history[:3], atol=1e-5)
    np.testing.assert_allclose(narrow.history[3:, keep], full.history[3:, keep], atol=1e-4)
    np.testing.assert_allclose(narrow.z_trajectory[:, keep], full.z_trajectory[:, keep], atol=1e-4)
    dropped = [i for i in range(3) if i != keep]
    assert np.isinf(narrow.history[3:, dropped]).all() and np.isnan(narrow.z_trajectory[3:, dropped]).all()
    torch.testing.assert_close(narrow.z, torch.from_numpy(full.z_trajectory[-1, keep])[None], atol=1e-4, rtol=0)
    assert narrow.candidates[keep] == (keep, 2) and narrow.steps == 8
