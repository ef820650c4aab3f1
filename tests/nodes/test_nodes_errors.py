"""Bad inputs give clear errors naming the node and the input: at validation when the constants show it, else when
the node runs; never an unhandled exception."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import collage_nodes
from collage_engine import Graph, Input, Int, Node, NodeRegistry, Output, format_errors
from nodes_support import TINY


class BadMask(Node):
    """A test node producing a MASK of any shape (to feed wrong masks into the pack's nodes)."""

    category = "test"
    inputs = [Int("ndim", 4, min=1, max=5), Int("batch", 1, min=1, max=8), Int("size", 64, min=1, max=128)]
    outputs = [Output("mask", "MASK")]

    def run(self, ctx, ndim, batch, size):
        shape = {1: (size,), 2: (size, size), 3: (batch, size, size), 4: (batch, 1, size, size),
                 5: (1, batch, 1, size, size)}[ndim]
        return (torch.full(shape, 0.5),)


class BadValueMask(Node):
    category = "test"
    inputs = [Input("value", "STRING", default="2.0")]
    outputs = [Output("mask", "MASK")]

    def run(self, ctx, value):
        return (torch.full((1, 64, 64), float(value)),)


def _registry() -> NodeRegistry:
    reg = collage_nodes.registry()
    reg.register(BadMask)
    reg.register(BadValueMask)
    return reg


REG = _registry()


def _collage(model=str(TINY), class_name="cat", mask_node=("CollageEllipseMask", {}), strength=1.0, layer_end=-1):
    g = Graph(REG)
    G = g.add("LoadGenerator", {"model": model, "device": "cpu"}, id="gen", title="Generator")
    z = g.add("SampleZ", {"generator": G, "seed": 1, "batch": 2}, id="z")
    base = g.add("ClassMap", {"generator": G, "base_class": "dog", "layer_end": layer_end}, id="map")
    m = g.add(mask_node[0], mask_node[1], id="mask")
    p = g.add("PaintClass", {"class_map": base, "mask": m, "class_name": class_name, "strength": strength},
              id="paint", title="Paint")
    img = g.add("Generate", {"generator": G, "z": z, "class_map": p}, id="gen_img")
    g.add("CollageImageGrid", {"images": img, "columns": 2}, id="grid")
    g.add("BadMask", {}, id="unused")  # not an output's ancestor: never runs
    return g


class Sink(Node):
    output_node = True
    category = "test"
    inputs = [Input("images", "IMAGE")]

    def run(self, ctx, images):
        return ()


REG.register(Sink)


def _run(g: Graph, sink_of="grid"):
    if "sink" not in g.nodes:
        g.add("Sink", {"images": g[sink_of]}, id="sink")
    return collage_nodes.runner.CollageEngine(REG).run(g)


def _failure(res) -> tuple[str, str]:
    assert res.status == "error", res.status
    assert "Traceback" not in res.error["exception_message"]
    return res.error["node_id"], res.error["exception_message"]


def test_runs_when_fine():
    assert _run(_collage()).ok


def _invalid_input(res, node: str) -> tuple[str, str]:
    """The (input, message) of the one validation error of ``node`` (found before anything ran)."""
    assert res.status == "invalid" and res.executed == [], res.status
    (err,) = res.errors["node_errors"][node]["errors"]
    return err["extra_info"]["input_name"], err["message"]


def test_unknown_class_name():
    """The model's labels are read from the checkpoint header: a wrong class is found before anything runs."""
    name, msg = _invalid_input(_run(_collage(class_name="giraffe")), "paint")
    assert name == "class_name" and msg.startswith("unknown class name 'giraffe'") and "dog" in msg
    name, msg = _invalid_input(_run(_collage(class_name="25")), "paint")
    assert name == "class_name" and msg.startswith("class id 25 out of range")


def test_missing_and_corrupt_checkpoints(tmp_path):
    res = _run(_collage(model=str(tmp_path / "missing.safetensors")))
    assert res.status == "invalid"
    text = format_errors(res.errors)
    assert "node gen (LoadGenerator)" in text and "input 'model'" in text and "missing.safetensors" in text
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 100)
    node, msg = _failure(_run(_collage(model=str(tmp_path / "junk.safetensors"))))
    assert node == "gen" and msg.startswith("input 'model':") and "not a readable safetensors file" in msg
    from safetensors.torch import save_file
    save_file({"x": torch.zeros(2)}, str(tmp_path / "plain.safetensors"))
    node, msg = _failure(_run(_collage(model=str(tmp_path / "plain.safetensors"))))
    assert node == "gen" and "without neural-collage metadata" in msg
    np.savez(tmp_path / "notgen.npz", a=np.zeros(3))
    node, msg = _failure(_run(_collage(model=str(tmp_path / "notgen.npz"))))
    assert node == "gen" and msg.startswith("input 'model': not a generator snapshot")
    (tmp_path / "trunc.safetensors").write_bytes(TINY.read_bytes()[:5000])
    node, msg = _failure(_run(_collage(model=str(tmp_path / "trunc.safetensors"))))
    assert node == "gen" and msg.startswith("input 'model':")


