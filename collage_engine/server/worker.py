"""Where prompts run: in the server's own thread (:class:`ThreadRunner`) or in a supervised child process
(:class:`ProcessRunner`) that the server survives.

Both give the queue the same four calls: :meth:`run` (blocks until the prompt ended, returns a :class:`Outcome`),
:meth:`interrupt`, :meth:`free` and :meth:`stop`; engine events reach ``on_event(event, data)`` as they happen.

:class:`ProcessRunner` keeps a warm worker process (``spawn``: nothing of the server's threads is copied) that
builds its engine from a picklable factory and holds the models and the result cache. The worker asks the kernel
to kill it first when memory runs out (``/proc/self/oom_score_adj`` = 1000); a watchdog thread of the server reads
its resident size ten times a second and kills it above ``memory_limit``. When the worker dies while it runs a
prompt (out of memory, a crash in native code, an interrupt it did not obey within ``kill_after`` seconds) the
outcome says so, naming the node that was running, and a fresh worker is started for the next prompt.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..memory import format_bytes

__all__ = ["Outcome", "ThreadRunner", "ProcessRunner", "process_rss", "worker_memory_limit"]

log = logging.getLogger("collage_engine.server")
EventSink = Callable[[str, dict], None]


@dataclass
class Outcome:
    """How a prompt ended: ``status`` of the engine's run (``success``, ``error``, ``interrupted``, ``invalid``),
    or ``died`` when the worker process ended under it (``message`` says why and where, for people)."""

    status: str
    ok: bool = False
    errors: dict = field(default_factory=dict)
    message: str = ""
    node_id: str = ""
    node_type: str = ""


def process_rss(pid: int) -> int | None:
    """Resident bytes of process ``pid`` (Linux ``/proc``); None where that cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def worker_memory_limit(fraction: float = 0.85) -> int | None:
    """The default limit of the worker's resident memory: ``fraction`` of the memory available now (the memory
    cgroup's room counts: :func:`~collage_engine.memory.available_memory`), so that the watchdog stops the worker
    before the kernel has to."""
    from ..memory import available_memory

    free = available_memory()
    return int(free * fraction) if free else None


def _jsonable(obj: Any) -> Any:
    """``obj`` as plain JSON data (what crosses the pipe and what clients get anyway)."""
    from .protocol import _finite

    return json.loads(json.dumps(_finite(obj)))


# --------------------------------------------------------------------------------------------- in the thread
class ThreadRunner:
    """Runs prompts on ``engine`` in the calling thread (the engine's events go to ``on_event``)."""

    def __init__(self, engine: Any, on_event: EventSink) -> None:
        self.engine = engine
        engine.add_listener(on_event)

    def start(self) -> None:
        pass

    def run(self, prompt_id: str, prompt: dict, targets: list[str], extra: dict) -> Outcome:
        res = self.engine.run(prompt, targets or None, prompt_id=prompt_id, extra=extra)
        return Outcome(res.status, bool(res.ok), dict(res.errors or {}))

    def interrupt(self) -> None:
        self.engine.interrupt()

    def free(self) -> None:
        clear = getattr(self.engine.cache, "clear", None)
        if callable(clear):
            clear()

    def stop(self) -> None:
        self.engine.interrupt()

    @property
    def alive(self) -> bool:
        return True


# ------------------------------------------------------------------------------------------- in a process
def _worker_main(factory: Callable[[], Any], conn: Any) -> None:  # pragma: no cover - child
    """The worker process: build the engine, then run what the server sends until it says stop or goes away."""
    try:
        with open("/proc/self/oom_score_adj", "w") as f:  # the kernel kills the worker, not the server
            f.write("1000")
    except OSError:
        pass
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C in the terminal is the server's to handle
    send_lock = threading.Lock()

    def send(msg: tuple) -> None:
        with send_lock:
            conn.send(msg)

    try:
        engine = factory()
    except BaseException as e:  # noqa: BLE001 - told to the server, which reports it
        send(("failed", f"{type(e).__name__}: {e}"))
        return
    engine.add_listener(lambda event, data: send(("event", event, _jsonable(data))))
    jobs: queue.Queue = queue.Queue()

    def read() -> None:
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                os._exit(0)  # the server is gone: so is its worker
            if msg[0] == "interrupt":
                engine.interrupt()
            else:
                jobs.put(msg)

    threading.Thread(target=read, name="worker-reader", daemon=True).start()
    send(("ready", os.getpid()))
    while True:
        msg = jobs.get()
        if msg[0] == "stop":
            return
        if msg[0] == "free":
            clear = getattr(engine.cache, "clear", None)
            if callable(clear):
                clear()
            continue
        _, prompt_id, prompt, targets, extra = msg
        try:
            res = engine.run(prompt, targets or None, prompt_id=prompt_id, extra=extra)
            send(("done", prompt_id, res.status, bool(res.ok), _jsonable(res.errors or {})))
        except BaseException as e:  # noqa: BLE001 - the engine catches node errors; this is the engine failing
            send(("done", prompt_id, "error", False, {"error": {"message": f"{type(e).__name__}: {e}"}}))


