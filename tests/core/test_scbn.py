"""collage_core.scbn on its own: the three conditions, conditional BN (eval and training) and plain BN.

The layer-level tests drive :class:`ConditionalBatchNorm` directly with random class tables; one test at the end
checks the same identity (a constant one-hot map is the class-id path) through the tiny generator.
"""

from __future__ import annotations

import pytest
import torch

from collage_core.maps import ClassMap, onehot_maps
from collage_core.scbn import (
    BatchNorm,
    ClassCondition,
    Condition,
    ConditionalBatchNorm,
    MapCondition,
    VectorCondition,
)
from nodes_support import tiny_generator

K, C, H, W = 5, 3, 4, 6


def _layer(seed: int = 0) -> ConditionalBatchNorm:
    """A conditional BN layer in eval mode with random per-class scales/shifts and running statistics."""
    g = torch.Generator().manual_seed(seed)
    bn = ConditionalBatchNorm(C, K)
    with torch.no_grad():
        bn.gammas.W.copy_(1 + 0.5 * torch.randn(K, C, generator=g))
        bn.betas.W.copy_(0.5 * torch.randn(K, C, generator=g))
        bn.avg_mean.copy_(torch.randn(C, generator=g))
        bn.avg_var.copy_(0.5 + torch.rand(C, generator=g))
    return bn.eval()


def _x(n: int = 2, seed: int = 1) -> torch.Tensor:
    return torch.randn(n, C, H, W, generator=torch.Generator().manual_seed(seed))


def _by_formula(bn: ConditionalBatchNorm, x: torch.Tensor, k: int) -> torch.Tensor:
    """The module docstring's eval formula for class ``k`` everywhere."""
    mean, var = bn.avg_mean[None, :, None, None], bn.avg_var[None, :, None, None]
    gamma, beta = bn.gammas.W[k][None, :, None, None], bn.betas.W[k][None, :, None, None]
    return gamma * (x - mean) / torch.sqrt(var + 2e-5) + beta


# ------------------------------------------------------------------------------------- eval-mode values
def test_defaults_and_parameter_names():
    bn = ConditionalBatchNorm(C, K)
    assert set(bn.state_dict()) == {"gammas.W", "betas.W", "avg_mean", "avg_var"}
    assert bn.gammas.W.shape == bn.betas.W.shape == (K, C)
    assert torch.equal(bn.gammas.W, torch.ones(K, C)) and torch.equal(bn.betas.W, torch.zeros(K, C))
    assert bn.eps == 2e-5 and bn.momentum == 0.1
    assert set(BatchNorm(C).state_dict()) == {"gamma", "beta", "avg_mean", "avg_var"}