@pytest.mark.parametrize("ndim", [1, 4, 5])
def test_mask_of_wrong_ndim(ndim):
    node, msg = _failure(_run(_collage(mask_node=("BadMask", {"ndim": ndim}))))
    assert node == "paint" and msg.startswith("input 'mask': mask has shape") and "expected a MASK [B, H, W]" in msg


def test_mask_batch_mismatch_and_values():
    g = _collage(mask_node=("BadMask", {"ndim": 3, "batch": 3}))
    g.add("PaintClass", {"class_map": g["paint"], "mask": g.add("BadMask", {"ndim": 3, "batch": 2}),
                         "class_name": "fox"}, id="paint2")
    g["gen_img"].set(class_map=g["paint2"])
    node, msg = _failure(_run(g))
    assert node == "paint2" and msg == ("input 'mask': mask has batch 2 but the class map has 3 variants; they must "
                                        "match (or one be 1)")
    node, msg = _failure(_run(_collage(mask_node=("BadValueMask", {"value": "2.0"}))))
    assert node == "paint" and msg.startswith("input 'mask': mask has values in [2, 2]")
    node, msg = _failure(_run(_collage(mask_node=("BadValueMask", {"value": "nan"}))))
    assert node == "paint" and "NaN" in msg
    # masks of another size are resized, not refused
    assert _run(_collage(mask_node=("BadMask", {"ndim": 2, "size": 17}))).ok


def test_out_of_range_values():
    res = _run(_collage(strength=1.5))
    assert res.status == "invalid"
    err = res.errors["node_errors"]["paint"]["errors"][0]
    assert err["type"] == "value_bigger_than_max" and err["extra_info"]["input_name"] == "strength"
    # within the widget's range, beyond this model's 8 layers: found before running, from the checkpoint header
    name, msg = _invalid_input(_run(_collage(layer_end=12)), "map")
    assert name == "layer_end" and msg.startswith("12 is past the model's last sCBN layer (7")
    g = _collage()
    g["map"].set(layer_start=6, layer_end=3)
    node, msg = _failure(_run(g))
    assert node == "map" and msg.startswith("input 'layer_end': the range ends")


def test_feature_blend_errors():
    g = _collage()
    fb = g.add("FeatureBlend", {"generator": g["gen"], "reference": g["z"], "mask": g["mask"], "layer_start": 6,
                                "layer_end": 6}, id="blend")
    g["gen_img"].set(feature_blend=fb)
    node, msg = _failure(_run(g))
    assert node == "blend" and msg.startswith("input 'layer_start': blend point 6 out of range")
    g["blend"].set(layer_start=1, layer_end=1, mask=g.add("BadMask", {"ndim": 3, "batch": 3}))
    node, msg = _failure(_run(g))
    assert node == "blend" and msg.startswith("input 'mask': mask has batch 3 and reference has batch 2")


def test_generate_needs_exactly_one_class_input():
    g = _collage()
    g["gen_img"].set(classes=g.add("ClassSelect", {"generator": g["gen"], "class_name": "dog"}))
    node, msg = _failure(_run(g))
    assert node == "gen_img" and msg == "input 'classes': connect exactly one of 'classes' and 'class_map'"


