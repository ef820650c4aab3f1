"""The ComfyUI-compatible server (collage_engine.server) route by route, over real loopback HTTP and WebSockets:
what the editor asks for, prompts and their events, queue/history/jobs, files (view, upload, user data) and every
refusal (path traversal, oversize uploads, malformed or invalid prompts, bad JSON, cross-origin writes).
The generic server runs trivial test nodes; the last tests run the node pack with the tiny generator."""

from __future__ import annotations

import asyncio
import io
import json
import os
import uuid

import pytest

aiohttp = pytest.importorskip("aiohttp", reason="the server needs aiohttp (pip install 'neural-collage[serve]')")

from collage_engine.server import PathRefused, PromptServer, safe_join  # noqa: E402
from engine_testnodes import make_registry  # noqa: E402
from serve_support import Client, get_json, post_form, post_json, raw, start  # noqa: E402


def ok_prompt(seed: int = 1, label: str = "out") -> dict:
    return {"1": {"class_type": "MakeNumber", "inputs": {"seed": seed, "scale": 1.0, "mode": "add"}},
            "2": {"class_type": "ShowNumber", "inputs": {"x": ["1", 0], "label": label}}}


def slow_prompt(seed: int = 1, steps: int = 20000) -> dict:
    return {"1": {"class_type": "MakeNumber", "inputs": {"seed": seed, "scale": 1.0, "mode": "add"}},
            "2": {"class_type": "Slow", "inputs": {"x": ["1", 0], "steps": steps}},
            "3": {"class_type": "ShowNumber", "inputs": {"x": ["2", 0], "label": "slow"}}}


def fail_prompt() -> dict:
    return {"1": {"class_type": "MakeNumber", "inputs": {"seed": 1, "scale": 1.0, "mode": "add"}},
            "2": {"class_type": "Fail", "inputs": {"x": ["1", 0]}},
            "3": {"class_type": "ShowNumber", "inputs": {"x": ["2", 0], "label": "x"}}}


def run(coro):
    return asyncio.run(coro)


# ------------------------------------------------------------------------------------------ what the editor asks for
GET_ROUTES = ["object_info", "object_info/MakeNumber", "prompt", "queue", "history", "jobs", "system_stats",
              "features", "extensions", "embeddings", "models", "models/checkpoints", "experiment/models",
              "experiment/models/checkpoints", "i18n", "node_replacements", "global_subgraphs",
              "workflow_templates", "settings", "settings/Comfy.Locale", "users", "user",
              "userdata?dir=workflows", "v2/userdata"]


@pytest.mark.parametrize("route", GET_ROUTES)
def test_get_routes_answer_json_with_and_without_api_prefix(srv, route):
    a = get_json(srv.url, "/api/" + route)
    b = get_json(srv.url, "/" + route)
    assert a[0] == b[0] == 200, (a, b)
    assert a[1] == b[1] or route in ("system_stats",)


def test_object_info_comes_from_the_declarations(srv, server):
    status, info = get_json(srv.url, "/api/object_info")
    assert status == 200 and set(info) == set(server.registry.names())
    mk = info["MakeNumber"]
    assert mk["input"]["required"]["seed"][0] == "INT" and mk["output"] == ["NUMBER"] and mk["category"] == "test"
    assert get_json(srv.url, "/api/object_info/MakeNumber")[1] == {"MakeNumber": mk}
    assert get_json(srv.url, "/api/object_info/NoSuchNode") == (200, {})


def test_boot_routes(srv, server):
    _, stats = get_json(srv.url, "/api/system_stats")
    system = stats["system"]
    for key in ("os", "python_version", "embedded_python", "comfyui_version", "pytorch_version", "argv", "ram_total",
                "ram_free"):
        assert key in system
    assert system["comfyui_version"] == "1.2.3" and stats["devices"]
    assert get_json(srv.url, "/api/features")[1]["max_upload_size"] == server.max_upload_bytes
    assert get_json(srv.url, "/api/users")[1] == {"storage": "server", "migrated": True}
    assert get_json(srv.url, "/api/extensions")[1] == []
    assert get_json(srv.url, "/api/prompt")[1] == {"exec_info": {"queue_remaining": 0}}
    assert get_json(srv.url, "/api/workflow_templates")[1] == {"pack": ["demo"]}
    assert get_json(srv.url, "/api/workflow_templates/pack/demo.json")[1] == {"nodes": [], "links": []}
    assert raw(srv.url, "GET", "/api/workflow_templates/pack/..%2F..%2Fsecret.txt")[0] in (400, 404)
    assert raw(srv.url, "GET", "/api/workflow_templates/nope/demo.json")[0] == 404
    status, headers, body = raw(srv.url, "GET", "/user.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css")


def test_static_editor_and_index(srv, tmp_path):
    status, headers, body = raw(srv.url, "GET", "/")
    assert status == 200 and b"editor" in body and headers.get("Cache-Control") == "no-cache"
    assert raw(srv.url, "GET", "/assets/app.js")[2] == b"console.log('hi')"
    for path in ("/assets/../../secret.txt", "/assets/..%2F..%2Fsecret.txt", "/..%2Fsecret.txt",
                 "/%2e%2e/secret.txt", "/assets/%2e%2e/%2e%2e/secret.txt"):
        status, _, body = raw(srv.url, "GET", path)
        assert b"SECRET" not in body and status in (400, 403, 404), path


def test_index_without_an_editor(tmp_path):
    bg = start(PromptServer(registry=make_registry(), base_dir=str(tmp_path)))
    try:
        status, _, body = raw(bg.url, "GET", "/")
        assert status == 200 and b"no editor installed" in body
    finally:
        bg.stop()


