"""pyproject.toml lists every package folder (setuptools installs only those), and the embedded model files."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_folders() -> set[str]:
    """Every folder with an ``__init__.py`` under a top-level package folder, named as it installs."""
    installed_as = {folder: name for name, folder in PYPROJECT["tool"]["setuptools"]["package-dir"].items()}
    found = set()
    for top in sorted(p.parent for p in ROOT.glob("*/__init__.py")):
        if top.name in ("tests", "benchmarks", "docs"):
            continue
        for init in top.rglob("__init__.py"):
            rel = init.parent.relative_to(top).parts
            found.add(".".join((installed_as.get(top.name, top.name), *rel)))
    return found


def test_every_package_folder_is_listed():
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    assert _package_folders() == listed


def test_the_embedded_model_files_are_package_data():
    patterns = PYPROJECT["tool"]["setuptools"]["package-data"]["collage_core"]
    model_files = [p.relative_to(ROOT / "collage_core") for p in (ROOT / "collage_core" / "models").glob("*/*")]
    assert model_files
    for f in model_files:
        assert any(f.match(p) for p in patterns), f"{f} would not be installed"


def test_requirements_txt_names_the_same_libraries_as_pyproject():
    """ComfyUI-Manager installs requirements.txt, pip installs pyproject's dependencies: they must agree (two OpenCV
    builds in one environment break `import cv2`). torch is ComfyUI's own and stays out of requirements.txt."""
    import re

    def names(lines):
        return {re.split(r"[<>=!~\[ ;]", line.strip(), maxsplit=1)[0].lower() for line in lines
                if line.strip() and not line.strip().startswith("#")}

    req = names((ROOT / "requirements.txt").read_text().splitlines())
    deps = names(PYPROJECT["project"]["dependencies"])
    assert req == deps - {"torch"}, (req, deps)
