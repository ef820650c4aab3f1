"""History and queue survive the server: 250 prompts in a row all stay in /history, and a server killed with
SIGKILL in the middle of a prompt, started again on the same folder, still shows what had finished, records the
interrupted prompt as failed and runs the prompts that were waiting. Partial uploads of the dead server are swept."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("aiohttp", reason="the server needs aiohttp (pip install 'neural-collage[serve]')")

from collage_engine.server import PromptServer  # noqa: E402
from engine_testnodes import make_registry  # noqa: E402
from serve_support import get_json, post_json, start  # noqa: E402

TESTS = Path(__file__).resolve().parents[1]


def prompt(seed: int, steps: int = 1, slow: bool = False) -> dict:
    p = {"1": {"class_type": "MakeNumber", "inputs": {"seed": seed, "scale": 1.0, "mode": "add"}},
         "3": {"class_type": "ShowNumber", "inputs": {"x": ["1", 0], "label": f"s{seed}"}}}
    if slow:
        p["2"] = {"class_type": "Slow", "inputs": {"x": ["1", 0], "steps": steps}}
        p["3"]["inputs"]["x"] = ["2", 0]
    return p


def wait_idle(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while get_json(url, "/api/prompt")[1]["exec_info"]["queue_remaining"]:
        assert time.monotonic() < deadline, "the queue did not drain"
        time.sleep(0.05)


def test_250_prompts_all_stay_in_history(tmp_path):
    server = PromptServer(registry=make_registry(), base_dir=str(tmp_path))
    bg = start(server)
    try:
        ids = [post_json(bg.url, "/api/prompt", {"prompt": prompt(i)})[1]["prompt_id"] for i in range(250)]
        wait_idle(bg.url)
        history = get_json(bg.url, "/api/history")[1]
        assert set(ids) <= set(history) and len(history) == 250
        assert all(history[i]["status"]["status_str"] == "success" for i in ids)
    finally:
        bg.stop()
        server.close()
    again = PromptServer(registry=make_registry(), base_dir=str(tmp_path))  # and all of them after a restart
    try:
        assert list(again.queue.history()) == ids
    finally:
        again.close()


def test_history_stays_capped_on_disk(tmp_path):
    server = PromptServer(registry=make_registry(), base_dir=str(tmp_path), max_history=3)
    bg = start(server)
    try:
        ids = [post_json(bg.url, "/api/prompt", {"prompt": prompt(i)})[1]["prompt_id"] for i in range(6)]
        wait_idle(bg.url)
        assert post_json(bg.url, "/api/history", {"delete": [ids[-1]]})[0] == 200
    finally:
        bg.stop()
        server.close()
    again = PromptServer(registry=make_registry(), base_dir=str(tmp_path), max_history=3)
    try:
        assert list(again.queue.history()) == ids[3:5]
    finally:
        again.close()


CHILD = """
import time
from collage_engine.server import PromptServer
from engine_testnodes import make_registry
from serve_support import start
bg = start(PromptServer(registry=make_registry(), base_dir={base!r}))
print(bg.url, flush=True)
time.sleep(600)
"""


def test_kill_9_and_restart_keeps_history_and_runs_the_queue(tmp_path):
    base = str(tmp_path / "srv")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))}
    child = subprocess.Popen([sys.executable, "-c", CHILD.format(base=base)], stdout=subprocess.PIPE, text=True,
                             env=env)
    try:
        url = child.stdout.readline().strip()
        assert url.startswith("http://"), url
        done = post_json(url, "/api/prompt", {"prompt": prompt(1)})[1]["prompt_id"]
        wait_idle(url)
        running = post_json(url, "/api/prompt", {"prompt": prompt(2, steps=100_000, slow=True)})[1]["prompt_id"]
        waiting = [post_json(url, "/api/prompt", {"prompt": prompt(3 + i)})[1]["prompt_id"] for i in range(2)]
        deadline = time.monotonic() + 30
        while not get_json(url, "/api/queue")[1]["queue_running"]:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        Path(base, "temp", ".upload-abc123").write_bytes(b"half an upload")  # what a killed upload leaves
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()

    server = PromptServer(registry=make_registry(), base_dir=base)
    assert not os.path.exists(os.path.join(base, "temp", ".upload-abc123"))
    bg = start(server)
    try:
        wait_idle(bg.url)
        history = get_json(bg.url, "/api/history")[1]
        assert history[done]["status"]["status_str"] == "success"
        assert history[done]["outputs"] == {"3": {"value": [2.0], "label": ["s1"]}}
        failed = history[running]["status"]
        assert failed["status_str"] == "error"
        assert "server stopped while this prompt was running" in json.dumps(failed["messages"])
        for pid, seed in zip(waiting, (3, 4)):
            assert history[pid]["status"]["status_str"] == "success"
            assert history[pid]["outputs"]["3"]["value"] == [seed + 1.0]
        # numbering goes on after the old prompts: a new prompt is not numbered before them
        new = post_json(bg.url, "/api/prompt", {"prompt": prompt(9)})[1]
        assert new["number"] > max(h["prompt"][0] for h in history.values())
    finally:
        bg.stop()
        server.close()


def test_without_durable_nothing_is_written(tmp_path):
    server = PromptServer(registry=make_registry(), base_dir=str(tmp_path), durable=False)
    assert not list(tmp_path.rglob("*.sqlite3"))
    server.close()
