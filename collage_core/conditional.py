"""What the SNGAN and BigGAN-deep generators share: :meth:`synthesize`'s arguments checked and made tensors.

:class:`ConditionalGenerator` is the base class of :class:`collage_core.generator.Generator` and
:class:`collage_core.biggan.BigGANGenerator`. It turns latents, classes (ids, names, weight vectors), sCBN class
maps (per layer or one map resized to every layer, :func:`resize_map`) and feature-blending weights into the
tensors and :class:`~collage_core.scbn.Condition` objects that each architecture's ``forward`` computes with.
A subclass sets ``config`` (``dim_z``, ``n_classes``, ``n_map_layers``, ``map_sizes``, ``n_blend_layers``,
``blend_sizes``, ``resolution``) and ``class_names``, and gives ``device`` and ``dtype``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .maps import ClassMap
from .scbn import ClassCondition, Condition, MapCondition, VectorCondition

ArrayLike = Any  # torch.Tensor | np.ndarray | nested lists


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


class ConditionalGenerator(nn.Module):
    """Base of the class-conditional generators: class names and the checking of :meth:`synthesize`'s arguments."""

    config: Any
    class_names: list[str]

    @property
    def resolution(self) -> int:
        return self.config.resolution

    def class_index(self, name_or_id: int | str) -> int:
        """A class id from an id or a (case-insensitive) class name: :func:`class_index` of this model."""
        return class_index(self.class_names, name_or_id)

    # ------------------------------------------------------------------------------------ input checking
    def _prepare(self, z, zs, classes, class_maps, map_layers, map_resize, blends
                 ) -> tuple[list[torch.Tensor], list, list | None]:
        """``synthesize``'s arguments checked and made tensors: the latents (broadcast to one batch), one condition
        per sCBN layer, and the blend weights (None without blending)."""
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
