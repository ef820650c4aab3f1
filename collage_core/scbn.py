"""Spatial conditional batch normalisation (sCBN), the paper's class-collage operator.

A conditional BN layer holds one scale row ``gammas.W[k]`` and one shift row ``betas.W[k]`` per class. In eval
mode it computes::

    y[n,c,h,w] = gamma[n,c,h,w] * (x[n,c,h,w] - avg_mean[c]) / sqrt(avg_var[c] + eps) + beta[n,c,h,w]
    gamma[n,c,h,w] = sum_k weights[n,h,w,k] * gammas.W[k,c]          (beta likewise, from betas.W)

with ``eps = 2e-5``. Three kinds of condition feed it (:class:`ClassCondition`, :class:`VectorCondition`,
:class:`MapCondition`). Class ids take a gather fast path that never builds per-pixel maps; a map is kept as
``(N, K', H, W)`` over the K' classes it actually uses, so a two-class collage of a 143-class model costs two
class rows, not 143. Maps are used exactly as given: the original does not renormalise them and neither do we.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


class Condition:
    """Per-layer conditioning of a conditional BN layer for a batch of N samples."""

    batch: int

    def to(self, device: torch.device, dtype: torch.dtype) -> Condition:
        raise NotImplementedError

    def affine(self, gammas: torch.Tensor, betas: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor
               ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(scale, shift)`` broadcastable to ``(N, C, H, W)`` with ``y = x * scale + shift``."""
        raise NotImplementedError


@dataclass(frozen=True)
class ClassCondition(Condition):
    """One class id per sample: plain categorical CBN (a gather of rows)."""

    ids: torch.Tensor  # (N,) int64

    @property
    def batch(self) -> int:  # type: ignore[override]
        return self.ids.shape[0]

    def to(self, device, dtype):
        return ClassCondition(self.ids.to(device=device, dtype=torch.long))

    def affine(self, gammas, betas, mean, rstd):
        g = gammas.index_select(0, self.ids) * rstd  # (N, C)
        shift = betas.index_select(0, self.ids) - mean * g
        return g[:, :, None, None], shift[:, :, None, None]


@dataclass(frozen=True)
class VectorCondition(Condition):
    """One class-weight vector per sample, the same at every pixel (e.g. class interpolation)."""

    weights: torch.Tensor  # (N, K)

    @property
    def batch(self) -> int:  # type: ignore[override]
        return self.weights.shape[0]

    def to(self, device, dtype):
        return VectorCondition(self.weights.to(device=device, dtype=dtype))

    def affine(self, gammas, betas, mean, rstd):
        g = (self.weights @ gammas) * rstd
        shift = self.weights @ betas - mean * g
        return g[:, :, None, None], shift[:, :, None, None]


@dataclass(frozen=True)
class MapCondition(Condition):
    """A per-pixel class-weight map ``weights (N, K', H, W)`` over the classes ``classes (K',)``."""

    weights: torch.Tensor  # (N, K', H, W)
    classes: torch.Tensor  # (K',) int64

    @property
    def batch(self) -> int:  # type: ignore[override]
        return self.weights.shape[0]

    @property
    def size(self) -> tuple[int, int]:
        return tuple(self.weights.shape[-2:])  # type: ignore[return-value]

    def to(self, device, dtype):
        return MapCondition(self.weights.to(device=device, dtype=dtype), self.classes.to(device=device))

    def affine(self, gammas, betas, mean, rstd):
        g = gammas.index_select(0, self.classes) * rstd  # (K', C): per-class scale with the BN folded in
        s = betas.index_select(0, self.classes) - mean * g  # (K', C)
        n, k, h, w = self.weights.shape
        both = torch.cat([g, s], dim=1).t()  # (2C, K')
        maps = torch.matmul(both, self.weights.reshape(n, k, h * w))  # (N, 2C, HW)
        c = g.shape[1]
        maps = maps.view(n, 2 * c, h, w)
        return maps[:, :c], maps[:, c:]

    @staticmethod
    def from_dense(weights: torch.Tensor, tol: float = 0.0) -> MapCondition:
        """From the original layout ``(N, H, W, K)``, keeping only classes with a non-zero weight somewhere."""
        dims = tuple(range(weights.dim() - 1))  # two reductions, no full-size temporaries
        used = (weights.amax(dim=dims) > tol) | (weights.amin(dim=dims) < -tol)
        classes = torch.nonzero(used).flatten()
        if classes.numel() == 0:  # an all-zero map: keep one class so shapes stay valid (gamma = beta = 0)
            classes = torch.zeros(1, dtype=torch.long, device=weights.device)
        w = weights.index_select(3, classes).permute(0, 3, 1, 2).contiguous()
        return MapCondition(w, classes)