# ----------------------------------------------------------------------------------------------- prompts and events
def test_prompt_runs_and_reports_like_comfyui(srv):
    async def go():
        async with Client(srv.url) as c:
            assert c.messages[0]["data"]["sid"] == c.client_id
            status, body = await c.queue(ok_prompt(5), extra_data={"extra_pnginfo": {"workflow": {"id": "wf-1"}}})
            assert status == 200 and body["node_errors"] == {} and isinstance(body["number"], int)
            pid = body["prompt_id"]
            uuid.UUID(pid)
            end = await c.done(pid)
            assert end["type"] == "execution_success"
            kinds = [m["type"] for m in c.of(pid)]
            assert kinds[0] == "execution_start" and "executing" in kinds and "executed" in kinds
            executed = c.of(pid, "executed")[0]["data"]
            assert executed["node"] == "2" and executed["output"] == {"value": [6.0], "label": ["out"]}
            last = await c.wait_for(lambda m: m["type"] == "executing" and m["data"]["node"] is None
                                    and m["data"].get("prompt_id") == pid)
            assert c.messages.index(last) > c.messages.index(end)
            await c.wait_for(lambda m: m["type"] == "status"
                             and m["data"]["status"]["exec_info"]["queue_remaining"] == 0)
            return pid
    pid = run(go())
    status, hist = get_json(srv.url, f"/api/history/{pid}")  # there as soon as execution_success is sent
    entry = hist[pid]
    assert entry["status"]["status_str"] == "success" and entry["status"]["completed"]
    assert entry["outputs"] == {"2": {"value": [6.0], "label": ["out"]}}
    assert entry["prompt"][1] == pid and entry["prompt"][2]["1"]["class_type"] == "MakeNumber"
    _, jobs = get_json(srv.url, "/api/jobs?status=completed")
    job = jobs["jobs"][0]
    assert job["id"] == pid and job["status"] == "completed" and job["workflow_id"] == "wf-1"
    assert job["execution_end_time"] >= job["execution_start_time"]
    assert job["outputs_count"] == 0 and "preview_output" not in job  # values, not files
    assert jobs["pagination"] == {"offset": 0, "limit": 1, "total": 1, "has_more": False}
    _, detail = get_json(srv.url, f"/api/jobs/{pid}")
    assert detail["outputs"]["2"]["value"] == [6.0] and detail["workflow"]["prompt"]["2"]["class_type"] == "ShowNumber"
    assert get_json(srv.url, f"/api/jobs/{uuid.uuid4()}")[0] == 404


def test_rerun_is_served_from_the_shared_cache(srv):
    async def go():
        async with Client(srv.url) as c:
            first = (await c.queue(ok_prompt(9)))[1]["prompt_id"]
            await c.done(first)
            second = (await c.queue(ok_prompt(9)))[1]["prompt_id"]
            await c.done(second)
            return c.of(second)
    msgs = run(go())
    cached = next(m for m in msgs if m["type"] == "execution_cached")["data"]["nodes"]
    assert set(cached) == {"1", "2"}
    assert not [m for m in msgs if m["type"] == "executing" and m["data"]["node"] is not None]
    assert [m["data"]["output"] for m in msgs if m["type"] == "executed"] == [{"value": [10.0], "label": ["out"]}]


def test_partial_targets_and_client_prompt_id(srv):
    async def go():
        async with Client(srv.url) as c:
            pid = str(uuid.uuid4())
            status, body = await c.queue(ok_prompt(2), prompt_id=pid, partial_execution_targets=["2"])
            assert status == 200 and body["prompt_id"] == pid
            assert (await c.done(pid))["type"] == "execution_success"
            status, body = await c.queue(ok_prompt(3), prompt_id=pid)  # an id in use is refused
            assert status == 400 and body["error"]["type"] == "invalid_prompt_id"
    run(go())


def test_node_failure_is_reported_with_the_fields_the_editor_reads(srv):
    async def go():
        async with Client(srv.url) as c:
            pid = (await c.queue(fail_prompt()))[1]["prompt_id"]
            end = await c.done(pid)
            return end
    end = run(go())
    assert end["type"] == "execution_error"
    d = end["data"]
    assert d["node_id"] == "2" and d["node_type"] == "Fail" and d["exception_type"] == "ZeroDivisionError"
    assert "boom" in d["exception_message"] and isinstance(d["traceback"], list)
    assert d["current_inputs"] == {} and d["current_outputs"] == {}
    _, jobs = get_json(srv.url, "/api/jobs")
    assert jobs["jobs"][0]["status"] == "failed" and jobs["jobs"][0]["execution_error"]["node_id"] == "2"
    # the server still works
    assert get_json(srv.url, "/api/prompt")[0] == 200


# ------------------------------------------------------------------------------------------- malformed prompts: 400
@pytest.mark.parametrize("body,etype", [
    ("{not json", "invalid_json"),
    ("[1, 2]", "invalid_prompt"),
    ("{}", "no_prompt"),
    ('{"prompt": [1]}', "invalid_prompt"),
    ('{"prompt": "x"}', "invalid_prompt"),
    ('{"prompt": {}}', "prompt_no_outputs"),
    ('{"prompt": {"1": {"class_type": "MakeNumber", "inputs": {}}}, "prompt_id": "not-a-uuid"}',
     "invalid_prompt_id"),
    ('{"prompt": {"1": {"class_type": "MakeNumber", "inputs": {}}}, "partial_execution_targets": "1"}',
     "invalid_prompt"),
    ('{"prompt": {"1": {"class_type": "MakeNumber", "inputs": {}}}, "number": "first"}', "invalid_prompt"),
    ("\xff\xfe", "invalid_json"),
    ("[" * 100000 + "]" * 100000, "invalid_json"),
])
def test_malformed_prompt_bodies_get_400(srv, body, etype):
    status, _, data = raw(srv.url, "POST", "/api/prompt", body.encode("latin-1"), {"Content-Type": "application/json"})
    assert status == 400
    err = json.loads(data)
    assert err["error"]["type"] == etype and "node_errors" in err


def test_invalid_prompts_get_comfyui_node_errors(srv):
    status, body = post_json(srv.url, "/api/prompt", {"prompt": {
        "1": {"class_type": "NoSuchNode", "inputs": {}},
        "2": {"class_type": "ShowNumber", "inputs": {"x": ["1", 0], "label": "x"}},
        "3": {"class_type": "MakeNumber", "inputs": {"seed": -4}},
        "4": {"class_type": "ShowNumber", "inputs": {"x": ["3", 0], "label": 7}}}})
    assert status == 400
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    ne = body["node_errors"]
    assert ne["1"]["errors"][0]["type"] == "invalid_node" or ne["1"]["class_type"] == "NoSuchNode"
    assert ne["3"]["errors"][0]["extra_info"]["input_name"] == "seed"
    assert {e["extra_info"].get("input_name") for e in ne["4"]["errors"]} >= {"label"}
    for entry in ne.values():
        for e in entry["errors"]:
            assert set(e) >= {"type", "message", "details", "extra_info"}
    assert get_json(srv.url, "/api/queue")[1] == {"queue_running": [], "queue_pending": []}


