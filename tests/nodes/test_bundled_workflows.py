"""The saved workflows as package data: found by name from any folder (``run``, ``validate``, ``map``), listed and
copied out by ``neural-collage examples``. The installed wheel itself is tested by test_installed_wheel.py."""

from __future__ import annotations

import json
import sys

import pytest
from PIL import Image

from collage_app.cli import main
from collage_app.examples import bundle_files, bundled_names, descriptions, workflows_folder
from nodes_support import ROOT, TINY, WORKFLOWS

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

TINY_SET = f"Generator.model={TINY}"


def test_the_folder_is_the_checkouts_workflows_installed_or_not(monkeypatch):
    assert workflows_folder() == WORKFLOWS.resolve()
    monkeypatch.setitem(sys.modules, "collage_workflows", None)  # not installed (a clone, or an older install)
    assert workflows_folder() == WORKFLOWS.resolve()


def test_every_bundled_file_is_package_data():
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools["package-dir"]["collage_workflows"] == "workflows"
    patterns = setuptools["package-data"]["collage_workflows"]
    files = bundle_files(WORKFLOWS)
    assert {"api/class_collage.json", "class_collage.json", "class_collage.jpg", "examples/chelsea.png"} <= {
        f.as_posix() for f in files}
    missed = [f.as_posix() for f in files if not any(f.match(p) for p in patterns)]
    assert not missed, f"would not be installed: {missed}"


def test_the_names_are_the_api_sources_each_with_an_editor_file_a_card_and_a_description():
    names = bundled_names()
    assert names == sorted(p.stem for p in (WORKFLOWS / "api").glob("*.json")) and "class_collage" in names
    about = descriptions()
    for name in names:
        assert (WORKFLOWS / f"{name}.json").is_file() and (WORKFLOWS / f"{name}.jpg").is_file(), name
        assert about.get(name), f"workflows/README.md has no table row for {name}.json"


@pytest.mark.parametrize("name", ["class_collage", "class_collage.json"])
def test_run_by_name_from_an_empty_folder(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "class_collage").mkdir()  # the output folder of an earlier run is no workflow file
    assert main(["run", name, "--set", TINY_SET, "--out", "out", "--quiet"]) == 0
    out = capsys.readouterr().out.split()
    assert out == ["out/class_collage/source_00001.png", "out/class_collage/collage_00001.png"]
    prompt = json.loads(Image.open(tmp_path / out[1]).text["prompt"])
    assert prompt == {**json.loads((WORKFLOWS / "api" / "class_collage.json").read_text()), **{
        k: prompt[k] for k in ("1", "5", "10")}}  # the API source; only the model and the output folders changed
    assert prompt["1"]["inputs"]["model"] == str(TINY) and prompt["5"]["inputs"]["output_dir"] == "out"


