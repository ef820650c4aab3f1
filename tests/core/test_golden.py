"""Parity with the original Chainer implementation on its golden outputs (atol 1e-4, float32).

Every golden set found (``golden_<variant>.npz`` with ``gen_<variant>_scbn.npz`` and ``dis_<variant>.npz``) in
``tests/fixtures/original_golden`` or in ``$NEURAL_COLLAGE_GOLDEN_DIR`` is checked, so a larger held-back set of
the 256 layout runs through the same tests when dropped in.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from collage_core import load_discriminator, load_generator
from collage_core.projection import ChainerAdam, image_to_model_range, projection_loss

ATOL = 1e-4
FIXTURES = Path(__file__).parents[1] / "fixtures" / "original_golden"


def _golden_sets() -> list[tuple[str, Path]]:
    dirs = [FIXTURES]
    if os.environ.get("NEURAL_COLLAGE_GOLDEN_DIR"):
        dirs.append(Path(os.environ["NEURAL_COLLAGE_GOLDEN_DIR"]))
    found: dict[str, Path] = {}
    for d in dirs:
        for f in sorted(d.glob("golden_*.npz")):
            found[f.stem.removeprefix("golden_")] = d
    return sorted(found.items())


SETS = _golden_sets()


class Golden:
    def __init__(self, variant: str, folder: Path) -> None:
        self.variant = variant
        self.data = np.load(folder / f"golden_{variant}.npz", allow_pickle=False)
        self.meta = json.loads(str(self.data["meta_json"]))
        self.G = load_generator(folder / f"gen_{variant}_scbn.npz")
        dis = folder / f"dis_{variant}.npz"
        self.D = load_discriminator(dis, resolution=self.meta["resolution"]) if dis.is_file() else None

    def __getitem__(self, k: str) -> np.ndarray:
        return self.data[k]

    def has(self, k: str) -> bool:
        return k in self.data.files

    def maps(self, prefix: str) -> list[np.ndarray]:
        return [self.data[f"{prefix}_{l:02d}"] for l in range(self.meta["n_weight_layers"])]

    def blends(self, prefix: str) -> list[np.ndarray]:
        return [self.data[f"{prefix}_{l:02d}"] for l in range(self.meta["n_blend_layers"])]


_cache: dict[str, Golden] = {}


@pytest.fixture(params=[v for v, _ in SETS], ids=[v for v, _ in SETS])
def golden(request) -> Golden:
    v = request.param
    if v not in _cache:
        _cache[v] = Golden(v, dict(SETS)[v])
    return _cache[v]


def test_golden_sets_found():
    assert "small" in dict(SETS), "the small golden set must ship with the tests"


def test_architecture_inferred(golden):
    cfg, m = golden.G.config, golden.meta
    assert cfg.resolution == m["resolution"]
    assert cfg.n_classes == m["n_classes"] and cfg.dim_z == m["dim_z"] and cfg.bottom_width == m["bottom_width"]
    assert cfg.ch == m["ch"]
    assert cfg.n_map_layers == m["n_weight_layers"] and cfg.n_blend_layers == m["n_blend_layers"]
    assert cfg.map_sizes == m["sizes"][:cfg.n_map_layers]
    assert cfg.blend_sizes == m["sizes_blend"]


@pytest.mark.parametrize("case", ["onehot", "mask2", "soft3", "quad", "raw"])
def test_class_maps(golden, case):
    if not golden.has(f"{case}_x"):
        pytest.skip(f"no {case} case in the {golden.variant} set")
    with torch.no_grad():
        x = golden.G.synthesize(golden[f"{case}_z"], class_maps=golden.maps(f"{case}_weights"))
    np.testing.assert_allclose(x.numpy(), golden[f"{case}_x"], atol=ATOL, rtol=0)


def test_class_ids_equal_onehot_maps(golden):
    """The gather fast path gives the one-hot map result (the original: bit-identical to ResNetGenerator)."""
    with torch.no_grad():
        x = golden.G.synthesize(golden["onehot_z"], classes=golden["onehot_y"])
    np.testing.assert_allclose(x.numpy(), golden["onehot_x"], atol=ATOL, rtol=0)


def test_intermediate_activations(golden):
    names = [k.removeprefix("onehot_h_") for k in golden.data.files if k.startswith("onehot_h_")]
    if not names:
        pytest.skip("no intermediate activations in this set")
    rec: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        golden.G.synthesize(golden["onehot_z"][:1], classes=golden["onehot_y"][:1], record=rec)
    assert set(names) <= set(rec), f"not recorded: {set(names) - set(rec)}"
    for n in names:
        np.testing.assert_allclose(rec[n].numpy(), golden[f"onehot_h_{n}"], atol=ATOL, rtol=0, err_msg=n)


def test_feature_blend_rows(golden):
    rows = golden["blend_x"].shape[0]
    with torch.no_grad():
        for r in range(rows):
            x = golden.G.synthesize(zs=[golden["blend_z1"], golden["blend_z2"]],
                                    class_maps=golden.maps("blend_weights"),
                                    blends=golden.blends(f"blend_row{r}_blends"))
            np.testing.assert_allclose(x.numpy(), golden["blend_x"][r], atol=ATOL, rtol=0, err_msg=f"row {r}")


def test_deep_feature_blend(golden):
    with torch.no_grad():
        x = golden.G.synthesize(zs=[golden["deep_z_src"], golden["deep_z_ref"]],
                                class_maps=golden.maps("deep_weights"), blends=golden.blends("deep_blends"))
    np.testing.assert_allclose(x.numpy(), golden["deep_x"], atol=ATOL, rtol=0)


def test_mask_resizing(golden):
    """Our mask resizer reproduces the original scripts' PIL bicubic resize of the mask image."""
    from collage_core.maps import resize_mask

    m = golden["mask_image"]
    for k in golden.data.files:
        if k.startswith("mask_resized_"):
            s = int(k.removeprefix("mask_resized_"))
            np.testing.assert_allclose(resize_mask(m, s), golden[k], atol=1e-6, rtol=0, err_msg=k)


