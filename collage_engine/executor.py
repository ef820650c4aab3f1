"""The engine: validate, plan, and run a workflow with recursive cache keys (ComfyUI's executor semantics).

Only the targets (by default every output node) and their ancestors run, in topological order. A node's cache
key hashes its class name and version, its constant inputs (canonical JSON), its fingerprint and, recursively,
the keys of the nodes (and output indices) it is linked to, so an identical re-run is served from the cache and a
changed input re-runs that node and its descendants only.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from .cache import DEFAULT_BUDGET, ResultCache, measure_bytes
from .context import Context, Interrupted
from .declare import MISSING, Input, Node, NodeOutput, safe_repr
from .errors import NodeInputError
from .memory import MemoryBudgetError, format_bytes, plan_memory
from .paths import PathPolicy, PathRefusedError, path_kind
from .registry import NodeRegistry
from .validate import PlannedNode, Validation, ValidationError, validate
from .workflow import WorkflowError, coerce_workflow, is_ui_format

__all__ = ["Engine", "RunResult", "ExecutionFailed", "Listener"]

log = logging.getLogger(__name__)
Listener = Callable[[str, dict], None]


class ExecutionFailed(RuntimeError):
    """Raised by :meth:`RunResult.raise_for_status` when a node failed."""


@dataclass
class RunResult:
    """The outcome of :meth:`Engine.run`.

    ``status`` is "success", "invalid" (validation failed: ``errors`` is ComfyUI's ``{"error", "node_errors"}``),
    "error" (a node raised: ``error`` names ``node_id``, ``node_type``, ``exception_type``,
    ``exception_message``, ``traceback``) or "interrupted". ``outputs`` maps each target to its output tuple,
    ``ui`` each node that returned a ``ui`` dict to it; ``executed`` and ``cached`` list node ids.
    """

    prompt_id: str
    status: str
    outputs: dict[str, tuple] = field(default_factory=dict)
    ui: dict[str, dict] = field(default_factory=dict)
    executed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    errors: dict | None = None
    error: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status == "success"

    def __getitem__(self, node_id: Any) -> tuple:
        """``result[node_id]`` (or ``result[graph_ref]``): that target's output tuple."""
        return self.outputs[getattr(node_id, "id", node_id)]

    def raise_for_status(self) -> RunResult:
        """Raise :class:`ValidationError`, :class:`ExecutionFailed` or :class:`Interrupted` unless successful."""
        if self.status == "invalid":
            raise ValidationError(self.errors or {})
        if self.status == "error":
            e = self.error or {}
            raise ExecutionFailed(f"node {e.get('node_id')} ({e.get('node_type')}) failed: "
                                  f"{e.get('exception_type')}: {e.get('exception_message')}")
        if self.status == "interrupted":
            raise Interrupted("run interrupted")
        return self


_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), default=safe_repr)


def _canonical(obj: Any) -> str:
    """Canonical JSON (sorted keys, no spaces): equal inputs give equal strings."""
    return _CANONICAL.encode(obj)


def normalise_result(cls: Any, result: Any) -> tuple[tuple, dict | None]:
    """A node's ``run`` result as ``(outputs tuple, ui dict or None)``: a bare value for a one-output node, ``None``
    for a node without outputs, or a :class:`NodeOutput`; ``TypeError`` when it does not match the declaration."""
    ui = getattr(result, "ui", None) if isinstance(result, NodeOutput) else None
    n_out = len(cls.outputs)
    if result is None and n_out == 0:
        result = ()
    elif not isinstance(result, tuple) or (n_out == 1 and not isinstance(result, NodeOutput)
                                           and len(result) != 1):
        if n_out != 1:
            raise TypeError(f"{cls.name}.run must return a tuple of {n_out} values, got {type(result).__name__}")
        result = (result,)
    if len(result) != n_out:
        raise TypeError(f"{cls.name}.run returned {len(result)} values, {n_out} declared")
    if ui is not None and not isinstance(ui, dict):
        raise TypeError(f"{cls.name}.run: ui must be a dict")
    return tuple(result), ui