def test_a_file_of_that_name_wins(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    mine = json.loads((WORKFLOWS / "api" / "class_collage.json").read_text())
    mine["5"]["inputs"]["filename_prefix"] = "mine/source"
    (tmp_path / "class_collage").write_text(json.dumps(mine))
    assert main(["run", "class_collage", "--set", TINY_SET, "--out", "out", "--quiet"]) == 0
    assert capsys.readouterr().out.split()[0] == "out/mine/source_00001.png"


def test_the_pictures_of_a_bundled_real_image_workflow_are_found_from_anywhere(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["validate", "photo_edit", "--set", TINY_SET]) == 0
    out = capsys.readouterr().out
    assert out.startswith(str(WORKFLOWS.resolve() / "api" / "photo_edit.json")) and ": valid (" in out


def test_map_by_name(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["map", "class_collage", "--over", "Latent.seed=0:1", "--set", TINY_SET, "--out", "runs", "-q"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "runs" / "manifest.jsonl").read_text().splitlines()]
    assert [r["status"] for r in rows] == ["ok"] and len(rows[0]["outputs"]) == 2


def test_an_unknown_name_is_refused_with_the_closest_one_and_the_list(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", "clas_collage"]) == 1
    err = capsys.readouterr().err
    assert "error: cannot read workflow clas_collage: no such file or bundled workflow; did you mean " \
           "'class_collage'?" in err
    assert f"(bundled: {', '.join(bundled_names())})" in err and "Traceback" not in err
    assert main(["validate", "workflows/photo_edit.json"]) == 1  # a clone's path typed where there is no clone
    assert "workflows/photo_edit.json: no such file (the bundled workflow of that name is named without a folder: " \
           "photo_edit)" in capsys.readouterr().err


def test_examples_lists_every_bundled_workflow_with_its_description(capsys):
    assert main(["examples"]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    about = descriptions()
    assert [line.split()[0] for line in lines] == bundled_names()
    for line in lines:
        name, text = line.split(maxsplit=1)
        assert about[name].startswith(text.removesuffix(" ...")), line
    assert f"{len(lines)} workflows in {WORKFLOWS.resolve()}" in err


def test_examples_copies_the_bundle_and_never_overwrites_without_force(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["examples", "mine"]) == 0
    out, err = capsys.readouterr()
    expected = bundle_files(WORKFLOWS)
    assert sorted(out.split()) == sorted(f"mine/{f.as_posix()}" for f in expected)
    for f in expected:
        assert (tmp_path / "mine" / f).read_bytes() == (WORKFLOWS / f).read_bytes(), f
    assert not (tmp_path / "mine" / "__init__.py").exists()
    # the copies run where they are: the editor file names examples/..., the API file ../examples/...
    for copy in ("mine/photo_edit.json", "mine/api/real_image_edit.json"):
        assert main(["validate", copy, "--set", TINY_SET]) == 0, capsys.readouterr().err
        assert capsys.readouterr().out.startswith(f"{copy}: valid (")

    edited = tmp_path / "mine" / "class_collage.json"
    edited.write_text("{}")
    assert main(["examples", "mine"]) == 0
    out, err = capsys.readouterr()
    assert out == "" and f"kept {len(expected)} that already exist (--force overwrites them)" in err
    assert edited.read_text() == "{}"
    assert main(["examples", "mine", "--force"]) == 0
    assert len(capsys.readouterr().out.split()) == len(expected)
    assert edited.read_bytes() == (WORKFLOWS / "class_collage.json").read_bytes()


def test_examples_into_a_file_or_onto_themselves_is_refused(tmp_path, capsys):
    (tmp_path / "f").write_text("")
    assert main(["examples", str(tmp_path / "f")]) == 2
    assert f"error: {tmp_path / 'f'} is a file, not a folder" in capsys.readouterr().err
    assert main(["examples", str(WORKFLOWS), "--force"]) == 2
    assert f"error: {WORKFLOWS} is the bundled workflows' folder itself" in capsys.readouterr().err


def test_comfyui_finds_the_pictures_next_to_the_workflows_of_an_installed_wheel(tmp_path, monkeypatch):
    """Inside ComfyUI a workflow's relative picture path is also looked up next to the pack's workflows: in a wheel
    they are site-packages/collage_workflows, not workflows/."""
    import types

    from collage_nodes import comfy

    site = tmp_path / "site-packages"
    (site / "collage_workflows" / "api").mkdir(parents=True)
    (site / "collage_workflows" / "examples").mkdir()
    picture = site / "collage_workflows" / "examples" / "p.png"
    Image.new("RGB", (2, 2)).save(picture)
    monkeypatch.setattr(comfy, "PACK_FOLDER", str(site))
    monkeypatch.setitem(sys.modules, "folder_paths", types.SimpleNamespace(get_input_directory=lambda: str(tmp_path)))
    monkeypatch.chdir(tmp_path)
    assert comfy._resolve_file("examples/p.png") == str(picture)  # as the editor files name it
    assert comfy._resolve_file("../examples/p.png") == str(site / "collage_workflows" / "api" / "../examples/p.png")
    assert comfy._resolve_file("examples/none.png") == "examples/none.png"  # not found: left for the node to report