def test_missing_and_corrupt_files(tmp_path):
    reg = REG
    g = Graph(reg)
    g.add("CollageLoadImage", {"path": str(tmp_path / "nope.png")}, id="img")
    g.add("CollageLoadMask", {"path": ""}, id="mask")
    G = g.add("LoadGenerator", {"model": str(TINY), "device": "cpu"}, id="gen")
    g.add("LoadZ", {"generator": G, "path": str(tmp_path / "z.npy")}, id="z")
    g.add("Sink", {"images": g["img"]}, id="sink")
    v = collage_nodes.engine().validate(g)
    assert not v.ok
    text = format_errors(v.to_dict())
    assert "node img (CollageLoadImage), input 'path': image file not found" in text
    assert "node mask (CollageLoadMask), input 'path': no mask file given" in text
    assert "node z (LoadZ), input 'path': latent file not found" in text
    (tmp_path / "bad.png").write_bytes(b"not a png at all")
    g2 = Graph(reg)
    g2.add("CollageLoadImage", {"path": str(tmp_path / "bad.png")}, id="img")
    g2.add("Sink", {"images": g2["img"]}, id="sink")
    node, msg = _failure(collage_nodes.runner.CollageEngine(reg).run(g2))
    assert node == "img" and msg.startswith("input 'path': cannot read image") and "bad.png" in msg


def test_bad_latent_files(tmp_path):
    np.save(tmp_path / "short.npy", np.zeros((1, 64), np.float32))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object))  # an object array: pickled by np.save
    np.save(tmp_path / "nan.npy", np.full((128,), np.nan, np.float32))
    np.save(tmp_path / "cube.npy", np.zeros((1, 1, 128), np.float32))
    (tmp_path / "junk.npy").write_bytes(b"junk")
    expect = {"short": "holds latents of size 64; the generator expects 128", "obj": "needs pickle",
              "nan": "NaN", "cube": "expected (dim_z,) or (N, dim_z)", "junk": "not a readable .npy file"}
    for name, text in expect.items():
        g = Graph(REG)
        G = g.add("LoadGenerator", {"model": str(TINY), "device": "cpu"}, id="gen")
        z = g.add("LoadZ", {"generator": G, "path": str(tmp_path / f"{name}.npy")}, id="z")
        g.add("SaveZ", {"z": z, "output_dir": str(tmp_path / "out")}, id="save")
        node, msg = _failure(collage_nodes.engine().run(g))
        assert node == "z" and msg.startswith("input 'path':") and text in msg, (name, msg)


def test_layer_sweep_custom_is_checked_at_validation():
    g = _collage()
    g.add("LayerRangeSweep", {"class_map": g["paint"], "mode": "custom", "custom": "0-1, x"}, id="sweep")
    g["gen_img"].set(class_map=g["sweep"])
    g.add("Sink", {"images": g["grid"]}, id="sink")
    v = collage_nodes.runner.CollageEngine(REG).validate(g)
    assert "node sweep (LayerRangeSweep): input 'custom': bad layer range 'x'" in format_errors(v.to_dict())


def test_save_prefix_must_stay_inside_the_output_folder(tmp_path):
    g = Graph(REG)
    G = g.add("LoadGenerator", {"model": str(TINY), "device": "cpu"}, id="gen")
    z = g.add("SampleZ", {"generator": G}, id="z")
    c = g.add("ClassSelect", {"generator": G}, id="c")
    img = g.add("Generate", {"generator": G, "z": z, "classes": c}, id="img")
    g.add("CollageSaveImage", {"images": img, "filename_prefix": "../escape", "output_dir": str(tmp_path)}, id="save")
    node, msg = _failure(collage_nodes.engine().run(g))
    assert node == "save" and msg.startswith("input 'filename_prefix':")


def test_grid_label_counts_are_checked():
    """Typed labels that do not match the grid are refused before anything runs; linked ones (from Sample z or a
    sweep) when the grid node runs. Either way the message names the node and the input."""
    g = _collage()  # 2 latents x 1 variant, in 2 columns: 1 row, 2 columns
    g["grid"].set(col_labels="cat 0, cat 0.5, cat 1")
    name, msg = _invalid_input(_run(g), "grid")
    assert name == "col_labels" and msg.startswith("3 column label(s) for 2 columns")
    g["grid"].set(col_labels="", row_labels="seed 1\nseed 2")
    name, msg = _invalid_input(_run(g), "grid")
    assert name == "row_labels" and msg.startswith("2 row label(s) for 1 rows")
    assert "node grid (CollageImageGrid), input 'row_labels'" in format_errors(_run(g).errors)
    g["grid"].set(row_labels="", columns=1)  # now 2 rows of 1: Sample z's two labels fit the rows, not the column
    g["grid"].set(col_labels=g["z"].out(1))
    node, msg = _failure(_run(g))
    assert node == "grid" and msg.startswith("input 'col_labels': 2 column label(s) for 1 columns") \
        and "set columns to 2" in msg
    g["grid"].set(col_labels="", row_labels=g["z"].out(1))
    assert _run(g).ok
