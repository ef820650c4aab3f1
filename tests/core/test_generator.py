"""The generator family against a literal numpy restatement (64 and 256 layouts), conditioning options and
input checking."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import reference_numpy as ref
from collage_core import GeneratorConfig, load_generator
from collage_core.checkpoints import infer_generator_config
from collage_core.config import GENERATOR_LAYOUTS
from collage_core.layers import upsample_conv3x3, upsample_nearest2x
from collage_core.maps import ClassMap, class_map_from_regions, onehot_maps, transplant_blends

GOLDEN = Path(__file__).parents[1] / "fixtures" / "original_golden"
ATOL = 1e-4


def _soft_maps(rng, n, sizes, k):
    out = []
    for s in sizes:
        logits = rng.standard_normal((n, s, s, k)) * 2
        e = np.exp(logits - logits.max(-1, keepdims=True))
        out.append((e / e.sum(-1, keepdims=True)).astype(np.float32))
    return out


@pytest.fixture(scope="module", params=["resnet_64", "resnet_256"])
def model(request, tmp_path_factory):
    layout = request.param
    head, blocks = GENERATOR_LAYOUTS[layout]
    ch, k, dz = 2, 7, 16
    channels = [head * ch] + [m * ch for m in blocks]
    st = ref.random_generator_state(channels, k, dim_z=dz, seed=3)
    path = tmp_path_factory.mktemp(layout) / "gen.npz"
    np.savez(path, **st)
    return layout, st, load_generator(path)


def test_layout_inferred(model):
    layout, st, G = model
    assert G.config.layout == layout
    assert G.config.resolution == {"resnet_64": 64, "resnet_256": 256}[layout]
    assert G.config.n_classes == 7 and G.config.dim_z == 16 and G.config.ch == 2


def test_soft_maps_match_reference(model):
    _, st, G = model
    rng = np.random.default_rng(0)
    z = rng.standard_normal((2, 16)).astype(np.float32)
    w = _soft_maps(rng, 2, G.config.map_sizes, 7)
    with torch.no_grad():
        x = G.synthesize(z, class_maps=w).numpy()
    np.testing.assert_allclose(x, ref.generate(st, z, w), atol=ATOL, rtol=0)


def test_class_ids_match_reference(model):
    _, st, G = model
    rng = np.random.default_rng(1)
    z = rng.standard_normal((3, 16)).astype(np.float32)
    y = np.array([0, 6, 3])
    w = onehot_maps(y, 7, G.config.map_sizes)
    with torch.no_grad():
        x = G.synthesize(z, classes=y).numpy()
    np.testing.assert_allclose(x, ref.generate(st, z, w), atol=ATOL, rtol=0)


@pytest.mark.parametrize("pattern", ["dense", "head_only", "deep"])
def test_feature_blending_matches_reference(model, pattern):
    """Random blends (dense), a transplant at the head only, and the demo's deep pattern (stream pruning)."""
    _, st, G = model
    rng = np.random.default_rng(2)
    n = 2
    zs = [rng.standard_normal((n, 16)).astype(np.float32) for _ in range(2)]
    w = _soft_maps(rng, n, G.config.map_sizes, 7)
    sizes = G.config.blend_sizes
    if pattern == "dense":
        blends = [rng.uniform(-0.2, 0.8, (n, s, s, 3)).astype(np.float32) for s in sizes]
    else:
        mask = (rng.uniform(size=(32, 32)) > 0.5).astype(np.float32)
        strengths = {0: 0.7} if pattern == "head_only" else {0: 1.0, 2: 0.5, 3: 1.0}
        blends = transplant_blends(mask, strengths, sizes)
    full = [b if b is not None else np.broadcast_to(np.array([0, 0, 1], np.float32), (1, s, s, 3))
            for b, s in zip(blends, sizes)]
    full = [np.broadcast_to(b, (n, *b.shape[1:])) for b in full]
    with torch.no_grad():
        x = G.synthesize(zs=zs, class_maps=w, blends=blends).numpy()
    np.testing.assert_allclose(x, ref.generate(st, None, w, zs=zs, blends=full), atol=ATOL, rtol=0)


