"""Map a workflow over many inputs: one run per row, rows from ``--over`` specs, results under ``OUT/<row id>/``.

A *spec* gives values for one or more node inputs (``NODE.INPUT``, NODE a node id or title, as ``--set``):

* ``Latent.seed=0:1000`` - an integer range ``A:B[:STEP]`` (B excluded, like Python's ``range``);
* ``Photo.path=photos/*.jpg`` - a glob, or ``Photo.path=photos/`` - every picture of a folder, in name order;
* ``Paint cat.class_name=["cat", "tiger"]`` - a JSON list of values;
* ``rows.csv`` / ``rows.jsonl`` - a table: one column (key) per ``NODE.INPUT``, optionally ``id`` (the row's folder
  name); CSV cells are JSON if they parse, else strings, and an empty cell keeps the workflow's value.

Several specs make the product of their rows (the first varies slowest). Each row is the workflow with its values
set, its savers writing to ``OUT/<row id>/``; ``OUT/manifest.jsonl`` gets one JSON line per finished row
(``row, index, inputs, outputs, status, error, seconds, worker, finished_at`` - Unix time), appended and flushed at
once, so an interrupted map leaves a consistent manifest and a second call skips the rows recorded ``ok``. A failing
row is recorded with its error and the map goes on.

In-process (the default) one warm engine runs the rows in order: the model loads once and unchanged ancestors come
from the engine's cache. With ``ray=`` the rows go to a Ray Data ``map_batches`` over N workers, each holding one
engine (:mod:`.mapping_ray`; Ray is imported only then).

    from collage_nodes import map_workflow
    result = map_workflow("workflows/class_collage.json", ["Latent.seed=0:16"], "runs/seeds")
    result.ok, result.failed, result.manifest
"""

from __future__ import annotations

import copy
import csv
import glob
import itertools
import json
import os
import re
import shutil
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .runner import OverrideError, apply_set, find_node, parse_set, set_everywhere

__all__ = ["MANIFEST", "MapError", "MapResult", "MapSpecError", "Row", "RowRunner", "build_rows", "map_workflow",
           "read_manifest"]

MANIFEST = "manifest.jsonl"
PICTURE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff")
TABLE_EXTENSIONS = (".csv", ".jsonl", ".ndjson")
_RANGE = re.compile(r"^\s*(-?\d+)\s*:\s*(-?\d+)\s*(?::\s*(-?\d+)\s*)?$")
_GLOB_CHARS = re.compile(r"[*?[]")
_MAX_ID = 80


class MapError(ValueError):
    """A map that cannot start (bad workflow, a manifest written for other rows, Ray missing)."""


class MapSpecError(MapError):
    """An ``--over`` spec that cannot be read; the message starts with the spec."""


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
class _Axis:
    """The rows of one spec: ``entries`` of input values and a folder-name ``slugs`` for each."""

    spec: str
    keys: list[str]
    entries: list[dict[str, Any]]
    slugs: list[str]


@dataclass
class MapResult:
    """What :func:`map_workflow` did: rows in all, already done before, done ok and failed now."""

    out: Path
    manifest: Path
    total: int
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    seconds: float = 0.0
    startup_seconds: float = 0.0
    interrupted: bool = False
    records: list[dict] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.ok + self.failed


# ------------------------------------------------------------------------------------------------ specs
def _spec_error(spec: str, message: str) -> MapSpecError:
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
        raise _spec_error(spec, f"{key!r} is not NODE.INPUT (NODE: node id or title), e.g. Latent.seed")


def _pictures(spec: str, raw: str) -> list[str]:
    if _GLOB_CHARS.search(raw):
        found = sorted(os.path.abspath(p) for p in glob.glob(raw, recursive=True) if os.path.isfile(p))
        if not found:
            raise _spec_error(spec, f"the pattern {raw!r} matches no file")
        return found
    found = sorted(os.path.join(raw, f) for f in os.listdir(raw)
                   if f.lower().endswith(PICTURE_EXTENSIONS) and os.path.isfile(os.path.join(raw, f)))
    if not found:
        raise _spec_error(spec, f"the folder {raw!r} holds no picture ({', '.join(PICTURE_EXTENSIONS)})")
    return found


