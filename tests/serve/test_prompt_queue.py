"""The prompt queue alone: no HTTP, no engine, a fake runner. Order, history, events to the right client, a worker
that died under a prompt, interrupts forwarded, the store written through."""

from __future__ import annotations

import threading
import time

import pytest

pytest.importorskip("aiohttp", reason="the server package needs aiohttp (pip install 'neural-collage[serve]')")

from collage_engine.server.queue import PromptQueue  # noqa: E402
from collage_engine.server.store import PromptStore  # noqa: E402
from collage_engine.server.worker import Outcome  # noqa: E402


class FakeRunner:
    """Runs a prompt by sending the engine's events for it; ``{"die": ...}`` in a prompt ends like a dead worker."""

    def __init__(self, on_event):
        self.on_event, self.ran, self.interrupts, self.started = on_event, [], 0, False
        self.gate = threading.Event()
        self.gate.set()

    def start(self):
        self.started = True

    def stop(self):
        self.started = False

    def interrupt(self):
        self.interrupts += 1
        self.gate.set()

    def free(self):
        pass

    def run(self, prompt_id, prompt, targets, extra):
        self.ran.append(prompt_id)
        self.gate.wait(10)
        self.on_event("execution_start", {"prompt_id": prompt_id})
        self.on_event("executing", {"node": "1", "prompt_id": prompt_id})
        if "die" in prompt:
            return Outcome("died", message="the run stopped at node 1 'X': the worker was killed", node_id="1",
                           node_type="X")
        self.on_event("executed", {"node": "1", "output": {"value": [len(prompt_id)]}, "prompt_id": prompt_id})
        self.on_event("execution_success", {"prompt_id": prompt_id})
        return Outcome("success", True)


def _wait_idle(q: PromptQueue, timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while q.queue_remaining() and time.monotonic() < end:
        time.sleep(0.01)
    assert q.queue_remaining() == 0


def test_the_queue_runs_in_order_and_records_history_and_events(tmp_path):
    posted = []
    store = PromptStore(str(tmp_path / "q.sqlite3"))
    q = PromptQueue(FakeRunner, store=store, post=lambda e, d, sid=None: posted.append((e, d, sid)))
    q.enqueue({"a": {}}, prompt_id="p1", client_id="c1")
    q.enqueue({"b": {}}, prompt_id="p2", client_id="c2")
    q.enqueue({"c": {}}, prompt_id="p0", client_id="c1", front=True)
    q.start()
    assert q.runner.started
    _wait_idle(q)
    q.stop()
    assert q.runner.ran == ["p0", "p1", "p2"] and not q.runner.started
    hist = q.history()
    assert list(hist) == ["p0", "p1", "p2"]
    assert all(e["status"]["status_str"] == "success" for e in hist.values())
    assert hist["p2"]["outputs"] == {"1": {"value": [2]}}
    successes = [(d["prompt_id"], sid) for e, d, sid in posted if e == "execution_success"]
    assert successes == [("p0", "c1"), ("p1", "c1"), ("p2", "c2")]
    q.close()
    history, pending, running = PromptStore(str(tmp_path / "q.sqlite3")).load(10)
    assert [pid for pid, _ in history] == ["p0", "p1", "p2"] and pending == [] and running == []


def test_a_worker_that_died_fails_its_prompt_and_the_next_runs():
    posted = []
    q = PromptQueue(FakeRunner, post=lambda e, d, sid=None: posted.append((e, d, sid)))
    q.enqueue({"die": {}}, prompt_id="dead", client_id="c")
    q.enqueue({"ok": {}}, prompt_id="fine", client_id="c")
    q.start()
    _wait_idle(q)
    q.stop()
    dead = q.history()["dead"]["status"]
    assert dead["status_str"] == "error"
    err = dead["messages"][-1][1]
    assert err["exception_type"] == "WorkerStopped" and err["node_id"] == "1" and "was killed" in \
        err["exception_message"]
    assert q.history()["fine"]["status"]["status_str"] == "success"
    assert ("execution_error", err, "c") in posted


def test_interrupt_reaches_the_runner_only_for_the_running_prompt():
    q = PromptQueue(FakeRunner)
    q.runner.gate.clear()  # the first prompt waits inside the runner
    q.enqueue({"a": {}}, prompt_id="p1")
    q.enqueue({"b": {}}, prompt_id="p2")
    q.start()
    end = time.monotonic() + 5
    while q.running_item() is None and time.monotonic() < end:
        time.sleep(0.01)
    assert q.running_item().prompt_id == "p1"
    assert not q.interrupt("p2") and q.runner.interrupts == 0  # p2 waits: nothing to interrupt
    assert q.delete_pending("p2") and q.snapshot() == ([q.running_item()], [])
    assert q.interrupt("p1") and q.runner.interrupts == 1
    _wait_idle(q)
    q.stop()
    assert q.runner.ran == ["p1"]


def test_a_full_queue_and_a_reused_id_are_refused():
    q = PromptQueue(FakeRunner, max_queue=2)
    q.enqueue({}, prompt_id="a")
    q.enqueue({}, prompt_id="b")
    with pytest.raises(OverflowError):
        q.enqueue({}, prompt_id="c")
    assert q.delete_pending("b")
    with pytest.raises(KeyError):
        q.enqueue({}, prompt_id="a")  # still waiting
    assert q.clear_pending() == 1
    q.enqueue({}, prompt_id="a")  # cleared ids are free again