def public_ui(ui: Any) -> Any:
    """A node's ``ui`` dict without local file-system ``path`` entries: clients (the editor, ComfyUI) address saved
    files by ``filename`` / ``subfolder`` / ``type`` only, so server paths never leave the process."""
    if not isinstance(ui, dict):
        return ui
    out = {}
    for key, items in ui.items():
        if isinstance(items, list):
            items = [{k: v for k, v in it.items() if k != "path"} if isinstance(it, dict) else it for it in items]
        out[key] = items
    return out

def file_fingerprint(path: Any) -> Any:
    """``[size, mtime_ns]`` of a file (or a marker if it is missing): changes when the file does."""
    if not isinstance(path, str) or not path:
        return None
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return "missing"
    return [st.st_size, st.st_mtime_ns]


#: What :func:`node_fingerprint` returns for "changed every time" (``always_run``, a failing or NaN fingerprint).
VOLATILE = object()


def node_fingerprint(cls: type[Node], consts: dict, instance: Node | None = None,
                     file_inputs: Iterable[Input] | None = None, hook_inputs: Iterable[str] | None = None) -> Any:
    """The cache-key material of a node's outside world: ``file_fingerprint`` of each ``file=True`` input (or of
    ``file_inputs``) and the node's ``fingerprint`` hook called with ``consts`` (only ``hook_inputs`` of them when
    given; the result as canonical JSON, else its repr);
    ``None`` when there is nothing, :data:`VOLATILE` when the node must always re-run. The engine's cache keys and
    the ComfyUI adapter's ``IS_CHANGED`` both use it."""
    if cls.always_run:
        return VOLATILE
    inputs = [i for i in cls.inputs if i.file] if file_inputs is None else list(file_inputs)
    files = [file_fingerprint(consts.get(i.name)) for i in inputs]
    if cls.fingerprint is Node.fingerprint:
        return files or None
    try:
        given = consts if hook_inputs is None else {k: v for k, v in consts.items() if k in set(hook_inputs)}
        fp = (instance or cls()).fingerprint(**given)
    except Exception as e:  # noqa: BLE001 - like ComfyUI's IS_CHANGED: a failing fingerprint means "changed"
        log.warning("fingerprint of %s failed: %s", cls.name, e)
        return VOLATILE
    if isinstance(fp, float) and math.isnan(fp):
        return VOLATILE
    try:
        fp = _canonical(fp)
    except (TypeError, ValueError, RecursionError):  # mixed-type keys, circular data...
        try:
            fp = repr(fp)
        except Exception:  # noqa: BLE001 - unrepresentable: treat as changed
            return VOLATILE
    return [files, fp] if files else fp


@dataclass
class _Run:
    """What one run of :meth:`Engine._execute` keeps between its steps."""

    v: Validation
    res: RunResult
    extra: dict
    emit: Listener | None
    keys: dict[str, str]  # cache key of every planned node
    volatile: set[str]  # nodes never served from (nor stored in) the cache
    targets: set[str]
    consumers: dict[str, int]  # needed node -> how many nodes still to run read it
    values: dict[str, tuple] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # host bytes of each value held (for the memory budget)
    pinned: list[str] = field(default_factory=list)  # cache keys this run pinned


def _plan_run(v: Validation, keys: dict[str, str], volatile: set[str], cache: ResultCache
              ) -> tuple[set[str], set[str], list[str], dict[str, int]]:
    """The cache hits, the nodes needed (walking back from the targets: a hit does not need its inputs), those
    to run (in order) and, for each needed node, how many nodes to run read it."""
    nodes = v.nodes
    hits = {n for n in v.order if n not in volatile and keys[n] in cache}
    needed = set(v.targets)
    for nid in reversed(v.order):
        if nid in needed and nid not in hits:
            needed.update(src for src, _ in nodes[nid].links.values())
    to_run = [n for n in v.order if n in needed and n not in hits]
    consumers = {n: 0 for n in needed}
    for nid in to_run:
        for src in {s for s, _ in nodes[nid].links.values()}:
            consumers[src] += 1
    return hits, needed, to_run, consumers


