"""The inference-only fast paths: sCBN's chunked per-pixel affine and the one-convolution up-sampling conv.

Each is compared with the plain computation it replaces (within float tolerances): :func:`mixed_affine` with the
per-pixel maps built in full, whole generators (SNGAN and BigGAN-deep, class maps and two streams) in inference
(fused) against the same call recording a graph for a gradient (which takes the unfused path).
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from biggan_support import make_ours
from collage_core import scbn
from collage_core.layers import SMALL_CONV_PIXELS, upsample_conv3x3, upsample_nearest2x
from collage_core.maps import ClassMap
from nodes_support import tiny_generator


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of a few elements, so that the chunk loop (and its partial last chunk) runs on tiny tensors."""
    monkeypatch.setattr(scbn, "MIX_CHUNK", 40)


@pytest.mark.parametrize("relu", [False, True])
@pytest.mark.parametrize("coef_batch", [1, 6])
def test_mixed_affine_equals_the_built_maps(small_chunks, relu, coef_batch):
    g = torch.Generator().manual_seed(0)
    b, c, h, w, j, nw = 6, 7, 3, 5, 3, 2  # 3 streams of 2 samples share 2 weight maps; 7 channels, chunks of 2
    x = torch.randn(b, c, h, w, generator=g)
    coef = torch.randn(coef_batch, 2, c, j, generator=g)
    weights = torch.rand(nw, j, h * w, generator=g)
    threads = torch.get_num_threads()
    y = scbn.mixed_affine(x, coef, weights, relu)
    assert torch.get_num_threads() == threads  # the loop's single thread is given back
    wi = weights[torch.arange(b) % nw]  # (b, j, hw)
    maps = torch.einsum("bscj,bjp->bscp", coef.expand(b, -1, -1, -1), wi).reshape(b, 2, c, h, w)
    want = x * maps[:, 0] + maps[:, 1]
    torch.testing.assert_close(y, want.relu() if relu else want, atol=1e-5, rtol=1e-5)
    assert not torch.equal(y, want.relu() if not relu else want)  # the relu flag matters here


def _half_map(n_classes: tuple[int, int], size: int) -> ClassMap:
    w = torch.zeros(1, 2, size, size)
    w[:, 0, :, : size // 2] = 1
    w[:, 1, :, size // 2:] = 0.7  # not a partition of unity: weights are used as given
    w[:, 0, :, size // 2:] = 0.3
    return ClassMap(w, n_classes)


def _fused_and_plain(G, **kw):
    with torch.no_grad():
        fused = G.synthesize(**kw)
    z = kw.pop("z", None)
    zs = kw.pop("zs", None)
    with torch.enable_grad():  # a latent that needs a gradient: every layer takes the unfused path
        if z is not None:
            z = z.clone().requires_grad_(True)
        else:
            zs = [zs[0].clone().requires_grad_(True)] + list(zs[1:])
        plain = G.synthesize(z=z, zs=zs, **kw)
    return fused, plain.detach()


def test_sngan_map_inference_equals_the_gradient_path(small_chunks):
    G = tiny_generator()
    cfg = G.config
    torch.manual_seed(3)
    z = torch.randn(2, cfg.dim_z)
    cmap = _half_map((0, min(1, cfg.n_classes - 1)), cfg.resolution)
    fused, plain = _fused_and_plain(G, z=z, class_maps=cmap)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-4)
    blends = {1: torch.full((1, cfg.blend_sizes[1], cfg.blend_sizes[1], 3), 1 / 3)}
    fused, plain = _fused_and_plain(G, zs=[z, torch.randn(2, cfg.dim_z)], class_maps=cmap, blends=blends)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-4)


def test_biggan_map_inference_equals_the_gradient_path(small_chunks):
    G = make_ours(128, ch=4, seed=1, z_dim=16)
    torch.manual_seed(4)
    z = 0.4 * torch.randn(2, 16)
    cmap = _half_map((3, 7), 128)
    fused, plain = _fused_and_plain(G, z=z, class_maps=cmap, truncation=0.4)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-4)
    blends = {2: torch.full((1, 8, 8, 3), 1 / 3)}
    fused, plain = _fused_and_plain(G, zs=[z, 0.4 * torch.randn(2, 16)], class_maps=cmap, blends=blends,
                                    truncation=0.4)
    torch.testing.assert_close(fused, plain, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("shape", [(1, 5, 4, 4), (2, 5, 7, 6), (3, 6, 9, 9)])
def test_upsample_conv_one_convolution_is_exact(shape):
    """Both branches: a GEMM at few pixels (the first shape), one 2x2 convolution otherwise."""
    torch.manual_seed(0)
    x = torch.randn(*shape)
    w = torch.randn(4, shape[1], 3, 3)
    b = torch.randn(4)
    assert (shape[0] * shape[2] * shape[3] <= SMALL_CONV_PIXELS // 2) == (shape == (1, 5, 4, 4))
    lit = F.conv2d(upsample_nearest2x(x), w, b, padding=1)
    torch.testing.assert_close(upsample_conv3x3(x, w, b), lit, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(upsample_conv3x3(x, w, None), lit - b[:, None, None], atol=1e-5, rtol=1e-5)
