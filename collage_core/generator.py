"""The SNGAN-projection ResNet generator with spatial conditional BN and feature blending.

One module covers every layout of the original (``resnet_64``, ``resnet_small``, ``resnet``, ``resnet_256``):
see :mod:`collage_core.config`. Shapes, for a config with ``n`` blocks and ``L = 2n`` sCBN layers::

    z (N, dim_z) --l1--> (N, C0, bw, bw) --block2--> (N, C1, 2bw, 2bw) ... --block{n+1}--> (N, Cn, R, R)
        --b{n+2} (BN), relu, l{n+2} (3x3 conv), tanh--> x (N, 3, R, R) in [-1, 1]

Each block is ``r = c2(relu(b2(c1(up(relu(b1(x)))))))`` and ``out = r + c_sc(up(x))``; ``up`` is
nearest-neighbour x2. ``b1`` reads sCBN layer ``2k`` (before the up-sampling) and ``b2`` layer ``2k+1``.

Feature blending follows the original's ``spatial_interpolation``: S input latents run through the network
side by side with the stream being generated; at blend point ``b`` (the head for b=0, block b+1's output
otherwise) the generated stream becomes ``sum_s blend[n,h,w,s] * h_s`` over the S inputs and itself. Streams
whose later blend weights are all zero are dropped, and the tail runs on the generated stream only, so a
transplant at the head costs about one stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .config import GeneratorConfig
from .layers import Conv2d, Linear, add_upsampled
from .maps import ClassMap
from .scbn import BatchNorm, ClassCondition, Condition, ConditionalBatchNorm, MapCondition, VectorCondition

ArrayLike = Any  # torch.Tensor | np.ndarray | nested lists


class GenBlock(nn.Module):
    """One up-sampling residual block with two conditional BN layers (``SCBNBlock`` of the original)."""

    def __init__(self, in_channels: int, out_channels: int, n_classes: int, eps: float = 2e-5) -> None:
        super().__init__()
        self.b1 = ConditionalBatchNorm(in_channels, n_classes, eps)
        self.c1 = Conv2d(in_channels, out_channels, 3, gain=math.sqrt(2))
        self.b2 = ConditionalBatchNorm(out_channels, n_classes, eps)
        self.c2 = Conv2d(out_channels, out_channels, 3, gain=math.sqrt(2))
        self.c_sc = Conv2d(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor, cond1: Condition, cond2: Condition, streams: int = 1,
                record: dict[str, torch.Tensor] | None = None, name: str = "") -> torch.Tensor:
        h = self.b1(x, cond1, streams)
        if record is not None:
            record[f"{name}_b1"] = h[-cond1.batch:].clone()
        h = self.c1.upsample_forward(_relu(h))
        h = self.c2(_relu(self.b2(h, cond2, streams)))
        return add_upsampled(h, self.c_sc(x))


def _relu(x: torch.Tensor) -> torch.Tensor:
    return F.relu(x) if x.requires_grad else x.relu_()


def stream_schedule(blends, n_in: int, n_points: int) -> tuple[list, list[list[int]], list[int], list[int]]:
    """Which input streams feature blending needs, and until when: ``(blends as a list, the streams each blend
    point reads, the last point that reads each stream (-1: never; streams are dropped after it), the streams
    that run at all)``. With no blend at point 0 the generated stream starts as stream 0, which is then needed."""
    blends = list(blends) if blends is not None else [None] * n_points
    last_use = [-1] * n_in
    used_at: list[list[int]] = []
    for b, w in enumerate(blends):
        users = [s for s in range(n_in) if w is not None and bool(w[:, s].any())]
        used_at.append(users)
        for s in users:
            last_use[s] = b
    if blends[0] is None:
        last_use[0] = max(last_use[0], 0)
    return blends, used_at, last_use, [s for s in range(n_in) if last_use[s] >= 0]


def class_index(class_names: Sequence[str], name_or_id: int | str) -> int:
    """A class id from a (case-insensitive, surrounding spaces ignored) class name or an id (an int, an integral
    float such as ``3.0``, or a string such as ``"3"``); ``ValueError`` for anything else or out of range."""
    names = list(class_names)
    if isinstance(name_or_id, str):
        s = name_or_id.strip()
        low = [c.lower() for c in names]
        if s.lower() in low:
            return low.index(s.lower())
        if s.lstrip("-").isdigit():
            name_or_id = int(s)
        else:
            raise ValueError(f"unknown class name {name_or_id!r}; the model's classes are: {', '.join(names)}")
    if isinstance(name_or_id, bool) or not isinstance(name_or_id, (int, float, np.integer, np.floating)) or (
            isinstance(name_or_id, (float, np.floating)) and not float(name_or_id).is_integer()):
        raise ValueError(f"class {name_or_id!r} is neither a class name nor a whole class id")
    i = int(name_or_id)
    if not 0 <= i < len(names):
        raise ValueError(f"class id {i} out of range: the model has {len(names)} classes (0..{len(names) - 1})")
    return i


class Generator(nn.Module):
    """Class-conditional generator with sCBN and feature blending; see :meth:`synthesize`."""

    def __init__(self, config: GeneratorConfig, class_names: Sequence[str] | None = None) -> None:
        super().__init__()
        self.config = config
        c, n = config.channels, config.n_blocks
        self.l1 = Linear(config.dim_z, config.bottom_width ** 2 * c[0])
        for k in range(n):
            self.add_module(f"block{k + 2}", GenBlock(c[k], c[k + 1], config.n_classes, config.bn_eps))
        self.add_module(f"b{n + 2}", BatchNorm(c[-1], config.bn_eps))
        self.add_module(f"l{n + 2}", Conv2d(c[-1], 3, 3))
        if class_names is not None and len(class_names) != config.n_classes:
            raise ValueError(f"{len(class_names)} class names for {config.n_classes} classes")
        self.class_names: list[str] = list(class_names) if class_names is not None else [
            f"class_{i}" for i in range(config.n_classes)]
        self.provenance: dict[str, Any] = {}

    # ----------------------------------------------------------------------------------------------- structure
    @property
    def blocks(self) -> list[GenBlock]:
        return [getattr(self, f"block{k + 2}") for k in range(self.config.n_blocks)]

    @property
    def final_bn(self) -> BatchNorm:
        return getattr(self, f"b{self.config.n_blocks + 2}")

    @property
    def final_conv(self) -> Conv2d:
        return getattr(self, f"l{self.config.n_blocks + 2}")

    @property
    def device(self) -> torch.device:
        return self.l1.W.device

    @property
    def dtype(self) -> torch.dtype:
        return self.l1.W.dtype

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def class_index(self, name_or_id: int | str) -> int:
        """A class id from an id or a (case-insensitive) class name: :func:`class_index` of this model."""
        return class_index(self.class_names, name_or_id)

    # ------------------------------------------------------------------------------------------------- core
    def forward(self, zs: Sequence[torch.Tensor], conds: Sequence[Condition],
                blends: Sequence[torch.Tensor | None] | None = None,
                record: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Core computation on validated tensors.

        zs: S tensors (N, dim_z). conds: one :class:`Condition` per sCBN layer (L of them).
        blends: None, or one entry per blend point: None (no blending there) or (N, S+1, H, W) weights over
        [input streams..., generated stream]. With no blend at point 0 the generated stream starts as zs[0].
        record: if a dict, intermediate activations of the generated stream are stored in it.
        """
        cfg = self.config
        n_in = len(zs)
        nb = cfg.n_blend_layers
        blends, used_at, last_use, active = stream_schedule(blends, n_in, nb)
        bw = cfg.bottom_width
        z_act = torch.cat([zs[s] for s in active], 0) if active else zs[0][:0]
        h_in = self.l1(z_act).view(-1, cfg.channels[0], bw, bw)  # (A*N, C, H, W)
        gen: torch.Tensor | None = None
        batch = zs[0].shape[0]
        blocks = self.blocks
        for b in range(nb):
            if b > 0:
                if gen is None:
                    x = h_in
                elif h_in.shape[0] == 0:
                    x = gen
                else:
                    x = torch.cat([h_in, gen], 0)
                streams = x.shape[0] // batch
                k = b - 1
                x = blocks[k](x, conds[2 * k], conds[2 * k + 1], streams, record, f"block{k + 2}")
                h_in, gen = (x[:-batch], x[-batch:]) if gen is not None else (x, None)
            gen = self._blend(b, blends[b], used_at[b], active, h_in, gen, batch, n_in)
            if record is not None:
                record["l1" if b == 0 else f"block{b + 1}"] = gen
            keep = [i for i, s in enumerate(active) if last_use[s] > b]
            if len(keep) != len(active):
                h_in = torch.cat([h_in[i * batch:(i + 1) * batch] for i in keep], 0) if keep else h_in[:0]
                active = [active[i] for i in keep]
        assert gen is not None
        h = self.final_bn(gen)
        if record is not None:
            record[f"b{cfg.n_blocks + 2}"] = h.clone()
        h = self.final_conv(_relu(h))
        if record is not None:
            record["pre_tanh"] = h
        return torch.tanh(h)

    @staticmethod
    def _blend(b: int, w: torch.Tensor | None, users: list[int], active: list[int], h_in: torch.Tensor,
               gen: torch.Tensor | None, batch: int, n_in: int) -> torch.Tensor:
        if w is None:
            if gen is None:  # no blend at the head: the generated stream starts as input stream 0
                return h_in[active.index(0) * batch:(active.index(0) + 1) * batch]
            return gen
        out = None
        for s in users:
            i = active.index(s)
            term = w[:, s:s + 1] * h_in[i * batch:(i + 1) * batch]
            out = term if out is None else out + term
        if gen is not None:
            term = w[:, n_in:n_in + 1] * gen
            out = term if out is None else out + term
        if out is None:  # every weight is zero
            out = torch.zeros_like(h_in[:batch]) if h_in.shape[0] else None
        assert out is not None
        return out

    # ----------------------------------------------------------------------------------------- public API
    def synthesize(self, z: ArrayLike | None = None, classes: ArrayLike | int | str | None = None,
                   class_maps: ArrayLike | Sequence[ArrayLike] | None = None, *,
                   zs: Sequence[ArrayLike] | None = None,
                   blends: Sequence[ArrayLike | None] | Mapping[int, ArrayLike] | None = None,
                   map_layers: Iterable[int] | slice | None = None,
                   map_resize: str = "bilinear", truncation: float | None = None,
                   record: dict[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Generate images ``(N, 3, R, R)`` in [-1, 1].

        ``truncation`` (in (0, 1], default 1.0) is accepted for the API shared with BigGAN and ignored: this family
        has no truncation-dependent statistics (truncate the latents instead, :func:`collage_core.latents.sample_z`).

        Latents: ``z`` (N, dim_z), or ``zs`` = S latents for feature blending.

        Classes (one of):
          * ``classes``: an int / name, N class ids, or N class-weight vectors (N, K): plain CBN (fast path).
          * ``class_maps``: sCBN maps. Either the original per-layer layout, a list of L arrays
            ``(N, H_l, W_l, K)`` with ``H_l = config.map_sizes[l]``, or one array ``(N, H, W, K)`` (or
            ``(H, W, K)``) at any resolution, resized to every layer with ``map_resize``.
            Maps are used as given (no renormalisation), like the original.
          * ``map_layers``: the sCBN layers (indices into 0..L-1, a ``range`` or ``slice``) where the map
            applies; the other layers use ``classes`` (or, if not given, each sample's dominant class in the
            map). This is the paper's per-layer ablation.

        Feature blending: ``blends`` = one entry per blend point (``config.n_blend_layers``; point 0 is the
        head, point b the output of block b+1), each None or ``(N, H_b, W_b, S+1)`` weights over
        [zs[0], ..., zs[S-1], generated stream], or a dict {point: weights}. Batch-1 inputs broadcast to N.
        """
        if truncation is not None and not 0.0 < float(truncation) <= 1.0:
            raise ValueError(f"truncation must be in (0, 1], got {truncation}")
        zs_t, conds, blend_t = self._prepare(z, zs, classes, class_maps, map_layers, map_resize, blends)
        return self.forward(zs_t, conds, blend_t, record)

    # ------------------------------------------------------------------------------------ input checking
    def _prepare(self, z, zs, classes, class_maps, map_layers, map_resize, blends
                 ) -> tuple[list[torch.Tensor], list, list | None]:
        """``synthesize``'s arguments checked and made tensors: the latents (broadcast to one batch), one condition
        per sCBN layer, and the blend weights (None without blending). Shared with the BigGAN generator."""
        if zs is None:
            if z is None:
                raise ValueError("give z (N, dim_z) or zs (a list of latents)")
            zs_t = [self._latent(z, "z")]
        else:
            if z is not None:
                raise ValueError("give either z or zs, not both")
            if isinstance(zs, (torch.Tensor, np.ndarray)) and np.ndim(zs) == 2:
                zs = [zs]
            if len(zs) == 0:
                raise ValueError("zs is empty: give at least one latent")
            zs_t = [self._latent(v, f"zs[{i}]") for i, v in enumerate(zs)]
        n = max(t.shape[0] for t in zs_t)
        zs_t = [self._broadcast(t, n, f"zs[{i}]" if zs is not None else "z") for i, t in enumerate(zs_t)]
        conds = self._conditions(classes, class_maps, map_layers, map_resize, n)
        blend_t = self._blends(blends, len(zs_t), n) if blends is not None else None
        if blend_t is None and len(zs_t) > 1:
            raise ValueError(f"{len(zs_t)} latents given but no blends: feature blending needs blend maps")
        return zs_t, conds, blend_t

    def _latent(self, z: ArrayLike, what: str) -> torch.Tensor:
        t = _as_tensor(z, self.device, self.dtype, what)
        if t.dim() == 1:
            t = t[None]
        if t.dim() != 2 or t.shape[1] != self.config.dim_z:
            raise ValueError(f"{what} has shape {tuple(t.shape)}; expected (N, {self.config.dim_z})")
        _check_finite(t, what)
        return t

    @staticmethod
    def _broadcast(t: torch.Tensor, n: int, what: str) -> torch.Tensor:
        if t.shape[0] == n:
            return t
        if t.shape[0] == 1:
            return t.expand(n, *t.shape[1:])
        raise ValueError(f"{what} has batch {t.shape[0]}; expected {n} or 1")

    def _class_condition(self, classes: ArrayLike | int | str, n: int) -> Condition:
        k = self.config.n_classes
        if isinstance(classes, str):
            classes = self.class_index(classes)
        if isinstance(classes, (list, tuple)) and classes and isinstance(classes[0], str):
            classes = [self.class_index(c) for c in classes]
        if isinstance(classes, (int, np.integer)):
            classes = [int(classes)]
        t = torch.as_tensor(np.asarray(classes) if not isinstance(classes, torch.Tensor) else classes)
        if t.dim() == 2:  # class-weight vectors
            if t.shape[1] != k:
                raise ValueError(f"class weight vectors have shape {tuple(t.shape)}; expected (N, {k})")
            t = t.to(self.device, self.dtype)
            _check_finite(t, "classes")
            return VectorCondition(self._broadcast(t, n, "classes"))
        if t.dim() > 1:
            raise ValueError(f"classes has shape {tuple(t.shape)}; expected N ids or (N, {k}) weight vectors")
        if t.is_floating_point():
            if not torch.all(t == t.round()):
                raise ValueError("class ids must be integers")
        t = t.reshape(-1).long()
        if t.numel() and (t.min() < 0 or t.max() >= k):
            bad = t[(t < 0) | (t >= k)][0].item()
            raise ValueError(f"class id {bad} out of range: the model has {k} classes (0..{k - 1})")
        return ClassCondition(self._broadcast(t.to(self.device), n, "classes"))

    def _conditions(self, classes, class_maps, map_layers, map_resize: str, n: int) -> list[Condition]:
        cfg = self.config
        L = cfg.n_map_layers
        if class_maps is None:
            if classes is None:
                raise ValueError("give classes (ids, names or weight vectors) or class_maps")
            if map_layers is not None:
                raise ValueError("map_layers needs class_maps")
            return [self._class_condition(classes, n)] * L
        layers = _layer_set(map_layers, L)
        if classes is not None and map_layers is None:
            raise ValueError("both classes and class_maps given: pass map_layers to say where the map applies "
                             "(classes are used on the other layers)")
        maps = self._maps(class_maps, n, map_resize)
        if classes is not None:
            base: Condition = self._class_condition(classes, n)
        else:
            base = self._dominant(maps)
        return [maps[l] if l in layers else base for l in range(L)]

    def _maps(self, class_maps, n: int, mode: str) -> list[MapCondition]:
        cfg = self.config
        L, K = cfg.n_map_layers, cfg.n_classes
        sizes = cfg.map_sizes
        if isinstance(class_maps, (list, tuple)):
            if len(class_maps) != L:
                raise ValueError(f"class_maps has {len(class_maps)} layers; this {cfg.resolution}x{cfg.resolution} "
                                 f"generator has {L} sCBN layers with map sizes {sizes} (or give a single map)")
            out = []
            for l, m in enumerate(class_maps):
                t = _as_tensor(m, self.device, self.dtype, f"class_maps[{l}]")
                exp = (n, sizes[l], sizes[l], K)
                if t.dim() == 3:
                    t = t[None]
                if t.dim() != 4 or tuple(t.shape[1:]) != exp[1:] or t.shape[0] not in (1, n):
                    raise ValueError(f"class_maps[{l}] has shape {tuple(t.shape)}; expected {exp} "
                                     f"(N, H, W, n_classes) at layer {l}'s resolution {sizes[l]}")
                _check_finite(t, f"class_maps[{l}]")
                out.append(_expand_map(MapCondition.from_dense(t), n))
            return out
        if isinstance(class_maps, (ClassMap, MapCondition)):
            base = class_maps.condition() if isinstance(class_maps, ClassMap) else class_maps
            if base.weights.dim() != 4 or base.weights.shape[0] not in (1, n):
                raise ValueError(f"class map weights have shape {tuple(base.weights.shape)}; expected (N, K', H, W)")
            if base.classes.numel() and (base.classes.min() < 0 or base.classes.max() >= K):
                raise ValueError(f"class map uses class ids {base.classes.tolist()}; the model has {K} classes")
            base = base.to(self.device, self.dtype)
            _check_finite(base.weights, "class_maps")
        else:
            t = _as_tensor(class_maps, self.device, self.dtype, "class_maps")
            if t.dim() == 3:
                t = t[None]
            if t.dim() != 4 or t.shape[-1] != K or t.shape[0] not in (1, n):
                raise ValueError(f"class_maps has shape {tuple(t.shape)}; expected a list of {L} per-layer maps or "
                                 f"one map (N, H, W, {K})")
            _check_finite(t, "class_maps")
            base = MapCondition.from_dense(t)
        cache: dict[int, MapCondition] = {}
        out = []
        for s in sizes:
            if s not in cache:
                cache[s] = _expand_map(MapCondition(resize_map(base.weights, s, mode), base.classes), n)
            out.append(cache[s])
        return out

    def _dominant(self, maps: list[MapCondition]) -> Condition:
        m = maps[-1]
        mass = m.weights.float().mean(dim=(2, 3))  # (N, K')
        return ClassCondition(m.classes[mass.argmax(dim=1)])

    def _blends(self, blends, n_in: int, n: int) -> list[torch.Tensor | None]:
        cfg = self.config
        nb = cfg.n_blend_layers
        if isinstance(blends, Mapping):
            items = dict(blends)
            bad = [k for k in items if not (isinstance(k, (int, np.integer)) and 0 <= int(k) < nb)]
            if bad:
                raise ValueError(f"blend layer(s) {bad} out of range: this generator has blend points 0..{nb - 1}")
            blends = [items.get(b) for b in range(nb)]
        blends = list(blends)
        if len(blends) != nb:
            raise ValueError(f"blends has {len(blends)} layers; this generator has {nb} blend points with sizes "
                             f"{cfg.blend_sizes} (use None or a dict for a subset)")
        out: list[torch.Tensor | None] = []
        for b, w in enumerate(blends):
            if w is None:
                out.append(None)
                continue
            t = _as_tensor(w, self.device, self.dtype, f"blends[{b}]")
            size = cfg.blend_sizes[b]
            if t.dim() == 3:
                t = t[None]
            exp = (n, size, size, n_in + 1)
            if t.dim() != 4 or tuple(t.shape[1:]) != exp[1:] or t.shape[0] not in (1, n):
                raise ValueError(f"blends[{b}] has shape {tuple(t.shape)}; expected {exp} (N, H, W, S+1 = "
                                 f"{n_in} latents + the generated stream) at resolution {size}")
            _check_finite(t, f"blends[{b}]")
            out.append(self._broadcast(t.permute(0, 3, 1, 2).contiguous(), n, f"blends[{b}]"))
        return out


def resize_map(weights: torch.Tensor, size: int, mode: str = "bilinear") -> torch.Tensor:
    """Resize a channel-first map ``(N, K, H, W)`` to ``size`` x ``size``.

    ``bilinear`` and ``bicubic`` are anti-aliased when shrinking (like PIL); ``area`` averages; ``nearest``
    copies. Weights are resized linearly, so maps that sum to one keep summing to one (except bicubic overshoot).
    """
    if tuple(weights.shape[-2:]) == (size, size):
        return weights
    if mode not in ("bilinear", "bicubic", "area", "nearest"):
        raise ValueError(f"map_resize must be bilinear, bicubic, area or nearest, not {mode!r}")
    dt = weights.dtype
    w = weights.float()
    if mode in ("bilinear", "bicubic"):
        shrink = size < w.shape[-1]
        out = F.interpolate(w, size=(size, size), mode=mode, align_corners=False, antialias=shrink)
    elif mode == "area":
        out = F.interpolate(w, size=(size, size), mode="area") if size < w.shape[-1] else \
            F.interpolate(w, size=(size, size), mode="nearest")
    else:
        out = F.interpolate(w, size=(size, size), mode="nearest")
    return out.to(dt)


def _expand_map(m: MapCondition, n: int) -> MapCondition:
    if m.weights.shape[0] == n:
        return m
    return MapCondition(m.weights.expand(n, *m.weights.shape[1:]), m.classes)


def _layer_set(map_layers, L: int) -> set[int]:
    if map_layers is None:
        return set(range(L))
    if isinstance(map_layers, slice):
        return set(range(L)[map_layers])
    if isinstance(map_layers, (int, np.integer)):
        map_layers = [map_layers]
    out = set()
    for l in map_layers:
        l = int(l)
        if not 0 <= l < L:
            raise ValueError(f"map layer {l} out of range: this generator has sCBN layers 0..{L - 1}")
        out.add(l)
    return out


def _as_tensor(x: ArrayLike, device: torch.device, dtype: torch.dtype, what: str) -> torch.Tensor:
    try:
        t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
    except (TypeError, ValueError) as e:
        raise ValueError(f"{what} is not a numeric array: {e}") from None
    if not (t.is_floating_point() or t.dtype in (torch.int32, torch.int64, torch.uint8, torch.bool)):
        raise ValueError(f"{what} has dtype {t.dtype}; expected a real-valued array")
    return t.to(device=device, dtype=dtype)


def _check_finite(t: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise ValueError(f"{what} contains NaN or infinite values")