class Engine:
    """Runs workflows against a registry, keeping a result cache between runs.

    ``host_budget`` / ``device_budget`` bound the cache in bytes (None: unlimited). ``listeners`` receive
    ``(event, data)`` with ComfyUI's websocket event names: ``execution_start``, ``execution_cached``,
    ``executing``, ``progress``, ``executed``, ``execution_error``, ``execution_interrupted``,
    ``execution_success``. Runs are serialised; :meth:`interrupt` may be called from any thread.
    """

    def __init__(self, registry: NodeRegistry, *, host_budget: int | None = DEFAULT_BUDGET,
                 device_budget: int | None = DEFAULT_BUDGET, listeners: Iterable[Listener] = (),
                 max_memory: int | None = None, paths: PathPolicy | None = None) -> None:
        self.registry = registry
        self.paths = paths  # how file inputs are resolved (None: as given); see .paths
        self.max_memory = max_memory  # bytes a run's live results may hold (None: unbounded); see .memory
        self._live = 0  # bytes of the results the run in progress holds (for ctx.reserve)
        if max_memory and (host_budget is None or host_budget > max_memory):
            host_budget = max_memory  # the cache lives inside the budget too (see _room)
        self.cache = ResultCache(host_budget, device_budget)
        self.listeners: list[Listener] = list(listeners)
        self._cancel = threading.Event()
        self._lock = threading.RLock()  # re-entrant: a node may run a sub-workflow
        self._instances: dict[type[Node], Node] = {}

    # -- embedding -------------------------------------------------------------------------------------------
    def add_listener(self, fn: Listener) -> Listener:
        self.listeners.append(fn)
        return fn

    def remove_listener(self, fn: Listener) -> None:
        self.listeners.remove(fn)

    def interrupt(self) -> None:
        """Cancel the run in progress: the running node gets :class:`Interrupted` at its next check."""
        self._cancel.set()

    def emit(self, event: str, data: dict) -> None:
        for fn in list(self.listeners):
            try:
                fn(event, data)
            except Exception:  # noqa: BLE001 - a broken listener must not break the run
                log.exception("listener %r failed on %s", fn, event)

    def instance(self, cls: type[Node]) -> Node:
        inst = self._instances.get(cls)
        if inst is None:
            inst = self._instances[cls] = cls()
        return inst

    # -- validation and running --------------------------------------------------------------------------------
    def validate(self, workflow: Any, targets: Iterable[Any] | None = None) -> Validation:
        """Validate a workflow (API dict, UI dict, path or :class:`~collage_engine.graph.Graph`)."""
        try:
            prompt = coerce_workflow(workflow, self.registry)
        except WorkflowError as e:
            v = Validation()
            v.error = {"type": "invalid_prompt", "message": "Invalid workflow", "details": str(e), "extra_info": {}}
            return v
        refused = self._resolve_paths(prompt) if self.paths is not None and isinstance(prompt, dict) else {}
        if refused:
            prompt = refused.pop("")
        v = validate(prompt, self.registry, targets)
        if refused:
            self._add_path_errors(v, refused)
        if v.ok:
            self._check_plan(v)
        return v

    def _resolve_paths(self, prompt: dict) -> dict:
        """Resolve every constant file input with :attr:`paths`: ``{"": the rewritten prompt, (id, input): message
        for each refused one}`` (empty when nothing names a file). The caller's dict is not changed."""
        out: dict = {}
        new = dict(prompt)
        for nid, node in prompt.items():
            cls = self.registry.get(node.get("class_type")) if isinstance(node, dict) else None
            inputs = node.get("inputs") if cls is not None else None
            if not isinstance(inputs, dict):
                continue
            for inp in cls.inputs:
                kind = path_kind(inp)
                value = inputs.get(inp.name)
                if kind is None or not isinstance(value, str):
                    continue
                try:
                    resolved = self.paths.resolve(value, kind)  # type: ignore[union-attr]
                except PathRefusedError as e:
                    out[(str(nid), inp.name)] = str(e)
                    continue
                if resolved != value:
                    new[nid] = node = {**node, "inputs": {**inputs, inp.name: resolved}}
                    inputs = node["inputs"]
        if out or new != prompt:
            out[""] = new
        return out

    @staticmethod
    def _add_path_errors(v: Validation, refused: dict) -> None:
        """Report refused file inputs as node errors (replacing the node's own messages about the same input)."""
        for (nid, name), message in refused.items():
            node = v.prompt.get(nid) if isinstance(v.prompt, dict) else None
            entry = v.node_errors.setdefault(nid, {"errors": [], "dependent_outputs": list(v.targets),
                                                   "class_type": (node or {}).get("class_type", "")})
            entry["errors"] = [e for e in entry["errors"] if (e.get("extra_info") or {}).get("input_name") != name]
            entry["errors"].append({"type": "file_not_found", "message": message, "details": message,
                                    "extra_info": {"input_name": name}})
        if v.error is None:
            v.error = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                       "details": f"{len(refused)} file input(s) name no usable file", "extra_info": {}}
        v.order = []

    def _check_plan(self, v: Validation) -> None:
        """What the nodes' estimates show before running: mistakes in inputs (as node errors) and a run that would
        pass the memory budget."""
        mistakes: list = []
        over = plan_memory(v.order, v.nodes, self.instance, self.max_memory or None, mistakes, v.targets)
        for nid, e in mistakes:
            v.node_errors.setdefault(nid, {"class_type": v.nodes[nid].cls.name, "dependent_outputs": list(v.targets),
                                           "errors": []})["errors"].append(
                {"type": "value_not_valid", "message": e.message, "details": e.hint or e.message,
                 "extra_info": {"input_name": e.input_name}})
        if mistakes:
            v.error = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                       "details": f"{len(mistakes)} input(s) do not fit what they are connected to", "extra_info": {}}
            v.order = []
        if over is None or mistakes:
            return
        nid = over["node"]
        v.node_errors[nid] = {"class_type": v.nodes[nid].cls.name, "dependent_outputs": list(v.targets), "errors": [
            {"type": "memory_budget_exceeded", "message": over["message"],
             "details": "make the batches or pictures smaller, or raise the budget (--max-memory)",
             "extra_info": {"output_bytes": over["output_bytes"], "live_bytes": over["live_bytes"],
                            "max_memory": self.max_memory}}]}
        v.error = {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                   "details": f"node {nid} would pass the memory budget", "extra_info": {}}

    def run(self, workflow: Any, targets: Iterable[Any] | None = None, *, prompt_id: str | None = None,
            extra: dict | None = None) -> RunResult:
        """Validate and run a workflow; never raises for bad workflows or failing nodes (see :class:`RunResult`).

        ``targets`` (node ids or graph references) replaces the default of running every output node. ``extra``
        is handed to every node as ``ctx.extra`` (ComfyUI's ``extra_pnginfo``, e.g. ``{"workflow": ui_json}``);
        when it has no ``"workflow"`` and the workflow given is in UI format, that is added.
        """
        prompt_id = prompt_id or uuid.uuid4().hex
        extra = dict(extra or {})
        if "workflow" not in extra and isinstance(workflow, dict) and is_ui_format(workflow):
            extra["workflow"] = workflow
        with self._lock:
            self._cancel.clear()
            v = self.validate(workflow, targets)
            if not v.ok:
                return RunResult(prompt_id, "invalid", errors=v.to_dict())
            return self._execute(v, prompt_id, extra)

    def cache_keys(self, v: Validation) -> tuple[dict[str, str], set[str]]:
        """Cache key of every planned node, and the set of volatile ones (``always_run`` or downstream of one)."""
        keys: dict[str, str] = {}
        volatile: set[str] = set()
        for nid in v.order:
            node = v.nodes[nid]
            fp = self._fingerprint(node)
            parents = sorted((name, keys[src], idx) for name, (src, idx) in node.links.items())
            if fp is VOLATILE or any(src in volatile for src, _ in node.links.values()):
                volatile.add(nid)
                fp = uuid.uuid4().hex
            material = _canonical([node.cls.name, node.cls.version, node.consts, fp, parents])
            keys[nid] = hashlib.blake2b(material.encode(), digest_size=16).hexdigest()
        return keys, volatile

    def _reserve(self, nbytes: int, what: str = "its output") -> None:
        """:class:`MemoryBudgetError` if ``nbytes`` more host bytes would take the run past ``max_memory``."""
        self._room(int(nbytes))
        if self.max_memory and self._live + int(nbytes) > self.max_memory:
            raise MemoryBudgetError(f"{what} would take {format_bytes(nbytes)}"
                                    + (f" on top of the {format_bytes(self._live)} the run holds" if self._live else "")
                                    + f", over the memory budget of {format_bytes(self.max_memory)} (make the "
                                      "batches or pictures smaller, or raise the budget: --max-memory)")

    def _room(self, nbytes: int = 0) -> None:
        """Count the result cache inside the budget: drop cached results no run holds (oldest first) until they,
        the run's live results and ``nbytes`` more fit ``max_memory``."""
        if self.max_memory:
            self.cache.shrink_unpinned(max(self.max_memory - self._live - nbytes, 0))

    def _fingerprint(self, node: PlannedNode) -> Any:
        return node_fingerprint(node.cls, node.consts, self.instance(node.cls))

    def _execute(self, v: Validation, prompt_id: str, extra: dict) -> RunResult:
        keys, volatile = self.cache_keys(v)
        hits, needed, to_run, consumers = _plan_run(v, keys, volatile, self.cache)
        run = _Run(v, RunResult(prompt_id, "success"), extra, self.emit if self.listeners else None, keys, volatile,
                   set(v.targets), consumers)
        self._live = 0
        hit_entries = {n: self.cache.get(keys[n]) for n in v.order if n in hits and n in needed}  # one look-up each
        for nid, entry in hit_entries.items():
            self._hold_cached(run, nid, entry.outputs, entry.host_bytes)  # type: ignore[union-attr]
        run.res.cached = [n for n in v.order if n in hits]
        self._send(run, "execution_start", {"prompt_id": prompt_id, "timestamp": int(time.time() * 1000),
                                            "nodes": to_run})
        self._send(run, "execution_cached", {"nodes": run.res.cached, "prompt_id": prompt_id,
                                             "timestamp": int(time.time() * 1000)})
        for nid in run.res.cached:  # like ComfyUI, cached output nodes send their ui again
            ui = hit_entries[nid].ui if nid in run.targets else None  # type: ignore[union-attr]
            if ui is not None:
                self._record_ui(run, nid, ui)
        current = None
        try:
            for nid in to_run:
                current = nid
                self._step(run, nid)
            run.res.outputs = {t: run.values[t] for t in v.targets}
            self._send(run, "execution_success", {"prompt_id": prompt_id, "timestamp": int(time.time() * 1000)})
        except Interrupted:
            self._record_interrupt(run, current)
        except Exception as e:  # noqa: BLE001 - a failing node must not take the host down
            self._record_failure(run, current, e)  # type: ignore[arg-type]
        finally:
            self._end_run(run, current)
        return run.res

    @staticmethod
    def _send(run: _Run, event: str, data: dict) -> None:
        if run.emit:
            run.emit(event, data)

    def _hold_cached(self, run: _Run, nid: str, outputs: tuple, host_bytes: int) -> None:
        """Hold a cached result for the run: its value, its size in the run's live bytes, its entry pinned."""
        run.values[nid], run.sizes[nid] = outputs, host_bytes
        self._live += host_bytes
        self.cache.pin(run.keys[nid])
        run.pinned.append(run.keys[nid])

    def _record_ui(self, run: _Run, nid: str, ui: dict) -> None:
        run.res.ui[nid] = ui
        self._send(run, "executed", {"node": nid, "display_node": nid, "output": ui, "prompt_id": run.res.prompt_id})

    def _step(self, run: _Run, nid: str) -> None:
        """Run one planned node (or reuse the result of an identical node earlier in this run), hold its result
        within the memory budget, cache it, send its ui, then free the inputs nobody needs any more."""
        if self._cancel.is_set():
            raise Interrupted("interrupted before node " + nid)
        node, key, res = run.v.nodes[nid], run.keys[nid], run.res
        entry = None if nid in run.volatile else self.cache.get(key)
        if entry is not None:  # an identical node earlier in this run
            outputs, ui = entry.outputs, entry.ui
            res.cached.append(nid)
        else:
            self._send(run, "executing", {"node": nid, "display_node": nid, "prompt_id": res.prompt_id})
            t0 = time.perf_counter()
            outputs, ui = self._run_node(node, run.values, res.prompt_id, run.emit, run.v.prompt, run.extra)
            res.timings[nid] = time.perf_counter() - t0
            res.executed.append(nid)
            if self._cancel.is_set():  # the node swallowed Interrupted
                raise Interrupted("interrupted in node " + nid)
        run.sizes[nid] = entry.host_bytes if entry is not None else measure_bytes(outputs)[0]
        self._live += run.sizes[nid]
        self._room()
        if self.max_memory and self._live > self.max_memory:
            raise MemoryBudgetError(
                f"its output took {format_bytes(run.sizes[nid])}; with the results still needed the run held "
                f"{format_bytes(self._live)}, over the memory budget of {format_bytes(self.max_memory)} "
                f"(make the batches or pictures smaller, or raise the budget: --max-memory)")
        if nid not in run.volatile:
            if entry is None:
                self.cache.put(key, outputs, ui, class_type=node.cls.name, pin=True)
            else:
                self.cache.pin(key)
            run.pinned.append(key)
        run.values[nid] = outputs
        if ui is not None:
            self._record_ui(run, nid, ui)
        self._free_inputs(run, node)

    def _free_inputs(self, run: _Run, node: PlannedNode) -> None:
        """Drop the inputs of ``node`` that no node still to run reads (targets stay): values, live bytes, pins."""
        for src in {s for s, _ in node.links.values()}:
            run.consumers[src] -= 1
            if run.consumers[src] == 0 and src not in run.targets:
                run.values.pop(src, None)
                self._live -= run.sizes.pop(src, 0)
                if src not in run.volatile:
                    self.cache.unpin(run.keys[src])
                    run.pinned.remove(run.keys[src])
                    self.cache.evict()

    def _record_interrupt(self, run: _Run, current: str | None) -> None:
        res = run.res
        res.status = "interrupted"
        node = run.v.nodes.get(current) if current else None
        res.error = {"node_id": current, "node_type": node.cls.name if node else None,
                     "exception_type": "Interrupted", "exception_message": "interrupted"}
        self._send(run, "execution_interrupted", {"prompt_id": res.prompt_id, "node_id": current,
                                                  "node_type": res.error["node_type"], "executed": list(res.executed)})

    def _record_failure(self, run: _Run, current: str, e: Exception) -> None:
        res, node = run.res, run.v.nodes[current]
        res.status = "error"
        res.error = {"node_id": current, "node_type": node.cls.name, "exception_type": type(e).__name__,
                     "exception_message": str(e), "traceback": traceback.format_exception(e),
                     "executed": list(res.executed)}
        if isinstance(e, NodeInputError):  # the user's mistake, in a known input: no traceback needed
            res.error.update(input_name=e.input_name, hint=e.hint, user_error=True)
        log.error("node %s (%s) failed: %s: %s", current, node.cls.name, type(e).__name__, e)
        self._send(run, "execution_error", {"prompt_id": res.prompt_id, **res.error,
                                            "timestamp": int(time.time() * 1000)})

    def _end_run(self, run: _Run, current: str | None) -> None:
        """Whatever happened: unpin the run's results, drop what broke the memory budget, say the run ended."""
        res = run.res
        if res.status == "error" and current is not None and res.error and \
                res.error.get("exception_type") == "MemoryBudgetError":
            self.cache.discard(run.keys[current])  # never keep what broke the budget
        self._live = 0
        for key in run.pinned:
            self.cache.unpin(key)
        self.cache.evict()
        self._send(run, "executing", {"node": None, "prompt_id": res.prompt_id})

    def _run_node(self, node: PlannedNode, values: dict[str, tuple], prompt_id: str, emit: Listener | None,
                  prompt: dict | None, extra: dict) -> tuple[tuple, dict | None]:
        cls = node.cls
        kwargs: dict[str, Any] = {}
        for inp in cls.inputs:
            name = inp.name
            if name in node.links:
                src, idx = node.links[name]
                kwargs[name] = values[src][idx]
                if self.paths is not None and isinstance(kwargs[name], str) and path_kind(inp) is not None:
                    try:  # a path computed by another node: the same rules as a constant one
                        kwargs[name] = self.paths.resolve(kwargs[name], path_kind(inp))  # type: ignore[arg-type]
                    except PathRefusedError as e:
                        raise NodeInputError(name, str(e)) from None
            elif name in node.consts:
                kwargs[name] = node.consts[name]
            else:
                kwargs[name] = None if inp.default is MISSING else inp.default
        ctx = Context(node.id, cls.name, prompt_id, emit, self._cancel, prompt, extra, self.registry,
                      self._reserve)
        result = self.instance(cls).run_reported(ctx, **kwargs)
        return normalise_result(cls, result)

