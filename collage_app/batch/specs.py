"""The rows of a map: the ``--over`` spec grammar (:func:`build_rows`).

A *spec* gives values for one or more node inputs (``NODE.INPUT``, NODE a node id or title, as ``--set``):

* ``Latent.seed=0:1000`` - an integer range ``A:B[:STEP]`` (B excluded, like Python's ``range``);
* ``Photo.path=photos/*.jpg`` - a glob, or ``Photo.path=photos/`` - every picture of a folder, in name order;
* ``Paint cat.class_name=["cat", "tiger"]`` - a JSON list of values;
* ``rows.csv`` / ``rows.jsonl`` - a table: one column (key) per ``NODE.INPUT``, optionally ``id`` (the row's folder
  name); CSV cells are JSON if they parse, else strings, and an empty cell keeps the workflow's value.

Several specs make the product of their rows (the first varies slowest); each row gets a unique folder name.
"""

from __future__ import annotations

import csv
import glob
import itertools
import json
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import MapError, MapSpecError  # defined with the application's other errors (its exit-status table)
from ..overrides import parse_value

__all__ = ["MANIFEST", "MapError", "MapSpecError", "Row", "Axis", "axes", "build_rows", "rows_table"]

#: the manifest's file name in the output folder (no row may take it)
MANIFEST = "manifest.jsonl"
PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
TABLE_EXTENSIONS = (".csv", ".jsonl", ".ndjson")
_RANGE = re.compile(r"^\s*(-?\d+)\s*:\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?$")
_GLOB_CHARS = re.compile(r"[*?[]")
_MAX_ID = 80


@dataclass(frozen=True)
class Row:
    """One run of the map: its folder name ``id``, its position ``index`` and the inputs it sets."""

    id: str
    index: int
    inputs: dict[str, Any]

    def to_dict(self) -> dict:
        return {"id": self.id, "index": self.index, "inputs": self.inputs}

    @classmethod
    def from_dict(cls, d: dict) -> Row:
        return cls(d["id"], d["index"], d["inputs"])


@dataclass
class Axis:
    """The rows of one spec: ``entries`` of input values and a folder-name ``slugs`` for each."""

    spec: str
    keys: list[str]
    entries: list[dict[str, Any]]
    slugs: list[str]


def spec_error(spec: str, message: str) -> MapSpecError:
    return MapSpecError(f"--over {spec!r}: {message}")


def _slug(text: str) -> str:
    s = re.sub(r"[^A-Za-z0-9._=-]+", "-", text).strip("-.")
    return s[:_MAX_ID] or "row"


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or bool(re.search(r"\.[A-Za-z0-9]{1,5}$", value))


def _value_slug(key: str, value: Any) -> str:
    """``seed-3`` for ``Latent.seed`` = 3; the file name's stem for a path."""
    if isinstance(value, str) and _looks_like_path(value):
        return Path(value.replace("\\", "/")).stem or "row"
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return f"{key.rpartition('.')[2]}-{text}"


def _split_key(spec: str, key: str) -> None:
    node, dot, name = key.rpartition(".")
    if not dot or not node or not name.isidentifier():
        raise spec_error(spec, f"{key!r} is not NODE.INPUT (NODE: node id or title), e.g. Latent.seed")


def _pictures(spec: str, raw: str) -> list[str]:
    if _GLOB_CHARS.search(raw):
        found = sorted(os.path.abspath(p) for p in glob.glob(raw, recursive=True) if os.path.isfile(p))
        if not found:
            raise spec_error(spec, f"the pattern {raw!r} matches no file")
        return found
    found = sorted(os.path.join(raw, f) for f in os.listdir(raw)
                   if f.lower().endswith(PICTURE_EXTENSIONS) and os.path.isfile(os.path.join(raw, f)))
    if not found:
        raise spec_error(spec, f"the folder {raw!r} holds no picture ({', '.join(PICTURE_EXTENSIONS)})")
    return found


def _values_axis(spec: str) -> Axis:
    key, _, raw = spec.partition("=")
    key = key.strip()
    _split_key(spec, key)
    if m := _RANGE.match(raw):
        start, stop, step = int(m[1]), int(m[2]), int(m[3] or 1)
        if step == 0:
            raise spec_error(spec, "a range's step cannot be 0")
        values: list[Any] = list(range(start, stop, step))
        if not values:
            raise spec_error(spec, f"the range {raw.strip()} is empty (A:B counts from A up to B, B excluded)")
    elif raw.lstrip().startswith("["):
        try:
            values = json.loads(raw)
        except ValueError as e:
            raise spec_error(spec, f"not a JSON list: {e}") from None
        if not isinstance(values, list) or not values:
            raise spec_error(spec, "expected a non-empty JSON list of values")
    elif _GLOB_CHARS.search(raw) or os.path.isdir(raw):
        values = _pictures(spec, raw)
    else:
        raise spec_error(spec, "VALUES must be a range A:B[:STEP] (e.g. 0:100), a JSON list ([1, 5, 9]), a glob "
                                "(photos/*.jpg) or an existing folder of pictures; for one value use --set")
    return Axis(spec, [key], [{key: v} for v in values], [_value_slug(key, v) for v in values])