def test_random_prompt_bodies_never_break_the_server(server, tmp_path):
    """Whatever JSON arrives at /prompt: a 200 or a ComfyUI-shaped 400, never a 5xx; the server keeps answering."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    leaf = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=8),
                     st.sampled_from(["MakeNumber", "ShowNumber", "Fail", "1", "2"]))
    value = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.sampled_from(["1", "2", "class_type", "inputs", "x", "seed", "label", "prompt"]), inner, max_size=4),
        max_leaves=12)
    node = st.fixed_dictionaries({"class_type": st.sampled_from(["MakeNumber", "ShowNumber", "Scale", "Nope"]),
                                  "inputs": st.dictionaries(st.sampled_from(["seed", "x", "label", "factor"]),
                                                            value, max_size=3)})
    body = st.one_of(value, st.fixed_dictionaries({"prompt": st.one_of(value, st.dictionaries(
        st.sampled_from(["1", "2", "3"]), node, max_size=3))}))
    bg = start(server)
    try:
        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(body)
        def check(b):
            status, resp = post_json(bg.url, "/api/prompt", b)
            assert status in (200, 400), (b, status, resp)
            if status == 400:
                assert set(resp) == {"error", "node_errors"} and "type" in resp["error"]
        check()
        assert get_json(bg.url, "/api/system_stats")[0] == 200
    finally:
        bg.stop()


def test_oversize_prompt_body_is_refused(srv, server):
    big = json.dumps({"prompt": ok_prompt(), "pad": "x" * (server.max_upload_bytes + (2 << 20))})
    status, _, body = raw(srv.url, "POST", "/api/prompt", big, {"Content-Type": "application/json"})
    assert status == 413


# ---------------------------------------------------------------------------------------- queue, interrupt, cancel
def test_interrupt_with_nothing_running_is_harmless(srv):
    assert raw(srv.url, "POST", "/api/interrupt")[0] == 200
    assert raw(srv.url, "POST", "/interrupt", "{bad json")[0] == 200
    assert post_json(srv.url, "/api/interrupt", {"prompt_id": str(uuid.uuid4())})[0] == 200

    async def go():
        async with Client(srv.url) as c:
            pid = (await c.queue(ok_prompt(11)))[1]["prompt_id"]
            return (await c.done(pid))["type"]
    assert run(go()) == "execution_success"


def test_interrupt_queue_and_cancel(srv, server):
    async def go():
        async with Client(srv.url) as c:
            slow = (await c.queue(slow_prompt()))[1]["prompt_id"]
            await c.wait_for(lambda m: m["type"] == "executing" and m["data"].get("node") == "2")
            p1 = (await c.queue(ok_prompt(21)))[1]["prompt_id"]
            p2 = (await c.queue(ok_prompt(22)))[1]["prompt_id"]
            p3 = (await c.queue(ok_prompt(23)))[1]["prompt_id"]
            front = (await c.queue(ok_prompt(24), front=True))[1]["prompt_id"]
            _, q = get_json(srv.url, "/api/queue")
            assert [i[1] for i in q["queue_running"]] == [slow]
            assert [i[1] for i in q["queue_pending"]] == [front, p1, p2, p3]  # front first
            _, jobs = get_json(srv.url, "/api/jobs?status=pending,in_progress&sort_order=asc")
            assert {j["id"]: j["status"] for j in jobs["jobs"]} == {slow: "in_progress", front: "pending",
                                                                   p1: "pending", p2: "pending", p3: "pending"}
            assert get_json(srv.url, "/api/prompt")[1]["exec_info"]["queue_remaining"] == 5
            # interrupt naming another prompt: nothing happens
            assert post_json(srv.url, "/api/interrupt", {"prompt_id": p1})[0] == 200
            await asyncio.sleep(0.2)
            assert not c.of(slow, "execution_interrupted")
            # delete and cancel pending prompts
            assert raw(srv.url, "POST", "/api/queue", json.dumps({"delete": [p1]}))[0] == 200
            assert post_json(srv.url, "/api/jobs/" + p2 + "/cancel", {}) == (200, {"cancelled": True})
            assert post_json(srv.url, "/api/jobs/cancel", {"job_ids": [p3, str(uuid.uuid4())]}) == \
                (200, {"cancelled": True})
            assert post_json(srv.url, "/api/jobs/cancel", {"job_ids": ["nope", 3]})[0] == 400
            assert post_json(srv.url, "/api/jobs/cancel", {"job_ids": "x"})[0] == 400
            _, q = get_json(srv.url, "/api/queue")
            assert [i[1] for i in q["queue_pending"]] == [front]
            # interrupt the running one
            assert post_json(srv.url, "/api/interrupt", {"prompt_id": slow})[0] == 200
            end = await c.done(slow)
            assert end["type"] == "execution_interrupted"
            assert (await c.done(front))["type"] == "execution_success"
            for gone in (p1, p2, p3):
                assert not c.of(gone)
            return slow, front
    slow, front = run(go())
    _, jobs = get_json(srv.url, "/api/jobs")
    status = {j["id"]: j["status"] for j in jobs["jobs"]}
    assert status == {slow: "cancelled", front: "completed"}
    assert post_json(srv.url, f"/api/jobs/{slow}/cancel", {}) == (200, {"cancelled": False})
    # clear the pending queue
    assert raw(srv.url, "POST", "/api/queue", json.dumps({"clear": True}))[0] == 200
    assert raw(srv.url, "POST", "/api/queue", "{oops")[0] == 400


def test_queue_limit(tmp_path):
    server = PromptServer(registry=make_registry(), base_dir=str(tmp_path), max_queue=2)
    bg = start(server)
    try:
        async def go():
            async with Client(bg.url) as c:
                slow = (await c.queue(slow_prompt()))[1]["prompt_id"]
                await c.wait_for(lambda m: m["type"] == "executing" and m["data"].get("node") == "2")
                codes = [(await c.queue(ok_prompt(40 + i)))[0] for i in range(3)]
                server.interrupt(slow)
                return codes
        assert run(go()) == [200, 200, 503]
    finally:
        bg.stop()


def test_history_is_capped_and_editable(srv, server):
    async def go():
        async with Client(srv.url) as c:
            ids = []
            for i in range(8):
                pid = (await c.queue(ok_prompt(100 + i)))[1]["prompt_id"]
                await c.done(pid)
                ids.append(pid)
            return ids
    ids = run(go())
    _, hist = get_json(srv.url, "/api/history")
    assert list(hist) == ids[-5:]  # max_history = 5, oldest dropped
    assert list(get_json(srv.url, "/history?max_items=2")[1]) == ids[-2:]
    assert get_json(srv.url, "/api/history?max_items=x")[0] == 400
    assert get_json(srv.url, f"/api/history/{ids[0]}")[1] == {}
    assert raw(srv.url, "POST", "/api/history", json.dumps({"delete": [ids[-1]]}))[0] == 200
    assert ids[-1] not in get_json(srv.url, "/api/history")[1]
    assert raw(srv.url, "POST", "/api/history", json.dumps({"clear": True}))[0] == 200
    assert get_json(srv.url, "/api/history")[1] == {}
    assert len(server.queue._known_ids) == 0


@pytest.mark.parametrize("query", ["status=done", "sort_by=name", "sort_order=up", "limit=0", "limit=x",
                                   "offset=y"])
def test_jobs_refuses_bad_queries(srv, query):
    assert get_json(srv.url, "/api/jobs?" + query)[0] == 400


def test_free_and_websocket_feature_flags(srv, server):
    assert post_json(srv.url, "/api/free", {"unload_models": True, "free_memory": True})[0] == 200

    async def go():
        async with Client(srv.url, "me") as c:
            await c.ws.send_str(json.dumps({"type": "feature_flags", "data": {"supports_preview_metadata": True}}))
            flags = await c.wait_for(lambda m: m["type"] == "feature_flags")
            await c.ws.send_str("not json")  # ignored
            await c.ws.send_bytes(b"\x00\x01")
            async with Client(srv.url, "me") as again:  # the same id takes the session over
                assert again.messages[0]["data"]["sid"] == "me"
            return flags["data"]
    assert run(go())["max_upload_size"] == server.max_upload_bytes


# ------------------------------------------------------------------------------------------------------ /view
def _put(server, kind, rel, data=b"PNGDATA"):
    path = os.path.join(server.folder(kind), rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    return path


def test_view_serves_files_of_the_three_folders(srv, server):
    _put(server, "output", "sub/a.png")
    _put(server, "input", "b.png", b"INPUT")
    _put(server, "temp", "c.txt", b"TEMP")
    _put(server, "output", "page.html", b"<script>alert(1)</script>")
    status, headers, body = raw(srv.url, "GET", "/api/view?filename=a.png&subfolder=sub&type=output")
    assert status == 200 and body == b"PNGDATA" and headers["Content-Type"] == "image/png"
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert raw(srv.url, "GET", "/view?filename=b.png&type=input")[2] == b"INPUT"
    assert raw(srv.url, "GET", "/api/view?filename=c.txt&type=temp")[2] == b"TEMP"
    status, headers, _ = raw(srv.url, "GET", "/api/view?filename=page.html&type=output")
    assert status == 200 and headers["Content-Type"] == "application/octet-stream"
    assert headers["Content-Disposition"].startswith("attachment")
    assert raw(srv.url, "GET", "/api/view?filename=missing.png&type=output")[0] == 404
    assert raw(srv.url, "GET", "/api/view?filename=a.png&subfolder=sub&type=models")[0] == 400


@pytest.mark.parametrize("query", [
    "filename=..%2F..%2Fsecret.txt&type=output",
    "filename=secret.txt&subfolder=..%2F..&type=output",
    "filename=secret.txt&subfolder=../..&type=input",
    "filename=secret.txt&subfolder=sub%2F..%2F..%2F..&type=output",
    "filename=%2Fetc%2Fpasswd&type=output",
    "filename=passwd&subfolder=%2Fetc&type=output",
    "filename=passwd&subfolder=%2F%2Fetc&type=output",
    "filename=..%5C..%5Csecret.txt&type=output",
    "filename=secret.txt&subfolder=..%5C..&type=output",
    "filename=secret.txt%00.png&type=output",
    "filename=%252e%252e%252fsecret.txt&type=output",
    "filename=C%3A%5Cwindows&type=output",
    "filename=..&type=output",
    "filename=&type=output",
    "filename=escape.txt&type=output",
    "filename=secret.txt&subfolder=linkdir&type=output",
])
def test_view_refuses_traversal(srv, server, tmp_path, query):
    os.symlink(tmp_path / "secret.txt", os.path.join(server.output_dir, "escape.txt"))
    os.symlink(tmp_path, os.path.join(server.output_dir, "linkdir"))
    status, _, body = raw(srv.url, "GET", "/api/view?" + query)
    assert b"SECRET" not in body and b"root:" not in body
    # malformed names 400, names that resolve outside the folder (symlinks) 403, as ComfyUI; JSON error body
    assert status in (400, 403, 404), (query, status)
    assert json.loads(body)["error"]["type"] in ("invalid_path", "not_found")
    if "escape" in query or "linkdir" in query:
        assert status == 403


def test_safe_join():
    base = os.path.realpath("/tmp")
    assert safe_join(base, "a", "b.png") == os.path.join(base, "a", "b.png")
    for bad in ("../x", "/etc", "a/../../x", "a\\..\\..\\x", "x\x00", "C:\\x", "..", "\\\\server\\share"):
        with pytest.raises(PathRefused):
            safe_join(base, bad)


# ------------------------------------------------------------------------------------------------------ uploads
def _form(name: str | None, data: bytes, **fields: str) -> aiohttp.FormData:
    form = aiohttp.FormData()
    if name is not None:
        form.add_field("image", io.BytesIO(data), filename=name, content_type="image/png")
    for k, v in fields.items():
        form.add_field(k, v)
    return form


async def _upload(url: str, form: aiohttp.FormData, path: str = "/api/upload/image") -> tuple[int, object]:
    return await post_form(url, path, form)


def test_upload_image(srv, server):
    u = srv.url
    assert run(_upload(u, _form("cat.png", b"one"))) == (200, {"name": "cat.png", "subfolder": "", "type": "input"})
    assert open(os.path.join(server.input_dir, "cat.png"), "rb").read() == b"one"
    # same name, other content: renamed; same content: the file is reused; overwrite: replaced
    assert run(_upload(u, _form("cat.png", b"two")))[1]["name"] == "cat (1).png"
    assert run(_upload(u, _form("cat.png", b"one")))[1]["name"] == "cat.png"
    assert run(_upload(u, _form("cat.png", b"three", overwrite="true")))[1]["name"] == "cat.png"
    assert open(os.path.join(server.input_dir, "cat.png"), "rb").read() == b"three"
    # into a sub-folder of temp, and the old /upload path
    assert run(_upload(u, _form("x.png", b"t", type="temp", subfolder="a/b"), "/upload/image")) == \
        (200, {"name": "x.png", "subfolder": "a/b", "type": "temp"})
    assert os.path.isfile(os.path.join(server.temp_dir, "a", "b", "x.png"))
    # a folder part of the file name is dropped (the file stays in the input folder); aiohttp's client sends
    # it %-escaped, which is a name starting with '.', refused
    body = (b'--zz\r\nContent-Disposition: form-data; name="image"; filename="../../evil.png"\r\n'
            b'Content-Type: image/png\r\n\r\nEVIL\r\n--zz--\r\n')
    status, _, data = raw(u, "POST", "/api/upload/image", body, {"Content-Type": "multipart/form-data; boundary=zz"})
    assert (status, json.loads(data)) == (200, {"name": "evil.png", "subfolder": "", "type": "input"})
    assert open(os.path.join(server.input_dir, "evil.png"), "rb").read() == b"EVIL"
    assert run(_upload(u, _form("../../evil.png", b"e")))[0] == 400


@pytest.mark.parametrize("name,fields,status", [
    ("x.png", {"subfolder": "../.."}, 400),
    ("x.png", {"subfolder": "/etc"}, 400),
    ("x.png", {"subfolder": "..\\.."}, 400),
    ("x.png", {"subfolder": "linkdir"}, 400),
    ("x.png", {"type": "models"}, 400),
    ("..", {}, 400),
    (".hidden", {}, 400),
    ("", {}, 400),
    (None, {}, 400),
])
def test_upload_refusals(srv, server, tmp_path, name, fields, status):
    os.symlink(tmp_path, os.path.join(server.input_dir, "linkdir"))
    before = set(os.listdir(tmp_path))
    got = run(_upload(srv.url, _form(name, b"data", **fields)))
    assert got[0] == status, got
    assert set(os.listdir(tmp_path)) == before
    assert not [f for f in os.listdir(server.temp_dir) if f.startswith(".upload-")]


def test_upload_size_limit(srv, server):
    got = run(_upload(srv.url, _form("big.png", b"x" * (server.max_upload_bytes + 1))))
    assert got[0] == 413
    assert run(_upload(srv.url, _form("fits.png", b"x" * server.max_upload_bytes)))[0] == 200
    assert not os.path.exists(os.path.join(server.input_dir, "big.png"))
    assert not [f for f in os.listdir(server.temp_dir) if f.startswith(".upload-")]
    # a large declared body is refused before it is read; not multipart at all is a 400
    status, _, _ = raw(srv.url, "POST", "/api/upload/image", b"x" * (server.max_upload_bytes + (1 << 17)),
                       {"Content-Type": "multipart/form-data; boundary=zz"})
    assert status == 413
    assert raw(srv.url, "POST", "/api/upload/image", b"{}", {"Content-Type": "application/json"})[0] == 400


# ------------------------------------------------------------------------------------------ settings and user data
def test_settings(srv, server):
    assert get_json(srv.url, "/api/settings")[1] == {}
    assert raw(srv.url, "POST", "/api/settings", json.dumps({"Comfy.Locale": "en", "a": 1}))[0] == 200
    assert raw(srv.url, "POST", "/api/settings/Comfy.TutorialCompleted", "true")[0] == 200
    assert get_json(srv.url, "/api/settings")[1] == {"Comfy.Locale": "en", "a": 1, "Comfy.TutorialCompleted": True}
    assert get_json(srv.url, "/settings/a")[1] == 1
    assert get_json(srv.url, "/api/settings/missing")[1] is None
    assert raw(srv.url, "POST", "/api/settings", "[1]")[0] == 400
    assert raw(srv.url, "POST", "/api/settings", "{bad")[0] == 400
    assert os.path.isfile(os.path.join(server.user_dir, "default", "comfy.settings.json"))


def test_userdata_workflows(srv, server):
    wf = json.dumps({"nodes": [], "links": []})
    status, body = post_json(srv.url, "/api/userdata/workflows%2Fmine%2Fa.json?overwrite=true&full_info=true",
                             json.loads(wf))
    assert status == 200 and body["path"] == "workflows/mine/a.json" and body["size"] > 0
    assert post_json(srv.url, "/api/userdata/workflows%2Fmine%2Fa.json?overwrite=false", {})[0] == 409
    assert get_json(srv.url, "/api/userdata?dir=workflows&recurse=true")[1] == ["mine/a.json"]
    listing = get_json(srv.url, "/api/userdata?dir=workflows&recurse=true&split=false&full_info=true")[1]
    assert listing[0]["path"] == "mine/a.json" and {"size", "modified"} <= set(listing[0])
    assert get_json(srv.url, "/api/userdata?dir=workflows&recurse=true&split=true")[1] == \
        [["mine/a.json", "mine", "a.json"]]
    assert get_json(srv.url, "/api/userdata?dir=workflows")[1] == []  # not recursive
    v2 = get_json(srv.url, "/api/v2/userdata?path=workflows")[1]
    assert v2 == [{"name": "mine", "path": "workflows/mine", "type": "directory"}]
    assert get_json(srv.url, "/api/userdata/workflows%2Fmine%2Fa.json")[1] == {"nodes": [], "links": []}
    status, body = post_json(srv.url, "/api/userdata/workflows%2Fmine%2Fa.json/move/workflows%2Fb.json", None)
    assert status == 200 and body == "workflows/b.json"
    assert get_json(srv.url, "/api/userdata/workflows%2Fmine%2Fa.json")[0] == 404
    assert raw(srv.url, "DELETE", "/api/userdata/workflows%2Fb.json")[0] == 204
    assert raw(srv.url, "DELETE", "/api/userdata/workflows%2Fb.json")[0] == 404
    assert get_json(srv.url, "/api/userdata?dir=nothing")[0] == 404
    assert get_json(srv.url, "/api/userdata")[0] == 400


@pytest.mark.parametrize("method,path", [
    ("GET", "/api/userdata/..%2F..%2F..%2Fsecret.txt"),
    ("GET", "/api/userdata/%2Fetc%2Fpasswd"),
    ("GET", "/api/userdata/workflows%2F..%2F..%2F..%2F..%2Fsecret.txt"),
    ("GET", "/api/userdata/..%5C..%5Csecret.txt"),
    ("GET", "/api/userdata/%252e%252e%252f%252e%252e%252fsecret.txt"),
    ("POST", "/api/userdata/..%2F..%2Fevil.json"),
    ("POST", "/api/userdata/%2Ftmp%2Fevil.json"),
    ("DELETE", "/api/userdata/..%2F..%2F..%2Fsecret.txt"),
    ("POST", "/api/userdata/workflows%2Fx.json/move/..%2F..%2F..%2Fevil.json"),
    ("GET", "/api/userdata?dir=..%2F..%2F.."),
    ("GET", "/api/v2/userdata?path=..%2F..%2F.."),
    ("GET", "/api/userdata/link%2Fsecret.txt"),
])
def test_userdata_refuses_traversal(srv, server, tmp_path, method, path):
    os.symlink(tmp_path, os.path.join(server.user_root(), "link"))
    _put(server, "output", "x")  # something to move
    before = sorted(os.listdir(tmp_path))
    status, _, body = raw(srv.url, method, path, b"{}" if method == "POST" else None)
    assert status in (400, 403, 404), (path, status)
    assert b"SECRET" not in body
    assert sorted(os.listdir(tmp_path)) == before and (tmp_path / "secret.txt").exists()


# ---------------------------------------------------------------------------------------------- origin and host
def test_cross_origin_writes_and_foreign_hosts_are_refused(srv):
    prompt = json.dumps({"prompt": ok_prompt()})
    status, _, _ = raw(srv.url, "POST", "/api/prompt", prompt, {"Origin": "http://evil.example"})
    assert status == 403
    host = srv.url.split("//")[1]
    assert raw(srv.url, "POST", "/api/interrupt", None, {"Origin": f"http://{host}"})[0] == 200
    assert raw(srv.url, "GET", "/api/object_info", None, {"Host": "evil.example"})[0] == 403
    assert raw(srv.url, "GET", "/api/object_info", None, {"Host": "localhost:1"})[0] == 200
    assert get_json(srv.url, "/api/queue")[1]["queue_pending"] == []

    async def ws_from_elsewhere():
        async with aiohttp.ClientSession() as s:
            try:
                async with s.ws_connect(srv.url + "/ws", headers={"Origin": "http://evil.example"}):
                    return "connected"
            except aiohttp.WSServerHandshakeError as e:
                return e.status
    assert run(ws_from_elsewhere()) == 403


def test_unknown_routes_and_methods(srv):
    assert raw(srv.url, "GET", "/api/nothing-here")[0] == 404
    assert raw(srv.url, "PUT", "/api/prompt", "{}")[0] == 405
    assert raw(srv.url, "GET", "/api/prompt")[0] == 200


# -------------------------------------------------------------------------------------------- the node pack's glue
def test_serve_command_is_registered():
    from collage_app.cli import build_parser

    args = build_parser().parse_args(["serve", "--port", "9999", "--model", "x.safetensors", "--device", "cpu"])
    assert args.port == 9999 and args.host == "127.0.0.1" and args.model == "x.safetensors"


@pytest.mark.parametrize("platform,env,expected", [
    ("linux", {}, "/home/u/.local/share/neural-collage"),
    ("linux", {"XDG_DATA_HOME": "/data/xdg"}, "/data/xdg/neural-collage"),
    ("linux", {"XDG_DATA_HOME": "relative/xdg"}, "/home/u/.local/share/neural-collage"),  # invalid: ignored
    ("darwin", {"XDG_DATA_HOME": "/data/xdg"}, "/home/u/Library/Application Support/neural-collage"),
    ("win32", {"LOCALAPPDATA": "/c/Users/u/AppData/Local"}, "/c/Users/u/AppData/Local/neural-collage"),
    ("win32", {}, "/home/u/AppData/Local/neural-collage"),
    ("linux", {"NEURAL_COLLAGE_DATA": "/srv/collage", "XDG_DATA_HOME": "/data/xdg"}, "/srv/collage"),
])
def test_the_data_folder_is_per_user(platform, env, expected):
    from pathlib import Path

    from collage_app.serve import default_data_dir

    assert default_data_dir(env, platform, home=Path("/home/u")) == Path(expected)


def test_serve_without_dir_writes_into_the_data_folder_not_the_working_folder(tmp_path, monkeypatch, capsys):
    """`neural-collage serve` in a clone writes nothing there: its folders go to the data folder (here the
    NEURAL_COLLAGE_DATA a test sets; a person's is per user), which it prints; `--dir .` keeps the working folder."""
    from collage_app.cli import EXIT_USER_ERROR, main
    from collage_engine.server import PromptServer

    served = []
    monkeypatch.setattr(PromptServer, "run", lambda self, host, port: served.append(self))  # no listening
    work, data = tmp_path / "clone", tmp_path / "data"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("NEURAL_COLLAGE_DATA", str(data))
    assert main(["serve", "--web-root", str(work), "--no-examples"]) == EXIT_USER_ERROR  # no index.html there
    assert main(["serve", "--no-examples"]) == 0
    assert os.listdir(work) == []
    assert sorted(os.listdir(data)) == ["input", "models", "output", "serve.lock", "temp", "user"]
    assert served[-1].output_dir == str(data / "output")
    assert f"data:   {data}" in capsys.readouterr().out
    assert main(["serve", "--dir", ".", "--no-examples"]) == 0
    assert served[-1].output_dir == str(work / "output") and (work / "user").is_dir()
    for server in served:
        server.close()


def test_an_unwritable_data_folder_is_a_clear_error(tmp_path, monkeypatch, capsys):
    from collage_app.cli import EXIT_USER_ERROR, main

    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("NEURAL_COLLAGE_DATA", str(blocker / "data"))
    assert main(["serve", "--no-examples"]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert f"cannot make the data folder {blocker / 'data'}" in err and "--dir DIR" in err


def test_collage_workflow_through_the_server(tmp_path):
    """The node pack behind the server: savers write to its output folder whatever the workflow says, the tiny
    generator stands in for the default model, and the editor reads the saved PNGs back with /view."""
    from PIL import Image

    from collage_app.serve import make_server
    from nodes_support import TINY, api

    server = make_server(str(tmp_path), model=str(TINY), device="cpu", web_root="", examples=False)
    bg = start(server)
    try:
        async def go():
            async with Client(bg.url) as c:
                wf = api("class_collage")
                for node in wf.values():
                    if "output_dir" in node["inputs"]:
                        node["inputs"]["output_dir"] = "/somewhere/else"
                status, body = await c.queue(wf, extra_data={"extra_pnginfo": {"workflow": {"id": "ui"}}})
                assert status == 200, body
                end = await c.done(body["prompt_id"], timeout=120)
                assert end["type"] == "execution_success", end
                return [m["data"]["output"] for m in c.of(body["prompt_id"], "executed")]
        outputs = run(go())
        images = [img for out in outputs for img in out["images"]]
        assert len(images) == 2 and all(set(i) == {"filename", "subfolder", "type"} for i in images)
        for img in images:
            status, headers, data = raw(bg.url, "GET", f"/api/view?filename={img['filename']}"
                                                       f"&subfolder={img['subfolder']}&type=output")
            assert status == 200 and headers["Content-Type"] == "image/png"
            pic = Image.open(io.BytesIO(data))
            assert pic.size == (64, 64) and json.loads(pic.text["workflow"]) == {"id": "ui"}
            assert os.path.isfile(os.path.join(server.output_dir, img["subfolder"], img["filename"]))
        assert not os.path.exists("/somewhere/else")
    finally:
        bg.stop()


def test_prepare_prompt_points_savers_and_models(tmp_path):
    from collage_app.serve import make_server, prepare_prompt

    server = make_server(str(tmp_path), web_root="", examples=False)
    prompt = {"1": {"class_type": "CollageSaveImage", "inputs": {"output_dir": "/elsewhere"}},
              "3": {"class_type": "LoadGenerator", "inputs": {"model": "mine.safetensors", "device": "auto"}},
              "4": {"class_type": "LoadGenerator", "inputs": {"model": "emoji-animals"}}}
    out = prepare_prompt(prompt, server, model="/m/tiny.safetensors", device="cpu")
    assert out["1"]["inputs"]["output_dir"] == server.output_dir
    assert out["3"]["inputs"] == {"model": "mine.safetensors", "device": "cpu"}
    assert out["4"]["inputs"] == {"model": "/m/tiny.safetensors", "device": "cpu"}


def _load_image(path: str, model: str | None = None) -> dict:
    p = {"1": {"class_type": "CollageLoadImage", "inputs": {"path": path}},
         "2": {"class_type": "CollageSaveImage", "inputs": {"images": ["1", 0], "filename_prefix": "x",
                                                           "output_dir": "output"}}}
    if model is not None:
        p["3"] = {"class_type": "LoadGenerator", "inputs": {"model": model, "device": "cpu", "dtype": "float32"}}
        p["4"] = {"class_type": "SampleZ", "inputs": {"generator": ["3", 0], "seed": 0, "batch": 1,
                                                      "truncation": 0.0}}
        p["5"] = {"class_type": "SaveZ", "inputs": {"z": ["4", 0], "filename_prefix": "z", "output_dir": "output"}}
    return p


@pytest.mark.parametrize("path", ["/etc/passwd", "../secret.png", "sub/../../secret.png", "..\\secret.png",
                                  "C:\\secret.png", "link/secret.png", "escape.png", "missing.png", "\x00x.png"])
def test_workflow_file_inputs_are_confined(tmp_path, path):
    """Load Image (and every file input) reads only inside the input folder: traversal, absolute paths and symlinks
    out are refused with one message that names the value as given and no server path (no existence oracle)."""
    from PIL import Image

    from collage_app.serve import make_server

    secret = tmp_path / "secret.png"
    Image.new("RGB", (4, 4)).save(secret)
    server = make_server(str(tmp_path / "srv"), web_root="", examples=False)
    os.symlink(tmp_path, os.path.join(server.input_dir, "link"))
    os.symlink(secret, os.path.join(server.input_dir, "escape.png"))
    bg = start(server)
    try:
        status, body = post_json(bg.url, "/api/prompt", {"prompt": _load_image(path)})
        assert status == 400, body
        err = body["node_errors"]["1"]["errors"][0]
        assert err["type"] == "file_not_found" and err["extra_info"]["input_name"] == "path"
        assert "not found or not allowed" in err["message"]
        assert str(tmp_path) not in json.dumps(body)  # no server path in the answer
        assert not os.listdir(server.output_dir)
    finally:
        bg.stop()


def test_uploads_models_and_allowed_folders_are_readable(tmp_path):
    from PIL import Image

    from collage_app.serve import make_server
    from nodes_support import TINY

    outside = tmp_path / "photos"
    outside.mkdir()
    Image.new("RGB", (8, 8), (255, 0, 0)).save(outside / "red.png")
    server = make_server(str(tmp_path / "srv"), web_root="", examples=False, allow_paths=[str(outside)])
    Image.new("RGB", (8, 8)).save(os.path.join(server.input_dir, "up.png"))
    import shutil
    shutil.copy(TINY, os.path.join(server.models_dir, "tiny.safetensors"))
    for path, model in [("up.png", "tiny.safetensors"), (str(outside / "red.png"), None)]:
        v = server.engine.validate(_load_image(path, model))
        assert v.ok, v.node_errors
    v = server.engine.validate(_load_image("up.png", str(TINY)))  # a model outside the models folder
    assert v.node_errors["3"]["errors"][0]["type"] == "file_not_found"


def test_the_example_pictures_are_in_the_input_folder(tmp_path):
    from collage_app.serve import EXAMPLE_INPUTS, make_server

    if not EXAMPLE_INPUTS.is_dir():
        pytest.skip("no workflows/examples folder (not a source checkout)")
    server = make_server(str(tmp_path), web_root="", examples=True)
    assert os.path.isfile(os.path.join(server.input_dir, "examples", "chelsea.png"))


def test_examples_are_offered_in_the_editor(tmp_path):
    from collage_app.serve import EXAMPLES, make_server

    if not EXAMPLES.is_dir():
        pytest.skip("no workflows/ui folder (not a source checkout)")
    server = make_server(str(tmp_path), web_root="")
    bg = start(server)
    try:
        listing = get_json(bg.url, "/api/userdata?dir=workflows&recurse=true")[1]
        assert "neural-collage/class_collage.json" in listing
        assert "class_collage" in get_json(bg.url, "/api/workflow_templates")[1]["neural-collage"]
        wf = get_json(bg.url, "/api/userdata/workflows%2Fneural-collage%2Fclass_collage.json")[1]
        assert any(n["type"] == "LoadGenerator" for n in wf["nodes"])
    finally:
        bg.stop()


def test_the_editor_opens_the_main_workflow_first(tmp_path):
    """What a fresh editor opens: the settings of a new user folder skip ComfyUI's first-run template dialog (so the
    editor loads its default graph), serve's own extension replaces that default by the main workflow it asks
    for, and the main workflow is made of the pack's nodes only."""
    import collage_nodes
    from collage_app import serve

    server = serve.make_server(str(tmp_path / "srv"), web_root="", examples=False)
    bg = start(server)
    try:
        assert get_json(bg.url, "/api/settings")[1] == serve.DEFAULT_SETTINGS
        assert "/extensions/neural-collage-serve/first_screen.js" in get_json(bg.url, "/api/extensions")[1]
        status, headers, body = raw(bg.url, "GET", serve.DEFAULT_WORKFLOW_ROUTE)
        assert status == 200 and headers["Content-Type"] == "application/json"
        graph = json.loads(body)
        assert graph == json.loads((serve.EXAMPLES / f"{serve.FIRST_WORKFLOW}.json").read_text())
        types = {n["type"] for n in graph["nodes"]}
        assert types and types <= set(collage_nodes.registry().names()), types
        # a setting the user saves keeps the defaults beside it
        assert post_json(bg.url, "/api/settings/Comfy.Locale", "en")[0] == 200
        assert get_json(bg.url, "/api/settings")[1] == {**serve.DEFAULT_SETTINGS, "Comfy.Locale": "en"}
    finally:
        bg.stop()


def test_the_main_workflow_missing_is_a_404(tmp_path):
    """Without the workflow file the route says so (the extension then opens a blank graph, never the stock one)."""
    from aiohttp.test_utils import make_mocked_request

    from collage_app import serve

    handler = serve.default_workflow_route(tmp_path / "no-workflows")
    response = run(handler(make_mocked_request("GET", serve.DEFAULT_WORKFLOW_ROUTE)))
    assert response.status == 404
    error = json.loads(response.body)["error"]
    assert error["type"] == "not_found" and f"{serve.FIRST_WORKFLOW}.json" in error["message"]


# ------------------------------------------------------------------------------------------------ one error shape
@pytest.mark.parametrize("method,path,body,status,etype", [
    ("POST", "/api/prompt", "{bad", 400, "invalid_json"),
    ("POST", "/api/prompt", "{}", 400, "no_prompt"),
    ("GET", "/api/jobs?status=nope", None, 400, "invalid_request"),
    ("GET", f"/api/jobs/{uuid.UUID(int=7)}", None, 404, "not_found"),
    ("POST", "/api/jobs/cancel", '{"job_ids": ["x"]}', 400, "invalid_request"),
    ("GET", "/api/userdata", None, 400, "invalid_request"),
    ("GET", "/api/userdata?dir=nothing", None, 404, "not_found"),
    ("GET", "/api/userdata?dir=..%2F..", None, 400, "invalid_path"),
    ("GET", "/api/userdata/..%2Fsecret.json", None, 400, "invalid_path"),
    ("DELETE", "/api/userdata/missing.json", None, 404, "not_found"),
    ("POST", "/api/userdata/a.json/move/..%2Fb.json", None, 400, "invalid_path"),
    ("GET", "/api/v2/userdata?path=missing", None, 404, "not_found"),
    ("GET", "/api/view?filename=..%2Fx.png", None, 400, "invalid_path"),
    ("GET", "/api/workflow_templates/nope/demo.json", None, 404, "not_found"),
    ("GET", "/api/nothing-here", None, 404, "http_error"),
])
def test_every_error_has_one_json_shape(srv, method, path, body, status, etype):
    got, headers, data = raw(srv.url, method, path, body)
    assert got == status, (path, got, data)
    err = json.loads(data)
    assert set(err) == {"error", "node_errors"}, err
    assert set(err["error"]) == {"type", "message", "details", "extra_info"} and err["error"]["type"] == etype
    assert isinstance(err["error"]["message"], str) and err["error"]["message"]


def test_error_extra_info_carries_structured_detail(srv):
    status, body = post_json(srv.url, "/api/jobs/cancel", {"job_ids": ["x", str(uuid.UUID(int=1))]})
    assert status == 400 and body["error"]["extra_info"] == {"invalid_ids": ["x"]}
    assert post_json(srv.url, "/api/userdata/c.json", {})[0] == 200
    status, body = post_json(srv.url, "/api/userdata/c.json?overwrite=false", {})
    assert status == 409 and body["error"]["type"] == "conflict"


def test_picture_inputs_are_image_pickers_of_the_input_folder(tmp_path):
    """Load Image / Load Mask: in /object_info a COMBO of the input folder's pictures with ComfyUI's upload button
    (what the editor shows as a picker with a preview); an upload appears in it; any name still validates."""
    from PIL import Image

    from collage_app.serve import make_server

    server = make_server(str(tmp_path), web_root="", examples=True)
    bg = start(server)
    try:
        info = get_json(bg.url, "/api/object_info/CollageLoadImage")[1]["CollageLoadImage"]
        choices, opts = info["input"]["required"]["path"]
        assert opts["image_upload"] is True and "examples/chelsea.png" in choices
        buf = io.BytesIO()
        Image.new("RGB", (8, 8)).save(buf, "PNG")
        assert run(_upload(bg.url, _form("mine.png", buf.getvalue())))[0] == 200
        mask_info = get_json(bg.url, "/api/object_info")[1]["CollageLoadMask"]
        assert "mine.png" in mask_info["input"]["required"]["path"][0]
        v = server.engine.validate({"1": {"class_type": "CollageLoadImage", "inputs": {"path": "mine.png"}},
                                    "2": {"class_type": "CollageSaveImage", "inputs": {
                                        "images": ["1", 0], "filename_prefix": "x", "output_dir": "o"}}})
        assert v.ok, v.node_errors
    finally:
        bg.stop()


def test_model_inputs_are_dropdowns_that_still_take_a_path(tmp_path):
    """In serve's editor, Load Generator / Discriminator / Encoder offer the embedded models, the BigGAN names and
    the checkpoints of the models folder; a checkpoint named by path (API, saved workflow) still runs."""
    import shutil

    from collage_app.serve import make_server
    from nodes_support import TINY

    server = make_server(str(tmp_path), web_root="", examples=False, allow_paths=[str(TINY.parent)])
    shutil.copy(TINY, os.path.join(server.models_dir, "mine.safetensors"))
    bg = start(server)
    try:
        info = get_json(bg.url, "/api/object_info/LoadGenerator")[1]["LoadGenerator"]
        choices, opts = info["input"]["required"]["model"]
        assert choices[0] == "emoji-animals" and "mine.safetensors" in choices and "biggan-deep-256" in choices
        assert opts["default"] == "emoji-animals"
        for model in ("mine.safetensors", str(TINY)):
            v = server.engine.validate({"1": {"class_type": "LoadGenerator", "inputs": {
                "model": model, "device": "cpu", "dtype": "float32"}}, "2": {"class_type": "SampleZ", "inputs": {
                    "generator": ["1", 0], "seed": 0, "batch": 1, "truncation": 0.0}}, "3": {
                    "class_type": "SaveZ", "inputs": {"z": ["2", 0], "filename_prefix": "z", "output_dir": "o"}}})
            assert v.ok, (model, v.node_errors)
    finally:
        bg.stop()
