"""Brush strokes painted on a class map: checking the strokes' JSON, rasterising each stroke to a mask, painting.

A stroke is what the editor's painter records while a person drags the brush (and what a saved workflow keeps)::

    {"class": "cat", "size": 0.12, "softness": 0.5, "strength": 1.0, "erase": false,
     "points": [[0.40, 0.35], [0.42, 0.36], ...]}

``points`` are the brush centre's positions in fractions of the picture (x to the right, y down, 0..1; one point is
a dab); ``size`` is the brush diameter in fractions of the picture's width; ``softness`` in [0, 1] how much of the
radius fades out (0: a hard, anti-aliased edge); ``strength`` in [0, 1] how much of the class replaces what is
below. An ``erase`` stroke paints the map the strokes started from back (its ``class`` is ignored).

Rasterising is plain numpy and deterministic: a pixel's value depends on its distance ``d`` from the polyline
(pixel centres at ``(i + 0.5) / size``) only: ``t = clip((r + 0.5 - d) / (r * softness + 1), 0, 1)``, mask =
``t * t * (3 - 2 t)``, so a hard brush has a one-pixel anti-aliased rim and a soft one fades over ``r * softness``.
A stroke never paints a pixel twice (overlapping segments take the nearest distance). Painting applies the strokes in
order with :func:`collage_core.collage.paint_class`: ``w <- w (1 - s m) + s m onehot(class)``.
"""

from __future__ import annotations

import colorsys
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .collage import ArgumentError, ClassMapSpec, paint_class

#: limits that keep one node's work bounded whatever a client sends
MAX_STROKES = 2000
MAX_POINTS = 200_000

__all__ = ["Stroke", "parse_strokes", "rasterize_stroke", "paint_strokes", "erase", "class_colors",
           "strokes_to_json", "MAX_STROKES", "MAX_POINTS"]


@dataclass(frozen=True)
class Stroke:
    """One brush stroke (see the module documentation); ``class_name`` is None for an eraser stroke."""

    class_name: str | int | None
    size: float
    points: tuple[tuple[float, float], ...]
    softness: float = 0.0
    strength: float = 1.0
    erase: bool = False

    def to_dict(self) -> dict:
        d = {"class": self.class_name, "size": self.size, "softness": self.softness, "strength": self.strength,
             "erase": self.erase, "points": [list(p) for p in self.points]}
        if self.class_name is None:
            del d["class"]
        return d


