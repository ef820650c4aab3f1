"""neural-collage map / collage_app.batch.map_workflow: rows from specs, per-row folders, the manifest, resuming,
failing rows, and the same pictures through a local Ray with two workers."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from collage_app.batch import MANIFEST, MapError, MapSpecError, build_rows, map_workflow, read_manifest
from collage_app.cli import main
from nodes_support import ROOT, TINY, WORKFLOWS, api, assert_pictures_close, use_tiny

COLLAGE = str(WORKFLOWS / "class_collage.json")
TINY_SET = f"Generator.model={TINY}"


def _manifest(out) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]


def _files(out) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*.png"))}


# ------------------------------------------------------------------------------------------------ specs
def test_specs_make_rows_with_readable_ids(tmp_path):
    rows = build_rows("Latent.seed=0:3")
    assert [(r.id, r.index, r.inputs) for r in rows] == [
        ("seed-0", 0, {"Latent.seed": 0}), ("seed-1", 1, {"Latent.seed": 1}), ("seed-2", 2, {"Latent.seed": 2})]
    assert [r.inputs["2.seed"] for r in build_rows("2.seed=10:0:-5")] == [10, 5]
    prod = build_rows(["Latent.seed=0:2", 'Paint cat.class_name=["cat", "tiger"]'])
    assert [r.id for r in prod] == ["seed-0_class_name-cat", "seed-0_class_name-tiger", "seed-1_class_name-cat",
                                    "seed-1_class_name-tiger"]
    assert prod[1].inputs == {"Latent.seed": 0, "Paint cat.class_name": "tiger"}
    (tmp_path / "a").mkdir()
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / "a" / name).write_bytes(b"")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "a.png").write_bytes(b"")
    assert [(r.id, r.inputs["Photo.path"]) for r in build_rows(f"Photo.path={tmp_path}/a")] == [
        ("a", f"{tmp_path}/a/a.jpg"), ("b", f"{tmp_path}/a/b.png")]
    ids = [r.id for r in build_rows(f"Photo.path={tmp_path}/*/*.png")]
    assert ids == ["b", "a"]  # a/b.png, b/a.png
    assert [r.id for r in build_rows(f"Photo.path={tmp_path}/*/a.*")] == ["a", "a~2"]  # same stem: unique ids
    (tmp_path / "t.csv").write_text('id,Latent.seed,Paint cat.class_name,Paint cat.strength\n'
                                    'first,1,tiger,0.5\n,2,"""12""",\n')
    rows = build_rows(str(tmp_path / "t.csv"))
    assert [(r.id, r.inputs) for r in rows] == [
        ("first", {"Latent.seed": 1, "Paint cat.class_name": "tiger", "Paint cat.strength": 0.5}),
        ("seed-2_class_name-12", {"Latent.seed": 2, "Paint cat.class_name": "12"})]  # empty cell: not set
    (tmp_path / "t.jsonl").write_text('{"Latent.seed": 4, "id": "x"}\n\n{"Latent.seed": 5}\n')
    assert [(r.id, r.inputs) for r in build_rows(str(tmp_path / "t.jsonl"))] == [
        ("x", {"Latent.seed": 4}), ("seed-5", {"Latent.seed": 5})]


@pytest.mark.parametrize(("spec", "message"), [
    ("Latent.seed=5:5", "the range 5:5 is empty"),
    ("Latent.seed=0:9:0", "step cannot be 0"),
    ("Latent.seed=7", "VALUES must be a range"),
    ("seed=0:4", "is not NODE.INPUT"),
    ("Latent.seed=[1, 2", "not a JSON list"),
    ("Latent.seed=[]", "non-empty JSON list"),
    ("Photo.path=/nonexistent/*.png", "matches no file"),
    ("rows.csv", "no such file"),
    ("rows.txt", "expected NODE.INPUT=VALUES"),
])
def test_bad_specs_are_named(spec, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(MapSpecError, match=message) as e:
        build_rows(spec)
    assert str(e.value).startswith(f"--over {spec!r}: ")


def test_bad_specs_on_the_command_line(tmp_path, capsys):
    out = str(tmp_path / "out")
    assert main(["map", COLLAGE, "--over", "Latent.sed=0:4", "--out", out, "--set", TINY_SET]) == 2
    err = capsys.readouterr().err
    assert "error: --over 'Latent.sed=0:4': node 2 (SampleZ) has no input 'sed'" in err and "Traceback" not in err
    assert main(["map", COLLAGE, "--over", "Nope.seed=0:4", "--out", out]) == 2
    assert "no node with id or title 'Nope'" in capsys.readouterr().err
    assert main(["map", COLLAGE, "--over", "Latent.seed=0:2", "--over", "2.seed=[1]", "--out", out]) == 2
    assert "input 'seed' of node 2 is already given by --over 'Latent.seed=0:2'" in capsys.readouterr().err
    assert main(["map", COLLAGE, "--over", "Latent.seed=0:4", "--out", out, "--workers", "2"]) == 2
    assert "--workers needs --ray" in capsys.readouterr().err
    # the workflow is broken apart from the mapped inputs: refused before any row runs
    assert main(["map", COLLAGE, "--over", "Latent.seed=0:4", "--out", out, "--set", "Generator.model=nope"]) == 1
    assert "input 'model'" in capsys.readouterr().err and not (tmp_path / "out").exists()
    assert main(["map", COLLAGE, "--over", "Latent.seed=0:3", "--out", out, "--dry-run"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == 'seed-0\t{"Latent.seed": 0}'


# ------------------------------------------------------------------------------------------------ in-process
def test_map_seeds_on_the_command_line(tmp_path, capsys):
    out = tmp_path / "out"
    code = main(["map", COLLAGE, "--over", "Latent.seed=0:4", "--out", str(out), "--set", TINY_SET,
                 "--device", "cpu", "-q"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert '"ok": 4, "failed": 0' in err
    recs = _manifest(out)
    assert [r["row"] for r in recs] == ["seed-0", "seed-1", "seed-2", "seed-3"]
    assert all(r["status"] == "ok" and r["error"] is None and r["seconds"] > 0 and r["worker"] for r in recs)
    assert recs[2]["inputs"] == {"Latent.seed": 2}
    assert recs[2]["outputs"] == ["seed-2/class_collage/source_00001.png", "seed-2/class_collage/collage_00001.png"]
    prompt = json.loads(Image.open(out / recs[2]["outputs"][1]).text["prompt"])
    assert prompt["2"]["inputs"]["seed"] == 2 and prompt["10"]["inputs"]["output_dir"] == str(out / "seed-2")
    pics = [np.asarray(Image.open(out / r["outputs"][1])) for r in recs]
    assert not np.array_equal(pics[0], pics[1])  # the seed changed the picture
    # the same as neural-collage run with that seed
    assert main(["run", COLLAGE, "--set", TINY_SET, "--set", "Latent.seed=2", "--out", str(tmp_path / "one"),
                 "--device", "cpu", "-q"]) == 0
    one = np.asarray(Image.open(capsys.readouterr().out.split()[1]))
    assert_pictures_close(one, pics[2], what="map's row and the plain run")
    # again: nothing to do
    assert main(["map", COLLAGE, "--over", "Latent.seed=0:4", "--out", str(out), "--set", TINY_SET, "-q"]) == 0
    assert '"ok": 0, "failed": 0, "already_done": 4' in capsys.readouterr().err
    assert len(_manifest(out)) == 4


def test_map_a_folder_of_pictures_with_a_failing_row(tmp_path):
    """photo_edit over a folder: two pictures of the workflow's size and one of another size, which fails (the
    workflow's edit mask is drawn for 451x300) without stopping the others."""
    photos = tmp_path / "photos"
    photos.mkdir()
    chelsea = Image.open(ROOT / "workflows" / "examples" / "chelsea.png").convert("RGB")
    chelsea.save(photos / "a_cat.png")
    chelsea.transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(photos / "b_flipped.jpg")
    chelsea.resize((64, 64)).save(photos / "c_small.png")
    out = tmp_path / "out"
    wf = use_tiny(api("photo_edit"))
    res = map_workflow(wf, f"Photo.path={photos}", out, progress=False)
    assert (res.total, res.ok, res.failed, res.skipped, res.interrupted) == (3, 2, 1, 0, False)
    recs = {r["row"]: r for r in _manifest(out)}
    assert list(recs) == ["a_cat", "b_flipped", "c_small"]
    assert recs["c_small"]["status"] == "error" and recs["c_small"]["outputs"] == []
    assert "node 5 (CropToModel) failed: input 'mask': the mask is 451x300 but the photo is 64x64" in \
        recs["c_small"]["error"]
    for row in ("a_cat", "b_flipped"):
        assert recs[row]["status"] == "ok" and len(recs[row]["outputs"]) == 4
        assert all((out / p).is_file() and p.startswith(f"{row}/photo_edit/") for p in recs[row]["outputs"])
    results = [np.asarray(Image.open(out / f"{r}/photo_edit/result_00001.png")) for r in ("a_cat", "b_flipped")]
    assert results[0].shape == (300, 451, 3) and not np.array_equal(results[0], results[1])
    # a second run retries the failed row only; it fails again and is recorded again
    res = map_workflow(wf, f"Photo.path={photos}", out, progress=False)
    assert (res.skipped, res.ok, res.failed) == (2, 0, 1)
    assert [r["row"] for r in _manifest(out)] == ["a_cat", "b_flipped", "c_small", "c_small"]