def _values_axis(spec: str) -> _Axis:
    key, _, raw = spec.partition("=")
    key = key.strip()
    _split_key(spec, key)
    if m := _RANGE.match(raw):
        start, stop, step = int(m[1]), int(m[2]), int(m[3] or 1)
        if step == 0:
            raise _spec_error(spec, "a range's step cannot be 0")
        values: list[Any] = list(range(start, stop, step))
        if not values:
            raise _spec_error(spec, f"the range {raw.strip()} is empty (A:B counts from A up to B, B excluded)")
    elif raw.lstrip().startswith("["):
        try:
            values = json.loads(raw)
        except ValueError as e:
            raise _spec_error(spec, f"not a JSON list: {e}") from None
        if not isinstance(values, list) or not values:
            raise _spec_error(spec, "expected a non-empty JSON list of values")
    elif _GLOB_CHARS.search(raw) or os.path.isdir(raw):
        values = _pictures(spec, raw)
    else:
        raise _spec_error(spec, "VALUES must be a range A:B[:STEP] (e.g. 0:100), a JSON list ([1, 5, 9]), a glob "
                                "(photos/*.jpg) or an existing folder of pictures; for one value use --set")
    return _Axis(spec, [key], [{key: v} for v in values], [_value_slug(key, v) for v in values])


def _table_entry(spec: str, where: str, record: dict) -> tuple[dict[str, Any], str | None]:
    entry: dict[str, Any] = {}
    row_id = None
    for key, value in record.items():
        if key is None:
            raise _spec_error(spec, f"{where}: more cells than columns")
        key = key.strip()
        if key == "id":
            row_id = None if value is None or value == "" else str(value)
            continue
        _split_key(spec, key)
        entry[key] = value
    return entry, row_id


