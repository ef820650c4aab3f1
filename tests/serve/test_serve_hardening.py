"""What a hostile page or a careless workflow must not do to `serve`: a valid workflow that doubles a batch 18 times
is refused before it runs (memory budget) and the server keeps serving; savers and /user.css do not follow symbolic
links out of their folders; on a non-loopback address, Host names that are not the server's are refused."""

from __future__ import annotations

import os

import pytest

pytest.importorskip("aiohttp", reason="the server needs aiohttp (pip install 'neural-collage[serve]')")

from collage_engine.server import BackgroundServer  # noqa: E402
from serve_support import get_json, post_json, raw, start  # noqa: E402

MiB = 1 << 20


def doubling_bomb(picture: str, doublings: int = 18) -> dict:
    wf = {"1": {"class_type": "CollageLoadImage", "inputs": {"path": picture}}}
    prev = "1"
    for i in range(doublings):
        nid = str(i + 2)
        wf[nid] = {"class_type": "CollageImageBatch", "inputs": {"image_a": [prev, 0], "image_b": [prev, 0]}}
        prev = nid
    wf["90"] = {"class_type": "CollageImageGrid", "inputs": {"images": [prev, 0], "columns": 256, "padding": 0,
                                                            "pad_value": 1.0}}
    wf["91"] = {"class_type": "CollageSaveImage", "inputs": {"images": ["90", 0], "filename_prefix": "bomb",
                                                            "output_dir": "output"}}
    return wf


@pytest.fixture
def pack_server(tmp_path):
    from PIL import Image

    from collage_app.serve import make_server

    server = make_server(str(tmp_path / "srv"), web_root="", examples=False, max_memory=256 * MiB)
    Image.new("RGB", (128, 128), (200, 90, 40)).save(os.path.join(server.input_dir, "pic.png"))
    bg = start(server)
    yield server, bg
    bg.stop()
    server.close()


def test_the_doubling_bomb_is_refused_and_the_server_keeps_serving(pack_server):
    server, bg = pack_server
    status, body = post_json(bg.url, "/api/prompt", {"prompt": doubling_bomb("pic.png")})
    assert status == 400, body
    (nid, entry), = body["node_errors"].items()
    err = entry["errors"][0]
    assert entry["class_type"] == "CollageImageBatch" and err["type"] == "memory_budget_exceeded"
    assert "over the memory budget of 256.0 MiB" in err["message"]
    # a small one of the same shape runs, and the server answers as before
    status, body = post_json(bg.url, "/api/prompt", {"prompt": doubling_bomb("pic.png", doublings=2)})
    assert status == 200, body
    assert get_json(bg.url, "/api/system_stats")[0] == 200


def test_savers_do_not_follow_symlinks_out_of_the_output_folder(pack_server, tmp_path):
    server, bg = pack_server
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, os.path.join(server.output_dir, "linkdir"))
    wf = doubling_bomb("pic.png", doublings=0)
    wf["91"]["inputs"]["filename_prefix"] = "linkdir/x"
    import time

    status, body = post_json(bg.url, "/api/prompt", {"prompt": wf})
    assert status == 200, body
    pid = body["prompt_id"]
    for _ in range(600):
        history = get_json(bg.url, f"/api/history/{pid}")[1]
        if history:
            break
        time.sleep(0.05)
    status = history[pid]["status"]
    assert status["status_str"] == "error"
    assert "leaves the output folder through a symbolic link" in str(status["messages"])
    assert os.listdir(outside) == []


def test_user_css_does_not_follow_a_symlink(pack_server, tmp_path):
    server, bg = pack_server
    (tmp_path / "secret.css").write_text("SECRET")
    os.symlink(tmp_path / "secret.css", os.path.join(server.user_root(), "user.css"))
    status, _, body = raw(bg.url, "GET", "/user.css")
    assert status == 200 and b"SECRET" not in body


def test_a_non_loopback_server_checks_host_names(tmp_path):
    from collage_engine.server import PromptServer
    from engine_testnodes import make_registry

    server = PromptServer(registry=make_registry(), base_dir=str(tmp_path), allowed_hosts=["studio.lan"])
    bg = BackgroundServer(server, "0.0.0.0", 0).start()
    try:
        url = f"http://127.0.0.1:{bg.port}"
        assert raw(url, "GET", "/api/system_stats")[0] == 200
        for host in ("evil.example", f"evil.example:{bg.port}", "rebind.attacker.test"):
            status, _, body = raw(url, "GET", "/api/object_info", None, {"Host": host})
            assert status == 403 and b"not a name of this server" in body, host
            assert raw(url, "POST", "/api/prompt", '{"prompt": {}}', {"Host": host})[0] == 403
        assert raw(url, "GET", "/api/object_info", None, {"Host": f"studio.lan:{bg.port}"})[0] == 200
        assert raw(url, "GET", "/api/object_info", None, {"Host": "localhost"})[0] == 200
        # the Origin check still holds for writes from another page
        status, _, _ = raw(url, "POST", "/api/prompt", '{"prompt": {}}',
                           {"Host": "studio.lan", "Origin": "http://evil.example"})
        assert status == 403
    finally:
        bg.stop()
        server.close()