def test_map_validates_with_the_file_rules_its_rows_run_with(tmp_path, monkeypatch, capsys):
    """A workflow whose picture is named relative to its own file (../examples/chelsea.png) maps from any folder,
    as `run` and `validate` accept it (it was refused before the first row: "image file not found")."""
    folder = tmp_path / "flows" / "api"
    folder.mkdir(parents=True)
    (tmp_path / "flows" / "examples").mkdir()
    picture = (ROOT / "workflows" / "examples" / "chelsea.png").read_bytes()
    (tmp_path / "flows" / "examples" / "chelsea.png").write_bytes(picture)
    wf = api("photo_edit")
    tiny = use_tiny(json.loads(json.dumps(wf)))
    for nid, node in wf.items():  # tiny models, few steps, but the picture's path left relative
        if node["class_type"] != "CollageLoadImage":
            wf[nid] = tiny[nid]
    assert any(n["inputs"].get("path") == "../examples/chelsea.png" for n in wf.values())
    (folder / "photo_edit.json").write_text(json.dumps(wf))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["map", str(folder / "photo_edit.json"), "--over", 'Paint tiger.class_name=["tiger","cat"]',
                 "--out", "o", "-q"]) == 0, capsys.readouterr().err
    assert {r["status"] for r in _manifest(elsewhere / "o")} == {"ok"}


