"""The prompt queue, its history and the thread that runs it through a runner (no HTTP here).

:class:`PromptQueue` is one part of :class:`~collage_engine.server.PromptServer`, usable and testable alone: it owns
its state (``_cond`` guards ``_pending``, ``_running``, ``_history``, ...), persists it in a
:class:`~collage_engine.server.store.PromptStore` when given one, runs one prompt at a time through a runner
(:mod:`~collage_engine.server.worker`: a worker process or this process's thread) and tells clients what happens
through the ``post(event, data, client_id)`` callback it is given (the server's event hub).
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
import traceback
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from ..executor import public_ui
from .protocol import _now_ms, log
from .store import PromptStore
from .worker import Outcome


# ------------------------------------------------------------------------------------------------- queue
@dataclass(order=False)
class QueueItem:
    """One queued prompt (ComfyUI's ``(number, prompt_id, prompt, extra_data, outputs_to_execute)``)."""

    number: float
    prompt_id: str
    prompt: dict
    extra_data: dict
    targets: list[str]
    client_id: str | None = None
    seq: int = 0

    def as_tuple(self) -> list:
        return [self.number, self.prompt_id, self.prompt, self.extra_data, self.targets]


@dataclass
class _Running:
    item: QueueItem
    outputs: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)
    recorded: bool = False
    started: float = 0.0


