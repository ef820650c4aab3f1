"""Issue 25: no workflow takes the server down. Prompts run in a supervised worker process: one that runs out of
memory, ignores an interrupt or is killed by the kernel fails with a message naming the node, a fresh worker takes
the next prompt and the server keeps answering. Also: one server per folder, a damaged history database set aside,
no server paths in answers, upload names refused cleanly."""

from __future__ import annotations

import asyncio
import functools
import json
import os
import sqlite3
import subprocess
import sys
import textwrap

import pytest

aiohttp = pytest.importorskip("aiohttp", reason="the server needs aiohttp (pip install 'neural-collage[serve]')")

from collage_engine.server import PromptServer  # noqa: E402
from collage_engine.server.lock import FolderBusy, FolderLock  # noqa: E402
from collage_engine.server.protocol import Redactor  # noqa: E402
from collage_engine.server.store import PromptStore  # noqa: E402
from collage_engine.server.worker import ProcessRunner, process_rss  # noqa: E402
from engine_testnodes import chain_workflow, make_engine, make_registry  # noqa: E402
from serve_support import Client, get_json, raw, start  # noqa: E402

MiB = 1 << 20
linux_only = pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="the watchdog reads /proc")


def worker_server(tmp_path, **kw) -> PromptServer:
    return PromptServer(registry=make_registry(), base_dir=str(tmp_path / "srv"),
                        worker=functools.partial(make_engine), **kw)


async def _queue_and_wait(url: str, prompt: dict, timeout: float = 120.0) -> tuple[dict, list[dict]]:
    async with Client(url) as c:
        status, body = await c.queue(prompt)
        assert status == 200, body
        end = await c.done(body["prompt_id"], timeout=timeout)
        return end, c.of(body["prompt_id"])


def _hog(mb: int) -> dict:
    return {"7": {"class_type": "Hog", "inputs": {"mb": mb}, "_meta": {"title": "Eat memory"}},
            "8": {"class_type": "BlobSink", "inputs": {"blob": ["7", 0]}}}


@linux_only
def test_a_worker_over_its_memory_limit_fails_the_prompt_and_a_fresh_one_runs_the_next(tmp_path):
    server = worker_server(tmp_path, worker_memory_limit=700 * MiB)
    bg = start(server)
    try:
        first_pid = None

        async def go():
            nonlocal first_pid
            await asyncio.get_running_loop().run_in_executor(None, server.runner._ready.wait, 120)
            first_pid = server.runner.pid
            end, _ = await _queue_and_wait(bg.url, _hog(4096))
            ok, msgs = await _queue_and_wait(bg.url, chain_workflow(2, seed=3))
            return end, ok, msgs
        end, ok, msgs = asyncio.run(go())
        assert end["type"] == "execution_error"
        data = end["data"]
        assert data["exception_type"] == "WorkerStopped" and data["node_id"] == "7" and data["node_type"] == "Hog"
        msg = data["exception_message"]
        assert "at node 7 'Eat memory'" in msg and "ran out of memory" in msg and "limit 700.0 MiB" in msg, msg
        assert ok["type"] == "execution_success"
        shown = [m["data"]["output"] for m in msgs if m["type"] == "executed"]
        assert shown == [{"value": [16.0], "label": ["out"]}], shown  # (3 + 1) * 2 * 2, computed by the new worker
        assert server.runner.pid != first_pid and server.runner.restarts == 1
        status, history = get_json(bg.url, "/history")
        assert status == 200 and len(history) == 2
        assert get_json(bg.url, "/prompt")[0] == 200  # the server itself never stopped
    finally:
        bg.stop()
    assert not server.runner.alive  # stopping the server stops its worker


@linux_only
def test_the_worker_asks_the_kernel_to_be_killed_first(tmp_path):
    runner = ProcessRunner(functools.partial(make_engine), lambda e, d: None, memory_limit=0)
    runner.start()
    try:
        assert runner._ready.wait(120)
        with open(f"/proc/{runner.pid}/oom_score_adj") as f:
            assert f.read().strip() == "1000"
        with open("/proc/self/oom_score_adj") as f:
            assert f.read().strip() != "1000"
        assert process_rss(runner.pid) > 10 * MiB
    finally:
        runner.stop()
    assert not runner.alive


