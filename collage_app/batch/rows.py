"""Running the rows of a map: each row's workflow (its inputs set, its savers writing to ``OUT/<row id>/``) on one
warm engine, and the manifest record of each row (:class:`RowRunner`, one per worker)."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import time

from ..common import error_lines, failure_text, invalid_heading, node_label
from ..overrides import OverrideError, apply_set, parse_set, set_output_dir
from .specs import Row

__all__ = ["RowRunner", "row_workflow", "format_errors", "error_text"]


def format_errors(errors: dict, titles: dict | None = None) -> str:
    """A validation result as the command line prints it: a heading, then one indented line per node problem."""
    return "\n".join([invalid_heading(errors), *(f"  {line}" for line in error_lines(errors, titles))])


def error_text(res) -> str:
    """A failed row's one-line error for the manifest."""
    if res.status == "invalid":
        errors = res.errors or {}
        lines = error_lines(errors)
        return "invalid workflow: " + "; ".join(lines) if lines else invalid_heading(errors)
    if res.status == "interrupted":
        return "interrupted"
    e = res.error or {}
    return f"{node_label(e.get('node_id'), e.get('node_type'))} failed: {failure_text(e)}"


def row_workflow(api: dict, registry, row: Row, row_dir: str) -> dict:
    """``api`` with the row's inputs set and every saver writing to ``row_dir``."""
    wf = copy.deepcopy(api)
    for key, value in row.inputs.items():
        node, name, _ = parse_set(f"{key}=0")
        apply_set(wf, registry, node, name, value)
    set_output_dir(wf, registry, row_dir)
    return wf


class RowRunner:
    """Runs rows of one workflow on one warm engine, writing each under ``out/<row id>/``; one per worker."""

    def __init__(self, api: dict, out: str | os.PathLike, registry=None, engine=None,
                 engine_kwargs: dict | None = None) -> None:
        import collage_nodes
        from collage_nodes.runner import CollageEngine

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
                record["error"] = error_text(res)
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