def test_map_a_csv_table(tmp_path):
    table = tmp_path / "rows.csv"
    table.write_text("id,Latent.seed,Paint cat.class_name,Paint cat.strength\ncat3,3,cat,\ntiger3,3,tiger,\n"
                     "bad,4,giraffe,\ninvalid,5,cat,3\n")
    out = tmp_path / "out"
    res = map_workflow(COLLAGE, str(table), out, sets=[TINY_SET], device="cpu", progress=False)
    assert (res.ok, res.failed) == (2, 2)
    recs = {r["row"]: r for r in res.records}
    assert recs["bad"]["error"].startswith("invalid workflow: node 8 (PaintClass), input 'class_name': unknown "
                                           "class name 'giraffe'")  # found from the model's header, before running
    assert recs["invalid"]["error"] == ("invalid workflow: node 8 (PaintClass), input 'strength': value 3.0 bigger "
                                        "than max of 1.0")
    src = [np.asarray(Image.open(out / f"{r}/class_collage/source_00001.png")) for r in ("cat3", "tiger3")]
    col = [np.asarray(Image.open(out / f"{r}/class_collage/collage_00001.png")) for r in ("cat3", "tiger3")]
    assert np.array_equal(*src) and not np.array_equal(*col)  # same seed, other painted class
    # rows as Python dicts, with a product
    res = map_workflow(COLLAGE, [[{"Paint cat.strength": 0.0}, {"Paint cat.strength": 1.0}],
                                               "Latent.seed=[5]"], tmp_path / "py", sets=[TINY_SET],
                                     progress=False)
    assert [r["row"] for r in res.records] == ["strength-0.0_seed-5", "strength-1.0_seed-5"]