def _table_entry(spec: str, where: str, record: dict) -> tuple[dict[str, Any], str | None]:
    entry: dict[str, Any] = {}
    row_id = None
    for key, value in record.items():
        if key is None:
            raise spec_error(spec, f"{where}: more cells than columns")
        key = key.strip()
        if key == "id":
            row_id = None if value is None or value == "" else str(value)
            continue
        _split_key(spec, key)
        entry[key] = value
    return entry, row_id


def _table_axis(spec: str) -> Axis:
    path = Path(spec)
    if not path.is_file():
        raise spec_error(spec, "no such file")
    entries, ids = [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise spec_error(spec, f"cannot read it: {e}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise spec_error(spec, "no header line (one column per NODE.INPUT, and optionally id)")
        for line, rec in enumerate(reader, start=2):
            values = {}
            for k, v in rec.items():
                if k is not None and isinstance(v, str) and v.strip() == "" and k.strip() != "id":
                    continue  # an empty cell keeps the workflow's value
                values[k] = parse_value(v) if k is not None and k.strip() != "id" else v
            entry, row_id = _table_entry(spec, f"line {line}", values)
            entries.append(entry)
            ids.append(row_id)
    else:
        for line, raw in enumerate(text.splitlines(), start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
            except ValueError as e:
                raise spec_error(spec, f"line {line}: not JSON: {e}") from None
            if not isinstance(rec, dict):
                raise spec_error(spec, f"line {line}: expected an object {{\"NODE.INPUT\": value, ...}}")
            entry, row_id = _table_entry(spec, f"line {line}", rec)
            entries.append(entry)
            ids.append(row_id)
    if not entries:
        raise spec_error(spec, "no rows")
    keys = list(dict.fromkeys(k for e in entries for k in e))
    slugs = [_slug(i) if i is not None else "_".join(_value_slug(k, v) for k, v in e.items()) or "row"
             for e, i in zip(entries, ids)]
    return Axis(spec, keys, entries, slugs)


def _axis(spec: Any) -> Axis:
    if isinstance(spec, Axis):
        return spec
    if isinstance(spec, (list, tuple)):  # Python API: the rows themselves, as dicts
        label = "<rows>"
        if not spec or not all(isinstance(e, dict) for e in spec):
            raise spec_error(label, "expected a non-empty list of {\"NODE.INPUT\": value} dicts")
        entries, ids = zip(*(_table_entry(label, f"row {i}", dict(e)) for i, e in enumerate(spec)))
        keys = list(dict.fromkeys(k for e in entries for k in e))
        slugs = [_slug(i) if i is not None else "_".join(_value_slug(k, v) for k, v in e.items()) or "row"
                 for e, i in zip(entries, ids)]
        return Axis(label, keys, list(entries), slugs)
    if not isinstance(spec, str) or not spec.strip():
        raise spec_error(str(spec), "expected NODE.INPUT=VALUES or a .csv / .jsonl file")
    if "=" in spec:
        return _values_axis(spec)
    if spec.lower().endswith(TABLE_EXTENSIONS):
        return _table_axis(spec)
    raise spec_error(spec, "expected NODE.INPUT=VALUES (e.g. Latent.seed=0:100) or a .csv / .jsonl file")


def axes(over: Any) -> list[Axis]:
    """The axes of one spec, a list of specs or a list of row dicts (axes given pass unchanged, nothing is read
    twice); no two specs may give the same ``NODE.INPUT``."""
    specs = [over] if isinstance(over, (str, Axis)) else list(over)
    if specs and all(isinstance(s, dict) for s in specs):
        specs = [specs]  # one list of row dicts
    if not specs:
        raise MapSpecError("no --over spec given")
    found = [_axis(s) for s in specs]
    seen: dict[str, str] = {}
    for a in found:
        for k in a.keys:
            if k in seen:
                raise spec_error(a.spec, f"{k} is already given by --over {seen[k]!r}")
            seen[k] = a.spec
    return found


def build_rows(over: Any) -> list[Row]:
    """The rows of one spec or several (their product, the first varying slowest); ids are unique folder names."""
    spec_axes = axes(over)
    rows, used = [], {MANIFEST}
    for index, combo in enumerate(itertools.product(*(range(len(a.entries)) for a in spec_axes))):
        inputs: dict[str, Any] = {}
        for a, i in zip(spec_axes, combo):
            inputs.update(a.entries[i])
        base = _slug("_".join(a.slugs[i] for a, i in zip(spec_axes, combo)))
        row_id, n = base, 1
        while row_id in used:
            n += 1
            row_id = f"{base}~{n}"
        used.add(row_id)
        rows.append(Row(row_id, index, inputs))
    return rows


def rows_table(rows: Iterable[Row]) -> str:
    """The rows one per line (``id<TAB>inputs``), for ``--dry-run``."""
    return "\n".join(f"{r.id}\t{json.dumps(r.inputs)}" for r in rows)