@dataclass
class _Job:
    prompt_id: str
    prompt: dict
    done: threading.Event = field(default_factory=threading.Event)
    outcome: Outcome | None = None
    node: str = ""
    interrupted_at: float | None = None


class ProcessRunner:
    """Runs prompts in a supervised worker process built by ``factory`` (picklable: a module-level function or a
    ``functools.partial`` of one), restarting it whenever it dies.

    ``memory_limit``: resident bytes above which the watchdog kills the worker (None: :func:`worker_memory_limit`;
    0: no watchdog). ``kill_after``: seconds an interrupted prompt may take to stop before its worker is killed
    and replaced."""

    def __init__(self, factory: Callable[[], Any], on_event: EventSink, *, memory_limit: int | None = None,
                 kill_after: float = 5.0, start_timeout: float = 120.0, poll: float = 0.1) -> None:
        self.factory = factory
        self.on_event = on_event
        self.memory_limit = worker_memory_limit() if memory_limit is None else (memory_limit or None)
        self.kill_after = float(kill_after)
        self.start_timeout = float(start_timeout)
        self.poll = float(poll)
        self._ctx = multiprocessing.get_context("spawn")
        self._lock = threading.RLock()
        self._send_lock = threading.Lock()  # a pipe's send is not safe from two threads at once
        self._reader: threading.Thread | None = None
        self._proc: Any = None
        self._conn: Any = None
        self._ready = threading.Event()
        self._start_error: str | None = None
        self._job: _Job | None = None
        self._kill_reason: str | None = None
        self._stopping = False
        self.restarts = 0  # workers started after the first
        self.peak_rss = 0

    # -- life cycle --------------------------------------------------------------------------------------------
    def start(self) -> None:
        """Start a worker (returns at once; :meth:`run` waits until it is ready)."""
        with self._lock:
            if self._stopping or (self._proc is not None and self._proc.is_alive()):
                return
            ours, theirs = self._ctx.Pipe()
            self._ready.clear()
            self._start_error = None
            self._kill_reason = None
            proc = self._ctx.Process(target=_worker_main, args=(self.factory, theirs),
                                     name="collage-worker", daemon=True)
            proc.start()
            theirs.close()
            self._proc, self._conn = proc, ours
        reader = threading.Thread(target=self._read, args=(proc, ours), name="worker-events", daemon=True)
        with self._lock:
            self._reader = reader
        reader.start()
        threading.Thread(target=self._watch, args=(proc,), name="worker-watchdog", daemon=True).start()

    @property
    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the worker: ask, then kill it if it does not end within ``timeout`` seconds."""
        with self._lock:
            self._stopping = True
            proc, conn, reader = self._proc, self._conn, self._reader
        if proc is None:
            return
        self._send(conn, ("interrupt",))
        self._send(conn, ("stop",))
        # the reader thread is the one that reaps the worker (two threads waiting on one process race: the loser's
        # wait sees no child and reports it alive), so wait for the reader, not for the process
        if reader is not None:
            reader.join(timeout)
        if proc.is_alive():
            proc.kill()
            if reader is not None:
                reader.join(10)
        self._fail_job("the server stopped while this prompt was running")

    # -- what the queue calls -------------------------------------------------------------------------------------
    def run(self, prompt_id: str, prompt: dict, targets: list[str], extra: dict) -> Outcome:
        if not self._ensure_ready():
            return Outcome("died", message=f"the run could not start: the worker did not start "
                                           f"({self._start_error or 'no answer'})")
        job = _Job(prompt_id, prompt)
        with self._lock:
            self._job = job
            conn, reader = self._conn, self._reader
        self._send(conn, ("run", prompt_id, prompt, list(targets), extra))  # a gone worker: its reader says so
        while not job.done.wait(0.2):
            if reader is not None and not reader.is_alive():  # it died before this job was known to the reader
                self._fail_job("the worker ended unexpectedly")
            if job.interrupted_at is not None and time.monotonic() - job.interrupted_at > self.kill_after:
                self._kill(f"it did not stop within {self.kill_after:g} s of the interrupt; the worker was "
                           "replaced")
        with self._lock:
            if self._job is job:
                self._job = None
        if not self.alive and not self._stopping:
            self.restarts += 1
            self.start()  # warm again for the next prompt
        assert job.outcome is not None
        return job.outcome

    def interrupt(self) -> None:
        with self._lock:
            job, conn = self._job, self._conn
            if job is not None and job.interrupted_at is None:
                job.interrupted_at = time.monotonic()
        if conn is not None:
            self._send(conn, ("interrupt",))

    def free(self) -> None:
        with self._lock:
            conn = self._conn if self._job is None else None
        if conn is not None:
            self._send(conn, ("free",))

    # -- internals -----------------------------------------------------------------------------------------------
    def _send(self, conn: Any, msg: tuple) -> None:
        with self._send_lock:
            try:
                conn.send(msg)
            except (OSError, ValueError, EOFError):
                pass  # the worker is gone: its reader thread reports it

    def _ensure_ready(self) -> bool:
        for _ in range(2):  # a worker that died while idle is replaced once
            if not self.alive:
                self.start()
            if self._ready.wait(self.start_timeout) and self.alive:
                return True
            if self._start_error:
                return False
        return False

    def _kill(self, reason: str) -> None:
        with self._lock:
            proc = self._proc
            if self._kill_reason is None:
                self._kill_reason = reason
        if proc is not None and proc.is_alive():
            proc.kill()

    def _read(self, proc: Any, conn: Any) -> None:
        """Events from the worker until it ends; then fail the prompt it was running, saying why."""
        while True:
            try:
                msg = conn.recv()
            except (EOFError, OSError):
                break
            kind = msg[0]
            if kind == "ready":
                self._ready.set()
            elif kind == "failed":
                self._start_error = msg[1]
                self._ready.set()
            elif kind == "event":
                job = self._job
                if job is not None and msg[1] == "executing" and msg[2].get("prompt_id") == job.prompt_id:
                    job.node = str(msg[2].get("node") or "")
                try:
                    self.on_event(msg[1], msg[2])
                except Exception:  # noqa: BLE001
                    log.exception("event %s from the worker failed", msg[1])
            elif kind == "done":
                job = self._job
                if job is not None and job.prompt_id == msg[1]:
                    job.outcome = Outcome(msg[2], msg[3], msg[4])
                    job.done.set()
        proc.join(5)
        try:
            conn.close()
        except OSError:
            pass
        self._ready.set()  # wake a run waiting for a worker that died while starting
        with self._lock:
            reason = self._kill_reason
        code = proc.exitcode
        if reason is None:
            if code is not None and code < 0:
                sig = -code
                name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
                reason = (f"the worker was killed ({name}" + (": most likely the system ran out of memory"
                                                              if sig == signal.SIGKILL else "") + ")")
            else:
                reason = f"the worker ended unexpectedly (exit code {code})"
        self._fail_job(reason)

    def _fail_job(self, reason: str) -> None:
        with self._lock:
            job = self._job
        if job is None or job.done.is_set():
            return
        node = job.node
        node_type = ""
        title = ""
        if node and isinstance(job.prompt.get(node), dict):
            node_type = str(job.prompt[node].get("class_type") or "")
            meta = job.prompt[node].get("_meta")
            title = str(meta.get("title") or "") if isinstance(meta, dict) else ""
        where = f" at node {node} '{title or node_type}'" if node else ""
        job.outcome = Outcome("died", message=f"the run stopped{where}: {reason}", node_id=node, node_type=node_type)
        job.done.set()

    def _watch(self, proc: Any) -> None:
        """Kill the worker when its resident memory passes the limit."""
        while proc.is_alive():
            rss = process_rss(proc.pid)
            if rss is not None:
                self.peak_rss = max(self.peak_rss, rss)
                if self.memory_limit and rss > self.memory_limit:
                    self._kill(f"the worker ran out of memory ({format_bytes(rss)}, limit "
                               f"{format_bytes(self.memory_limit)}; make the batch or the pictures smaller)")
                    return
            time.sleep(self.poll)


if sys.platform == "win32":  # pragma: no cover - no /proc: no watchdog there, the kernel's limits still apply
    process_rss = lambda pid: None  # noqa: E731
