"""The package as PyPI and ComfyUI users get it: a wheel built from (a copy of) this checkout, installed into a new
virtual environment, runs the main job from an empty folder by the bundled workflow's name, without a path back
into the checkout.

Nothing is downloaded: the wheel is built with the build backend of the interpreter running the tests
(``--no-build-isolation``), and the new environment reuses that interpreter's libraries (torch alone would take
about 30 s and 900 MB to install again) through a ``.pth`` file naming the folders the dependencies are installed
in. A ``.pth`` line only appends a folder to ``sys.path``: the ``.pth`` files inside that folder (an editable
install of this checkout, say) are not run, and the environment's own site-packages comes first, so
neural-collage itself can only come from the wheel; the test checks that it does.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collage_app.examples import bundle_files
from nodes_support import ROOT, WORKFLOWS

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

#: what is not part of the source a wheel is built from: version control, environments, build outputs, caches and
#: (at the top) the folders runs and training write to
_NEVER = {".git", "__pycache__", ".pytest_cache", ".hypothesis", ".ruff_cache"}
_TOP = {"build", "dist", "out", "output", "runs", "data", ".cache", ".benchmarks"}

#: every module of the installed package, imported (collage_nodes.registry() imports each node module)
_WHERE = """
import importlib.metadata, json, sys
import collage_app.cli, collage_core, collage_engine, collage_nodes, collage_workflows
from collage_app.examples import workflows_folder
from collage_core.models import embedded_model_path
collage_nodes.registry()
print(json.dumps({
    "modules": {m.__name__: m.__file__ for m in (collage_app, collage_core, collage_engine, collage_nodes,
                                                 collage_workflows)},
    "all": sorted(str(getattr(m, "__file__", None)) for m in list(sys.modules.values())
                  if getattr(m, "__file__", None)),
    "workflows": str(workflows_folder()),
    "model": str(embedded_model_path("emoji-animals")),
    "dist": str(importlib.metadata.distribution("neural-collage").locate_file("")),
}))
"""


def _source_copy(dest: Path) -> Path:
    def ignore(folder: str, names: list[str]) -> set[str]:
        top = Path(folder) == ROOT
        return {n for n in names if n in _NEVER or n.endswith(".egg-info") or (top and (n in _TOP or n.startswith(
            ".venv")))}

    return Path(shutil.copytree(ROOT, dest, ignore=ignore))


def _dependency_folders() -> list[str]:
    """The folders the runtime dependencies (pyproject's, and theirs) are installed in, for this interpreter."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    todo = [re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in pyproject["project"]["dependencies"]]
    seen, folders = set(), set()
    while todo:
        name = todo.pop()
        key = re.sub(r"[-_.]+", "-", name).lower()
        if key in seen:
            continue
        seen.add(key)
        try:
            dist = importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:  # a dependency of another platform (a marker), say
            continue
        folders.add(str(Path(dist.locate_file("")).resolve()))
        todo += [re.match(r"[A-Za-z0-9._-]+", r).group(0) for r in dist.requires or [] if "extra ==" not in r]
    return sorted(folders)


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, timeout=300, **kw)
    assert r.returncode == 0, f"{' '.join(map(str, cmd))}\nexit {r.returncode}\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}"
    return r


def _can_build_or_skip() -> None:
    """Skip (saying why) where this interpreter cannot build and install a wheel without downloading anything."""
    versions = {}
    for name in ("pip", "setuptools"):  # not imported: setuptools would replace distutils in this process
        try:
            versions[name] = tuple(int(x) for x in re.findall(r"\d+", importlib.metadata.version(name))[:2])
        except importlib.metadata.PackageNotFoundError:
            pytest.skip(f"cannot build a wheel here: {name} is not installed")
    if versions["setuptools"] < (64, 0):
        pytest.skip(f"cannot build a wheel here: setuptools {versions['setuptools']} (pyproject needs >= 64)")
    if versions["setuptools"] < (70, 1) and importlib.util.find_spec("wheel") is None:  # built in since 70.1
        pytest.skip(f"cannot build a wheel here: setuptools {versions['setuptools']} needs the `wheel` package")
    if versions["pip"] < (22, 3):
        pytest.skip(f"cannot install into another environment here: pip {versions['pip']} lacks --python (22.3)")


@pytest.mark.slow
def test_the_wheel_runs_the_main_job_by_name_from_an_empty_folder(tmp_path, capsys):
    _can_build_or_skip()
    src = _source_copy(tmp_path / "src")  # the build writes build/ and *.egg-info into the folder it builds
    _run([sys.executable, "-m", "pip", "wheel", src, "--no-deps", "--no-build-isolation", "--no-index", "-q",
          "-w", tmp_path / "dist"])
    shutil.rmtree(src)
    (whl,) = (tmp_path / "dist").glob("neural_collage-*.whl")
    names = set(zipfile.ZipFile(whl).namelist())
    packaged = {f"collage_workflows/{f.as_posix()}" for f in bundle_files(WORKFLOWS)}
    packaged |= {f"collage_core/{p.relative_to(ROOT / 'collage_core').as_posix()}"
                 for p in (ROOT / "collage_core" / "models").glob("*/*") if p.is_file()}
    assert packaged <= names, f"not in the wheel: {sorted(packaged - names)}"

    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", whl])
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    (site / "_neural_collage_test_deps.pth").write_text("\n".join(_dependency_folders()) + "\n")

    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env.update(PYTHONNOUSERSITE="1", OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    empty = tmp_path / "empty"
    empty.mkdir()
    script = python.parent / ("neural-collage.exe" if os.name == "nt" else "neural-collage")
    r = _run([script, "run", "class_collage", "--out", "out", "--quiet"], cwd=empty, env=env)
    written = r.stdout.split()
    assert [Path(p).as_posix() for p in written] == ["out/class_collage/source_00001.png",
                                                     "out/class_collage/collage_00001.png"], r.stdout

    where = json.loads(_run([python, "-c", _WHERE], cwd=empty, env=env).stdout)
    inside = Path(venv).resolve()
    for name, path in {**where["modules"], "workflows": where["workflows"], "model": where["model"],
                       "dist": where["dist"]}.items():
        assert Path(path).resolve().is_relative_to(inside), f"{name} comes from {path}, not from the new environment"
    back = [p for p in where["all"] if Path(p).is_absolute() and Path(p).resolve().is_relative_to(ROOT.resolve())]
    assert not back, f"modules imported from the checkout: {back}"

    # the pictures: valid PNGs of the model's size, the same as the checkout makes (up to float reordering)
    from collage_app.cli import main
    from collage_core import load_generator

    size = load_generator("emoji-animals").resolution
    assert main(["run", str(WORKFLOWS / "api" / "class_collage.json"), "--out", str(tmp_path / "ref"), "-q"]) == 0
    capsys.readouterr()
    for rel in written:
        with Image.open(empty / rel) as im:
            im.verify()
        with Image.open(empty / rel) as im, Image.open(tmp_path / "ref" / Path(rel).relative_to("out")) as ref:
            assert im.format == "PNG" and im.size == (size, size) and im.mode == "RGB", (rel, im.size, im.mode)
            diff = np.abs(np.asarray(im, dtype=np.int16) - np.asarray(ref, dtype=np.int16)).max()
            assert diff <= 2, f"{rel} differs from the checkout's by up to {diff} levels"