def _opt_inputs(golden):
    x_img = np.concatenate([golden["onehot_x"][:1], golden["opt_gt"]])
    return torch.from_numpy(x_img)


def test_discriminator(golden):
    if golden.D is None:
        pytest.skip("no discriminator snapshot")
    x = _opt_inputs(golden)
    with torch.no_grad():
        f = golden.D.feature_vector(x)
        logit = golden.D(x, torch.tensor([1, 2]))
    np.testing.assert_allclose(f.numpy(), golden["dis_feature"], atol=ATOL, rtol=0)
    np.testing.assert_allclose(logit.numpy(), golden["dis_logit_y"], atol=ATOL, rtol=1e-5)
    # eval mode is deterministic (the original drifts: its SNLinear/SNEmbedID update u even in eval)
    with torch.no_grad():
        again = golden.D(x, torch.tensor([1, 2]))
    assert torch.equal(again, logit)


def test_projection_objective_and_adam(golden):
    if golden.D is None:
        pytest.skip("no discriminator snapshot")
    gt = image_to_model_range(torch.from_numpy(golden["opt_gt_uint8"])).permute(2, 0, 1)[None]
    np.testing.assert_array_equal(gt.numpy(), golden["opt_gt"])
    z = torch.from_numpy(golden["opt_z0"].copy()).requires_grad_(True)
    adam = ChainerAdam(z, alpha=0.075)
    for step in range(len(golden["opt_loss"])):
        recon = golden.G.synthesize(z, classes=golden["opt_class"])
        if step == 0:
            np.testing.assert_allclose(recon.detach().numpy(), golden["opt_recon0"], atol=ATOL, rtol=0)
        loss = projection_loss(recon, gt, golden.D)
        total = loss.total.sum()
        (grad,) = torch.autograd.grad(total, z)
        assert abs(loss.feature.item() - golden["opt_l1"][step]) < ATOL
        assert abs(loss.pixel.item() - golden["opt_l2"][step]) < ATOL
        assert abs(total.item() - golden["opt_loss"][step]) < ATOL
        np.testing.assert_allclose(grad.numpy(), golden["opt_grad"][step], atol=1e-6, rtol=1e-3)
        adam.step(grad)
        np.testing.assert_allclose(z.detach().numpy(), golden["opt_z"][step], atol=ATOL, rtol=0)
