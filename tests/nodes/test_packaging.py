"""pyproject.toml lists every package folder (setuptools installs only those), and the embedded model files."""

from __future__ import annotations

from pathlib import Path

import pytest

tomllib = pytest.importorskip("tomllib")  # Python >= 3.11

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def _package_folders() -> set[str]:
    dirs = PYPROJECT["tool"]["setuptools"]["package-dir"]
    found = set()
    for top, folder in [("collage_core", "collage_core"), ("collage_engine", "collage_engine"),
                        *dirs.items()]:
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            found.add(".".join((top, *rel)))
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