def test_single_map_is_resized_per_layer(model):
    _, st, G = model
    rng = np.random.default_rng(4)
    z = rng.standard_normal((1, 16)).astype(np.float32)
    R = G.config.resolution
    half = np.zeros((1, R, R, 7), np.float32)
    half[..., : R // 2, 2] = 1.0
    half[..., R // 2:, 5] = 1.0
    per_layer = []
    for s in G.config.map_sizes:  # with a map aligned to every layer's grid, area-resizing is exact
        m = np.zeros((1, s, s, 7), np.float32)
        m[..., : s // 2, 2] = 1
        m[..., s // 2:, 5] = 1
        per_layer.append(m)
    with torch.no_grad():
        a = G.synthesize(z, class_maps=half, map_resize="area")
        b = G.synthesize(z, class_maps=per_layer)
        c = G.synthesize(z, class_maps=ClassMap(torch.from_numpy(half[..., [2, 5]]).permute(0, 3, 1, 2), (2, 5)),
                         map_resize="area")
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(c, b, atol=1e-5, rtol=0)


def test_map_layers_use_base_class_elsewhere(model):
    _, st, G = model
    rng = np.random.default_rng(5)
    z = rng.standard_normal((2, 16)).astype(np.float32)
    L = G.config.n_map_layers
    target = onehot_maps([4, 4], 7, G.config.map_sizes)
    base = onehot_maps([1, 1], 7, G.config.map_sizes)
    layers = range(2, 6)
    mixed = [target[l] if l in layers else base[l] for l in range(L)]
    with torch.no_grad():
        x = G.synthesize(z, classes=[1, 1], class_maps=target, map_layers=layers)
        y = G.synthesize(z, class_maps=mixed)
        everywhere = G.synthesize(z, classes=[4, 4])
    torch.testing.assert_close(x, y, atol=1e-5, rtol=0)
    assert (x - everywhere).abs().max() > 1e-3  # the ablation changes the picture


def test_class_vectors_and_names(model):
    _, st, G = model
    z = torch.randn(2, 16)
    v = torch.zeros(2, 7)
    v[0, 3] = 1
    v[1, 0] = 0.25
    v[1, 6] = 0.75
    w = onehot_maps([3, 3], 7, G.config.map_sizes)
    eye = np.eye(7, dtype=np.float32)
    w = [np.concatenate([wl[:1], np.broadcast_to(eye[0] * 0.25 + eye[6] * 0.75, wl[:1].shape)]) for wl in w]
    with torch.no_grad():
        a = G.synthesize(z, classes=v)
        b = G.synthesize(z, class_maps=w)
        c = G.synthesize(z, classes=["class_3", "3"])
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    torch.testing.assert_close(a[:1], c[:1], atol=1e-6, rtol=0)


def test_fused_upsample_conv_is_exact():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 6)
    w = torch.randn(4, 5, 3, 3)
    b = torch.randn(4)
    lit = torch.nn.functional.conv2d(upsample_nearest2x(x), w, b, padding=1)
    torch.testing.assert_close(upsample_conv3x3(x, w, b), lit, atol=1e-5, rtol=1e-5)


def test_channels_last_gives_the_same_images(model):
    """Training on CUDA uses channels_last; every conv path (GEMM, phases, shortcut) must accept it."""
    import copy

    _, st, G = model
    z = torch.randn(8, 16, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        a = G.synthesize(z, classes=list(range(7)) + [0])
        Gc = copy.deepcopy(G).to(memory_format=torch.channels_last)
        b = Gc.synthesize(z, classes=list(range(7)) + [0])
    torch.testing.assert_close(a, b, atol=3e-5, rtol=0)  # float32 reassociation; 1.02e-5 seen on one thread


def test_region_class_map_sums_to_one():
    m1 = np.zeros((8, 8), np.float32)
    m1[:, :5] = 1
    m2 = np.zeros((8, 8), np.float32)
    m2[:, 3:] = 0.5
    cm = class_map_from_regions(0, [(m1, 2, 1.0), (m2, 4, 1.0)])
    assert cm.classes == (0, 2, 4)
    torch.testing.assert_close(cm.weights.sum(1), torch.ones(1, 8, 8))
    assert torch.all(cm.weights[0, 1, :, :3] == 1)  # only region 1
    assert torch.allclose(cm.weights[0, 2, :, 3:], torch.tensor(0.5))  # region 2 on top, half strength


# ------------------------------------------------------------------------------------------ bad inputs
@pytest.fixture(scope="module")
def small():
    return load_generator(GOLDEN / "gen_small_scbn.npz")


@pytest.mark.parametrize("call, match", [
    (lambda G: G.synthesize(np.zeros((1, 100)), classes=[0]), r"z has shape \(1, 100\); expected \(N, 128\)"),
    (lambda G: G.synthesize(np.zeros((1, 128)), classes=[5]), r"class id 5 out of range: the model has 5 classes"),
    (lambda G: G.synthesize(np.zeros((1, 128)), classes=[-1]), r"class id -1 out of range"),
    (lambda G: G.synthesize(np.zeros((1, 128)), classes="zebra"), r"unknown class name 'zebra'"),
    (lambda G: G.synthesize(np.zeros((1, 128))), r"give classes"),
    (lambda G: G.synthesize(np.zeros((2, 128)), classes=[0, 1, 2]), r"classes has batch 3; expected 2 or 1"),
    (lambda G: G.synthesize(np.zeros((1, 128)), class_maps=[np.zeros((1, 4, 4, 5))] * 9),
     r"class_maps has 9 layers; .* has 10 sCBN layers"),
    (lambda G: G.synthesize(np.zeros((1, 128)), class_maps=[np.zeros((1, 4, 4, 5))] * 10),
     r"class_maps\[1\] has shape \(1, 4, 4, 5\); expected \(1, 8, 8, 5\)"),
    (lambda G: G.synthesize(np.zeros((1, 128)), class_maps=np.zeros((1, 16, 16, 3))),
     r"class_maps has shape \(1, 16, 16, 3\); expected"),
    (lambda G: G.synthesize(np.zeros((1, 128)), class_maps=np.full((1, 16, 16, 5), np.nan)), r"NaN"),
    (lambda G: G.synthesize(np.full((1, 128), np.inf), classes=[0]), r"z contains NaN or infinite"),
    (lambda G: G.synthesize(np.zeros((1, 128)), classes=[0], class_maps=np.ones((1, 8, 8, 5))),
     r"pass map_layers"),
    (lambda G: G.synthesize(np.zeros((1, 128)), class_maps=np.ones((1, 8, 8, 5)), map_layers=[10]),
     r"map layer 10 out of range"),
    (lambda G: G.synthesize(zs=[np.zeros((1, 128))] * 2, classes=[0]), r"no blends"),
    (lambda G: G.synthesize(zs=[np.zeros((1, 128))] * 2, classes=[0], blends=[None] * 5), r"blends has 5 layers"),
    (lambda G: G.synthesize(zs=[np.zeros((1, 128))] * 2, classes=[0], blends={0: np.zeros((1, 4, 4, 2))}),
     r"blends\[0\] has shape \(1, 4, 4, 2\); expected \(1, 4, 4, 3\)"),
    (lambda G: G.synthesize(zs=[np.zeros((1, 128))] * 2, classes=[0], blends={7: np.zeros((1, 4, 4, 3))}),
     r"blend layer\(s\) \[7\] out of range"),
    (lambda G: G.synthesize(np.array([["a"] * 128]), classes=[0]), r"not a numeric array"),
])
def test_bad_inputs_raise_clear_errors(small, call, match):
    with pytest.raises(ValueError, match=match):
        call(small)


def test_config_roundtrip():
    cfg = GeneratorConfig.from_layout("resnet_256", ch=48, n_classes=143)
    assert cfg.channels == (768, 768, 384, 384, 192, 96, 48)
    assert cfg.map_sizes == [4, 8, 8, 16, 16, 32, 32, 64, 64, 128, 128, 256]
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    st = {"l1/W": np.zeros((12288, 128)), "block2/c1/W": np.zeros((768, 768, 3, 3)),
          "block2/b1/gammas/W": np.zeros((143, 768))}
    for k, c in enumerate(cfg.channels[1:]):
        st[f"block{k + 2}/c1/W"] = np.zeros((c, cfg.channels[k], 3, 3))
    assert infer_generator_config(st) == cfg
