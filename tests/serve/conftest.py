"""Fixtures of the server's tests: a web root, a :class:`PromptServer` over the engine's test nodes (small upload,
history and queue limits so the tests can reach them) and that server running on a loopback port."""

from __future__ import annotations

import json

import pytest

from engine_testnodes import make_registry

UPLOAD_LIMIT = 64 << 10


@pytest.fixture(autouse=True)
def _no_real_data_folder(tmp_path_factory, monkeypatch):
    """serve started without --dir (through the CLI, here or in a subprocess) writes into a temporary folder, never
    into the data folder of the person running the tests."""
    monkeypatch.setenv("NEURAL_COLLAGE_DATA", str(tmp_path_factory.mktemp("serve-data")))


@pytest.fixture
def web_root(tmp_path):
    root = tmp_path / "web"
    (root / "assets").mkdir(parents=True)
    (root / "index.html").write_text("<!doctype html><title>editor</title>")
    (root / "assets" / "app.js").write_text("console.log('hi')")
    (tmp_path / "secret.txt").write_text("SECRET")
    return root


@pytest.fixture
def server(tmp_path, web_root):
    pytest.importorskip("aiohttp", reason="the server needs aiohttp (pip install 'neural-collage[serve]')")
    from collage_engine.server import PromptServer

    return PromptServer(registry=make_registry(), web_root=str(web_root), base_dir=str(tmp_path / "srv"),
                        max_upload_bytes=UPLOAD_LIMIT, max_history=5, max_queue=20, version="1.2.3",
                        templates={"pack": str(tmp_path / "templates")})


@pytest.fixture
def srv(server, tmp_path):
    from serve_support import start

    (tmp_path / "templates").mkdir(exist_ok=True)
    (tmp_path / "templates" / "demo.json").write_text(json.dumps({"nodes": [], "links": []}))
    bg = start(server)
    yield bg
    bg.stop()
