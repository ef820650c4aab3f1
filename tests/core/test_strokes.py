"""collage_core.strokes: checking the painter's JSON, rasterising strokes (deterministic, area-true), painting them."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from collage_core.collage import ArgumentError, ClassMapSpec, paint_class
from collage_core.strokes import (
    MAX_STROKES,
    Stroke,
    class_colors,
    paint_strokes,
    parse_strokes,
    rasterize_stroke,
    strokes_to_json,
)

NAMES = ("dog", "cat", "fox")


def _map(r: int = 32) -> ClassMapSpec:
    return ClassMapSpec(torch.ones(1, 1, r, r), (0,), ((0, 3),), 4, NAMES)


def _dense(cm: ClassMapSpec) -> torch.Tensor:
    """The map as (V, 3, H, W) over every class id."""
    out = torch.zeros(cm.variants, len(NAMES), *cm.weights.shape[-2:])
    for j, k in enumerate(cm.classes):
        out[:, k] = cm.weights[:, j]
    return out


# ------------------------------------------------------------------------------------------------ parsing
def test_parse_reads_every_field_with_defaults():
    text = json.dumps([{"class": "cat", "size": 0.2, "points": [[0.1, 0.2], [0.3, 0.4]]},
                       {"erase": True, "size": 0.5, "softness": 0.3, "strength": 0.5, "points": [[1, 0]]}])
    a, b = parse_strokes(text)
    assert a == Stroke("cat", 0.2, ((0.1, 0.2), (0.3, 0.4)), 0.0, 1.0, False)
    assert b == Stroke(None, 0.5, ((1.0, 0.0),), 0.3, 0.5, True)
    assert parse_strokes(strokes_to_json([a, b])) == [a, b]
    assert parse_strokes("") == parse_strokes("[]") == parse_strokes("null") == []
    assert parse_strokes({"strokes": [a.to_dict()]}) == [a]


@pytest.mark.parametrize("value, match", [
    ("[{", r"not valid JSON \(.* line 1 column 3\)"),
    ('{"class": "cat"}', r"expected a JSON list of strokes, got dict"),
    ("[3]", r"stroke 0: expected an object"),
    ('[{"class": "cat", "size": 0.1, "points": [[0.5, 0.5]], "colour": 1}]', r"stroke 0: unknown key\(s\) 'colour'"),
    ('[{"size": 0.1, "points": [[0.5, 0.5]]}]', r"stroke 0: 'class' must be a class name or id"),
    ('[{"class": "cat", "points": [[0.5, 0.5]]}]', r"stroke 0: 'size' .* is missing"),
    ('[{"class": "cat", "size": 0, "points": [[0.5, 0.5]]}]', r"stroke 0: 'size' must be a number in \(0, 1\], got 0"),
    ('[{"class": "cat", "size": 0.1, "softness": 2, "points": [[0.5, 0.5]]}]', r"'softness' must be .* \[0, 1\]"),
    ('[{"class": "cat", "size": 0.1, "strength": true, "points": [[0.5, 0.5]]}]', r"'strength' must be"),
    ('[{"class": "cat", "size": 0.1, "points": []}]', r"stroke 0: 'points' must be a non-empty list"),
    ('[{"class": "cat", "size": 0.1, "points": [[0.5, 1.5]]}]', r"stroke 0, point 0: 'y' must be a number in \[0, 1\]"),
    ('[{"class": "cat", "size": 0.1, "points": [[0.5]]}]', r"stroke 0, point 0: expected \[x, y\]"),
    ('[{"class": "cat", "size": 0.1, "erase": 1, "points": [[0.5, 0.5]]}]', r"'erase' must be true or false"),
])
def test_bad_strokes_are_refused_naming_the_input_and_the_stroke(value, match):
    with pytest.raises(ArgumentError, match=match) as e:
        parse_strokes(value)
    assert e.value.argument == "strokes"


def test_too_many_strokes_are_refused():
    with pytest.raises(ArgumentError, match=f"at most {MAX_STROKES}"):
        parse_strokes([{"class": 0, "size": 0.1, "points": [[0, 0]]}] * (MAX_STROKES + 1))


# -------------------------------------------------------------------------------------------- rasterising
def test_a_hard_dab_covers_its_disc_area_and_is_symmetric():
    m = rasterize_stroke(Stroke("cat", 0.5, ((0.5, 0.5),)), 64, 64)
    assert m.dtype == np.float32 and m.shape == (64, 64)
    assert m.min() == 0.0 and m.max() == 1.0
    assert abs(m.sum() - math.pi * 16 ** 2) / (math.pi * 16 ** 2) < 0.01  # radius 16 px
    assert np.array_equal(m, m[::-1]) and np.array_equal(m, m[:, ::-1]) and np.array_equal(m, m.T)


def test_a_line_covers_its_capsule_area_once():
    s = Stroke("cat", 0.125, ((0.25, 0.5), (0.75, 0.5)))  # radius 4 px, 32 px long, on a 64 px picture
    m = rasterize_stroke(s, 64, 64)
    area = 32 * 8 + math.pi * 16
    assert abs(m.sum() - area) / area < 0.02
    back = rasterize_stroke(Stroke("cat", 0.125, ((0.75, 0.5), (0.5, 0.5), (0.25, 0.5))), 64, 64)
    assert np.allclose(m, back, atol=1e-6)  # retracing and reversing paint nothing more


def test_softness_fades_the_rim_and_keeps_the_centre():
    hard = rasterize_stroke(Stroke("cat", 0.5, ((0.5, 0.5),)), 64, 64)
    soft = rasterize_stroke(Stroke("cat", 0.5, ((0.5, 0.5),), softness=1.0), 64, 64)
    assert soft[32, 32] > 0.9 and (soft <= hard + 1e-6).all()
    ring = soft[32, 32 + 12:32 + 16]  # between 3/4 of the radius and the rim: a gradual fall
    assert (np.diff(ring) < 0).all() and 0.05 < ring.mean() < 0.6


def test_rasterising_is_deterministic_and_scales_with_resolution():
    s = Stroke("cat", 0.2, ((0.1, 0.2), (0.8, 0.3), (0.4, 0.9)), softness=0.4)
    a, b = rasterize_stroke(s, 64, 64), rasterize_stroke(s, 64, 64)
    assert np.array_equal(a, b)
    big = rasterize_stroke(s, 256, 256)
    pooled = big.reshape(64, 4, 64, 4).mean((1, 3))
    assert np.abs(pooled - a).mean() < 0.02
    assert abs(big.mean() - a.mean()) < 0.01


def test_a_stroke_outside_the_edge_is_clipped():
    m = rasterize_stroke(Stroke("cat", 0.5, ((0.0, 0.0),)), 32, 32)
    assert m[0, 0] == 1.0 and m[-1, -1] == 0.0
    assert abs(m.sum() - math.pi * 8 ** 2 / 4) < 4  # a quarter disc


# ------------------------------------------------------------------------------------------------ painting
def test_paint_strokes_equals_paint_class_with_the_rasterised_masks():
    strokes = parse_strokes([{"class": "cat", "size": 0.3, "points": [[0.3, 0.3], [0.6, 0.4]]},
                             {"class": "fox", "size": 0.2, "softness": 0.5, "strength": 0.7, "points": [[0.5, 0.5]]}])
    cm = paint_strokes(_map(), strokes)
    ref = _map()
    for s in strokes:
        ref = paint_class(ref, torch.from_numpy(rasterize_stroke(s, 32, 32)), s.class_name, [s.strength])
    assert cm.classes == ref.classes == (0, 1, 2)
    assert torch.equal(cm.weights, ref.weights)
    assert torch.allclose(cm.weights.sum(1), torch.ones(1, 32, 32))


def test_erasing_paints_the_original_map_back():
    painted = [{"class": "cat", "size": 0.6, "points": [[0.5, 0.5]]}]
    rubbed = painted + [{"erase": True, "size": 0.6, "points": [[0.5, 0.5]]}]
    cm = paint_strokes(_map(), json.dumps(rubbed))
    dense, m = _dense(cm), torch.from_numpy(rasterize_stroke(parse_strokes(painted)[0], 32, 32))
    inside = m == 1
    assert inside.sum() > 200 and torch.equal(dense[0, :, inside], _dense(_map())[0, :, inside])
    assert torch.allclose(dense[0, 1], m - m * m)  # on the soft rim: (w0 (1-m) + m cat)(1-m) + m w0
    assert float(dense[0, 1].max()) <= 0.25 + 1e-6
    half = paint_strokes(_map(), json.dumps(painted + [{"erase": True, "size": 0.6, "strength": 0.5,
                                                        "points": [[0.5, 0.5]]}]))
    assert abs(float(_dense(half)[0, 1, 16, 16]) - 0.5) < 1e-6


def test_unknown_classes_name_the_stroke():
    with pytest.raises(ArgumentError, match=r"stroke 1: unknown class name 'giraffe'") as e:
        paint_strokes(_map(), json.dumps([{"class": "cat", "size": 0.1, "points": [[0.5, 0.5]]},
                                          {"class": "giraffe", "size": 0.1, "points": [[0.5, 0.5]]}]))
    assert e.value.argument == "strokes"


def test_class_colours_are_distinct_and_stable():
    c = class_colors(21)
    assert len(set(c)) == 21 and all(len(x) == 7 and x.startswith("#") for x in c)
    assert class_colors(3) == c[:3]


def test_painting_reports_progress_and_stops_when_progress_raises():
    strokes = [Stroke("cat", 0.1, ((0.1 * (i % 9) + 0.05, 0.5),)) for i in range(50)]
    seen = []
    paint_strokes(_map(), strokes, progress=lambda i, n: seen.append((i, n)))
    assert seen[0] == (1, 50) and seen[-1] == (49, 50)

    class Stop(Exception):
        pass

    def stop_at_10(i, n):
        if i == 10:
            raise Stop
    with pytest.raises(Stop):  # an interrupt between strokes: the rest are never painted
        paint_strokes(_map(), strokes, progress=stop_at_10)
