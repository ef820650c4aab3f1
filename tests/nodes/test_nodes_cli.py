"""The neural-collage commands for workflows: run, validate, nodes, and --set / --out / --device."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from PIL import Image

import collage_nodes
from collage_app.cli import main
from collage_app.overrides import OverrideError, apply_set, parse_set
from nodes_support import ROOT, TINY, WORKFLOWS, api

TINY_SET = f"Generator.model={TINY}"


def test_parse_set():
    assert parse_set("3.seed=7") == ("3", "seed", 7)
    assert parse_set("Base class.base_class=cat") == ("Base class", "base_class", "cat")
    assert parse_set('Base class.base_class="12"') == ("Base class", "base_class", "12")
    assert parse_set("v1.2 node.strength=0.5") == ("v1.2 node", "strength", 0.5)
    assert parse_set("1.model=a=b.safetensors") == ("1", "model", "a=b.safetensors")
    assert parse_set("1.flag=true") == ("1", "flag", True)
    assert parse_set("1.name=") == ("1", "name", "")
    assert parse_set("9.z=[\"2\", 0]") == ("9", "z", ["2", 0])
    for bad in ("seed=7", "3.seed", ".seed=1", "3.=1", "3.se ed=1"):
        with pytest.raises(OverrideError):
            parse_set(bad)


def test_apply_set_by_id_and_title():
    reg = collage_nodes.registry()
    wf = api("class_collage")
    assert apply_set(wf, reg, "Paint cat", "strength", 0.3) == "8"
    assert apply_set(wf, reg, "2", "seed", 9) == "2"
    assert wf["8"]["inputs"]["strength"] == 0.3 and wf["2"]["inputs"]["seed"] == 9
    with pytest.raises(OverrideError, match="no node with id or title 'Nope'"):
        apply_set(wf, reg, "Nope", "seed", 1)
    with pytest.raises(OverrideError, match=r"node 2 \(SampleZ\) has no input 'sed'"):
        apply_set(wf, reg, "2", "sed", 1)
    wf["4"]["_meta"]["title"] = "Collage"
    with pytest.raises(OverrideError, match="used by nodes 4, 9"):
        apply_set(wf, reg, "Collage", "combine", "grid")


def test_run(tmp_path, capsys):
    code = main(["run", str(WORKFLOWS / "class_collage.json"), "--set", TINY_SET, "--set", "Latent.seed=3",
                 "--set", "Paint cat.class_name=tiger", "--out", str(tmp_path), "--device", "cpu", "--quiet"])
    out, err = capsys.readouterr()
    assert code == 0, err
    paths = out.split()
    assert [p.rsplit("/", 2)[-2:] for p in paths] == [["class_collage", "source_00001.png"],
                                                       ["class_collage", "collage_00001.png"]]
    prompt = json.loads(Image.open(paths[1]).text["prompt"])
    assert prompt["1"]["inputs"] == {"model": str(TINY), "device": "cpu", "dtype": "float32", "truncation": 0.4}
    assert prompt["2"]["inputs"]["seed"] == 3 and prompt["8"]["inputs"]["class_name"] == "tiger"
    assert prompt["10"]["inputs"]["output_dir"] == str(tmp_path)
    assert "done: 10 node(s) run" in err and "Traceback" not in err


def test_run_ui_format_with_progress(tmp_path, capsys):
    code = main(["run", str(WORKFLOWS / "layer_ablation_grid.json"), "--set", TINY_SET, "--out", str(tmp_path)])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert out.strip().endswith("layer_ablation_grid_00001.png") and "workflow" in err  # the tqdm bar


def test_validate(capsys):
    assert main(["validate", str(WORKFLOWS / "feature_transplant.json"), "--set", TINY_SET]) == 0
    assert "valid (13 nodes, 1 output node)" in capsys.readouterr().out


def test_validate_reports_every_error_with_node_and_input(tmp_path, capsys):
    wf = api("class_collage")
    wf["1"]["inputs"]["model"] = "no-such-model"
    wf["2"]["inputs"]["seed"] = -1
    wf["8"]["inputs"]["strength"] = 3
    wf["9"]["inputs"]["class_map"] = ["2", 0]
    wf["11"] = {"class_type": "NoSuchNode", "inputs": {}}
    del wf["6"]["inputs"]["radius_x"]
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(wf))
    assert main(["validate", str(path)]) == 1
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert lines[0] == f"{path}: invalid workflow (6 errors in 6 nodes)"
    assert "  node 1 (LoadGenerator 'Generator'), input 'model': file not found: no-such-model (looked for " in err
    assert "embedded models: emoji-animals" in err
    assert "  node 2 (SampleZ 'Latent'), input 'seed': value -1 smaller than min of 0" in err
    assert "  node 6 (CollageEllipseMask 'Region'), input 'radius_x': Required input is missing" in err
    assert "  node 8 (PaintClass 'Paint cat'), input 'strength': value 3.0 bigger than max of 1.0" in err
    assert "  node 9 (Generate 'Collage'), input 'class_map': Return type mismatch" in err
    assert "  node 11 (NoSuchNode): Node type 'NoSuchNode' not found" in err
    assert "Traceback" not in err
    assert main(["run", str(path), "--set", TINY_SET]) == 1  # run refuses it the same way
    assert "input 'seed'" in capsys.readouterr().err


def test_a_class_the_model_lacks_is_refused_before_running(tmp_path, capsys):
    """Validation reads the model's labels from the checkpoint header: a misspelled class stops the run before
    anything is written, naming the node, the input and the valid names."""
    for cmd in ("validate", "run"):
        code = main([cmd, str(WORKFLOWS / "class_collage.json"), "--set", TINY_SET, "--set", "8.class_name=tigre",
                     "--out", str(tmp_path)] + (["-q"] if cmd == "run" else []))
        err = capsys.readouterr().err
        assert code == 1 and "Traceback" not in err
        assert ("node 8 (PaintClass 'Paint cat'), input 'class_name': unknown class name 'tigre'; the model's "
                "classes are: dog, cat, tiger,") in err
    assert not list(tmp_path.rglob("*.png"))


def test_run_reports_a_failing_node_and_what_it_wrote(tmp_path, capsys):
    import numpy as np

    wf = api("class_collage")
    z = tmp_path / "z.npy"
    np.save(z, np.zeros((1, 3), np.float32))  # the tiny model's z has another size: fails when Load z runs
    wf["2"] = {"class_type": "LoadZ", "inputs": {"generator": ["1", 0], "path": str(z)}, "_meta": {"title": "z"}}
    path = tmp_path / "wf.json"
    path.write_text(json.dumps(wf))
    code = main(["run", str(path), "--set", TINY_SET, "--out", str(tmp_path / "out"), "-q"])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "error: node 2 (LoadZ 'z') failed: input 'path':" in err


def test_command_line_mistakes(tmp_path, capsys):
    wf = str(WORKFLOWS / "class_collage.json")
    assert main(["run", wf, "--set", "Nope.seed=1"]) == 2
    assert "no node with id or title 'Nope'" in capsys.readouterr().err
    assert main(["run", wf, "--set", "seed=1"]) == 2
    assert main(["run", str(tmp_path / "missing.json")]) == 1
    assert "cannot read workflow" in capsys.readouterr().err
    (tmp_path / "broken.json").write_text("{not json")
    assert main(["validate", str(tmp_path / "broken.json")]) == 1
    (tmp_path / "list.json").write_text("[1, 2]")
    assert main(["validate", str(tmp_path / "list.json")]) == 1
    assert "Workflow must be a JSON object" in capsys.readouterr().err


def test_nodes_lists_object_info(capsys):
    assert main(["nodes"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) == set(collage_nodes.registry().names())
    paint = info["PaintClass"]
    assert paint["input"]["required"]["strength"] == ["FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0,
                                                                "step": 0.01, "tooltip": paint["input"]["required"][
                                                                    "strength"][1]["tooltip"]}]
    assert paint["output"] == ["CLASS_MAP"] and paint["category"] == "neural-collage/class"
    assert info["CollageSaveImage"]["output_node"] is True
    assert info["LoadGenerator"]["input"]["required"]["device"][0] == ["auto", "cpu", "cuda", "mps"]
    assert info["SampleZ"]["input"]["required"]["seed"][1]["control_after_generate"] is True


def test_console_script_exit_codes(tmp_path):
    """The real entry point in a fresh process: exit status and no traceback."""
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"1": {"class_type": "SampleZ", "inputs": {"seed": "x"}}}))
    p = subprocess.run([sys.executable, "-m", "collage_app.cli", "validate", str(bad)], capture_output=True,
                       text=True, cwd=ROOT, timeout=120)
    assert p.returncode == 1 and "Traceback" not in p.stderr
    assert "node 1 (SampleZ), input 'generator': Required input is missing" in p.stderr
    assert "node 1 (SampleZ), input 'seed': expected an integer" in p.stderr


def test_one_registry_per_command_and_none_per_saved_image(tmp_path, monkeypatch):
    """The CLI builds the node registry once; savers embed the UI workflow with the run's registry (ctx.registry)."""
    import collage_nodes

    built = []
    real = collage_nodes.registry
    monkeypatch.setattr(collage_nodes, "registry", lambda: built.append(1) or real())
    assert main(["run", str(WORKFLOWS / "class_collage.json"), "--set", TINY_SET, "--out", str(tmp_path), "-q"]) == 0
    assert len(built) == 1 and len(list(tmp_path.rglob("*.png"))) == 2
