"""Small layers whose parameter names are the original Chainer names (``W``, ``b``, ``u``).

Keeping the names means a Chainer snapshot key ``block2/c1/W`` is this module tree's ``block2.c1.W``, so
checkpoint conversion is a rename, and our native checkpoints carry the original key layout.

Two exact rewrites make the generator cheaper without changing what it computes (up to float rounding):

* ``conv3x3(upsample_nearest2x(x))`` equals a stride-2 transposed convolution of ``x`` with a 4x4 kernel
  ``M @ W @ M.T`` (see :func:`upsample_conv3x3`): 16 instead of 36 multiply-adds per low-res pixel and channel
  pair, and the 4x larger up-sampled input is never built;
* ``conv1x1(upsample(x)) == upsample(conv1x1(x))``, and the up-sampled shortcut is added by broadcasting.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

# K[k] = sum_d M[k, d] * w[d]: the 4-tap kernel of "nearest x2 up-sample, then 3-tap correlation".
_UPCONV_M = torch.tensor([[0.0, 0.0, 1.0], [0.0, 1.0, 1.0], [1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])

#: set to False to compute ``conv3x3(upsample(x))`` literally (for benchmarks and debugging)
FUSED_UPSAMPLE_CONV = True


def upsample_nearest2x(x: torch.Tensor) -> torch.Tensor:
    """``F.unpooling_2d(x, 2, outsize=(2h, 2w))`` of Chainer: nearest-neighbour x2."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def upconv_kernel(w: torch.Tensor) -> torch.Tensor:
    """The (in, out, 4, 4) transposed-conv kernel equal to nearest-x2 up-sampling then ``w`` (out, in, 3, 3)."""
    m = _UPCONV_M.to(device=w.device, dtype=w.dtype)
    k = torch.einsum("ad,oidc,bc->oiab", m, w, m)
    return k.transpose(0, 1)


def upsample_conv3x3(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    """``conv2d(upsample_nearest2x(x), w, b, padding=1)`` for a 3x3 kernel, computed without the up-sampling."""
    if not FUSED_UPSAMPLE_CONV:
        return F.conv2d(upsample_nearest2x(x), w, b, padding=1)
    return F.conv_transpose2d(x, upconv_kernel(w), b, stride=2, padding=1)


def add_upsampled(h: torch.Tensor, low: torch.Tensor) -> torch.Tensor:
    """``h + upsample_nearest2x(low)`` without materialising the up-sampled tensor."""
    n, c, hh, ww = h.shape
    if h.is_contiguous() and low.is_contiguous():
        out = h.view(n, c, hh // 2, 2, ww // 2, 2) + low.view(n, c, hh // 2, 1, ww // 2, 1)
        return out.view(n, c, hh, ww)
    return h + upsample_nearest2x(low)


class Linear(nn.Module):
    """``y = x W^T + b`` with ``W`` (out, in), as ``chainer.links.Linear``."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(out_features, in_features))
        self.b = nn.Parameter(torch.zeros(out_features)) if bias else None
        glorot_uniform_(self.W)

    def weight(self) -> torch.Tensor:
        return self.W

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight(), self.b)


class Conv2d(nn.Module):
    """Stride-1 'same' convolution with an odd square kernel, ``W`` (out, in, k, k) as in Chainer and torch."""

    def __init__(self, in_channels: int, out_channels: int, ksize: int = 3, gain: float = 1.0) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.empty(out_channels, in_channels, ksize, ksize))
        self.b = nn.Parameter(torch.zeros(out_channels))
        self.pad = ksize // 2
        glorot_uniform_(self.W, gain)

    def weight(self) -> torch.Tensor:
        return self.W

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight(), self.b, padding=self.pad)

    def upsample_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``self(upsample_nearest2x(x))``, computed cheaply (3x3: transposed conv; 1x1: conv then up-sample)."""
        w = self.weight()
        if w.shape[-1] == 3:
            return upsample_conv3x3(x, w, self.b)
        return upsample_nearest2x(F.conv2d(x, w, self.b, padding=self.pad))


def glorot_uniform_(w: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """Chainer's ``GlorotUniform(scale=gain)``: U(-s, s), s = gain * sqrt(6 / (fan_in + fan_out))."""
    fan_out = w.shape[0]
    fan_in = w.shape[1] if w.dim() > 1 else 1
    receptive = w[0][0].numel() if w.dim() > 2 else 1
    s = gain * math.sqrt(6.0 / ((fan_in + fan_out) * receptive))
    with torch.no_grad():
        return w.uniform_(-s, s)


def _l2n(a: torch.Tensor) -> torch.Tensor:
    """``a / (||a|| + 1e-12)``, the original's normaliser (not ``F.normalize``, which clamps instead)."""
    return a / (a.norm() + 1e-12)


def spectral_normalize(w: torch.Tensor, u: torch.Tensor, update: bool) -> torch.Tensor:
    """``W / sigma`` with sigma from one power iteration started at the stored ``u`` (1, out).

    As in the original: ``v = n(u W)``, ``u' = n(v W^T)``, ``sigma = (u' W) . v`` with ``W`` reshaped to
    (out, -1); the gradient flows through ``W`` only. ``u`` is overwritten with ``u'`` when ``update``.
    """
    w_mat = w.reshape(w.shape[0], -1)
    with torch.no_grad():
        wd = w_mat.detach().to(u.dtype)
        v = _l2n(u @ wd)
        u_new = _l2n(v @ wd.t())
        if update:
            u.copy_(u_new)
    sigma = ((u_new.to(w.dtype) @ w_mat) * v.to(w.dtype)).sum()
    return w / sigma


class _SpectralNorm:
    """Mixin: ``weight()`` returns the spectrally normalised ``W``; ``u`` is updated in training mode only.

    The original also updates ``u`` of ``SNLinear``/``SNEmbedID`` in eval mode, so its logits drift from call
    to call; here eval mode always uses the stored ``u`` (identical to the original's first call).
    """

    W: nn.Parameter
    u: torch.Tensor
    training: bool

    def _init_u(self) -> None:
        self.register_buffer("u", torch.randn(1, self.W.shape[0]))

    def weight(self) -> torch.Tensor:
        return spectral_normalize(self.W, self.u, update=self.training and torch.is_grad_enabled())


class SNConv2d(_SpectralNorm, Conv2d):
    def __init__(self, in_channels: int, out_channels: int, ksize: int = 3, gain: float = 1.0) -> None:
        Conv2d.__init__(self, in_channels, out_channels, ksize, gain)
        self._init_u()


class SNLinear(_SpectralNorm, Linear):
    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        Linear.__init__(self, in_features, out_features, bias)
        self._init_u()


class SNEmbedID(_SpectralNorm, nn.Module):
    """Class embedding ``W`` (n_classes, dim) with spectral normalisation, as ``SNEmbedID``."""

    def __init__(self, n_classes: int, dim: int) -> None:
        nn.Module.__init__(self)
        self.W = nn.Parameter(torch.empty(n_classes, dim))
        glorot_uniform_(self.W)
        self._init_u()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return F.embedding(y, self.weight())
