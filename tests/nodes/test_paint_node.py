"""Paint Class Map: strokes from the painter re-run headless to the same picture, errors name 'strokes', the painter
gets its background picture and the model's labels, painted masks work, and a new stroke re-runs only what is below."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image

import collage_nodes
from collage_core.strokes import class_colors, parse_strokes, rasterize_stroke
from nodes_support import CLASS_NAMES, api, call, tiny_generator, use_tiny

PAINT = "5"  # the Paint Class Map node of workflows/paint_collage.json


def _workflow(tmp_path, strokes=None) -> dict:
    wf = use_tiny(api("paint_collage"), tmp_path)
    if strokes is not None:
        wf[PAINT]["inputs"]["strokes"] = strokes if isinstance(strokes, str) else json.dumps(strokes)
    return wf


def _png(res) -> np.ndarray:
    (path,) = [i["path"] for out in res.ui.values() for i in out.get("images", [])]
    return np.asarray(Image.open(path))


def test_the_saved_strokes_re_run_headless_to_the_same_picture(tmp_path):
    wf = _workflow(tmp_path / "a")
    assert parse_strokes(wf[PAINT]["inputs"]["strokes"])  # the template paints something
    first = collage_nodes.engine().run(wf)
    assert first.ok, first.error
    picture = _png(first)
    # the PNG carries the workflow with the strokes; run what it holds in a fresh engine
    (path,) = [i["path"] for out in first.ui.values() for i in out.get("images", [])]
    saved = json.loads(Image.open(path).text["prompt"])
    assert saved[PAINT]["inputs"]["strokes"] == wf[PAINT]["inputs"]["strokes"]
    saved["7"]["inputs"]["output_dir"] = str(tmp_path / "b")
    again = collage_nodes.engine().run(saved)
    assert again.ok and np.array_equal(_png(again), picture)
    # ... and the strokes changed the picture: without them it is the unpainted dog
    plain = collage_nodes.engine().run(_workflow(tmp_path / "c", "[]"))
    assert not np.array_equal(_png(plain), picture)


def test_strokes_paint_like_paint_class_with_the_rasterised_masks(tmp_path):
    strokes = [{"class": "cat", "size": 0.3, "softness": 0.5, "points": [[0.3, 0.3], [0.7, 0.3]]},
               {"class": "tiger", "size": 0.2, "strength": 0.6, "points": [[0.5, 0.7]]},
               {"erase": True, "size": 0.1, "points": [[0.5, 0.3]]}]
    G = tiny_generator()
    (cm,) = call("ClassMap", generator=G, base_class="dog")
    (out,) = call("PaintClassMap", class_map=cm, strokes=json.dumps(strokes))
    ref = cm
    for s in parse_strokes(strokes)[:2]:
        (ref,) = call("PaintClass", class_map=ref, mask=torch.from_numpy(rasterize_stroke(s, 64, 64))[None],
                      class_name=s.class_name, strength=s.strength)
    assert out.classes == (0, 1, 2)  # dog, cat, tiger: several classes at once
    rub = torch.from_numpy(rasterize_stroke(parse_strokes(strokes)[2], 64, 64))
    erased, untouched = rub == 1, rub == 0
    assert torch.equal(out.weights[0, :, untouched], ref.weights[0, :, untouched])
    assert erased.sum() > 10  # rubbed back to the dog:
    assert torch.equal(out.weights[0, 0, erased], torch.ones(int(erased.sum())))
    assert torch.allclose(out.weights.sum(1), torch.ones(1, 64, 64))


def test_a_painted_mask_is_painted_before_the_strokes():
    G = tiny_generator()
    (cm,) = call("ClassMap", generator=G, base_class="dog")
    mask = torch.zeros(1, 32, 32)
    mask[:, :, 16:] = 1.0  # right half, half the map's resolution: resized
    (out,) = call("PaintClassMap", class_map=cm, strokes="[]", mask=mask, mask_class="fox")
    assert out.classes == (0, 4)
    assert float(out.weights[0, 1, :, 40:].min()) == 1.0 and float(out.weights[0, 1, :, :24].max()) == 0.0
    with pytest.raises(Exception, match=r"input 'mask_class': unknown class name 'giraffe'"):
        call("PaintClassMap", class_map=cm, strokes="[]", mask=mask, mask_class="giraffe")


def test_the_painter_gets_the_background_picture_and_the_labels(tmp_path):
    engine = collage_nodes.engine()
    res = engine.run(_workflow(tmp_path))
    ui = res.ui[PAINT]
    (labels,) = ui["paint_labels"]
    assert labels == {"labels": CLASS_NAMES, "colors": class_colors(21)}
    (url,) = ui["paint_background"]
    assert url.startswith("data:image/png;base64,")
    pic = np.asarray(Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1]))))
    (base,) = engine.run(_workflow(tmp_path), targets=["4"])["4"]  # Generate's picture of the unpainted map
    from collage_core.images import image_to_uint8

    assert np.array_equal(pic, image_to_uint8(base)[0])


@pytest.mark.parametrize("strokes, match", [
    ("[{", r"input 'strokes': not valid JSON"),
    ('[{"class": "cat", "size": 3, "points": [[0.5, 0.5]]}]', r"input 'strokes': stroke 0: 'size' must be"),
    ('[{"class": "cat", "size": 0.1, "points": [[0.5, 0.5]]}, {"class": "giraffe", "size": 0.1, '
     '"points": [[0.5, 0.5]]}]', r"input 'strokes': stroke 1: unknown class name 'giraffe'"),
])
def test_bad_strokes_are_reported_before_running_naming_the_input(strokes, match, tmp_path):
    import re

    wf = _workflow(tmp_path, strokes)
    v = collage_nodes.engine().validate(wf)
    assert not v.ok
    errors = v.node_errors[PAINT]["errors"]
    text = " ".join(f"input '{e['extra_info'].get('input_name')}': {e['details']}" for e in errors)
    assert re.search(match, text), errors
    res = collage_nodes.engine().run(wf)
    assert not res.ok and not (tmp_path / "paint_collage").exists()


def test_the_strokes_text_is_parsed_once_per_run(tmp_path, monkeypatch):
    from collage_nodes import paint

    calls = []
    real = paint.parse_strokes
    monkeypatch.setattr(paint, "parse_strokes", lambda *a, **kw: calls.append(a) or real(*a, **kw))
    strokes = [{"class": "cat", "size": 0.271828, "points": [[0.25, 0.5], [0.75, 0.5]]}]  # a text no other test has
    res = collage_nodes.engine().run(_workflow(tmp_path, strokes))
    assert res.ok, res.error
    assert PAINT in res.executed and len(calls) == 1  # validate, estimate and run share one parse


def test_a_new_stroke_re_runs_only_the_painter_and_what_is_below(tmp_path):
    wf = _workflow(tmp_path)
    engine = collage_nodes.engine()
    assert engine.run(wf).ok
    again = engine.run(wf)
    assert again.executed == [] and PAINT in again.ui  # cached, and the painter still gets its picture
    strokes = json.loads(wf[PAINT]["inputs"]["strokes"])
    strokes.append({"class": "panda", "size": 0.2, "points": [[0.5, 0.8], [0.6, 0.85]]})
    wf[PAINT]["inputs"]["strokes"] = json.dumps(strokes)
    res = engine.run(wf)
    assert res.ok and sorted(res.executed) == [PAINT, "6", "7"]


def test_strokes_can_be_set_as_json_on_the_command_line():
    from collage_app.overrides import apply_set, parse_set

    wf = api("paint_collage")
    node, name, value = parse_set('Paint the class map.strokes=[{"class": "tiger", "size": 0.4, '
                                  '"points": [[0.3, 0.6], [0.7, 0.6]]}]')
    assert apply_set(wf, collage_nodes.registry(), node, name, value) == PAINT
    assert parse_strokes(wf[PAINT]["inputs"]["strokes"])[0].class_name == "tiger"  # stored as the JSON text
    apply_set(wf, collage_nodes.registry(), "Paint the class map", "strokes", ["4", 0])
    assert wf[PAINT]["inputs"]["strokes"] == ["4", 0]  # a link stays a link
