"""The manifest of a map, ``OUT/manifest.jsonl``: one JSON line per finished row, appended and flushed at once, so an
interrupted map leaves a consistent manifest and the next call skips the rows recorded ``ok``."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .specs import MapError, Row

__all__ = ["read_manifest", "pending", "ManifestWriter"]


def read_manifest(path: str | os.PathLike) -> dict[str, dict]:
    """The last record of each row in a manifest (an unreadable line, e.g. cut by a crash, is ignored)."""
    last: dict[str, dict] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return last
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and isinstance(rec.get("row"), str):
            last[rec["row"]] = rec
    return last


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def pending(rows: list[Row], manifest: Path) -> tuple[list[Row], int]:
    """Rows not yet recorded ``ok``; refuses a manifest whose row of the same id had other inputs."""
    done = read_manifest(manifest)
    todo = []
    for row in rows:
        rec = done.get(row.id)
        if rec is not None and rec.get("status") == "ok":
            if not _same(rec.get("inputs"), row.inputs):
                raise MapError(f"{manifest}: row {row.id} was made with inputs {json.dumps(rec.get('inputs'))}, "
                               f"now {json.dumps(row.inputs)}; map into another folder")
            continue
        todo.append(row)
    return todo, len(rows) - len(todo)


class ManifestWriter:
    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        cut = path.is_file() and path.stat().st_size > 0 and not path.read_bytes().endswith(b"\n")
        self.f = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by close()
        if cut:  # a line cut by a crash: start on a fresh one
            self.f.write("\n")

    def write(self, record: dict) -> None:
        self.f.write(json.dumps(record) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