def test_an_interrupt_the_node_ignores_kills_and_replaces_the_worker(tmp_path):
    server = worker_server(tmp_path, worker_kill_after=1.0)
    bg = start(server)
    try:
        async def go():
            await asyncio.get_running_loop().run_in_executor(None, server.runner._ready.wait, 120)
            async with Client(bg.url) as c:
                status, body = await c.queue({"1": {"class_type": "Stubborn", "inputs": {"seconds": 600.0}},
                                              "2": {"class_type": "ShowNumber",
                                                    "inputs": {"x": ["1", 0], "label": "s"}}})
                pid = body["prompt_id"]
                await c.wait_for(lambda m: m["type"] == "executing" and m["data"].get("node") == "1", 60)
                t0 = asyncio.get_running_loop().time()
                assert raw(bg.url, "POST", "/interrupt", b"{}")[0] == 200
                end = await c.done(pid, timeout=30)
                waited = asyncio.get_running_loop().time() - t0
                status, body = await c.queue(chain_workflow(1))
                ok = await c.done(body["prompt_id"], timeout=120)
                return end, waited, ok
        end, waited, ok = asyncio.run(go())
        assert end["type"] == "execution_error" and end["data"]["node_id"] == "1"
        assert "did not stop within 1 s of the interrupt" in end["data"]["exception_message"]
        assert waited < 10, waited
        assert ok["type"] == "execution_success"
    finally:
        bg.stop()


def test_a_normal_interrupt_through_the_worker_stops_within_a_second(tmp_path):
    server = worker_server(tmp_path)
    bg = start(server)
    try:
        async def go():
            await asyncio.get_running_loop().run_in_executor(None, server.runner._ready.wait, 120)
            async with Client(bg.url) as c:
                wf = {"1": {"class_type": "MakeNumber", "inputs": {"seed": 1, "scale": 1.0, "mode": "add"}},
                      "2": {"class_type": "Slow", "inputs": {"x": ["1", 0], "steps": 10 ** 7}},
                      "3": {"class_type": "ShowNumber", "inputs": {"x": ["2", 0], "label": "s"}}}
                status, body = await c.queue(wf)
                await c.wait_for(lambda m: m["type"] == "progress" and m["data"].get("node") == "2", 60)
                t0 = asyncio.get_running_loop().time()
                raw(bg.url, "POST", "/interrupt", b"{}")
                end = await c.done(body["prompt_id"], timeout=30)
                return end, asyncio.get_running_loop().time() - t0
        end, waited = asyncio.run(go())
        assert end["type"] == "execution_interrupted" and waited < 1.5, (end, waited)
        assert server.runner.restarts == 0  # stopped cleanly: the same warm worker
    finally:
        bg.stop()


def _memory_cgroup(name: str, limit: int) -> str | None:
    """A fresh v1 or v2 memory cgroup with ``limit`` bytes (its cgroup.procs path), or None where this machine
    does not let the tests make one."""
    if os.geteuid() != 0:
        return None
    for root, limit_file in (("/sys/fs/cgroup/memory", "memory.limit_in_bytes"), ("/sys/fs/cgroup", "memory.max")):
        if not os.path.isdir(root) or (limit_file == "memory.max" and
                                       not os.path.exists(os.path.join(root, "cgroup.controllers"))):
            continue
        folder = os.path.join(root, name)
        try:
            os.makedirs(folder, exist_ok=True)
            with open(os.path.join(folder, limit_file), "w") as f:
                f.write(str(limit))
            for swap in ("memory.memsw.limit_in_bytes", "memory.swap.max"):
                if os.path.exists(os.path.join(folder, swap)):
                    try:
                        with open(os.path.join(folder, swap), "w") as f:
                            f.write(str(limit) if swap.startswith("memory.memsw") else "0")
                    except OSError:
                        pass
            return os.path.join(folder, "cgroup.procs")
        except OSError:
            continue
    return None


