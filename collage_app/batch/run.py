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
engine (:mod:`.on_ray`; Ray is imported only then).

    from collage_app.batch import map_workflow
    result = map_workflow("workflows/class_collage.json", ["Latent.seed=0:16"], "runs/seeds")
    result.ok, result.failed, result.manifest
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..common import titles_of
from ..overrides import OverrideError, apply_overrides, apply_set, find_node, parse_set
from .manifest import ManifestWriter, pending
from .rows import RowRunner, format_errors, row_workflow
from .specs import MANIFEST, Axis, MapError, Row, axes, build_rows, spec_error

__all__ = ["MapResult", "map_workflow", "map_api"]


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


def _check(api: dict, engine, spec_axes: list[Axis], first: Row) -> None:
    """Every spec's NODE.INPUT exists; the workflow is valid apart from the mapped inputs (checked per row), under
    the file rules its rows run with (``engine``'s: relative paths next to the workflow file first)."""
    registry = engine.registry
    mapped: dict[tuple[str, str], str] = {}
    for a in spec_axes:
        for key in a.keys:
            node, name, _ = parse_set(f"{key}=0")
            try:
                nid = find_node(api, node)
                apply_set(copy.deepcopy(api), registry, node, name, None)
            except OverrideError as e:
                raise spec_error(a.spec, str(e)) from None
            if mapped.get((nid, name), a.spec) != a.spec:
                raise spec_error(a.spec, f"input {name!r} of node {nid} is already given by --over "
                                          f"{mapped[nid, name]!r}")
            mapped[nid, name] = a.spec
    errors = engine.validate(row_workflow(api, registry, first, ".")).to_dict()
    top = errors.get("error") or {}
    other = {nid: {**entry, "errors": [e for e in entry.get("errors", []) if (nid, _input_of(e)) not in mapped]}
             for nid, entry in (errors.get("node_errors") or {}).items()}
    other = {nid: entry for nid, entry in other.items() if entry["errors"]}
    if other or (top and top.get("type") != "prompt_outputs_failed_validation"):
        raise MapError(format_errors({"error": None if other else top, "node_errors": other}, titles_of(api)))


def map_workflow(workflow: Any, over: Any, out: str | os.PathLike, *, sets: Sequence[str] = (),
                 device: str | None = None, registry=None, engine=None, base: str | os.PathLike | None = None,
                 **kwargs: Any) -> MapResult:
    """Run ``workflow`` (path, API or UI dict) once per row of ``over`` (one spec, a list of specs - their product -,
    or a list of ``{"NODE.INPUT": value}`` dicts), each row's savers writing to ``out/<row id>/``.

    ``sets`` are ``--set`` texts applied to every row; ``device`` sets every model loader's device. Relative paths
    of the workflow are looked up next to its file (``base``, else ``workflow`` when it is a path) first, as
    ``run`` does. The other keywords are :func:`map_api`'s (``workers``, ``ray``, ``progress``, ``on_record``,
    ``max_memory``, ``threads``).
    Raises :class:`MapSpecError` / :class:`MapError` before running anything if the specs or the workflow are bad.
    Ctrl-C (``KeyboardInterrupt``) stops the map after the rows already finished: the result says ``interrupted``.
    """
    import collage_nodes

    if registry is None:
        registry = engine.registry if engine is not None else collage_nodes.registry()
    api = _load_api(workflow, registry)
    try:
        apply_overrides(api, registry, sets, device)
    except OverrideError as e:
        raise MapError(str(e)) from None
    if base is None and isinstance(workflow, (str, os.PathLike)):
        base = workflow
    return map_api(api, over, out, registry=registry, engine=engine, base=base, **kwargs)


def map_api(api: dict, over: Any, out: str | os.PathLike, *, registry, engine=None, workers: int | None = None,
            ray: str | None = None, progress: bool = True, on_record: Callable[[dict], None] | None = None,
            max_memory: int | None = None, base: str | os.PathLike | None = None,
            threads: int | None = None) -> MapResult:
    """Run the API-format workflow ``api`` (read once by the caller, its ``--set`` changes made) once per row of
    ``over`` (specs, or the :class:`Axis` list of :func:`~.specs.axes`: not read again).

    Rows recorded ``ok`` in ``out/manifest.jsonl`` are skipped. Without ``ray`` the rows run here, in order, on one
    engine (``engine``, else a new one); with ``ray`` ("auto": the running cluster or a new local one; "local"; or
    a cluster address) on ``workers`` Ray workers, each reserving ``threads`` CPUs (default 1) and running torch on
    that many threads. ``on_record`` sees each manifest record as it is written. Relative paths are looked up next
    to the file ``base`` first; ``max_memory`` bounds each row's results (see :class:`collage_engine.Engine`).
    """
    from collage_nodes.runner import CollageEngine, workflow_paths

    if not isinstance(api, dict):
        raise MapError("cannot read workflow: not a workflow")
    engine_kwargs = {"paths": workflow_paths(base), "max_memory": max_memory}
    spec_axes = axes(over)
    rows = build_rows(spec_axes)
    _check(api, engine if engine is not None else CollageEngine(registry, **engine_kwargs), spec_axes, rows[0])
    if ray is None and workers not in (None, 1):
        raise MapError("several workers need Ray (--ray auto)")
    out = Path(out).absolute()
    manifest = out / MANIFEST
    todo, skipped = pending(rows, manifest)
    result = MapResult(out, manifest, len(rows), skipped=skipped)
    if not todo:
        return result
    writer = ManifestWriter(manifest)
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
            from .on_ray import run_on_ray

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
