"""Node help pages in `neural-collage serve`: the editor's node library fetches a custom node's help from the URL it
builds from the node's ``python_module`` (ComfyUI's convention, ``WEB_DIRECTORY/docs/<NODE>.md``), and the server
answers it with the page generated into ``nodes/web/docs`` (``python -m collage_app.docs``)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

aiohttp = pytest.importorskip("aiohttp", reason="the server needs aiohttp (pip install 'neural-collage[serve]')")

import collage_nodes  # noqa: E402
from nodes_support import TINY  # noqa: E402
from serve_support import get_json, raw, start  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
HELP = ROOT / "nodes" / "web" / "docs"


@pytest.fixture
def pack(tmp_path):
    from collage_app.serve import make_server

    server = make_server(str(tmp_path / "srv"), model=str(TINY), device="cpu", web_root="", examples=False)
    bg = start(server)
    yield bg
    bg.stop()
    server.close()


def help_urls(entry: dict) -> list[str]:
    """The URLs the editor (comfyui-frontend-package 1.49.6, its node help service) tries, in order, for a node
    whose ``python_module`` is ``custom_nodes.<pack>[@version]``: the page of the user's locale, then the plain one.
    A node of any other module is looked up among the core nodes' pages (``/docs/<NODE>/<locale>.md``) instead."""
    parts = entry["python_module"].split(".")
    assert parts[0] == "custom_nodes" and len(parts) > 1, entry["python_module"]
    pack = parts[1].split("@")[0]
    return [f"/extensions/{pack}/docs/{entry['name']}/en.md", f"/extensions/{pack}/docs/{entry['name']}.md"]


def test_every_node_help_page_is_served_where_the_editor_looks(pack):
    status, info = get_json(pack.url, "/api/object_info")
    assert status == 200 and set(info) == {cls.name for cls in collage_nodes.registry()}
    for name, entry in info.items():
        localized, plain = help_urls(entry)
        assert raw(pack.url, "GET", localized)[0] == 404  # not OK: the editor goes on to the plain page
        status, headers, body = raw(pack.url, "GET", plain)
        assert status == 200, (name, plain)
        # the editor drops an answer whose type is text/html (a single-page app's index), so it must not be that
        assert "text/html" not in headers["Content-Type"] and headers["Content-Type"].startswith("text/markdown")
        assert body == (HELP / f"{name}.md").read_bytes()
        assert entry["description"].encode() in body


def test_the_pinned_editor_builds_help_urls_that_way():
    """Where the editor of the [serve] extra is installed, its bundle still builds the custom-node help URL from
    ``/extensions/<pack>/docs/`` and ``<NODE>.md`` (a newer editor that changed it fails here, not silently)."""
    from collage_app.serve import frontend_root

    root = frontend_root()
    if root is None:
        pytest.skip("comfyui-frontend-package is not installed")
    found = False
    for js in (Path(root) / "assets").glob("*.js"):
        text = js.read_text(encoding="utf-8", errors="replace")
        if "/docs/" in text and re.search(r"`/extensions/\$\{\w+\}/docs/\$\{\w+\.name\}\.md`", text):
            found = True
            break
    assert found, "the editor no longer fetches /extensions/<pack>/docs/<NODE>.md"