@linux_only
def test_a_worker_killed_by_the_kernel_in_a_memory_cgroup_leaves_the_server_running(tmp_path):
    """The real thing: the server and its worker in a memory cgroup of 1.2 GiB, the watchdog off, a node that wants
    8 GiB. The kernel's OOM killer takes the worker (oom_score_adj 1000), the server records why and runs the next
    prompt on a fresh worker."""
    procs = _memory_cgroup(f"neural-collage-test-{os.getpid()}", 1200 * MiB)
    if procs is None:
        pytest.skip("cannot make a memory cgroup here (needs root and a writable cgroup file system)")
    script = textwrap.dedent(f"""
        import asyncio, functools, json, os, sys
        with open({procs!r}, "w") as f:
            f.write(str(os.getpid()))
        sys.path[:0] = {sys.path!r}
        from collage_engine.server import PromptServer
        from engine_testnodes import chain_workflow, make_engine, make_registry
        from serve_support import Client, start
        server = PromptServer(registry=make_registry(), base_dir={str(tmp_path / "srv")!r},
                              worker=functools.partial(make_engine), worker_memory_limit=0)
        bg = start(server)
        async def go():
            out = []
            for wf in ({json.dumps(_hog(8192))}, chain_workflow(1)):
                async with Client(bg.url) as c:
                    status, body = await c.queue(wf)
                    end = await c.done(body["prompt_id"], timeout=300)
                    out.append(end)
            return out
        result = asyncio.run(go())
        bg.stop()
        print("RESULT " + json.dumps(result))
    """)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=600, env=env)
    try:
        os.rmdir(os.path.dirname(procs))
    except OSError:
        pass
    assert proc.returncode == 0, proc.stderr[-3000:]
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    first, second = json.loads(line[7:])
    assert first["type"] == "execution_error", first
    msg = first["data"]["exception_message"]
    assert "at node 7 'Eat memory'" in msg and "SIGKILL" in msg and "out of memory" in msg, msg
    assert second["type"] == "execution_success", second


# ------------------------------------------------------------------------------------------ one server per folder
def test_a_second_server_on_the_folder_refuses_and_the_first_keeps_serving(tmp_path):
    first = PromptServer(registry=make_registry(), base_dir=str(tmp_path), lock=True)
    bg = start(first)
    try:
        with pytest.raises(FolderBusy) as e:
            PromptServer(registry=make_registry(), base_dir=str(tmp_path), lock=True)
        assert f"process {os.getpid()}" in str(e.value) and bg.url.split("//")[1].split(":")[0] in str(e.value)
        assert get_json(bg.url, "/prompt")[0] == 200
        assert asyncio.run(_queue_and_wait(bg.url, chain_workflow(1)))[0]["type"] == "execution_success"
    finally:
        bg.stop()
        first.close()
    again = PromptServer(registry=make_registry(), base_dir=str(tmp_path), lock=True)  # free once closed
    again.close()


def test_the_folder_lock_goes_with_a_killed_process(tmp_path):
    code = f"from collage_engine.server.lock import FolderLock; l = FolderLock({str(tmp_path)!r}); l.acquire(); " \
           "import os; os.kill(os.getpid(), 9)"
    subprocess.run([sys.executable, "-c", code], timeout=60)
    lock = FolderLock(str(tmp_path))
    lock.acquire()  # no stale lock file blocks a new server
    assert lock.held
    lock.release()