#: elements of one chunk of :func:`mixed_affine` (its scale and shift rows then stay in a core's L2 cache)
MIX_CHUNK = 1 << 16
#: run :func:`mixed_affine`'s chunk loop on one thread (by switching torch's global thread count around it). Off:
#: on an idle 2-CPU machine the loop on 2 threads made BigGAN-deep 256 two-class sCBN at batch 8 cost 1.04x class
#: ids against 1.17x on one (5 interleaved runs, benchmarks/biggan.py's cases). On a busy machine its small products
#: wait at OpenMP barriers for a descheduled thread (5-10x slower with 2 threads at load 5-10), but there the thread
#: policy of run/map/serve (collage_core.threads, ``--threads auto``) already chose one thread for everything.
SERIAL_MIX = False


def fused_ok(*tensors: torch.Tensor) -> bool:
    """Whether the in-place, chunked inference kernels may run: no autograd graph is being recorded."""
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def mixed_affine(x: torch.Tensor, coef: torch.Tensor, weights: torch.Tensor, relu: bool = False) -> torch.Tensor:
    """``y[i] = x[i] * (coef[i, 0] @ w) + coef[i, 1] @ w`` with ``w = weights[i % N_w]`` (optionally ReLU'd).

    ``x`` (B, C, H, W); ``coef`` (B or 1, 2, C, J): per sample, each channel's scale and shift coefficients over
    ``J`` per-pixel weight maps; ``weights`` (N_w, J, H * W), ``B`` a multiple of ``N_w`` (stacked streams share
    the maps). This is sCBN's per-pixel affine: without it, the per-pixel scale and shift are built in full
    (twice the activation's size) and read back. Here they are made a few channels of one sample at a time, a
    small matrix product into a buffer that stays in cache, and used at once (``addcmul`` into the output, then
    ReLU in place), so memory traffic is the class-id path's: read ``x``, write ``y``. Inference only (``out=``).
    """
    b, c, h, w = x.shape
    hw = h * w
    nw, j = weights.shape[0], weights.shape[1]
    weights = weights.to(x.dtype)
    if b * c * hw <= MIX_CHUNK or x.device.type != "cpu":  # small enough to stay in cache whole, or on a GPU
        # (where a loop of small products would be launch-bound): one batched product
        maps = torch.matmul(coef.to(x.dtype).reshape(-1, 2 * c, j), weights.repeat(b // nw, 1, 1))
        maps = maps.view(b, 2, c, h, w)
        y = torch.addcmul(maps[:, 1], x, maps[:, 0])
        return y.relu_() if relu else y
    x = x.contiguous()
    y = torch.empty_like(x)
    xv, yv = x.view(b, c, hw), y.view(b, c, hw)
    coefp = coef.to(x.dtype).permute(0, 2, 1, 3).contiguous()  # (B or 1, C, 2, J): channel-major row pairs
    cb = max(1, min(c, MIX_CHUNK // max(hw, 1)))
    buf = x.new_empty(2 * cb, hw)
    threads = torch.get_num_threads()
    if SERIAL_MIX and threads > 1:
        torch.set_num_threads(1)
    try:
        _mix_loop(xv, yv, coefp, weights, buf, cb, relu)
    finally:
        if SERIAL_MIX and threads > 1:
            torch.set_num_threads(threads)
    return y


def _mix_loop(xv, yv, coefp, weights, buf, cb, relu):
    b, c, hw = xv.shape
    nw, j = weights.shape[:2]
    for i in range(b):
        wi = weights[i % nw]
        ci = coefp[i if coefp.shape[0] > 1 else 0]
        for c0 in range(0, c, cb):
            c1 = min(c, c0 + cb)
            m = buf[: 2 * (c1 - c0)]
            torch.mm(ci[c0:c1].reshape(-1, j), wi, out=m)
            m = m.view(c1 - c0, 2, hw)
            out = yv[i, c0:c1]
            torch.addcmul(m[:, 1], xv[i, c0:c1], m[:, 0], out=out)
            if relu:
                out.relu_()


class ConditionalBatchNorm(nn.Module):
    """(Spatial) categorical conditional BN with the original's parameter names.

    ``gammas.W``/``betas.W`` (n_classes, C) live in sub-modules named ``gammas``/``betas``, so state-dict keys
    read ``block2.b1.gammas.W`` like the Chainer keys ``block2/b1/gammas/W``.
    In training mode it normalises with batch statistics and updates the running averages.
    """

    def __init__(self, channels: int, n_classes: int, eps: float = 2e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.gammas = _Table(n_classes, channels, 1.0)
        self.betas = _Table(n_classes, channels, 0.0)
        self.register_buffer("avg_mean", torch.zeros(channels))
        self.register_buffer("avg_var", torch.ones(channels))
        self.eps = eps
        self.momentum = momentum

    def forward(self, x: torch.Tensor, cond: Condition, streams: int = 1, relu: bool = False) -> torch.Tensor:
        """``x`` is ``(streams * N, C, H, W)``; the condition (batch N) is shared by all streams. ``relu``: return
        ``relu(y)`` (fused into the per-pixel path of a map in inference)."""
        if self.training:
            dims = (0, 2, 3)
            xf = x.float()  # statistics in float32 even under bf16 autocast
            mean = xf.mean(dims)
            var = xf.var(dims, unbiased=False)
            with torch.no_grad():
                n = x.numel() // x.shape[1]
                self.avg_mean.lerp_(mean.detach().to(self.avg_mean.dtype), self.momentum)
                unbiased = var.detach() * (n / max(n - 1, 1))
                self.avg_var.lerp_(unbiased.to(self.avg_var.dtype), self.momentum)
        else:
            mean, var = self.avg_mean, self.avg_var
        rstd = torch.rsqrt(var.to(x.dtype) + self.eps)
        if isinstance(cond, MapCondition) and not self.training and fused_ok(x, self.gammas.W, self.betas.W,
                                                                              cond.weights):
            g = self.gammas.W.index_select(0, cond.classes) * rstd  # (K', C), the BN folded in
            sh = self.betas.W.index_select(0, cond.classes) - mean.to(x.dtype) * g
            n, k = cond.weights.shape[:2]
            coef = torch.stack([g.t(), sh.t()])[None]  # (1, 2, C, K')
            return mixed_affine(x, coef, cond.weights.reshape(n, k, -1), relu)
        scale, shift = cond.affine(self.gammas.W, self.betas.W, mean.to(x.dtype), rstd)
        if streams == 1:
            y = torch.addcmul(shift, x, scale)
        else:
            xs = x.view(streams, -1, *x.shape[1:])
            y = torch.addcmul(shift, xs, scale).view_as(x)
        if relu:
            return F.relu(y) if y.requires_grad else y.relu_()
        return y


class BatchNorm(nn.Module):
    """Plain BN with Chainer names (``gamma``, ``beta``, ``avg_mean``, ``avg_var``), eps 2e-5."""

    def __init__(self, channels: int, eps: float = 2e-5, momentum: float = 0.1) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(channels))
        self.beta = nn.Parameter(torch.zeros(channels))
        self.register_buffer("avg_mean", torch.zeros(channels))
        self.register_buffer("avg_var", torch.ones(channels))
        self.eps = eps
        self.momentum = momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.batch_norm(
            x, self.avg_mean, self.avg_var, self.gamma, self.beta, self.training, self.momentum, self.eps)


class _Table(nn.Module):
    """Holds one ``W`` (rows, cols) so that keys read ``...gammas.W`` like Chainer's ``EmbedID``."""

    def __init__(self, rows: int, cols: int, fill: float) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.full((rows, cols), fill))
