"""Collage recipes: the values a node graph passes around, built step by step, and one function that renders them.

* :class:`ClassSpec` - one class (or a list of classes, one per variant) for plain class-conditional synthesis.
* :class:`ClassMapSpec` - an sCBN class map at the model's resolution: a base class with any number of regions
  painted over it (:func:`paint_class`), and the sCBN layer range it applies to (the paper's per-layer ablation).
* :class:`FeatureBlendSpec` - feature blending: reference latents whose features replace the generated stream's
  under masks at chosen blend points (:func:`add_feature_blend`).

Each holds a batch of *variants*: a strength sweep (:func:`paint_class` with several strengths), a layer-range
sweep (:func:`sweep_layer_ranges`) or a batch of masks gives several maps. :func:`synthesize_collage` pairs latents
with variants (``pairwise``: batch 1 broadcasts) or crosses them (``grid``: every latent with every variant, in
row-major order, one row per latent) and calls :meth:`Generator.synthesize` - nothing else.

Painting follows :func:`collage_core.maps.class_map_from_regions` exactly (``w <- w (1 - s m) + s m onehot(class)``,
so weights stay >= 0 and sum to one, later regions win), and one feature blend equals
:func:`collage_core.blending.transplant_blends`; several blends composite in order, each over the result of the last.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .generator import Generator, class_index
from .maps import ClassMap
from .masks import as_mask_batch, resize_masks

COMBINE_MODES = ("pairwise", "grid")
LAYER_SWEEPS = ("per block", "from first layer", "to last layer", "single layers", "custom")


class ArgumentError(ValueError):
    """A bad argument of a function here; ``argument`` names it (node wrappers report the input of that name)."""

    def __init__(self, argument: str, message: str) -> None:
        super().__init__(message)
        self.argument = argument


# ------------------------------------------------------------------------------------------------- classes
@dataclass(frozen=True)
class ClassSpec:
    """Class ids for plain (class-conditional BN) synthesis; several ids are several variants."""

    ids: tuple[int, ...]
    names: tuple[str, ...]

    @property
    def variants(self) -> int:
        return len(self.ids)


def select_class(G: Generator, name_or_id: int | str) -> ClassSpec:
    i = class_index(G.class_names, name_or_id)
    return ClassSpec((i,), (G.class_names[i],))


# ----------------------------------------------------------------------------------------------- class maps
@dataclass(frozen=True, eq=False)
class ClassMapSpec:
    """A batch of V sCBN class maps over a base class, with the sCBN layers each variant applies to.

    ``weights (V, K', H, W)`` over ``classes`` (``classes[0]`` is the base class), at the model's resolution, on the
    generator's device; ``layer_ranges`` holds V inclusive ``(first, last)`` sCBN layer pairs (layers outside a
    variant's range use the base class).
    """

    weights: torch.Tensor
    classes: tuple[int, ...]
    layer_ranges: tuple[tuple[int, int], ...]
    n_layers: int
    class_names: tuple[str, ...]

    @property
    def variants(self) -> int:
        return self.weights.shape[0]

    @property
    def base_class(self) -> int:
        return self.classes[0]

    def class_map(self, index: torch.Tensor | None = None) -> ClassMap:
        """The :class:`~collage_core.maps.ClassMap` of all variants (or of those at ``index``)."""
        w = self.weights if index is None else self.weights.index_select(0, index.to(self.weights.device))
        return ClassMap(w, self.classes)


def layer_range(layer_start: int, layer_end: int, n_layers: int, what: str = "layer") -> tuple[int, int]:
    """An inclusive range of layers; ``layer_end = -1`` is the last layer. :class:`ArgumentError` if outside
    0..n_layers-1 or reversed."""
    first, last = int(layer_start), int(layer_end)
    if last < 0:
        last = n_layers + last
    if not 0 <= first < n_layers:
        raise ArgumentError("layer_start", f"{what} {first} out of range: this generator has {what}s "
                                           f"0..{n_layers - 1}")
    if not 0 <= last < n_layers:
        raise ArgumentError("layer_end", f"{what} {layer_end} out of range: this generator has {what}s "
                                         f"0..{n_layers - 1} (-1 means the last)")
    if first > last:
        raise ArgumentError("layer_end", f"the range ends ({what} {last}) before it starts ({what} {first})")
    return first, last


def new_class_map(G: Generator, base_class: int | str, layer_start: int = 0, layer_end: int = -1) -> ClassMapSpec:
    """A class map that is ``base_class`` everywhere (one variant), for sCBN layers ``layer_start..layer_end``."""
    k = _class(G.class_names, base_class, "base_class")
    L = G.config.n_map_layers
    rng = layer_range(layer_start, layer_end, L, "sCBN layer")
    r = G.resolution
    w = torch.ones(1, 1, r, r, device=G.device, dtype=torch.float32)
    return ClassMapSpec(w, (k,), (rng,), L, tuple(G.class_names))


def _class(class_names: Sequence[str], name_or_id: int | str, argument: str) -> int:
    try:
        return class_index(class_names, name_or_id)
    except ValueError as e:
        raise ArgumentError(argument, str(e)) from None


def _check_strength(s: float, argument: str = "strength", what: str = "") -> float:
    s = float(s)
    if not np.isfinite(s) or not 0.0 <= s <= 1.0:
        raise ArgumentError(argument, f"{what or argument} {s} is outside [0, 1]")
    return s


def _mask(mask: torch.Tensor, argument: str) -> torch.Tensor:
    try:
        return as_mask_batch(mask, argument)
    except ValueError as e:
        raise ArgumentError(argument, str(e)) from None


def _broadcast_variants(v: int, m: int, what: str) -> int:
    if v == m or m == 1:
        return v
    if v == 1:
        return m
    raise ArgumentError(what, f"{what} has batch {m} but the class map has {v} variants; they must match "
                              f"(or one be 1)")


def paint_class(cm: ClassMapSpec, mask: torch.Tensor, class_name: int | str, strengths: Sequence[float],
                what: str = "mask") -> ClassMapSpec:
    """Paint the class ``class_name`` (a name or an id) over ``cm`` under ``mask`` (``(B, H, W)`` or ``(H, W)`` in
    [0, 1], resized to the map's resolution if needed), once per strength.

    Variants: the map's V variants and the B masks pair up (a batch of 1 repeats); each result is painted with every
    strength in turn, giving ``max(V, B) * len(strengths)`` variants, strength varying fastest.
    """
    k_id = _class(cm.class_names, class_name, "class_name")
    strengths = [_check_strength(s, "strengths", "strength") for s in strengths]
    if not strengths:
        raise ArgumentError("strengths", "no strengths given")
    m = _mask(mask, what)
    h, w = cm.weights.shape[-2:]
    m = resize_masks(m, (h, w)).to(device=cm.weights.device, dtype=cm.weights.dtype)
    v = _broadcast_variants(cm.variants, m.shape[0], what)
    classes = list(cm.classes)
    weights = cm.weights
    if k_id not in classes:
        classes.append(k_id)
        weights = torch.cat([weights, weights.new_zeros(weights.shape[0], 1, h, w)], 1)
    k = classes.index(k_id)
    weights = weights.expand(v, *weights.shape[1:])
    m = m.expand(v, h, w)
    ranges = cm.layer_ranges if cm.variants == v else cm.layer_ranges * v
    out = []
    for i in range(v):
        for s in strengths:
            mi = m[i:i + 1].clamp(0, 1) * s  # the same operations, in the same order, as class_map_from_regions
            wi = weights[i:i + 1] * (1 - mi[:, None])
            wi[:, k] += mi
            out.append(wi)
    new_ranges = tuple(r for r in ranges for _ in strengths)
    return ClassMapSpec(torch.cat(out, 0), tuple(classes), new_ranges, cm.n_layers, cm.class_names)


def sweep_strengths(start: float, end: float, steps: int) -> list[float]:
    """``steps`` evenly spaced strengths from ``start`` to ``end`` (both included)."""
    start, end = _check_strength(start, "start"), _check_strength(end, "end")
    if int(steps) < 1:
        raise ArgumentError("steps", f"steps must be at least 1, got {steps}")
    if int(steps) == 1:
        return [start]
    return [float(v) for v in np.linspace(start, end, int(steps))]


def layer_range_sweep(mode: str, n_layers: int, custom: str = "") -> list[tuple[int, int]]:
    """The layer ranges of a sweep over ``n_layers`` sCBN layers (two per generator block).

    ``per block``: each block's two layers alone; ``from first layer``: the first 2, 4, ... layers;
    ``to last layer``: the last 2, 4, ... layers; ``single layers``: every layer alone; ``custom``: ``custom`` as a
    list of ranges ``"0-3, 4-7, 5"`` (inclusive; ``-1`` or ``end`` = the last layer).
    """
    L = int(n_layers)
    if mode == "per block":
        return [(i, i + 1) for i in range(0, L, 2)]
    if mode == "from first layer":
        return [(0, i + 1) for i in range(0, L, 2)]
    if mode == "to last layer":
        return [(L - 2 - i, L - 1) for i in range(0, L, 2)]
    if mode == "single layers":
        return [(i, i) for i in range(L)]
    if mode != "custom":
        raise ArgumentError("mode", f"mode must be one of {', '.join(LAYER_SWEEPS)}, not {mode!r}")
    try:
        return parse_layer_ranges(custom, L)
    except ValueError as e:
        raise ArgumentError("custom", str(e)) from None


def parse_layer_ranges(text: str, n_layers: int) -> list[tuple[int, int]]:
    """``"0-3, 4-7, 5, 2-end, -1"`` -> ``[(0, 3), (4, 7), (5, 5), (2, L-1), (L-1, L-1)]`` (``-1`` and ``end``: the
    last layer), checked against ``n_layers``."""
    out = []
    text = str(text)
    most = n_layers * (n_layers + 1) // 2  # the number of different ranges there are
    if len(text) > 12 * most + 64:  # longer than every range written out: refused before it is parsed
        raise ValueError(f"{len(text):,} characters: more than the {most} different ranges of {n_layers} layers")
    parts = [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if not parts:
        raise ValueError("no layer ranges given (write e.g. '0-1, 2-3, 0-7')")
    if len(parts) > most:
        raise ValueError(f"{len(parts):,} ranges: {n_layers} layers have only {most} different ranges")
    for p in parts:
        a, sep, b = p.partition("-") if not p.startswith("-") else (p, "", "")
        try:
            first = int(a)
            last = first if not sep else (-1 if b.strip() in ("end", "-1", "") else int(b))
            if first == -1:  # "-1" alone: the last layer
                first = n_layers - 1
        except ValueError:
            raise ValueError(f"bad layer range {p!r}: write 'first-last' (e.g. 2-5), a single layer, "
                             f"or 'first-end'") from None
        try:
            out.append(layer_range(first, last, n_layers, "layer"))
        except ValueError as e:
            raise ValueError(f"bad layer range {p!r}: {e}") from None
    return out


def sweep_layer_ranges(cm: ClassMapSpec, ranges: Sequence[tuple[int, int]]) -> ClassMapSpec:
    """Every variant of ``cm`` once per layer range (range varying fastest): V * len(ranges) variants."""
    if not ranges:
        raise ArgumentError("ranges", "no layer ranges given")
    ranges = [layer_range(a, b, cm.n_layers, "sCBN layer") for a, b in ranges]
    w = cm.weights.repeat_interleave(len(ranges), 0)
    return ClassMapSpec(w, cm.classes, tuple(r for _ in range(cm.variants) for r in ranges), cm.n_layers,
                        cm.class_names)


# ------------------------------------------------------------------------------------------- feature blends
@dataclass(frozen=True, eq=False)
class BlendEntry:
    """One transplant: ``reference (B, dim_z)`` features replace the generated ones under ``mask (B, H, W)`` with
    ``strengths`` = ``((point, strength), ...)``."""

    reference: torch.Tensor
    mask: torch.Tensor
    strengths: tuple[tuple[int, float], ...]

    @property
    def variants(self) -> int:
        return max(self.reference.shape[0], self.mask.shape[0])


@dataclass(frozen=True, eq=False)
class FeatureBlendSpec:
    """Feature blending: transplants applied in order at each blend point of a generator with ``sizes``."""

    entries: tuple[BlendEntry, ...]
    sizes: tuple[int, ...]

    @property
    def variants(self) -> int:
        return max(e.variants for e in self.entries)


def add_feature_blend(G: Generator, blend: FeatureBlendSpec | None, reference: torch.Tensor, mask: torch.Tensor,
                      layer_start: int, layer_end: int, strength: float) -> FeatureBlendSpec:
    """``blend`` (or nothing) followed by a transplant of ``reference``'s features under ``mask`` with ``strength`` at
    blend points ``layer_start..layer_end`` (0 is the head after ``l1``, point b the output of block b+1; -1 = last).
    """
    sizes = tuple(G.config.blend_sizes)
    if blend is not None and blend.sizes != sizes:
        raise ArgumentError("blend", f"the blend to extend was made for another generator (blend sizes "
                                     f"{blend.sizes}, this one {sizes})")
    ref = _as_latent(G, reference, "reference")
    m = _mask(mask, "mask")
    if m.shape[0] != 1 and ref.shape[0] != 1 and m.shape[0] != ref.shape[0]:
        raise ArgumentError("mask", f"mask has batch {m.shape[0]} and reference has batch {ref.shape[0]}; "
                                    f"they must match (or one be 1)")
    first, last = layer_range(layer_start, layer_end, len(sizes), "blend point")
    s = _check_strength(strength)
    entry = BlendEntry(ref, m, tuple((b, s) for b in range(first, last + 1)))
    entries = (blend.entries if blend is not None else ()) + (entry,)
    variants = [e.variants for e in entries if e.variants > 1]
    if len(set(variants)) > 1:
        raise ArgumentError("mask", f"batch sizes of the chained blends disagree: {variants} (each must be the "
                                    f"same or 1)")
    return FeatureBlendSpec(entries, sizes)


def _as_latent(G: Generator, z: torch.Tensor, what: str) -> torch.Tensor:
    if not isinstance(z, torch.Tensor):
        z = torch.as_tensor(np.asarray(z, np.float32))
    if z.dim() == 1:
        z = z[None]
    if z.dim() != 2 or z.shape[1] != G.config.dim_z or z.shape[0] < 1:
        raise ArgumentError(what, f"{what} has shape {tuple(z.shape)}; expected LATENT_Z (N, {G.config.dim_z})")
    if not z.is_floating_point() or not bool(torch.isfinite(z).all()):
        raise ArgumentError(what, f"{what} must hold finite float values")
    return z.to(device=G.device)


def blend_streams(blend: FeatureBlendSpec) -> tuple[list[torch.Tensor], list[int]]:
    """The distinct reference latents of a blend (equal tensors share one stream) and each entry's stream index
    (1-based: stream 0 is the source latent)."""
    refs: list[torch.Tensor] = []
    index = []
    for e in blend.entries:
        for j, r in enumerate(refs):
            if r.shape == e.reference.shape and bool(torch.equal(r, e.reference)):
                index.append(j + 1)
                break
        else:
            refs.append(e.reference)
            index.append(len(refs))
    return refs, index


def blend_weights(blend: FeatureBlendSpec, stream_of: Sequence[int], n_streams: int, device: torch.device
                  ) -> list[torch.Tensor | None]:
    """Per blend point, ``None`` or weights ``(B, s, s, n_streams + 1)`` over [source, references..., generated].

    At point 0 the generated stream starts as the source; at a later point as itself. Each entry touching the point
    then composites over it in order: ``w <- w (1 - a m) + a m onehot(reference)``. A single entry gives exactly
    :func:`collage_core.blending.transplant_blends`.
    """
    out: list[torch.Tensor | None] = []
    for b, size in enumerate(blend.sizes):
        touching = [(e, j, dict(e.strengths)[b]) for e, j in zip(blend.entries, stream_of) if b in dict(e.strengths)]
        if not touching:
            out.append(None)
            continue
        n = max(max(e.mask.shape[0] for e, _, _ in touching), 1)
        w = torch.zeros(n, size, size, n_streams + 1)
        w[..., 0 if b == 0 else n_streams] = 1.0
        for e, j, a in touching:
            m = resize_masks(e.mask.float().cpu(), size) * a  # the order of transplant_blends: (a * m)
            m = m.expand(n, size, size)[..., None]
            w = w * (1 - m)
            w[..., j] += m[..., 0]
        out.append(w.to(device))
    return out


# -------------------------------------------------------------------------------------------------- render
def synthesize_collage(G: Generator, z: torch.Tensor, *, classes: ClassSpec | None = None,
                       class_map: ClassMapSpec | None = None, feature_blend: FeatureBlendSpec | None = None,
                       combine: str = "pairwise", chunk: int = 64,
                       progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
    """Render latents ``z (R, dim_z)`` with a class (``classes``) or a class map, optionally with feature blending.

    ``feature_blend``: transplants to apply. ``combine="pairwise"``: latent i goes with variant i (a batch of 1
    repeats), ``max(R, V)`` images. ``combine="grid"``: every latent with every variant, ``R * V`` images,
    latent-major (row r holds latent r).
    Samples are rendered ``chunk`` at a time (grouped by sCBN layer range); ``progress(done, total)`` is called after
    each group. Returns ``(N, 3, H, W)`` in [-1, 1] on the generator's device (its dtype).
    """
    blend = feature_blend
    if (classes is None) == (class_map is None):
        raise ArgumentError("classes" if classes is None else "class_map", "give exactly one of classes and class_map")
    if combine not in COMBINE_MODES:
        raise ArgumentError("combine", f"combine must be one of {', '.join(COMBINE_MODES)}, not {combine!r}")
    z = _as_latent(G, z, "z")
    if class_map is not None and (class_map.n_layers != G.config.n_map_layers
                                  or tuple(class_map.weights.shape[-2:]) != (G.resolution, G.resolution)
                                  or class_map.class_names != tuple(G.class_names)):
        raise ArgumentError("class_map", "the class map was made for another generator (layers, resolution or "
                                         "classes differ)")
    if classes is not None and any(not 0 <= i < G.config.n_classes for i in classes.ids):
        raise ArgumentError("classes", f"class ids {classes.ids} do not fit this generator's "
                                       f"{G.config.n_classes} classes")
    if blend is not None and blend.sizes != tuple(G.config.blend_sizes):
        raise ArgumentError("feature_blend", "the feature blend was made for a generator of another size")
    parts = {"classes": classes.variants if classes else 1, "class_map": class_map.variants if class_map else 1,
             "feature_blend": blend.variants if blend else 1}
    many = {k: v for k, v in parts.items() if v > 1}
    if len(set(many.values())) > 1:
        raise ArgumentError(list(many)[-1], "variant counts disagree: " + ", ".join(
            f"{k} has {v}" for k, v in many.items()) + " (each must be the same or 1)")
    V = max(parts.values())
    R = z.shape[0]
    if combine == "grid":
        N = R * V
        zi = torch.arange(N) // V
        vi = torch.arange(N) % V
    else:
        if R != V and R != 1 and V != 1:
            raise ArgumentError("combine", f"z has {R} latents but there are {V} variants ({', '.join(many)}); "
                                           f"they must match, one be 1, or use combine='grid'")
        N = max(R, V)
        zi = torch.arange(N) if R == N else torch.zeros(N, dtype=torch.long)
        vi = torch.arange(N) if V == N else torch.zeros(N, dtype=torch.long)

    # groups of samples with one sCBN layer range, at most `chunk` each, in order
    key = [class_map.layer_ranges[int(v) if class_map.variants > 1 else 0] if class_map else None for v in vi]
    groups: list[list[int]] = []
    for i in range(N):
        if groups and key[groups[-1][0]] == key[i] and len(groups[-1]) < max(1, int(chunk)):
            groups[-1].append(i)
        else:
            groups.append([i])
    if blend is not None:
        refs, stream_of = blend_streams(blend)
        weights = blend_weights(blend, stream_of, len(refs) + 1, G.device)
    out = torch.empty(N, 3, G.resolution, G.resolution, device=G.device, dtype=G.dtype)
    full = lambda idx, n: n == N and idx.equal(torch.arange(N))  # noqa: E731 - the whole batch, in order
    with torch.no_grad():
        for gi, group in enumerate(groups):
            idx = torch.tensor(group)
            zg = z if full(zi[idx], R) else z.index_select(0, zi[idx].to(z.device))
            pick = lambda t, v, idx=idx: t if v == 1 or full(vi[idx], v) else t.index_select(  # noqa: E731
                0, vi[idx].to(t.device))
            kw: dict = {}
            if class_map is not None:
                first, last = key[group[0]]
                kw["class_maps"] = ClassMap(pick(class_map.weights, class_map.variants), class_map.classes)
                kw["classes"] = class_map.base_class
                kw["map_layers"] = range(first, last + 1)
            else:
                ids = torch.tensor(classes.ids, device=G.device)
                kw["classes"] = pick(ids, classes.variants)
            if blend is not None:
                kw["zs"] = [zg] + [pick(r, r.shape[0]) for r in refs]
                kw["blends"] = [None if w is None else pick(w, w.shape[0]) for w in weights]
                x = G.synthesize(**kw)
            else:
                x = G.synthesize(zg, **kw)
            out[idx.to(out.device)] = x
            if progress is not None:
                progress(gi + 1, len(groups))
    return out
