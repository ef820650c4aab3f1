"""BigGAN-deep (the ``pytorch-pretrained-biggan`` port of DeepMind's TF-Hub models) with sCBN and feature blending.

Our own implementation of the reference's computation (``BigGAN.forward(z, y, truncation)``), with the public API
of the SNGAN family (:meth:`BigGANGenerator.synthesize`), so nodes and recipes work with either. Shapes for a config
with ``n`` blocks (``ch`` = ``channel_width``)::

    cond = cat(z, e),  e = E y            (N, 2 dim_z); y one-hot / class-weight vectors (N, 1000), E (dim_z, 1000)
    head: gen_z(cond) -> (N, 16 ch, 4, 4)                                         blend point 0, sCBN layer 0
    block k (k = 0..n-1): h = conv_3(r(bn_3(conv_2(r(bn_2(conv_1(up(r(bn_1(conv_0(r(bn_0(x)))))))))))))
                          out = h + up(x[:, :C_out])                             blend point k+1, sCBN 4k+1..4k+4
    (self-attention before block ``attention_layer_position``)
    tail: tanh(conv_to_rgb(relu(bn(x)))[:, :3])

**Conditional BN.** ``bn_j(x) = (x - mean_t) / sqrt(var_t + eps) * (1 + scale_j(cond)) + offset_j(cond)`` with
spectrally normalised linears without bias, so gains and biases are *linear in the class vector*: giving every
pixel its own class-weight vector (``class_maps``) gives every pixel the gain and bias of that vector's embedding.
That is sCBN in embedding space; the class part of the head linear ``gen_z`` is mixed per pixel of its 4x4 output
the same way (sCBN layer 0). A constant one-hot map therefore equals ``classes=`` up to float rounding.

**Truncation.** Every BN stores ``n_stats`` (51) mean/variance rows, one per truncation ``i / (n_stats - 1)``. For
truncation ``t``, ``(f, i) = modf(t / step)`` with ``step = 1 / (n_stats - 1)``; if ``f == 0`` row ``i`` is used,
otherwise ``row[i] * f + row[i + 1] * (1 - f)``. Note the weights: the *lower* row gets ``f``, the reverse of a
plain lerp. We reproduce this exactly (same float64 ``modf`` of the same quotient). ``t`` in (0, 1]; the default is
:attr:`BigGANGenerator.truncation` (0.4). ``t`` does not touch ``z``: the reference's recipe draws
``z = t * truncnorm(-2, 2)`` (see :func:`collage_core.latents.sample_z` with ``scale=t``).

**Feature blending.** As for SNGAN, by the one stream runner of :mod:`collage_core.blending`: input streams run
side by side with the generated stream and are mixed at blend points (0 = the head, b = block b's output). BigGAN's
BNs also read ``z``: every input stream uses its own latent, and the generated stream uses ``zs[0]`` (the source)
for the ``z`` part of its BN conditions. :meth:`synthesize`'s arguments are checked by the base class shared with
SNGAN, :class:`collage_core.conditional.ConditionalGenerator`.

Weights are stored with spectral normalisation folded in (``W / sigma`` with the reference's stored ``u``, ``v``),
``gen_z``'s rows reordered to channel-first, ``conv_to_rgb`` cut to the 3 output channels the reference keeps, and
all conditional-BN linears stacked into two matrices (one GEMM per forward for every BN of the network).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .blending import run_streams
from .conditional import ArrayLike, ConditionalGenerator
from .layers import Conv2d, conv2d
from .scbn import ClassCondition, Condition, MapCondition, VectorCondition, fused_ok, mixed_affine

FAMILY = "biggan-deep"

#: the reference's layer tables: (up-sample, in multiple, out multiple) per block, at channel_width 128
_BASE_LAYERS = ((False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8))
PRESET_LAYERS: dict[int, tuple[tuple[bool, int, int], ...]] = {
    128: _BASE_LAYERS + ((True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)),
    256: _BASE_LAYERS + ((True, 8, 8), (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2),
                         (True, 2, 1)),
    512: _BASE_LAYERS + ((True, 8, 8), (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2),
                         (True, 2, 1), (False, 1, 1), (True, 1, 1)),
}
DEFAULT_TRUNCATION = 0.4
_Emb = dict[Any, Any]  # id(condition) -> (embedding, BN part); ('ones', id) -> map with a ones channel


@dataclass(frozen=True)
class BigGANConfig:
    """The reference's ``config.json`` (``BigGANConfig``), checked. ``layers``: (up-sample, in, out multiple)."""

    layers: tuple[tuple[bool, int, int], ...] = PRESET_LAYERS[128]
    z_dim: int = 128
    class_embed_dim: int = 128  # recorded only: the reference embeds classes to z_dim
    channel_width: int = 128
    num_classes: int = 1000
    attention_layer_position: int = 8
    eps: float = 1e-4
    n_stats: int = 51
    output_dim: int | None = None
    family: ClassVar[str] = FAMILY
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        try:
            layers = tuple((bool(u), int(a), int(b)) for u, a, b in self.layers)
        except (TypeError, ValueError):
            raise ValueError(f"layers must be (up-sample, in, out) triples, got {self.layers!r}") from None
        object.__setattr__(self, "layers", layers)
        for name in ("z_dim", "channel_width", "num_classes", "n_stats"):
            if int(getattr(self, name)) < (2 if name == "n_stats" else 1):
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if not layers:
            raise ValueError("layers is empty: a BigGAN-deep generator needs at least one block")
        if layers[0][1] != 16:
            raise ValueError(f"the first block must read 16 * channel_width channels (gen_z's output), got "
                             f"{layers[0][1]} * channel_width")
        ch = self.channel_width
        for i, (_, a, b) in enumerate(layers):
            if i and a != layers[i - 1][2]:
                raise ValueError(f"layers[{i}] reads {a} * ch channels but layers[{i - 1}] writes {layers[i - 1][2]}")
            if (a * ch) % 4 or (a != b and 2 * b != a):
                raise ValueError(f"layers[{i}] = {layers[i]}: the input width must be a multiple of 4 and the output "
                                 f"equal to it or half of it (the reference keeps the first in/2 skip channels)")
        p = self.attention_layer_position
        if 0 <= p < len(layers) and (layers[p][1] * ch) % 8:
            raise ValueError(f"attention at block {p} needs a width divisible by 8, got {layers[p][1] * ch}")
        if self.output_dim is not None and int(self.output_dim) != self.resolution:
            raise ValueError(f"output_dim {self.output_dim} does not match the layers' resolution {self.resolution}")

    # --------------------------------------------------------------------------------- reference config.json
    @classmethod
    def from_reference(cls, d: Mapping[str, Any]) -> BigGANConfig:
        """From the reference's ``config.json`` dict (missing keys take the reference's defaults)."""
        known = {"layers", "z_dim", "class_embed_dim", "channel_width", "num_classes", "attention_layer_position",
                 "eps", "n_stats", "output_dim"}
        kw = {k: v for k, v in d.items() if k in known}
        extra = {k: v for k, v in d.items() if k not in known and k != "family"}
        if "layers" in kw:
            kw["layers"] = tuple(tuple(x) for x in kw["layers"])
        return cls(**kw, extra=extra)

    def to_reference(self) -> dict[str, Any]:
        return {"output_dim": self.resolution, "z_dim": self.z_dim, "class_embed_dim": self.class_embed_dim,
                "channel_width": self.channel_width, "num_classes": self.num_classes,
                "layers": [list(x) for x in self.layers], "attention_layer_position": self.attention_layer_position,
                "eps": self.eps, "n_stats": self.n_stats}

    def to_dict(self) -> dict[str, Any]:
        return {"family": FAMILY, **self.to_reference()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> BigGANConfig:
        return cls.from_reference(d)

    @classmethod
    def preset(cls, resolution: int, channel_width: int = 128, **kw: Any) -> BigGANConfig:
        """The layout of ``biggan-deep-{128,256,512}`` (any channel width, e.g. tiny ones for tests)."""
        if resolution not in PRESET_LAYERS:
            raise ValueError(f"no BigGAN-deep preset for {resolution} px (have {sorted(PRESET_LAYERS)})")
        return cls(layers=PRESET_LAYERS[resolution], channel_width=channel_width, **kw)

    # ------------------------------------------------------------------------- the SNGAN family's properties
    @property
    def dim_z(self) -> int:
        return self.z_dim

    @property
    def n_classes(self) -> int:
        return self.num_classes

    @property
    def bottom_width(self) -> int:
        return 4

    @property
    def n_blocks(self) -> int:
        return len(self.layers)

    @property
    def resolution(self) -> int:
        return 4 * 2 ** sum(1 for u, _, _ in self.layers if u)

    @property
    def block_sizes(self) -> list[tuple[int, int]]:
        """(input, output) resolution of each block."""
        out, s = [], 4
        for u, _, _ in self.layers:
            out.append((s, 2 * s if u else s))
            s = out[-1][1]
        return out

    @property
    def bn_channels(self) -> list[int]:
        """Width of every conditional BN, in order (bn_0..bn_3 of each block)."""
        ch = self.channel_width
        return [c for _, a, _ in self.layers for c in (a * ch, a * ch // 4, a * ch // 4, a * ch // 4)]

    @property
    def n_map_layers(self) -> int:
        """sCBN layers: 0 is the head (``gen_z``'s class part, 4x4), then bn_0..bn_3 of every block."""
        return 1 + 4 * self.n_blocks

    @property
    def map_sizes(self) -> list[int]:
        return [4] + [s for a, b in self.block_sizes for s in (a, a, b, b)]

    @property
    def n_blend_layers(self) -> int:
        return self.n_blocks + 1

    @property
    def blend_sizes(self) -> list[int]:
        return [4] + [b for _, b in self.block_sizes]


def stats_rows(t: float, n_stats: int) -> tuple[int, float]:
    """The reference's choice of statistics rows for truncation ``t``: ``(i, f)`` = row ``i`` weighted ``f`` and row
    ``i + 1`` weighted ``1 - f`` (``f == 0``: row ``i`` alone)."""
    coef, start = math.modf(t / (1.0 / (n_stats - 1)))
    return int(start), coef


def _interp(rows: torch.Tensor, t: float) -> torch.Tensor:
    i, f = stats_rows(t, rows.shape[0])
    if f == 0.0:
        return rows[i]
    return rows[i] * f + rows[i + 1] * (1 - f)


def _relu(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x) if x.requires_grad else x.relu_()


def _conv1x1(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    n, c, h, wd = x.shape
    out = torch.matmul(w.view(w.shape[0], c), x.reshape(n, c, h * wd))
    if b is not None:
        out = out + b[:, None]
    return out.view(n, w.shape[0], h, wd)


def _add_skip(h: torch.Tensor, x0: torch.Tensor, up: bool) -> torch.Tensor:
    """``h + upsample_nearest2x(x0)`` (or ``h + x0``) without building the up-sampled skip."""
    if not up:
        return h + x0
    n, c, hh, ww = h.shape
    return (h.view(n, c, hh // 2, 2, ww // 2, 2) + x0[:, :, :, None, :, None]).view(n, c, hh, ww)


class _Affine:
    """A conditional BN's ``y = x * scale + shift`` for a stack of ``S`` streams of ``N`` samples, or, for a class map
    in inference, the coefficients of :func:`collage_core.scbn.mixed_affine` (the per-pixel maps never built)."""

    def __init__(self, scale: torch.Tensor | None, shift: torch.Tensor | None, streams: int,
                 mixed: tuple[torch.Tensor, torch.Tensor] | None = None) -> None:
        self.scale, self.shift, self.streams = scale, shift, streams  # (S*N, C, 1, 1) or (S, N, C, H, W)
        self.mixed = mixed  # (coef (S*N, 2, C, J), weights (N, J, H*W))

    def __call__(self, x: torch.Tensor, relu: bool = False) -> torch.Tensor:
        if self.mixed is not None:
            if fused_ok(x):
                return mixed_affine(x, *self.mixed, relu=relu)
            coef, w = self.mixed  # x needs a gradient: build the per-pixel maps
            b, c = x.shape[:2]
            maps = torch.matmul(coef.reshape(b, 2 * c, -1), w.repeat(b // w.shape[0], 1, 1)).view(b, 2, *x.shape[1:])
            y = torch.addcmul(maps[:, 1], x, maps[:, 0])
            return _relu(y) if relu else y
        if self.scale.dim() == 4:
            y = torch.addcmul(self.shift, x, self.scale)
        else:
            xs = x.view(self.streams, -1, *x.shape[1:])
            y = torch.addcmul(self.shift, xs, self.scale).view_as(x)
        return _relu(y) if relu else y


class BigGANBlock(nn.Module):
    """One BigGAN-deep residual block: four conditional BNs, 1x1 - 3x3 - 3x3 - 1x1 convs (bottleneck in/4)."""

    def __init__(self, cin: int, cout: int, up: bool) -> None:
        super().__init__()
        mid = cin // 4
        self.conv_0 = Conv2d(cin, mid, 1)
        self.conv_1 = Conv2d(mid, mid, 3)
        self.conv_2 = Conv2d(mid, mid, 3)
        self.conv_3 = Conv2d(mid, cout, 1)
        self.up, self.cout = up, cout

    def forward(self, x: torch.Tensor, bns: Sequence[_Affine]) -> torch.Tensor:
        h = _conv1x1(bns[0](x, relu=True), self.conv_0.W, self.conv_0.b)
        h = bns[1](h, relu=True)
        h = self.conv_1.upsample_forward(h) if self.up else self.conv_1(h)
        h = self.conv_2(bns[2](h, relu=True))
        h = _conv1x1(bns[3](h, relu=True), self.conv_3.W, self.conv_3.b)
        x0 = x[:, :self.cout] if x.shape[1] != self.cout else x
        return _add_skip(h, x0, self.up)


class SelfAttention(nn.Module):
    """The reference's ``SelfAttn``: theta/phi (C/8), g (C/2), 2x2 max-pooled keys, no 1/sqrt(d) scaling."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        c8, c2 = channels // 8, channels // 2
        self.qkv = nn.Parameter(torch.zeros(2 * c8 + c2, channels))  # rows: theta, phi, g
        self.o = nn.Parameter(torch.zeros(channels, c2))
        self.gamma = nn.Parameter(torch.zeros(1))
        self.c8, self.c2 = c8, c2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        t = torch.matmul(self.qkv, x.reshape(n, c, h * w)).view(n, -1, h, w)
        theta = t[:, :self.c8].reshape(n, self.c8, h * w)
        kv = F.max_pool2d(t[:, self.c8:], 2).reshape(n, self.c8 + self.c2, h * w // 4)
        phi, g = kv[:, :self.c8], kv[:, self.c8:]
        att = F.scaled_dot_product_attention(theta.transpose(1, 2)[:, None], phi.transpose(1, 2)[:, None],
                                             g.transpose(1, 2)[:, None], scale=1.0)  # (n, 1, hw, c2)
        o = torch.matmul(self.o, att[:, 0].transpose(1, 2)).view(n, c, h, w)
        return x + self.gamma * o


class BigGANGenerator(ConditionalGenerator):
    """BigGAN-deep with sCBN and feature blending; see the module docstring and :meth:`synthesize`."""

    family = FAMILY

    def __init__(self, config: BigGANConfig, class_names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.config = config
        z, k, ch = config.z_dim, config.num_classes, config.channel_width
        head = 16 * ch * 16
        self.embed = nn.Parameter(torch.zeros(z, k))  # e = y @ embed.T (the reference's embeddings.weight)
        self.head_wz = nn.Parameter(torch.zeros(head, z))  # gen_z split into its z and class-embedding columns,
        self.head_we = nn.Parameter(torch.zeros(head, z))  # rows channel-first: row c * 16 + h * 4 + w
        self.head_b = nn.Parameter(torch.zeros(head))
        self.blocks = nn.ModuleList(BigGANBlock(a * ch, b * ch, u) for u, a, b in config.layers)
        p = config.attention_layer_position
        self.attention = SelfAttention(config.layers[p][1] * ch) if 0 <= p < config.n_blocks else None
        ctot = sum(config.bn_channels)
        # every conditional BN's scale rows then offset rows: (2, sum C, dim_z), split into z and embedding columns
        self.bn_wz = nn.Parameter(torch.zeros(2, ctot, z))
        self.bn_we = nn.Parameter(torch.zeros(2, ctot, z))
        self.register_buffer("bn_means", torch.zeros(config.n_stats, ctot))
        self.register_buffer("bn_vars", torch.ones(config.n_stats, ctot))
        self.out_bn_weight = nn.Parameter(torch.ones(ch))
        self.out_bn_bias = nn.Parameter(torch.zeros(ch))
        self.register_buffer("out_bn_means", torch.zeros(config.n_stats, ch))
        self.register_buffer("out_bn_vars", torch.ones(config.n_stats, ch))
        self.to_rgb = Conv2d(ch, 3, 3)
        offsets = np.cumsum([0] + config.bn_channels)
        self._slices = [slice(int(a), int(b)) for a, b in zip(offsets[:-1], offsets[1:])]
        if class_names is not None and len(class_names) != k:
            raise ValueError(f"{len(class_names)} class names for {k} classes")
        if class_names is None:
            from .imagenet_labels import IMAGENET_LABELS
            class_names = IMAGENET_LABELS if k == len(IMAGENET_LABELS) else [f"class_{i}" for i in range(k)]
        self.class_names: list[str] = list(class_names)
        self.provenance: dict[str, Any] = {}
        #: truncation used when :meth:`synthesize` is not given one (the Load Generator node sets it)
        self.truncation = DEFAULT_TRUNCATION

    # ------------------------------------------------------------------------------ the SNGAN family's API
    @property
    def device(self) -> torch.device:
        return self.head_b.device

    @property
    def dtype(self) -> torch.dtype:
        return self.head_b.dtype

    def synthesize(self, z: ArrayLike | None = None, classes: ArrayLike | int | str | None = None,
                   class_maps: ArrayLike | Sequence[ArrayLike] | None = None, *,
                   zs: Sequence[ArrayLike] | None = None,
                   blends: Sequence[ArrayLike | None] | Mapping[int, ArrayLike] | None = None,
                   map_layers: Iterable[int] | slice | None = None, map_resize: str = "bilinear",
                   truncation: float | None = None,
                   record: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Images ``(N, 3, R, R)`` in [-1, 1]; arguments as :meth:`collage_core.Generator.synthesize`, plus
        ``truncation`` in (0, 1] (default :attr:`truncation`), which selects the BN statistics as the reference.

        ``classes``: ids, names, or ``(N, 1000)`` class vectors (one-hot or mixtures, as BigGAN users pass).
        ``class_maps``: per-pixel class weights, per layer (``config.map_sizes``: layer 0 is the head at 4x4, then
        bn_0..bn_3 of each block) or one map resized to every layer. ``blends``: one entry per blend point
        (``config.blend_sizes``: 0 = the head, b = block b's output).
        """
        t = self.truncation if truncation is None else truncation
        try:
            t = float(t)
        except (TypeError, ValueError):
            raise ValueError(f"truncation must be a number in (0, 1], got {truncation!r}") from None
        if not 0.0 < t <= 1.0:
            raise ValueError(f"truncation must be in (0, 1] (BigGAN keeps BN statistics for 0..1), got {t}")
        zs_t, conds, blend_t = self._prepare(z, zs, classes, class_maps, map_layers, map_resize, blends)
        return self.forward(zs_t, conds, blend_t, t, record)

    # ------------------------------------------------------------------------------------------------ core
    def forward(self, zs: Sequence[torch.Tensor], conds: Sequence[Condition],
                blends: Sequence[torch.Tensor | None] | None = None, truncation: float = DEFAULT_TRUNCATION,
                record: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Core computation on validated tensors: S latents ``(N, dim_z)``, one condition per sCBN layer
        (``config.n_map_layers``), blends as :meth:`collage_core.Generator.forward`."""
        cfg = self.config
        n_in, batch = len(zs), zs[0].shape[0]
        z_all = torch.stack(list(zs), 0)  # (n_in, N, z)
        a_z = torch.matmul(z_all, self.bn_wz.view(-1, cfg.z_dim).t()).view(n_in, batch, 2, -1)  # BN z parts
        emb = self._embeddings(conds)
        means = _interp(self.bn_means.float(), truncation).to(self.dtype)
        rstd = torch.rsqrt(_interp(self.bn_vars.float(), truncation) + cfg.eps).to(self.dtype)

        def head(active: list[int]) -> torch.Tensor:
            if not active:
                return z_all.new_zeros(0, 16 * cfg.channel_width, 4, 4)
            return self._head(z_all[active], conds[0], emb)

        def step(k: int, x: torch.Tensor, latents: list[int]) -> torch.Tensor:
            if k == cfg.attention_layer_position and self.attention is not None:
                x = self.attention(x)
            az = a_z[latents] if latents != list(range(n_in)) else a_z
            bns = [self._affine(4 * k + 1 + j, conds[4 * k + 1 + j], emb, az, means, rstd) for j in range(4)]
            return self.blocks[k](x, bns)

        names = ["head"] + [f"block{k}" for k in range(cfg.n_blocks)]
        gen = run_streams(head, step, n_in, batch, blends, cfg.n_blend_layers, record, names)
        h = F.batch_norm(gen, _interp(self.out_bn_means.float(), truncation).to(gen.dtype),
                         _interp(self.out_bn_vars.float(), truncation).to(gen.dtype), self.out_bn_weight,
                         self.out_bn_bias, False, 0.0, cfg.eps)
        h = conv2d(_relu(h), self.to_rgb.W, self.to_rgb.b, 1)
        if record is not None:
            record["pre_tanh"] = h
        return torch.tanh(h)

    def _embeddings(self, conds: Sequence[Condition]) -> _Emb:
        """Per distinct condition: its class embedding ``e`` ((N, z) for ids/vectors, (K', z) for a map's classes)
        and ``e``'s part of every conditional BN's scale and offset, ``(N or K', 2, sum C)``."""
        out: _Emb = {}
        table = self.embed.t()
        for c in conds:
            if id(c) in out:
                continue
            if isinstance(c, ClassCondition):
                e = table.index_select(0, c.ids)
            elif isinstance(c, VectorCondition):
                e = torch.matmul(c.weights, table)
            elif isinstance(c, MapCondition):
                e = table.index_select(0, c.classes)
            else:
                raise TypeError(f"unknown condition {type(c).__name__}")
            out[id(c)] = (e, torch.matmul(e, self.bn_we.view(-1, self.config.z_dim).t()).view(e.shape[0], 2, -1))
        return out

    def _head(self, z: torch.Tensor, cond: Condition, emb: _Emb) -> torch.Tensor:
        """gen_z for ``z (S, N, dim_z)``: ``(S * N, 16 ch, 4, 4)``, its class part per pixel for a map."""
        s, n, _ = z.shape
        c = 16 * self.config.channel_width
        hz = torch.addmm(self.head_b, z.reshape(s * n, -1), self.head_wz.t())
        he = torch.matmul(emb[id(cond)][0], self.head_we.t())
        if not isinstance(cond, MapCondition):
            return (hz.view(s, n, -1) + he[None]).view(s * n, c, 4, 4)
        pix = torch.einsum("nkp,kcp->ncp", cond.weights.reshape(n, -1, 16), he.view(-1, c, 16))
        return (hz.view(s, n, c, 16) + pix[None]).view(s * n, c, 4, 4)

    def _affine(self, layer: int, cond: Condition, emb: _Emb, a_z: torch.Tensor,
                means: torch.Tensor, rstd: torch.Tensor) -> _Affine:
        """Scale and shift of sCBN layer ``layer`` (1..4n) for the stacked streams (``a_z``: (S, N, 2, sum C))."""
        sl = self._slices[layer - 1]
        s, n = a_z.shape[:2]
        r, m = rstd[sl], means[sl]
        az = a_z[..., sl]  # (S, N, 2, C)
        ae = emb[id(cond)][1][..., sl]  # (N or K', 2, C)
        if not isinstance(cond, MapCondition):
            a = az + ae[None]  # (S, N, 2, C)
            scale = r * (1 + a[:, :, 0])
            shift = a[:, :, 1] - m * scale
            return _Affine(scale.reshape(s * n, -1, 1, 1), shift.reshape(s * n, -1, 1, 1), s)
        # per class: the embedding's gain/bias rows with the BN folded in, then mixed per pixel
        qs = ae[:, 0] * r  # (K', C)
        qb = ae[:, 1] - m * qs
        both = torch.cat([qs, qb], 1).t()  # (2C, K')
        nn_, k, h, w = cond.weights.shape
        vs = r * (1 + az[:, :, 0])  # (S, N, C): the z part
        vb = az[:, :, 1] - m * vs
        if fused_ok(qs, vs):  # inference: the z part as one more map whose weight is 1 everywhere, mixed lazily
            key = ("ones", id(cond))
            if key not in emb:
                emb[key] = torch.cat([cond.weights.reshape(nn_, k, h * w),  # type: ignore[assignment]
                                      cond.weights.new_ones(nn_, 1, h * w)], 1)
            coef = torch.stack([torch.cat([qs.t().expand(s, n, -1, -1), vs[..., None]], 3),
                                torch.cat([qb.t().expand(s, n, -1, -1), vb[..., None]], 3)], 2)  # (S, N, 2, C, K'+1)
            mixed = (coef.reshape(s * n, 2, -1, k + 1), emb[key])
            return _Affine(None, None, s, mixed)  # type: ignore[arg-type]
        if s == 1:  # the z part as one more "class" whose weight is 1 everywhere: one product gives scale and shift
            key = ("ones", id(cond))
            if key not in emb:
                emb[key] = torch.cat([cond.weights.reshape(nn_, k, h * w),  # type: ignore[assignment]
                                      cond.weights.new_ones(nn_, 1, h * w)], 1)
            a = torch.cat([both.expand(nn_, -1, -1), torch.cat([vs[0], vb[0]], 1)[:, :, None]], 2)
            maps = torch.bmm(a, emb[key]).view(nn_, 2, -1, h, w)  # type: ignore[arg-type]
            return _Affine(maps[:, 0], maps[:, 1], 1)
        maps = torch.matmul(both, cond.weights.reshape(nn_, k, h * w)).view(nn_, 2, -1, h, w)
        return _Affine(maps[None, :, 0] + vs[..., None, None], maps[None, :, 1] + vb[..., None, None], s)