class PromptQueue:
    """Queue, history, the queue's thread, execution and interruption.

    ``make_runner(on_event)`` builds the runner (:class:`~collage_engine.server.worker.ThreadRunner` or
    :class:`~collage_engine.server.worker.ProcessRunner`) that sends engine events to ``on_event``; ``store`` keeps
    history and queue on disk (None: memory only; a stored queue is restored here); at most ``max_queue`` prompts
    wait and ``max_history`` finished ones are kept; ``post(event, data, client_id)`` tells clients (any thread)."""

    def __init__(self, make_runner: Callable[[Callable[[str, dict], None]], Any], *, store: PromptStore | None = None,
                 max_queue: int = 1000, max_history: int = 10_000,
                 post: Callable[..., None] = lambda event, data, sid=None: None) -> None:
        self.max_queue, self.max_history = int(max_queue), int(max_history)
        self.post = post
        self._cond = threading.Condition()
        self._pending: list[tuple[float, int, QueueItem]] = []
        self._running: _Running | None = None
        self._history: OrderedDict[str, dict] = OrderedDict()
        self._known_ids: set[str] = set()
        self._seq: Iterator[int] = itertools.count()
        self.number = 0
        self._interrupt_target: str | None = None
        self._stopping = False
        self._worker: threading.Thread | None = None
        self._store = store
        if store is not None:
            self._restore()
        self.runner = make_runner(self._on_event)

    def close(self) -> None:
        """Close the store (after :meth:`stop`)."""
        if self._store is not None:
            self._store.close()
            self._store = None

    # -- durable state -------------------------------------------------------------------------------------------
    def _persist(self, method: str, *args) -> Any:
        """Write a change to the durable store (if any); a failing disk is logged, never fatal to the request."""
        if self._store is None:
            return None
        try:
            return getattr(self._store, method)(*args)
        except Exception:  # noqa: BLE001
            log.exception("could not save the queue/history change (%s)", method)
            return None

    def _restore(self) -> None:
        """Load history and queue from the store: prompts that were running when the server stopped become failed
        history entries, waiting ones are queued again with their numbers."""
        assert self._store is not None
        history, pending, running = self._store.load(self.max_history)
        numbers = [0]
        with self._cond:
            for pid, entry in history:
                self._history[pid] = entry
                self._known_ids.add(pid)
                prompt = entry.get("prompt") if isinstance(entry, dict) else None
                if isinstance(prompt, list) and prompt and isinstance(prompt[0], (int, float)):
                    numbers.append(prompt[0])
            for pid, item in running:
                msg = ("the server stopped while this prompt was running (it was killed or crashed); "
                       "nothing of this run was kept: queue it again")
                err = {"prompt_id": pid, "node_id": "", "node_type": "", "executed": [],
                       "exception_type": "ServerStopped", "exception_message": msg, "traceback": [],
                       "current_inputs": {}, "current_outputs": {}, "timestamp": _now_ms()}
                entry = {"prompt": [item.get("number", 0), pid, item.get("prompt", {}), item.get("extra_data", {}),
                                    item.get("targets", [])],
                         "outputs": {}, "meta": {},
                         "status": {"status_str": "error", "completed": False,
                                    "messages": [["execution_error", err]]}}
                self._history[pid] = entry
                self._known_ids.add(pid)
                for old in self._store.finish(pid, entry, self.max_history):
                    self._history.pop(old, None)
                    self._known_ids.discard(old)
                log.warning("prompt %s was running when the server stopped: recorded as failed", pid)
            for pid, number, item in pending:
                q = QueueItem(int(number) if float(number).is_integer() else number, pid, item.get("prompt", {}),
                              item.get("extra_data", {}), list(item.get("targets", [])), item.get("client_id"),
                              next(self._seq))
                heapq.heappush(self._pending, (q.number, q.seq, q))
                self._known_ids.add(pid)
                numbers.append(number)
            self.number = max(self.number, int(max(numbers)) + 1)

    # -- worker --------------------------------------------------------------------------------------------------
    def start(self) -> None:
        with self._cond:
            if self._worker is not None and self._worker.is_alive():
                return
            self._stopping = False
        self.runner.start()
        self._worker = threading.Thread(target=self._work, name="prompt-worker", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the queue's thread and its runner: the running prompt is interrupted, pending prompts stay queued."""
        with self._cond:
            self._stopping = True
            if self._running is not None:
                self.runner.interrupt()
            self._cond.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)
            self._worker = None
        self.runner.stop()

    # -- queue ---------------------------------------------------------------------------------------------------
    def queue_remaining(self) -> int:
        with self._cond:
            return len(self._pending) + (1 if self._running is not None else 0)

    def status(self) -> dict:
        return {"exec_info": {"queue_remaining": self.queue_remaining()}}

    def enqueue(self, prompt: dict, *, client_id: str | None = None, prompt_id: str | None = None,
                extra_data: dict | None = None, targets: Iterable[str] = (), front: bool = False,
                number: float | None = None) -> QueueItem:
        """Put an (already validated) prompt on the queue; ``OverflowError`` when it is full, ``KeyError`` when
        ``prompt_id`` is in use."""
        with self._cond:
            if len(self._pending) >= self.max_queue:
                raise OverflowError(f"the queue is full ({self.max_queue} prompts waiting)")
            prompt_id = prompt_id or str(uuid.uuid4())
            if prompt_id in self._known_ids:
                raise KeyError(prompt_id)
            if number is None:
                number = -self.number if front else self.number
                self.number += 1
            item = QueueItem(float(number) if not float(number).is_integer() else int(number), prompt_id, prompt,
                             extra_data or {}, list(targets), client_id, next(self._seq))
            self._persist("add_pending", prompt_id, item.number, item.seq, {
                "number": item.number, "prompt": prompt, "extra_data": item.extra_data, "targets": item.targets,
                "client_id": client_id})
            heapq.heappush(self._pending, (item.number, item.seq, item))
            self._known_ids.add(prompt_id)
            self._cond.notify_all()
        self.post("status", {"status": self.status()})
        return item

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._pending and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                item = heapq.heappop(self._pending)[2]
                self._running = _Running(item, started=time.time())
            self._persist("mark_running", item.prompt_id)
            self.post("status", {"status": self.status()})
            try:
                self._execute(item)
            except Exception:  # noqa: BLE001 - the worker must survive anything
                log.exception("prompt %s failed outside the engine", item.prompt_id)
                with self._cond:
                    run = self._running
                if run is not None and not run.recorded:
                    err = {"prompt_id": item.prompt_id, "node_id": "", "node_type": "", "executed": [],
                           "exception_type": "ServerError", "exception_message": "the server failed to run it",
                           "traceback": traceback.format_exc().splitlines(), "current_inputs": {},
                           "current_outputs": {}, "timestamp": _now_ms()}
                    self._finish(run, "execution_error", err)
            finally:
                with self._cond:
                    self._running = None
                    if self._interrupt_target == item.prompt_id:
                        self._interrupt_target = None
                self.post("status", {"status": self.status()})

    def _execute(self, item: QueueItem) -> None:
        extra = dict(item.extra_data.get("extra_pnginfo") or {})
        res: Outcome = self.runner.run(item.prompt_id, item.prompt, list(item.targets), extra)
        with self._cond:
            run = self._running
        if run is None or run.recorded:
            return
        if res.status == "died":  # the worker process ended under the prompt; the runner starts a fresh one
            log.warning("prompt %s: %s", item.prompt_id, res.message)
            err = {"prompt_id": item.prompt_id, "node_id": res.node_id, "node_type": res.node_type,
                   "executed": [], "exception_type": "WorkerStopped", "exception_message": res.message,
                   "traceback": [], "current_inputs": {}, "current_outputs": {}, "timestamp": _now_ms()}
            self._finish(run, "execution_error", err)
            self.post("executing", {"node": None, "prompt_id": item.prompt_id}, item.client_id)
            return
        # No terminal event came from the engine: the prompt became invalid between queueing and running.
        if res.status == "invalid":
            errors = res.errors or {}
            top = errors.get("error") or {}
            nid = next(iter(errors.get("node_errors") or {}), "")
            entry = (errors.get("node_errors") or {}).get(nid, {})
            msg = "; ".join(e.get("message", "") for e in entry.get("errors", [])) or top.get("message", "invalid")
            err = {"prompt_id": item.prompt_id, "node_id": str(nid), "node_type": str(entry.get("class_type", "")),
                   "executed": [], "exception_type": "ValidationError", "exception_message": msg,
                   "traceback": [], "current_inputs": {}, "current_outputs": {}, "timestamp": _now_ms(),
                   "node_errors": errors.get("node_errors") or {}}
            self._finish(run, "execution_error", err)
            self.post("executing", {"node": None, "prompt_id": item.prompt_id}, item.client_id)
        else:
            self._finish(run, "execution_" + ("success" if res.ok else "error"), {"prompt_id": item.prompt_id,
                                                                              "timestamp": _now_ms()})

    def _on_event(self, event: str, data: dict) -> None:
        """Engine listener (worker thread): record, then forward to the prompt's client."""
        with self._cond:
            run = self._running
            target = self._interrupt_target
        if run is None or data.get("prompt_id") != run.item.prompt_id:
            return
        item = run.item
        if event == "execution_start":
            if target == item.prompt_id:  # an interrupt that came before the engine cleared its flag
                self.runner.interrupt()
            run.messages.append([event, dict(data)])
        elif event == "execution_cached":
            run.messages.append([event, dict(data)])
        elif event == "executed":
            data = {**data, "output": public_ui(data.get("output"))}
            run.outputs[str(data.get("node"))] = data["output"]
        elif event == "execution_error":
            data = {"current_inputs": {}, "current_outputs": {}, **data}
            data["node_id"] = "" if data.get("node_id") is None else str(data["node_id"])
            data["node_type"] = str(data.get("node_type") or "")
            data["exception_message"] = str(data.get("exception_message") or "")
            data["exception_type"] = str(data.get("exception_type") or "")
            data["traceback"] = [str(t) for t in data.get("traceback") or []]
            self._finish(run, event, data)
            return
        elif event in ("execution_success", "execution_interrupted"):
            data = {**data, "timestamp": data.get("timestamp", _now_ms())}
            self._finish(run, event, data)
            return
        self.post(event, data, item.client_id)

    def _finish(self, run: _Running, event: str, data: dict) -> None:
        """Record the finished prompt in the history, then tell its client (so history is there first)."""
        if run.recorded:
            return
        run.recorded = True
        run.messages.append([event, data])
        item = run.item
        ok = event == "execution_success"
        entry = {"prompt": item.as_tuple(), "outputs": run.outputs,
                 "status": {"status_str": "success" if ok else "error", "completed": ok, "messages": run.messages},
                 "meta": {nid: {"node_id": nid, "display_node": nid, "parent_node": None, "real_node_id": nid}
                          for nid in run.outputs}}
        self._persist("finish", item.prompt_id, entry, self.max_history)
        with self._cond:
            self._history[item.prompt_id] = entry
            while len(self._history) > self.max_history:
                old, _ = self._history.popitem(last=False)
                self._known_ids.discard(old)
        self.post(event, data, item.client_id)

    def interrupt(self, prompt_id: str | None = None) -> bool:
        """Interrupt the running prompt (only if it is ``prompt_id``, when given); False if nothing was running."""
        with self._cond:
            run = self._running
            if run is None or (prompt_id and run.item.prompt_id != prompt_id):
                return False
            self._interrupt_target = run.item.prompt_id
            self.runner.interrupt()
            return True

    def delete_pending(self, prompt_id: str) -> bool:
        with self._cond:
            for i, (_, _, item) in enumerate(self._pending):
                if item.prompt_id == prompt_id:
                    self._pending.pop(i)
                    heapq.heapify(self._pending)
                    self._known_ids.discard(prompt_id)
                    break
            else:
                return False
        self._persist("drop_pending", prompt_id)
        self.post("status", {"status": self.status()})
        return True

    def clear_pending(self) -> int:
        with self._cond:
            n = len(self._pending)
            for _, _, item in self._pending:
                self._known_ids.discard(item.prompt_id)
            self._pending.clear()
        self._persist("clear_pending")
        self.post("status", {"status": self.status()})
        return n

    def clear_history(self) -> None:
        with self._cond:
            for pid in self._history:
                self._known_ids.discard(pid)
            self._history.clear()
        self._persist("clear_history")

    def delete_history(self, ids: Iterable[Any]) -> list[str]:
        """Drop these finished prompts from the history; return the ids that were there."""
        deleted = []
        with self._cond:
            for pid in ids:
                if isinstance(pid, str) and self._history.pop(pid, None) is not None:
                    self._known_ids.discard(pid)
                    deleted.append(pid)
        if deleted:
            self._persist("delete_history", *deleted)
        return deleted

    def running_item(self) -> QueueItem | None:
        with self._cond:
            return self._running.item if self._running is not None else None

    def free(self) -> None:
        """Drop cached results and models (only between prompts: the cache belongs to the run while it runs)."""
        with self._cond:
            if self._running is None:
                self.runner.free()

    def history(self) -> OrderedDict:
        with self._cond:
            return OrderedDict(self._history)

    def snapshot(self) -> tuple[list[QueueItem], list[QueueItem]]:
        """``(running, pending)`` queue items, pending in execution order."""
        with self._cond:
            running = [self._running.item] if self._running is not None else []
            pending = [it for _, _, it in sorted(self._pending, key=lambda t: (t[0], t[1]))]
        return running, pending

    def cancel(self, job_id: str) -> bool:
        """Cancel a job: interrupt it if running, drop it if pending; False for finished or unknown ids."""
        return self.interrupt(job_id) or self.delete_pending(job_id)