def test_resume_after_an_interruption(tmp_path):
    out = tmp_path / "out"
    seen = []

    def stop_after_three(rec):
        seen.append(rec["row"])
        if len(seen) == 3:
            raise KeyboardInterrupt

    res = map_workflow(COLLAGE, "Latent.seed=0:6", out, sets=[TINY_SET], progress=False,
                                     on_record=stop_after_three)
    assert res.interrupted and res.ok == 3
    assert [r["row"] for r in _manifest(out)] == ["seed-0", "seed-1", "seed-2"]
    first = {p: (out / p).stat().st_mtime_ns for r in _manifest(out) for p in r["outputs"]}
    # a row cut in the middle left a file behind, and the manifest's last line was cut by a crash
    (out / "seed-3" / "class_collage").mkdir(parents=True)
    (out / "seed-3" / "class_collage" / "source_00001.png").write_bytes(b"partial")
    with open(out / MANIFEST, "a") as f:
        f.write('{"row": "seed-3", "sta')
    res = map_workflow(COLLAGE, "Latent.seed=0:6", out, sets=[TINY_SET], progress=False)
    assert (res.skipped, res.ok, res.failed, res.interrupted) == (3, 3, 0, False)
    assert sorted(read_manifest(out / MANIFEST)) == [f"seed-{i}" for i in range(6)]
    assert all((out / p).stat().st_mtime_ns == t for p, t in first.items())  # finished rows were not redone
    assert sorted(os.listdir(out / "seed-3" / "class_collage")) == ["collage_00001.png", "source_00001.png"]
    assert (out / "seed-3/class_collage/source_00001.png").read_bytes()[:4] == b"\x89PNG"
    # the same folder with other rows under the same ids is refused
    with pytest.raises(MapError, match="row seed-0 was made with inputs"):
        map_workflow(COLLAGE, [[{"Latent.seed": 9, "id": "seed-0"}]], out, sets=[TINY_SET],
                                   progress=False)


def test_ctrl_c_stops_the_command_cleanly(tmp_path):
    """SIGINT to a running `neural-collage map`: exit 130, a manifest of whole lines; the next run finishes."""
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "collage_app.cli", "map", COLLAGE, "--over", "Latent.seed=0:400", "--out", str(out),
           "--set", TINY_SET, "--device", "cpu", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and proc.poll() is None:
        if (out / MANIFEST).is_file() and (out / MANIFEST).read_text().count("\n") >= 5:
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    if proc.returncode == 0:
        pytest.skip("the map finished before it could be interrupted")
    assert proc.returncode == 130, err
    assert "interrupted" in err and "run the same command again to resume" in err and "Traceback" not in err
    text = (out / MANIFEST).read_text()
    assert text.endswith("\n")
    done = [json.loads(line) for line in text.splitlines()]
    assert 5 <= len(done) < 400 and all(r["status"] == "ok" for r in done)
    res = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert f'"already_done": {len(done)}' in res.stderr
    recs = _manifest(out)
    assert len(recs) == 400 and len({r["row"] for r in recs}) == 400