def _number(value: object, where: str, key: str, lo: float, hi: float, lo_open: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and (lo < value <= hi if lo_open else lo <= value <= hi):
        return float(value)
    interval = f"({lo:g}, {hi:g}]" if lo_open else f"[{lo:g}, {hi:g}]"
    raise ArgumentError("strokes", f"{where}: '{key}' must be a number in {interval}, got {json.dumps(value)}")


def parse_strokes(value: str | Sequence | None, argument: str = "strokes") -> list[Stroke]:
    """The strokes of a JSON text (or an already parsed list); ``ArgumentError`` naming ``argument`` and the stroke
    at fault otherwise. An empty text, ``null`` or ``[]`` is no strokes. A dict ``{"strokes": [...]}`` is accepted
    too."""
    try:
        return _parse(value)
    except ArgumentError as e:
        raise ArgumentError(argument, str(e)) from None


def _parse(value: str | Sequence | None) -> list[Stroke]:
    data = value
    if isinstance(value, str):
        if not value.strip():
            return []
        try:
            data = json.loads(value)
        except json.JSONDecodeError as e:
            raise ArgumentError("strokes", f"not valid JSON ({e.msg} at line {e.lineno} column {e.colno}); expected "
                                           "a list of strokes like [{\"class\": \"cat\", \"size\": 0.1, "
                                           "\"points\": [[0.5, 0.5]]}]") from None
    if isinstance(data, dict) and "strokes" in data:
        data = data["strokes"]
    if data is None:
        return []
    if not isinstance(data, list):
        raise ArgumentError("strokes", f"expected a JSON list of strokes, got {type(data).__name__}")
    if len(data) > MAX_STROKES:
        raise ArgumentError("strokes", f"{len(data)} strokes; at most {MAX_STROKES} are allowed")
    out, total = [], 0
    known = {"class", "size", "softness", "strength", "erase", "points"}
    for i, s in enumerate(data):
        where = f"stroke {i}"
        if not isinstance(s, dict):
            raise ArgumentError("strokes", f"{where}: expected an object with 'class', 'size' and 'points', got "
                                           f"{type(s).__name__}")
        unknown = sorted(set(s) - known)
        if unknown:
            raise ArgumentError("strokes", f"{where}: unknown key(s) {', '.join(map(repr, unknown))}; a stroke has "
                                           f"{', '.join(sorted(known))}")
        erase = s.get("erase", False)
        if not isinstance(erase, bool):
            raise ArgumentError("strokes", f"{where}: 'erase' must be true or false, got {json.dumps(erase)}")
        cls = s.get("class")
        if not erase and (cls is None or isinstance(cls, bool) or not isinstance(cls, (str, int))
                          or (isinstance(cls, str) and not cls.strip())):
            raise ArgumentError("strokes", f"{where}: 'class' must be a class name or id (erase strokes may omit "
                                           f"it), got {json.dumps(cls)}")
        if "size" not in s:
            raise ArgumentError("strokes", f"{where}: 'size' (brush diameter, a fraction of the picture) is missing")
        size = _number(s["size"], where, "size", 0.0, 1.0, lo_open=True)
        softness = _number(s.get("softness", 0.0), where, "softness", 0.0, 1.0)
        strength = _number(s.get("strength", 1.0), where, "strength", 0.0, 1.0)
        pts = s.get("points")
        if not isinstance(pts, list) or not pts:
            raise ArgumentError("strokes", f"{where}: 'points' must be a non-empty list of [x, y] pairs in 0..1")
        total += len(pts)
        if total > MAX_POINTS:
            raise ArgumentError("strokes", f"more than {MAX_POINTS} points in all")
        points = []
        for j, p in enumerate(pts):
            if not (isinstance(p, (list, tuple)) and len(p) == 2):
                raise ArgumentError("strokes", f"{where}, point {j}: expected [x, y], got {json.dumps(p)}")
            points.append((_number(p[0], f"{where}, point {j}", "x", 0.0, 1.0),
                           _number(p[1], f"{where}, point {j}", "y", 0.0, 1.0)))
        out.append(Stroke(None if erase else (cls.strip() if isinstance(cls, str) else cls), size, tuple(points),
                          softness, strength, erase))
    return out


def strokes_to_json(strokes: Sequence[Stroke]) -> str:
    """The JSON text of ``strokes`` (what the painter writes into the node's ``strokes`` input)."""
    return json.dumps([s.to_dict() for s in strokes])


def rasterize_stroke(stroke: Stroke, height: int, width: int) -> np.ndarray:
    """The stroke's mask, ``(height, width)`` float32 in [0, 1] (see the module documentation for the formula)."""
    h, w = int(height), int(width)
    if h < 1 or w < 1:
        raise ValueError(f"size {h}x{w} must be positive")
    r = stroke.size * w / 2.0  # radius in pixels
    reach = r + 1.0
    pts = np.asarray(stroke.points, np.float64) * np.array([w, h], np.float64)  # pixel units, centres at i + 0.5
    d = np.full((h, w), np.inf)
    segments = [(pts[0], pts[0])] if len(pts) == 1 else list(zip(pts[:-1], pts[1:]))
    for a, b in segments:
        x0 = max(int(math.floor(min(a[0], b[0]) - reach)), 0)
        x1 = min(int(math.ceil(max(a[0], b[0]) + reach)), w)
        y0 = max(int(math.floor(min(a[1], b[1]) - reach)), 0)
        y1 = min(int(math.ceil(max(a[1], b[1]) + reach)), h)
        if x0 >= x1 or y0 >= y1:
            continue
        px = np.arange(x0, x1, dtype=np.float64)[None, :] + 0.5
        py = np.arange(y0, y1, dtype=np.float64)[:, None] + 0.5
        ab = b - a
        ll = float(ab @ ab)
        if ll > 0:
            t = np.clip(((px - a[0]) * ab[0] + (py - a[1]) * ab[1]) / ll, 0.0, 1.0)
        else:
            t = np.zeros((y1 - y0, x1 - x0))
        dist = np.hypot(px - (a[0] + t * ab[0]), py - (a[1] + t * ab[1]))
        np.minimum(d[y0:y1, x0:x1], dist, out=d[y0:y1, x0:x1])
    t = np.clip((r + 0.5 - d) / (r * stroke.softness + 1.0), 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def erase(cm: ClassMapSpec, original: ClassMapSpec, mask: torch.Tensor, strength: float) -> ClassMapSpec:
    """Paint ``original`` (the map the strokes started from) back over ``cm`` under ``mask (H, W)``:
    ``w <- w (1 - s m) + s m w_original`` (classes ``cm`` added have weight 0 in ``original``)."""
    classes = list(cm.classes)
    idx = [classes.index(k) for k in original.classes]
    w0 = cm.weights.new_zeros(cm.weights.shape)
    w0[:, idx] = original.weights.expand(cm.variants, *original.weights.shape[1:])
    m = (mask.to(device=cm.weights.device, dtype=cm.weights.dtype).clamp(0, 1) * float(strength))[None, None]
    return ClassMapSpec(cm.weights * (1 - m) + w0 * m, cm.classes, cm.layer_ranges, cm.n_layers, cm.class_names)


def paint_strokes(cm: ClassMapSpec, strokes: Sequence[Stroke] | str,
                  progress: Callable[[int, int], None] | None = None) -> ClassMapSpec:
    """``cm`` with ``strokes`` (parsed, or their JSON text) painted in order at the map's resolution.

    ``progress(done, total)`` is called after each stroke (and may raise to stop: an interrupt)."""
    if isinstance(strokes, str):
        strokes = parse_strokes(strokes)
    original = cm
    h, w = cm.weights.shape[-2:]
    for i, s in enumerate(strokes):
        if progress is not None and i:
            progress(i, len(strokes))
        m = torch.from_numpy(rasterize_stroke(s, h, w))
        if s.erase:
            cm = erase(cm, original, m, s.strength)
            continue
        try:
            cm = paint_class(cm, m, s.class_name, [s.strength])
        except ArgumentError as e:
            raise ArgumentError("strokes", f"stroke {i}: {e}") from None
    return cm


def class_colors(n: int) -> list[str]:
    """``n`` distinct colours (``#rrggbb``), one per class id, the same everywhere (the painter's palette): hues
    spread by the golden angle, alternating lightness."""
    out = []
    for i in range(int(n)):
        hue = (i * 0.618033988749895 + 0.03) % 1.0
        r, g, b = colorsys.hls_to_rgb(hue, 0.5 if i % 2 == 0 else 0.62, 0.85)
        out.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return out
