"""Small layers whose parameter names are the original Chainer names (``W``, ``b``, ``u``).

Keeping the names means a Chainer snapshot key ``block2/c1/W`` is this module tree's ``block2.c1.W``, so
checkpoint conversion is a rename, and our native checkpoints carry the original key layout.

Two exact rewrites make the generator cheaper without changing what it computes (up to float rounding):

* ``conv3x3(upsample_nearest2x(x))`` equals four 2x2 convolutions of ``x``, one per output phase, interleaved
  (see :func:`upsample_conv3x3`): 16 instead of 36 multiply-adds per low-res pixel and channel pair, and the
  4x larger up-sampled input is never built;
* ``conv1x1(upsample(x)) == upsample(conv1x1(x))``, and the up-sampled shortcut is added by broadcasting.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

#: 1-D "nearest x2 up-sample, then 3-tap correlation" split into its two output phases: even outputs read
#: x[i-1], x[i] with taps (w0, w1 + w2); odd outputs read x[i], x[i+1] with taps (w0 + w1, w2).
_PHASES = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]], [[1.0, 1.0, 0.0], [0.0, 0.0, 1.0]]])

#: set to False to compute ``conv3x3(upsample(x))`` literally (for benchmarks and debugging)
FUSED_UPSAMPLE_CONV = True


def upsample_nearest2x(x: torch.Tensor) -> torch.Tensor:
    """``F.unpooling_2d(x, 2, outsize=(2h, 2w))`` of Chainer: nearest-neighbour x2."""
    return F.interpolate(x, scale_factor=2.0, mode="nearest")


def phase_kernels(w: torch.Tensor) -> torch.Tensor:
    """The 2x2 kernels of up-sampling then the 3x3 kernel ``w`` (out, in, 3, 3), one per output phase (a, b):
    phase (a, b) (row parity a, column parity b) is ``result[(2a + b) * out : (2a + b + 1) * out]``."""
    p = _PHASES.to(device=w.device, dtype=w.dtype)
    k = torch.einsum("ard,oidc,bsc->aboirs", p, w, p)  # (a, b, out, in, 2, 2)
    return k.reshape(w.shape[0] * 4, w.shape[1], 2, 2)


def upsample_conv3x3(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None,
                     kernels: torch.Tensor | None = None) -> torch.Tensor:
    """``conv2d(upsample_nearest2x(x), w, b, padding=1)`` for a 3x3 kernel, without building the up-sampled input.

    Each of the four output phases (a, c) is a 2x2 convolution of the zero-padded low-resolution input: 16 instead
    of 36 multiply-adds per input pixel and channel pair. All four run as *one* 2x2 convolution with ``4 * out``
    channels over the input padded by one (an ``(h+1) x (w+1)`` output); phase (a, c) is that output's window
    starting at (a, c), and the four windows are interleaved into the result in one pass (no padded copy, no
    stacked phases, no pixel shuffle). ``kernels`` may pass precomputed :func:`phase_kernels`.
    """
    if not FUSED_UPSAMPLE_CONV:
        return F.conv2d(upsample_nearest2x(x), w, b, padding=1)
    k = phase_kernels(w) if kernels is None else kernels
    o = w.shape[0]
    n, _, h, wd = x.shape
    bias = None if b is None else b.repeat(4)
    if n * h * wd <= SMALL_CONV_PIXELS // 2 and x.is_contiguous():  # weight-bound: one GEMM (see conv2d_gemm)
        y = conv2d_gemm(x, k, bias, 1, ksize_out=(h + 1, wd + 1))
    else:
        y = F.conv2d(x, k, bias, padding=1)  # (n, 4 o, h + 1, w + 1)
    y = y.view(n, 2, 2, o, h + 1, wd + 1)
    out = y.new_empty(n, o, h, 2, wd, 2)
    for a in (0, 1):
        for c in (0, 1):
            out[:, :, :, a, :, c] = y[:, a, c, :, a:a + h, c:c + wd]
    return out.view(n, o, 2 * h, 2 * wd)


#: at most this many output pixels (batch x height x width), a convolution runs as one matrix product
#: (``unfold`` + GEMM): at a few pixels and many channels it is bound by reading the weights, which oneDNN's
#: convolution re-lays out on every call and a plain GEMM reads once (1024 channels at 8x8: 2.6x faster here).
SMALL_CONV_PIXELS = 128


def conv2d_gemm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, pad: int,
                ksize_out: tuple[int, int] | None = None) -> torch.Tensor:
    """``F.conv2d(x, w, b, padding=pad)`` (stride 1, square kernel) as ``unfold`` + one matrix product.
    ``ksize_out``: the output size when it is not the input's (an even kernel)."""
    n, _, h, wd = x.shape
    oh, ow = (h, wd) if ksize_out is None else ksize_out
    cols = F.unfold(x, w.shape[-1], padding=pad)  # (N, C*k*k, OH*OW)
    out = torch.matmul(w.reshape(w.shape[0], -1), cols)  # (N, O, OH*OW)
    if b is not None:
        out = out + b[:, None]
    return out.view(n, w.shape[0], oh, ow)


def conv2d(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, pad: int) -> torch.Tensor:
    """Stride-1 convolution, as a GEMM when the output has few pixels (see :data:`SMALL_CONV_PIXELS`)."""
    if x.shape[0] * x.shape[2] * x.shape[3] <= SMALL_CONV_PIXELS and w.shape[-1] > 1 and x.is_contiguous():
        return conv2d_gemm(x, w, b, pad)
    return F.conv2d(x, w, b, padding=pad)


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
        return conv2d(x, self.weight(), self.b, self.pad)

    def upsample_forward(self, x: torch.Tensor) -> torch.Tensor:
        """``self(upsample_nearest2x(x))``, computed cheaply (3x3: four 2x2 phase convs; 1x1: conv, then up)."""
        w = self.weight()
        if w.shape[-1] != 3:
            return upsample_nearest2x(F.conv2d(x, w, self.b, padding=self.pad))
        kernels = None
        if not (w.requires_grad and torch.is_grad_enabled()):  # inference: reuse kernels while W is unchanged
            # (inference-mode tensors have no version counter; they cannot change outside inference mode)
            key = (w.data_ptr(), -1 if w.is_inference() else w._version, w.dtype, w.device)
            cached = getattr(self, "_phase_cache", None)
            if cached is None or cached[0] != key:
                with torch.inference_mode(False), torch.no_grad():  # a normal tensor, usable in autograd later
                    cached = (key, phase_kernels(w.clone() if w.is_inference() else w))
                self._phase_cache = cached
            kernels = cached[1]
        return upsample_conv3x3(x, w, self.b, kernels)


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