# ------------------------------------------------------------------------------------------------ Ray
def test_ray_missing_is_a_clear_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    assert main(["map", COLLAGE, "--over", "Latent.seed=0:2", "--out", str(tmp_path / "o"), "--set", TINY_SET,
                 "--ray", "-q"]) == 1
    assert "--ray needs Ray, which is not installed: pip install 'neural-collage[scale]'" in capsys.readouterr().err


def test_ray_two_workers_give_the_same_pictures_and_manifest(tmp_path, capsys):
    pytest.importorskip("ray.data")
    out = tmp_path / "out"
    args = ["map", COLLAGE, "--over", "Latent.seed=0:6", "--over", 'Paint cat.class_name=["cat","tiger"]',
            "--out", str(out), "--set", TINY_SET, "--device", "cpu", "-q"]
    assert main(args) == 0, capsys.readouterr().err
    local = _files(out)
    local_recs = {r["row"]: r for r in _manifest(out)}
    (out).rename(tmp_path / "in-process")
    assert main([*args, "--ray", "local", "--workers", "2"]) == 0, capsys.readouterr().err
    # Ray's workers are other processes with their own thread count: pixels within one grey level, same text
    assert _files(out).keys() == local.keys()
    for rel, data in _files(out).items():
        here, there = (Image.open(io.BytesIO(b)) for b in (local[rel], data))
        assert here.text == there.text, rel
        assert_pictures_close(here, there, what=rel)
    ray_recs = {r["row"]: r for r in _manifest(out)}
    assert ray_recs.keys() == local_recs.keys() and len(ray_recs) == 12
    for row, rec in ray_recs.items():
        assert {k: rec[k] for k in ("index", "inputs", "outputs", "status", "error")} == \
            {k: local_recs[row][k] for k in ("index", "inputs", "outputs", "status", "error")}
    assert len({r["worker"] for r in ray_recs.values()}) == 2  # both workers ran rows


@pytest.mark.slow
def test_ray_on_a_simulated_two_node_cluster(tmp_path, capsys):
    """A Ray cluster of three nodes on this machine (Ray's own cluster utilities): a head with no CPUs for workers
    (the driver's), and two nodes of two CPUs; two workers that reserve two CPUs each (--threads 2) can only start
    one on each of the other nodes. Every row is done once, on a node that is not the driver's, with the same
    pictures as in-process. (Which of the two workers takes which rows is Ray's choice: with a tiny model the first
    worker up may take them all, so the test does not ask for both.)"""
    pytest.importorskip("ray.data")
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    try:
        head = cluster.head_node.node_id[:12]
        workers = {cluster.add_node(num_cpus=2).node_id[:12] for _ in range(2)}
        cluster.wait_for_nodes()
        out = tmp_path / "out"
        args = ["map", COLLAGE, "--over", "Latent.seed=0:4", "--out", str(out), "--set", TINY_SET, "--device", "cpu",
                "-q"]
        assert main([*args, "--ray", cluster.address, "--workers", "2", "--threads", "2"]) == 0, \
            capsys.readouterr().err
        assert "Ray workers of 2 CPU(s) each" in capsys.readouterr().err
    finally:
        cluster.shutdown()
    recs = _manifest(out)
    assert sorted(r["row"] for r in recs) == [f"seed-{i}" for i in range(4)] and {r["status"] for r in recs} == {"ok"}
    nodes = {r["worker"].split(" node ")[1] for r in recs}
    assert nodes <= workers and head not in nodes, ([r["worker"] for r in recs], head, workers)
    ray_files = _files(out)
    out.rename(tmp_path / "ray")
    assert main(args) == 0
    assert _files(out).keys() == ray_files.keys()
    for rel, data in _files(out).items():
        assert_pictures_close(Image.open(io.BytesIO(data)), Image.open(io.BytesIO(ray_files[rel])), what=rel)
