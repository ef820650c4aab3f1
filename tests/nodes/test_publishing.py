"""Ready to publish: the Comfy Registry metadata in pyproject.toml is complete and admits the ComfyUI the README says
the pack was checked against, and the sdist and wheel build and pass ``twine check`` with the node help pages and
editor extensions inside (what .github/workflows/release.yml does before publishing)."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

import collage_nodes  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
#: accelerator classifiers ComfyUI (comfy_config/config_parser.py, v0.3.64) accepts; any other voids the list
ACCELERATORS = {"GPU :: NVIDIA CUDA", "GPU :: AMD ROCm", "GPU :: Intel Arc", "NPU :: Huawei Ascend",
                "GPU :: Apple Metal"}
OS_PREFIXES = ("Microsoft", "POSIX", "MacOS", "OS Independent")


def _verified_in_readme() -> str:
    """The ComfyUI version the README's install section says the pack was checked against."""
    found = re.findall(r"Checked against a real ComfyUI\s+v(\d+\.\d+\.\d+)", (ROOT / "README.md").read_text())
    assert len(found) == 1, found
    return found[0]


def test_registry_metadata_is_complete():
    from packaging.specifiers import SpecifierSet
    from packaging.version import Version

    project, comfy = PYPROJECT["project"], PYPROJECT["tool"]["comfy"]
    # [project]: a Registry node id, a semver X.Y.Z version, a Repository URL
    assert re.fullmatch(r"[A-Za-z][A-Za-z0-9]*([-_.][A-Za-z0-9]+)*", project["name"]) and len(project["name"]) < 100
    assert "comfyui" not in project["name"].lower()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"]), project["version"]
    assert re.fullmatch(r"https://\S+", project["urls"]["Repository"])
    # [tool.comfy]: the publisher, a display name; optional keys are absent rather than empty
    assert comfy["PublisherId"] and comfy["DisplayName"]
    assert all(value != "" for value in comfy.values()), comfy
    for inc in comfy.get("includes", []):
        assert (ROOT / inc).exists(), inc
    # requires-comfyui admits what was verified (versions compare per part: >=0.33.0 would exclude 0.3.64)
    spec = SpecifierSet(comfy["requires-comfyui"])
    verified = _verified_in_readme()
    assert Version(verified) in spec, (verified, spec)
    # classifiers ComfyUI reads: OS values it knows, accelerators from its list (else it ignores them all)
    classifiers = project.get("classifiers", [])
    oses = [c.removeprefix("Operating System :: ") for c in classifiers if c.startswith("Operating System :: ")]
    assert oses and all(o.startswith(OS_PREFIXES) for o in oses), oses
    accel = [c.removeprefix("Environment :: ") for c in classifiers if c.startswith("Environment ::")]
    assert set(accel) <= ACCELERATORS, accel


@pytest.mark.slow
def test_sdist_and_wheel_build_and_pass_twine_check(tmp_path):
    """About 10 s: the distributions of a copy of the tree (built without isolation, with the installed setuptools),
    then ``twine check --strict``; the wheel holds every node's help page and the editor extensions."""
    pytest.importorskip("build", reason="needs `build` (pip install build twine; both are in the test extra)")
    pytest.importorskip("twine", reason="needs `twine` (pip install build twine; both are in the test extra)")
    src, dist = tmp_path / "src", tmp_path / "dist"
    junk = shutil.ignore_patterns(".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                  ".ruff_cache", ".hypothesis", ".benchmarks", "out", "runs", ".cache", "data")
    shutil.copytree(ROOT, src, ignore=junk, symlinks=True)
    res = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(dist), str(src)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    files = sorted(dist.iterdir(), key=lambda f: f.suffix)
    assert [f.suffix for f in files] == [".gz", ".whl"], files
    res = subprocess.run([sys.executable, "-m", "twine", "check", "--strict", *map(str, files)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stdout + res.stderr
    names = set(zipfile.ZipFile(files[1]).namelist())
    for node in collage_nodes.registry().names():
        assert f"collage_nodes/web/docs/{node}.md" in names, node
    assert {f"collage_nodes/web/{p.name}" for p in (ROOT / "nodes" / "web").glob("*.js")} <= names