@torch.no_grad()
def test_class_condition_is_the_documented_formula():
    bn, x = _layer(), _x()
    y = bn(x, ClassCondition(torch.tensor([3, 0])))
    torch.testing.assert_close(y[:1], _by_formula(bn, x[:1], 3), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(y[1:], _by_formula(bn, x[1:], 0), atol=1e-5, rtol=1e-5)


@torch.no_grad()
def test_constant_one_hot_map_equals_class_ids():
    """The gather fast path and the per-pixel map path agree for a one-hot map within 1e-6, with K' = 1 class
    (run one picture at a time against a batch of two: other kernels may round differently) and with the dense
    original layout (all K classes, zeros elsewhere)."""
    bn, x = _layer(), _x()
    ids = torch.tensor([2, 4])
    by_id = bn(x, ClassCondition(ids))
    for i, k in enumerate(ids.tolist()):
        one = MapCondition(torch.ones(1, 1, H, W), torch.tensor([k]))
        torch.testing.assert_close(bn(x[i:i + 1], one), by_id[i:i + 1], atol=1e-6, rtol=0)
    dense = torch.zeros(2, H, W, K)
    dense[0, ..., 2] = 1
    dense[1, ..., 4] = 1
    torch.testing.assert_close(bn(x, MapCondition.from_dense(dense)), by_id, atol=1e-6, rtol=0)


@torch.no_grad()
def test_vector_condition_is_linear_in_the_weights():
    """One-hot vectors are the class path; weights that sum to one give the same mixture of the class outputs
    (sCBN is affine in gamma and beta, which are linear in the weights)."""
    bn, x = _layer(), _x()
    onehot = torch.eye(K)[[1, 3]]
    torch.testing.assert_close(bn(x, VectorCondition(onehot)), bn(x, ClassCondition(torch.tensor([1, 3]))),
                               atol=1e-6, rtol=0)
    w = torch.tensor([[0.2, 0.0, 0.5, 0.3, 0.0], [0.0, 0.0, 0.0, 0.0, 1.0]])
    assert torch.allclose(w.sum(1), torch.ones(2))
    y = bn(x, VectorCondition(w))
    mix = sum(w[:, k, None, None, None] * bn(x, ClassCondition(torch.full((2,), k))) for k in range(K))
    torch.testing.assert_close(y, mix, atol=1e-5, rtol=0)
    # a constant map with the same weights is the vector condition
    m = MapCondition(w[:, :, None, None].expand(2, K, H, W).contiguous(), torch.arange(K))
    torch.testing.assert_close(bn(x, m), y, atol=1e-5, rtol=0)


@torch.no_grad()
def test_map_condition_is_per_pixel():
    """Left half class 1, right half class 3: each half equals that class everywhere."""
    bn, x = _layer(), _x(1)
    w = torch.zeros(1, 2, H, W)
    w[:, 0, :, : W // 2] = 1
    w[:, 1, :, W // 2:] = 1
    y = bn(x, MapCondition(w, torch.tensor([1, 3])))
    a = bn(x, ClassCondition(torch.tensor([1])))
    b = bn(x, ClassCondition(torch.tensor([3])))
    torch.testing.assert_close(y[..., : W // 2], a[..., : W // 2], atol=1e-6, rtol=0)
    torch.testing.assert_close(y[..., W // 2:], b[..., W // 2:], atol=1e-6, rtol=0)


@torch.no_grad()
def test_maps_are_not_renormalised():
    """A weight of 2 doubles the class's output and an all-zero map gives zero (gamma = beta = 0)."""
    bn, x = _layer(), _x(1)
    one = bn(x, MapCondition(torch.ones(1, 1, H, W), torch.tensor([2])))
    two = bn(x, MapCondition(torch.full((1, 1, H, W), 2.0), torch.tensor([2])))
    torch.testing.assert_close(two, 2 * one, atol=1e-6, rtol=0)
    zero = MapCondition.from_dense(torch.zeros(1, H, W, K))
    assert zero.classes.tolist() == [0] and zero.weights.shape == (1, 1, H, W)
    assert float(bn(x, zero).abs().max()) == 0.0


@torch.no_grad()
def test_compact_map_equals_the_dense_map():
    """from_dense keeps only the used classes (ascending), and the compact map gives the dense map's output."""
    bn, x = _layer(), _x()
    g = torch.Generator().manual_seed(3)
    dense = torch.zeros(2, H, W, K)
    dense[..., [0, 3]] = torch.rand(2, H, W, 2, generator=g)
    dense[1, 0, 0, 4] = -0.25  # a negative weight still counts as used
    m = MapCondition.from_dense(dense)
    assert m.classes.tolist() == [0, 3, 4] and m.weights.shape == (2, 3, H, W) and m.weights.is_contiguous()
    assert torch.equal(m.weights.permute(0, 2, 3, 1), dense[..., [0, 3, 4]])
    full = MapCondition(dense.permute(0, 3, 1, 2).contiguous(), torch.arange(K))
    torch.testing.assert_close(bn(x, m), bn(x, full), atol=1e-6, rtol=0)
    assert MapCondition.from_dense(dense, tol=0.3).classes.tolist() == [0, 3]  # |w| <= tol is unused
    assert m.size == (H, W) and m.batch == 2


def test_unused_classes_get_no_gradient():
    """A two-class map touches two rows of the class tables, whatever K is."""
    bn = _layer().train(False)
    w = torch.rand(1, 2, H, W, generator=torch.Generator().manual_seed(0))
    bn(_x(1), MapCondition(w, torch.tensor([1, 4]))).sum().backward()
    used = (bn.gammas.W.grad.abs().sum(1) > 0).tolist()
    assert used == [False, True, False, False, True]
    assert (bn.betas.W.grad.abs().sum(1) > 0).tolist() == used


@torch.no_grad()
def test_streams_share_the_condition():
    """``streams`` > 1: x holds S copies of the batch, each normalised with the same N conditions."""
    bn = _layer()
    x = _x(4)  # 2 streams of N = 2
    conds = [ClassCondition(torch.tensor([0, 2])), VectorCondition(torch.eye(K)[[1, 4]]),
             MapCondition(torch.rand(2, 2, H, W, generator=torch.Generator().manual_seed(5)), torch.tensor([0, 3]))]
    for cond in conds:
        y = bn(x, cond, streams=2)
        assert y.shape == x.shape
        torch.testing.assert_close(y, torch.cat([bn(x[:2], cond), bn(x[2:], cond)]), atol=1e-6, rtol=0)


# ------------------------------------------------------------------------------------------- conditions
def test_condition_batch_and_to():
    ids = torch.tensor([1, 2, 0], dtype=torch.int32)
    c = ClassCondition(ids).to(torch.device("cpu"), torch.float64)
    assert c.ids.dtype == torch.long and c.batch == 3  # ids stay integers whatever the dtype
    v = VectorCondition(torch.rand(2, K)).to(torch.device("cpu"), torch.float64)
    assert v.weights.dtype == torch.float64 and v.batch == 2
    m = MapCondition(torch.rand(4, 2, H, W), torch.tensor([0, 1])).to(torch.device("cpu"), torch.bfloat16)
    assert m.weights.dtype == torch.bfloat16 and m.classes.dtype == torch.long and m.batch == 4
    with pytest.raises(NotImplementedError):
        Condition().affine(torch.ones(K, C), torch.zeros(K, C), torch.zeros(C), torch.ones(C))


# --------------------------------------------------------------------------------------------- training
def test_training_mode_matches_torch_batch_norm():
    """With unit scales and zero shifts, training-mode CBN is torch's BatchNorm2d (affine=False, eps 2e-5): the
    same normalised output and the same running averages (unbiased variance, momentum 0.1)."""
    x = _x(3, seed=7) * 2 + 0.5
    bn = ConditionalBatchNorm(C, K).train()
    ref = torch.nn.BatchNorm2d(C, eps=2e-5, momentum=0.1, affine=False).train()
    for _ in range(2):
        y = bn(x, ClassCondition(torch.tensor([0, 1, 2])))
        torch.testing.assert_close(y, ref(x), atol=1e-5, rtol=0)
    torch.testing.assert_close(bn.avg_mean, ref.running_mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(bn.avg_var, ref.running_var, atol=1e-6, rtol=0)
    # per class scale/shift apply after normalising with the batch statistics
    with torch.no_grad():
        bn.gammas.W[1] = 2.0
        bn.betas.W[1] = -1.0
    y = bn(x, ClassCondition(torch.tensor([1, 1, 1])))
    torch.testing.assert_close(y.mean(dim=(0, 2, 3)), torch.full((C,), -1.0), atol=1e-5, rtol=0)


def test_eval_mode_leaves_running_statistics_alone():
    bn = _layer()
    before = (bn.avg_mean.clone(), bn.avg_var.clone())
    with torch.no_grad():
        bn(_x(), ClassCondition(torch.tensor([0, 1])))
    assert torch.equal(bn.avg_mean, before[0]) and torch.equal(bn.avg_var, before[1])


@torch.no_grad()
def test_plain_batch_norm_eval_formula():
    bn = BatchNorm(C).eval()
    g = torch.Generator().manual_seed(9)
    bn.gamma.copy_(torch.rand(C, generator=g) + 0.5)
    bn.beta.copy_(torch.randn(C, generator=g))
    bn.avg_mean.copy_(torch.randn(C, generator=g))
    bn.avg_var.copy_(torch.rand(C, generator=g) + 0.1)
    x = _x()
    r = lambda t: t[None, :, None, None]  # noqa: E731
    want = r(bn.gamma) * (x - r(bn.avg_mean)) / torch.sqrt(r(bn.avg_var) + 2e-5) + r(bn.beta)
    torch.testing.assert_close(bn(x), want, atol=1e-5, rtol=1e-5)


# -------------------------------------------------------------------------------------- through a model
@torch.no_grad()
def test_one_hot_class_map_through_the_generator_equals_class_ids():
    """The whole tiny generator: one-hot maps that need no resampling (the original per-layer layout, or a map
    that only upsamples) give the class-id images within 1e-6 (the same numbers through another code path: bit for
    bit on the CPUs we tried, not a promise); a map at the model's resolution is shrunk with an anti-aliased filter
    whose float weights sum to 1 - 1.2e-7 at 16 px, which moves pixels by ~1e-6, so 1e-5."""
    G = tiny_generator()
    z = torch.randn(2, G.config.dim_z, generator=torch.Generator().manual_seed(0))
    by_id = G.synthesize(z, classes=[7, 7])
    per_layer = onehot_maps([7], G.config.n_classes, G.config.map_sizes)
    torch.testing.assert_close(G.synthesize(z, class_maps=per_layer), by_id, atol=1e-6, rtol=0)
    ones = MapCondition(torch.ones(1, 1, 4, 4), torch.tensor([7]))
    torch.testing.assert_close(G.synthesize(z, class_maps=ones), by_id, atol=1e-6, rtol=0)
    r = G.resolution
    torch.testing.assert_close(G.synthesize(z, class_maps=ClassMap(torch.ones(1, 1, r, r), (7,))), by_id,
                               atol=1e-5, rtol=0)
    dense = torch.zeros(1, r, r, G.config.n_classes)
    dense[..., 7] = 1
    torch.testing.assert_close(G.synthesize(z, class_maps=dense), by_id, atol=1e-5, rtol=0)
    assert float((G.synthesize(z, classes=[8, 8]) - by_id).abs().max()) > 1e-3  # the class matters
