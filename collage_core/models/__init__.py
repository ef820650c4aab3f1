"""Embedded default models shipped inside the package (loadable by name, offline).

Each model is a folder ``collage_core/models/<name>/`` holding ``generator.safetensors``, optionally
``discriminator.safetensors``, and an ``ATTRIBUTION.md`` with the licences of the data it was trained on.
"""

from __future__ import annotations

from pathlib import Path

_ROOT = Path(__file__).resolve().parent


def list_embedded_models() -> list[str]:
    """Names of the embedded models that have a generator file."""
    return sorted(p.name for p in _ROOT.iterdir() if (p / "generator.safetensors").is_file())


def embedded_model_path(name: str, kind: str = "generator") -> Path | None:
    """The file of an embedded model's generator or discriminator, or None if there is no such model/file."""
    if not name or "/" in name or "\\" in name or name.startswith("."):
        return None
    p = _ROOT / name / f"{kind}.safetensors"
    return p if p.is_file() else None