def test_serve_cli_refuses_a_folder_in_use(tmp_path, monkeypatch, capsys):
    from collage_app.cli import EXIT_USER_ERROR, main

    served = []
    monkeypatch.setattr(PromptServer, "run", lambda self, host, port: served.append(self))
    assert main(["serve", "--dir", str(tmp_path), "--no-examples", "--in-process"]) == 0
    capsys.readouterr()
    assert main(["serve", "--dir", str(tmp_path), "--no-examples", "--in-process"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "another neural-collage server" in err and f"process {os.getpid()}" in err and "--dir" in err
    for s in served:
        s.close()


# ------------------------------------------------------------------------------------------ damaged database
@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_a_damaged_history_database_is_set_aside_and_a_fresh_one_started(tmp_path, damage):
    server = PromptServer(registry=make_registry(), base_dir=str(tmp_path))
    bg = start(server)
    try:
        for seed in range(30):
            assert asyncio.run(_queue_and_wait(bg.url, chain_workflow(1, seed=seed)))[0]["type"] == "execution_success"
    finally:
        bg.stop()
        server.close()
    db = tmp_path / "user" / "prompts.sqlite3"
    con = sqlite3.connect(db)
    con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    con.close()
    data = db.read_bytes()
    assert len(data) > 8192
    db.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"not a database at all " * 200)
    again = PromptServer(registry=make_registry(), base_dir=str(tmp_path))
    try:
        aside = [f for f in os.listdir(db.parent) if f.startswith("prompts.sqlite3.damaged-") and "-wal" not in f
                 and "-shm" not in f]
        assert len(aside) == 1 and (db.parent / aside[0]).read_bytes()[:100] == db.read_bytes()[:0] + \
            (data[:100] if damage == "truncate" else b"not a database at all " * 5)[:100]
        assert any("damaged" in n and aside[0] in n for n in again.notices), again.notices
        assert again.queue.history() == {}
        bg = start(again)
        try:
            assert asyncio.run(_queue_and_wait(bg.url, chain_workflow(1)))[0]["type"] == "execution_success"
        finally:
            bg.stop()
    finally:
        again.close()
    store, moved = PromptStore.open_or_set_aside(str(db))  # the fresh one is sound
    store.close()
    assert moved is None


# ------------------------------------------------------------------------------------------ no server paths
def test_answers_and_events_name_no_server_path(tmp_path):
    def prepare(prompt, server):  # as serve does with savers' folders: server paths in the prompt
        for node in prompt.values():
            if node.get("class_type") == "LoadText":
                node["inputs"]["path"] = os.path.join(server.input_dir, node["inputs"]["path"])
        return prompt

    server = PromptServer(registry=make_registry(), base_dir=str(tmp_path / "srv"), prepare_prompt=prepare)
    bg = start(server)
    try:
        wf = {"1": {"class_type": "LoadText", "inputs": {"path": "missing.txt"}},
              "2": {"class_type": "TextLength", "inputs": {"text": ["1", 0]}}}
        end, msgs = asyncio.run(_queue_and_wait(bg.url, wf))
        assert end["type"] == "execution_error"
        texts = [json.dumps(m) for m in msgs] + [raw(bg.url, "GET", "/history")[2].decode()]
        assert "missing.txt" in texts[-1] and "input/missing.txt" in json.dumps(end)
        for t in texts:
            assert str(tmp_path) not in t and sys.prefix not in t, t[:500]
    finally:
        bg.stop()


def test_redactor_replaces_the_deepest_folder_first(tmp_path):
    r = Redactor({"input": str(tmp_path / "data" / "input"), "<data folder>": str(tmp_path / "data")})
    assert r.text(f"cannot read {tmp_path}/data/input/a.png or {tmp_path}/data/x") == \
        "cannot read input/a.png or <data folder>/x"
    assert r.body(json.dumps({"p": f"{tmp_path}/data/input/b"}).encode()) == b'{"p": "input/b"}'


# ------------------------------------------------------------------------------------------ upload names
def _multipart(name: str) -> tuple[bytes, dict]:
    """A multipart upload written by hand (clients refuse to send control characters in a file name)."""
    head = (f'--XyZ\r\nContent-Disposition: form-data; name="image"; filename="{name}"\r\n'
            'Content-Type: image/png\r\n\r\n').encode("utf-8", "surrogateescape")
    body = head + b"\x89PNG fake\r\n--XyZ\r\nContent-Disposition: form-data; name=\"overwrite\"\r\n\r\ntrue" \
        b"\r\n--XyZ--\r\n"
    return body, {"Content-Type": "multipart/form-data; boundary=XyZ"}


@pytest.mark.parametrize("name", ["examples", "a" * 300 + ".png", "bad\x01name.png", "nul\x00name.png"])
def test_upload_names_that_cannot_be_stored_get_400_and_leave_nothing(tmp_path, name):
    server = PromptServer(registry=make_registry(), base_dir=str(tmp_path))
    (tmp_path / "input" / "examples").mkdir(parents=True, exist_ok=True)
    bg = start(server)
    try:
        body, headers = _multipart(name)
        status, _, answer = raw(bg.url, "POST", "/upload/image", body, headers)
        assert status == 400, answer
        assert str(tmp_path).encode() not in answer
        assert os.listdir(tmp_path / "temp") == []
        assert os.listdir(tmp_path / "input" / "examples") == []
    finally:
        bg.stop()


def test_userdata_refuses_the_servers_temporary_names(tmp_path):
    server = PromptServer(registry=make_registry(), base_dir=str(tmp_path))
    bg = start(server)
    try:
        status, _, body = raw(bg.url, "POST", "/userdata/.tmp-x", b"data")
        assert status == 400 and b"temporary" in body
        status, _, _ = raw(bg.url, "POST", "/userdata/workflows%2F.upload-y.json", b"{}")
        assert status == 400
    finally:
        bg.stop()


def test_redactor_leaves_longer_names_that_only_start_like_a_folder(tmp_path):
    r = Redactor({"<data folder>": str(tmp_path / "data")})
    assert r.text(f"{tmp_path}/database and {tmp_path}/data") == f"{tmp_path}/database and <data folder>"