def _table_axis(spec: str) -> _Axis:
    path = Path(spec)
    if not path.is_file():
        raise _spec_error(spec, "no such file")
    entries, ids = [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise _spec_error(spec, f"cannot read it: {e}") from None
    if path.suffix.lower() == ".csv":
        reader = csv.DictReader(text.splitlines())
        if not reader.fieldnames:
            raise _spec_error(spec, "no header line (one column per NODE.INPUT, and optionally id)")
        for line, rec in enumerate(reader, start=2):
            values = {}
            for k, v in rec.items():
                if k is not None and isinstance(v, str) and v.strip() == "" and k.strip() != "id":
                    continue  # an empty cell keeps the workflow's value
                values[k] = _cell(v) if k is not None and k.strip() != "id" else v
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
                raise _spec_error(spec, f"line {line}: not JSON: {e}") from None
            if not isinstance(rec, dict):
                raise _spec_error(spec, f"line {line}: expected an object {{\"NODE.INPUT\": value, ...}}")
            entry, row_id = _table_entry(spec, f"line {line}", rec)
            entries.append(entry)
            ids.append(row_id)
    if not entries:
        raise _spec_error(spec, "no rows")
    keys = list(dict.fromkeys(k for e in entries for k in e))
    slugs = [_slug(i) if i is not None else "_".join(_value_slug(k, v) for k, v in e.items()) or "row"
             for e, i in zip(entries, ids)]
    return _Axis(spec, keys, entries, slugs)


def _cell(text: str) -> Any:
    """A CSV cell as ``--set`` reads a value: JSON if it parses, else the text."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def _axis(spec: Any) -> _Axis:
    if isinstance(spec, _Axis):
        return spec
    if isinstance(spec, (list, tuple)):  # Python API: the rows themselves, as dicts
        label = "<rows>"
        if not spec or not all(isinstance(e, dict) for e in spec):
            raise _spec_error(label, "expected a non-empty list of {\"NODE.INPUT\": value} dicts")
        entries, ids = zip(*(_table_entry(label, f"row {i}", dict(e)) for i, e in enumerate(spec)))
        keys = list(dict.fromkeys(k for e in entries for k in e))
        slugs = [_slug(i) if i is not None else "_".join(_value_slug(k, v) for k, v in e.items()) or "row"
                 for e, i in zip(entries, ids)]
        return _Axis(label, keys, list(entries), slugs)
    if not isinstance(spec, str) or not spec.strip():
        raise _spec_error(str(spec), "expected NODE.INPUT=VALUES or a .csv / .jsonl file")
    if "=" in spec:
        return _values_axis(spec)
    if spec.lower().endswith(TABLE_EXTENSIONS):
        return _table_axis(spec)
    raise _spec_error(spec, "expected NODE.INPUT=VALUES (e.g. Latent.seed=0:100) or a .csv / .jsonl file")


def _axes(over: Any) -> list[_Axis]:
    specs = [over] if isinstance(over, (str, _Axis)) else list(over)
    if specs and all(isinstance(s, dict) for s in specs):
        specs = [specs]  # one list of row dicts
    if not specs:
        raise MapSpecError("no --over spec given")
    axes = [_axis(s) for s in specs]
    seen: dict[str, str] = {}
    for a in axes:
        for k in a.keys:
            if k in seen:
                raise _spec_error(a.spec, f"{k} is already given by --over {seen[k]!r}")
            seen[k] = a.spec
    return axes


def build_rows(over: Any) -> list[Row]:
    """The rows of one spec or several (their product, the first varying slowest); ids are unique folder names."""
    axes = _axes(over)
    rows, used = [], {MANIFEST}
    for index, combo in enumerate(itertools.product(*(range(len(a.entries)) for a in axes))):
        inputs: dict[str, Any] = {}
        for a, i in zip(axes, combo):
            inputs.update(a.entries[i])
        base = _slug("_".join(a.slugs[i] for a, i in zip(axes, combo)))
        row_id, n = base, 1
        while row_id in used:
            n += 1
            row_id = f"{base}~{n}"
        used.add(row_id)
        rows.append(Row(row_id, index, inputs))
    return rows


# ------------------------------------------------------------------------------------------------ running rows
def _format_errors(errors: dict) -> str:
    """The engine's lines for validation errors, without details that repeat the message."""
    from collage_engine import format_errors

    node_errors = {nid: {**entry, "errors": [{**e, "details": None if e.get("details") == e.get("message") else
                                              e.get("details")} for e in entry.get("errors", [])]}
                   for nid, entry in (errors.get("node_errors") or {}).items()}
    return format_errors({"error": errors.get("error"), "node_errors": node_errors})


def _error_text(res) -> str:
    if res.status == "invalid":
        errors = res.errors or {}
        if errors.get("node_errors"):  # the lines say it all
            errors = {"node_errors": errors["node_errors"]}
        return "invalid workflow: " + "; ".join(line.strip() for line in _format_errors(errors).splitlines())
    if res.status == "interrupted":
        return "interrupted"
    e = res.error or {}
    msg = e.get("exception_message") if e.get("user_error") else f"{e.get('exception_type')}: " \
        f"{e.get('exception_message')}"
    return f"node {e.get('node_id')} ({e.get('node_type')}) failed: {msg}"


def row_workflow(api: dict, registry, row: Row, row_dir: str) -> dict:
    """``api`` with the row's inputs set and every saver writing to ``row_dir``."""
    wf = copy.deepcopy(api)
    for key, value in row.inputs.items():
        node, name, _ = parse_set(f"{key}=0")
        apply_set(wf, registry, node, name, value)
    set_everywhere(wf, registry, "output_dir", row_dir)
    return wf


class RowRunner:
    """Runs rows of one workflow on one warm engine, writing each under ``out/<row id>/``; one per worker."""

    def __init__(self, api: dict, out: str | os.PathLike, registry=None, engine=None,
                 engine_kwargs: dict | None = None) -> None:
        import collage_nodes

        from .runner import CollageEngine

        self.registry = registry if registry is not None else (
            engine.registry if engine is not None else collage_nodes.registry())
        self.engine = engine if engine is not None else CollageEngine(self.registry, **(engine_kwargs or {}))
        self.api = api
        self.out = str(out)
        self.worker = f"{socket.gethostname()}:{os.getpid()}"

    def run(self, row: Row) -> dict:
        """Run one row; return its manifest record (never raises for a failing row)."""
        t0 = time.perf_counter()
        row_dir = os.path.join(self.out, row.id)
        record = {"row": row.id, "index": row.index, "inputs": row.inputs, "outputs": [], "status": "error",
                  "error": None, "seconds": 0.0, "worker": self.worker}
        try:
            wf = row_workflow(self.api, self.registry, row, row_dir)
            if os.path.isdir(row_dir):  # left by an interrupted or failed attempt: savers never overwrite
                shutil.rmtree(row_dir)
                self._forget_savers(wf)
            res = self.engine.run(wf)
            if res.status == "interrupted":
                raise KeyboardInterrupt
            if res.ok:
                record["status"] = "ok"
                record["outputs"] = [os.path.relpath(item["path"], self.out).replace(os.sep, "/")
                                     for out in res.ui.values() for item in out.get("images", []) + out.get(
                                         "latents", []) if isinstance(item, dict) and item.get("path")]
            else:
                record["error"] = _error_text(res)
        except (OverrideError, OSError) as e:
            record["error"] = f"{type(e).__name__}: {e}"
        record["seconds"] = round(time.perf_counter() - t0, 4)
        return record

    def _forget_savers(self, wf: dict) -> None:
        """Drop the cached results of the savers of ``wf`` (their files were removed: they must run again)."""
        v = self.engine.validate(wf)
        if not v.ok:
            return
        keys, _ = self.engine.cache_keys(v)
        for nid in v.order:
            if "output_dir" in v.nodes[nid].cls.input_map:
                self.engine.cache.discard(keys[nid])


# ------------------------------------------------------------------------------------------------ the manifest
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


def _pending(rows: list[Row], manifest: Path) -> tuple[list[Row], int]:
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


class _ManifestWriter:
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


# ------------------------------------------------------------------------------------------------ the API
def _load_api(workflow: Any, registry) -> dict:
    from collage_engine import load_workflow
    from collage_engine.workflow import WorkflowError

    try:
        if isinstance(workflow, (str, os.PathLike)):
            with open(workflow, encoding="utf-8") as f:
                workflow = json.load(f)
        api, _ = load_workflow(copy.deepcopy(workflow), registry)
    except (OSError, ValueError, WorkflowError) as e:
        raise MapError(f"cannot read workflow: {e}") from None
    if not isinstance(api, dict):
        raise MapError("cannot read workflow: not a workflow")
    return api


def _input_of(error: dict) -> str | None:
    """The input a validation error is about: its ``input_name``, else a message's ``input 'NAME':`` prefix."""
    name = (error.get("extra_info") or {}).get("input_name")
    m = re.match(r"input '(\w+)'", str(error.get("message", "")))
    return name or (m[1] if m else None)


def _check(api: dict, engine, axes: list[_Axis], first: Row) -> None:
    """Every spec's NODE.INPUT exists; the workflow is valid apart from the mapped inputs (checked per row), under
    the file rules its rows run with (``engine``'s: relative paths next to the workflow file first)."""
    registry = engine.registry
    mapped: dict[tuple[str, str], str] = {}
    for a in axes:
        for key in a.keys:
            node, name, _ = parse_set(f"{key}=0")
            try:
                nid = find_node(api, node)
                apply_set(copy.deepcopy(api), registry, node, name, None)
            except OverrideError as e:
                raise _spec_error(a.spec, str(e)) from None
            if mapped.get((nid, name), a.spec) != a.spec:
                raise _spec_error(a.spec, f"input {name!r} of node {nid} is already given by --over "
                                          f"{mapped[nid, name]!r}")
            mapped[nid, name] = a.spec
    errors = engine.validate(row_workflow(api, registry, first, ".")).to_dict()
    top = errors.get("error") or {}
    other = {nid: {**entry, "errors": [e for e in entry.get("errors", []) if (nid, _input_of(e)) not in mapped]}
             for nid, entry in (errors.get("node_errors") or {}).items()}
    other = {nid: entry for nid, entry in other.items() if entry["errors"]}
    if other or (top and top.get("type") != "prompt_outputs_failed_validation"):
        raise MapError("invalid workflow:\n" + _format_errors({"error": None if other else top,
                                                              "node_errors": other}))


def map_workflow(workflow: Any, over: Any, out: str | os.PathLike, *, sets: Sequence[str] = (),
                 device: str | None = None, workers: int | None = None, ray: str | None = None,
                 progress: bool = True, registry=None, engine=None,
                 on_record: Callable[[dict], None] | None = None, max_memory: int | None = None,
                 base: str | os.PathLike | None = None, threads: int | None = None) -> MapResult:
    """Run ``workflow`` (path, API or UI dict) once per row of ``over`` (one spec, a list of specs - their product -,
    or a list of ``{"NODE.INPUT": value}`` dicts), each row's savers writing to ``out/<row id>/``.

    ``sets`` are ``--set`` texts applied to every row; ``device`` sets every model loader's device. Rows recorded
    ``ok`` in ``out/manifest.jsonl`` are skipped. Without ``ray`` the rows run here, in order, on one engine
    (``engine``, else a new one); with ``ray`` ("auto": the running cluster or a new local one; "local"; or a
    cluster address) on ``workers`` Ray workers, each reserving ``threads`` CPUs (default 1) and running torch on
    that many threads. ``on_record`` sees each manifest record as it is written.
    Relative paths of the workflow are looked up next to its file (``base``, else ``workflow`` when it is a path)
    first, as ``run`` does; ``max_memory`` bounds
    each row's results (see :class:`collage_engine.Engine`).
    Raises :class:`MapSpecError` / :class:`MapError` before running anything if the specs or the workflow are bad.
    Ctrl-C (``KeyboardInterrupt``) stops the map after the rows already finished: the result says ``interrupted``.
    """
    import collage_nodes

    if registry is None:
        registry = engine.registry if engine is not None else collage_nodes.registry()
    api = _load_api(workflow, registry)
    try:
        for text in sets:
            apply_set(api, registry, *parse_set(text))
    except OverrideError as e:
        raise MapError(str(e)) from None
    if device:
        for loader in ("LoadGenerator", "LoadDiscriminator", "LoadEncoder"):
            set_everywhere(api, registry, "device", device, loader)
    from .runner import workflow_paths

    if base is None and isinstance(workflow, (str, os.PathLike)):
        base = workflow
    engine_kwargs = {"paths": workflow_paths(base),
                     "max_memory": max_memory}
    axes = _axes(over)
    rows = build_rows(axes)
    from .runner import CollageEngine

    _check(api, engine if engine is not None else CollageEngine(registry, **engine_kwargs), axes, rows[0])
    if ray is None and workers not in (None, 1):
        raise MapError("several workers need Ray (--ray auto)")
    out = Path(out).absolute()
    manifest = out / MANIFEST
    todo, skipped = _pending(rows, manifest)
    result = MapResult(out, manifest, len(rows), skipped=skipped)
    if not todo:
        return result
    writer = _ManifestWriter(manifest)
    bar = _bar(len(rows), skipped, progress)
    t0 = time.perf_counter()

    def record(rec: dict) -> None:
        rec["finished_at"] = round(time.time(), 3)
        writer.write(rec)
        result.records.append(rec)
        if rec["status"] == "ok":
            result.ok += 1
        else:
            result.failed += 1
            bar.write(f"row {rec['row']} failed: {rec['error']}", file=sys.stderr)
        bar.update(1)
        if on_record is not None:
            on_record(rec)

    try:
        if ray is None:
            runner = RowRunner(api, out, registry, engine, engine_kwargs)
            result.startup_seconds = time.perf_counter() - t0
            for row in todo:
                record(runner.run(row))
        else:
            from .mapping_ray import run_on_ray

            result.startup_seconds = run_on_ray(api, todo, out, workers, ray, record, engine_kwargs, threads)
    except KeyboardInterrupt:  # the finished rows are in the manifest; the next call resumes after them
        result.interrupted = True
    finally:
        result.seconds = time.perf_counter() - t0
        writer.close()
        bar.close()
    return result


def _bar(total: int, initial: int, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="map", unit="row", file=sys.stderr, dynamic_ncols=True,
                disable=not enabled, smoothing=0.1)


def rows_table(rows: Iterable[Row]) -> str:
    """The rows one per line (``id<TAB>inputs``), for ``--dry-run``."""
    return "\n".join(f"{r.id}\t{json.dumps(r.inputs)}" for r in rows)
