"""End to end: `neural-collage serve` with the official ComfyUI editor in a real headless Chromium.

A person's session, driven over the Chrome DevTools Protocol (tests/cdp.py): the editor boots against our server,
our nodes are registered and listed in the node library (and our workflows in the template browser), the saved
class-collage workflow is opened from the Workflows sidebar, its generator is pointed at the tiny test checkpoint
(unless the embedded model is installed), Run is clicked and both saved images appear on their nodes. The browser
never reaches past loopback. A screenshot is written to the test's folder and, when it is missing or
NEURAL_COLLAGE_UPDATE_SCREENSHOTS=1, to docs/images/serve-editor.png.

The painter: the paint_collage workflow is opened, run, and painted with real mouse drags on the Paint Class Map
node's canvas (tiger, fox, an eraser dab); each stroke must re-run the graph and show a new picture on the Save node
(the stroke-to-picture time is printed), the strokes must be in the node's widget and in the serialized workflow,
and the last PNG's embedded prompt must re-run headless to the same pixels (docs/images/painter.png).

Needs Debian's `chromium` (apt-get install chromium) and the `[serve]` extra (aiohttp, comfyui-frontend-package);
skipped with the reason otherwise. Run it alone with `python -m pytest -m e2e tests/serve/test_serve_e2e.py`.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

aiohttp = pytest.importorskip("aiohttp", reason="the server needs aiohttp (pip install 'neural-collage[serve]')")

from editor_session import TEMPLATES_DIALOG, click, first_screen, js_find, paint_session, press  # noqa: E402

from cdp import Browser, find_chromium  # noqa: E402
from collage_app.serve import frontend_root  # noqa: E402
from nodes_support import ROOT, TINY, assert_pictures_close  # noqa: E402

SCREENSHOT = ROOT / "docs" / "images" / "serve-editor.png"
MAX_SCREENSHOT = 400 << 10

if find_chromium() is None:
    pytest.skip("chromium is not installed (Debian: apt-get install -y chromium)", allow_module_level=True)
if frontend_root() is None:
    pytest.skip("the editor is not installed (pip install 'neural-collage[serve]' brings comfyui-frontend-package)",
                allow_module_level=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def serve(tmp_path):
    """`neural-collage serve` as a user starts it, on a free port, in a fresh folder; stopped afterwards."""
    port = free_port()
    cmd = [sys.executable, "-m", "collage_app.cli", "serve", "--port", str(port), "--dir", str(tmp_path / "work")]
    log = open(tmp_path / "serve.log", "w")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"serve exited: {(tmp_path / 'serve.log').read_text()}")
            try:
                urllib.request.urlopen(url + "/api/system_stats", timeout=2).read()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.3)
        yield url, tmp_path / "work"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)  # its own session: only what this test started
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        log.close()


# Fit the whole graph into the part of the canvas that the side panel and the toolbars leave visible.
FIT_VISIBLE = """(() => {
  const c = app.canvas, ns = app.graph.nodes, dpr = window.devicePixelRatio || 1;
  const tree = [...document.querySelectorAll('[role=tree]')].find(t => t.getBoundingClientRect().width > 0);
  const left = (tree ? tree.getBoundingClientRect().right : 0) + 24, top = 110;
  const right = c.canvas.width / dpr - 24, bottom = c.canvas.height / dpr - 70;
  const x0 = Math.min(...ns.map(n => n.pos[0])), y0 = Math.min(...ns.map(n => n.pos[1] - 30));
  const x1 = Math.max(...ns.map(n => n.pos[0] + n.size[0])), y1 = Math.max(...ns.map(n => n.pos[1] + n.size[1]));
  const scale = Math.min((right - left) / (x1 - x0), (bottom - top) / (y1 - y0), 1.2);
  c.ds.scale = scale;
  c.ds.offset = [left / scale - x0, top / scale - y0];
  c.setDirty(true, true);
  return scale;
})()"""


async def open_library(page) -> None:
    """Open the node library on the pack's model category (neural-collage > model > Load Generator)."""
    await click(page, "document.querySelector('button[aria-label^=\"Node Library\"]')")
    await page.wait_for(js_find("[role=treeitem]", "neural-collage", exact=False) + " && true")
    for folder in ("neural-collage", "model"):
        expanded = await page.eval(f"(() => {{ const e = {js_find('[role=treeitem]', folder)}; "
                                   "return e ? e.getAttribute('aria-expanded') : null; })()")
        if expanded != "true":
            await click(page, js_find("[role=treeitem]", folder))
    await page.wait_for(js_find("[role=treeitem]", "Load Generator") + " && true")


async def session(url: str, work: Path, shot: Path) -> dict:
    import collage_nodes
    from collage_core.models import embedded_model_path

    names = collage_nodes.registry().names()
    report: dict = {}
    async with Browser.launch(width=1920, height=1080) as browser:
        page = await browser.page()
        t0 = time.monotonic()
        await page.navigate(url + "/", timeout=120)
        # 1. the editor boots and registers every node of the pack from /api/object_info
        await page.wait_for("window.app && app.graph && window.LiteGraph && "
                            "LiteGraph.registered_node_types['LoadGenerator'] && true", timeout=120)
        registered = await page.eval("Object.keys(LiteGraph.registered_node_types)")
        assert set(names) <= set(registered), set(names) - set(registered)
        report["boot_s"] = round(time.monotonic() - t0, 1)

        # 2. the first screen: the pack's main workflow (test_a_fresh_editor_opens_on_the_packs_workflow)
        assert not await first_screen(page), "ComfyUI's first-run template dialog opened"

        # 3. the node library lists the pack's categories and nodes
        await open_library(page)
        report["library"] = await page.eval("[...document.querySelectorAll('[role=treeitem]')]"
                                            ".map(e => e.textContent.trim()).filter(t => t.length < 40)")

        # 4. open the saved workflow from the Workflows sidebar (the server put the examples there)
        await click(page, "document.querySelector('button[aria-label^=\"Workflows\"]')")
        await click(page, js_find("[role=treeitem]", "neural-collage", exact=False))
        await click(page, js_find("[role=treeitem]", "class_collage"))
        await page.wait_for("app.graph.nodes.length === 10 && "
                            "app.graph.nodes.filter(n => n.type === 'CollageSaveImage').length === 2", timeout=30)

        # 4b. class inputs are dropdowns of the model's labels (nodes/web/classes.js); the saved values are kept
        combo = await page.wait_for(
            "(() => { const p = app.graph.nodes.find(n => n.type === 'PaintClass'); "
            "const w = p && p.widgets.find(w => w.name === 'class_name'); "
            "return w && w.type === 'combo' && [w.value, w.options.values]; })()", timeout=30)
        assert combo[0] == "cat" and combo[1][:3] == ["dog", "cat", "tiger"] and len(combo[1]) == 21, combo
        saved_ui = await page.eval("app.graph.serialize()")
        (paint,) = [n for n in saved_ui["nodes"] if n["type"] == "PaintClass"]
        assert paint["widgets_values"] == ["cat", 1.0], paint["widgets_values"]
        report["class_choices"] = len(combo[1])

        # 5. the embedded model when installed, else the tiny test generator typed into Load Generator's model
        if embedded_model_path("emoji-animals") is None:
            value = await page.eval(
                "(() => { const g = app.graph.nodes.find(n => n.type === 'LoadGenerator'); "
                "const w = g.widgets.find(w => w.name === 'model'); "
                f"w.value = {json.dumps(str(TINY))}; w.callback && w.callback(w.value); "
                "app.graph.setDirtyCanvas(true, true); return w.value; })()")
            assert value == str(TINY)
            report["model"] = "tests/fixtures/tiny_generator.safetensors"
        else:
            report["model"] = "emoji-animals"

        # 6. Run, and wait for both saved images to be shown on their nodes
        saver_heights = await page.eval("Object.fromEntries(app.graph.nodes.filter(n => n.type === "
                                        "'CollageSaveImage').map(n => [n.id, n.size[1]]))")
        await click(page, js_find("button", "Run"))
        t1 = time.monotonic()
        srcs = await page.wait_for(
            "(() => { const s = app.graph.nodes.filter(n => n.type === 'CollageSaveImage'); "
            "return s.every(n => n.imgs && n.imgs.length && n.imgs[0].complete && n.imgs[0].naturalWidth > 0) "
            "&& s.map(n => n.imgs[0].src); })()", timeout=180)
        report["run_s"] = round(time.monotonic() - t1, 1)
        report["images"] = srcs
        assert all("/api/view?" in s and "type=output" in s for s in srcs)
        saved = sorted(str(p.relative_to(work / "output")) for p in (work / "output").rglob("*.png"))
        assert saved == ["class_collage/collage_00001.png", "class_collage/source_00001.png"], saved

        # 7. the picture: node library open on our nodes, the whole graph with its results in view
        await open_library(page)
        hide = "document.querySelector('button[aria-label^=\"Hide Minimap\"]')"
        if await page.eval(f"!!{hide}"):
            await click(page, hide)
        await page.eval(FIT_VISIBLE)
        await asyncio.sleep(1.0)
        data = await page.screenshot(str(shot))
        report["screenshot_bytes"] = len(data)

        # each picture on its own Save node: with the pictures shown (the editor grows a saver that lacks the room),
        # no node overlaps another
        nodes = await page.eval("app.graph.nodes.map(n => ({id: String(n.id), title: n.title, x: n.pos[0], "
                                "y: n.pos[1] - LiteGraph.NODE_TITLE_HEIGHT, w: n.size[0], "
                                "h: n.size[1] + LiteGraph.NODE_TITLE_HEIGHT, height: n.size[1]}))")
        grown = {n["id"]: round(n["height"]) for n in nodes if n["id"] in saver_heights}
        for k, a in enumerate(nodes):
            for b in nodes[k + 1:]:
                assert (a["x"] + a["w"] <= b["x"] or b["x"] + b["w"] <= a["x"] or a["y"] + a["h"] <= b["y"]
                        or b["y"] + b["h"] <= a["y"]), f"{a['title']} overlaps {b['title']}"
        report["saver_heights"] = {i: [saver_heights[i], grown[i]] for i in saver_heights}  # before, after

        # nothing left loopback; no server errors
        urls = [ev["request"]["url"] for m, ev in page.events if m == "Network.requestWillBeSent"]
        outside = sorted({u for u in urls if not u.startswith((url, "data:", "blob:"))})
        assert not outside, outside
        statuses = {ev["response"]["url"]: ev["response"]["status"] for m, ev in page.events
                    if m == "Network.responseReceived"}
        assert not {u: s for u, s in statuses.items() if s >= 500}
        report["http_4xx"] = sorted(u.replace(url, "") for u, s in statuses.items() if 400 <= s < 500)
        report["requests"] = len(urls)
    return report


# ------------------------------------------------------------------------------------------------ first screen
async def reload(page, url: str) -> None:
    """Load the page again as a person does (the editor asks before leaving a modified workflow: Leave)."""
    asked = page.wait_event("Page.javascriptDialogOpening")
    nav = asyncio.ensure_future(page.navigate(url, timeout=120))
    await asyncio.wait({asked, nav}, return_when=asyncio.FIRST_COMPLETED)
    if asked.done():
        await page.call("Page.handleJavaScriptDialog", {"accept": True})
    await nav


async def first_visit(url: str, shot: Path | None = None) -> dict:
    """A stranger's first visit (fresh data folder, fresh browser profile), then a second visit of the same
    browser after an edit."""
    import collage_nodes
    from collage_app.serve import EXAMPLES, FIRST_WORKFLOW

    pack = set(collage_nodes.registry().names())
    main = json.loads((EXAMPLES / f"{FIRST_WORKFLOW}.json").read_text())
    offered = json.loads(urllib.request.urlopen(url + "/api/workflow_templates", timeout=10).read())
    report: dict = {}
    async with Browser.launch(width=1600, height=1000) as browser:
        page = await browser.page()
        await page.navigate(url + "/", timeout=120)
        # 1. the canvas holds the pack's main workflow: only the pack's nodes, none missing, no dialog over it
        assert not await first_screen(page), "ComfyUI's first-run template dialog opened"
        await asyncio.sleep(2)  # the editor's start-up is over (a dialog would be open by now)
        types = await page.eval("app.graph.nodes.map(n => n.type)")
        report["types"] = types
        assert set(types) <= pack, f"not the pack's nodes: {set(types) - pack}"
        assert sorted(types) == sorted(n["type"] for n in main["nodes"]), types
        assert await page.eval("app.graph.nodes.filter(n => n.has_errors).map(n => n.type)") == []
        dialogs = await page.eval("[...document.querySelectorAll('[role=dialog]')]"
                                  ".filter(d => d.getBoundingClientRect().width > 0).map(d => d.textContent)")
        assert dialogs == [], dialogs
        requested = [ev["request"]["url"] for m, ev in page.events if m == "Network.requestWillBeSent"]
        assert any(u.endswith("/extensions/neural-collage-serve/first_screen.js") for u in requested)
        # ... all of it in view (the saved viewport is fitted to the window), titles included
        outside = await page.eval(
            "(() => { const ds = app.canvas.ds, W = window.innerWidth, H = window.innerHeight;"
            " const T = LiteGraph.NODE_TITLE_HEIGHT;"
            " return app.graph.nodes.filter(n => { const x = (n.pos[0] + ds.offset[0]) * ds.scale,"
            " y = (n.pos[1] - T + ds.offset[1]) * ds.scale, w = n.size[0] * ds.scale,"
            " h = (n.size[1] + T) * ds.scale; return x < 0 || y < 0 || x + w > W || y + h > H; })"
            ".map(n => n.title); })()")
        assert outside == [], f"not in view on the first screen: {outside}"
        if shot is not None:
            await page.screenshot(str(shot))

        # 2. the Templates dialog lists the pack's templates (the workflows/*.json the server offers)
        names = sorted(offered.get("neural-collage", []))
        assert names and names == sorted(f.stem for f in EXAMPLES.glob("*.json")), names
        await click(page, "document.querySelector('button[aria-label=\"Templates\"]')")
        await page.wait_for(js_find("*", f"Showing {len(names)} of {len(names)} templates") + " && true", timeout=30)
        shown = await page.eval(f"[...{TEMPLATES_DIALOG}.querySelectorAll('*')].filter(e => !e.children.length)"
                                ".map(e => e.textContent.trim())")
        assert set(names) <= set(shown), set(names) - set(shown)
        report["templates"] = names
        await press(page, "Escape", "Escape", 27)
        await page.wait_for(f"!{TEMPLATES_DIALOG}", timeout=10)

        # 3. a later visit restores the workflow the user has open (an edit of it), not the main workflow again
        await page.wait_for("app.extensionManager.workflow.activeWorkflow && true", timeout=30)
        removed = await page.eval("(() => { const n = app.graph.nodes[app.graph.nodes.length - 1]; "
                                  "app.graph.remove(n); "
                                  "app.extensionManager.workflow.activeWorkflow.changeTracker.checkState(); "
                                  "return n.id; })()")
        await asyncio.sleep(1.5)  # the editor keeps its draft in the browser's storage
        await reload(page, url + "/")
        assert not await first_screen(page)
        ids = await page.wait_for("app.graph.nodes.length && app.graph.nodes.map(n => n.id)", timeout=30)
        assert removed not in ids and len(ids) == len(main["nodes"]) - 1, (removed, ids)
        report["second_visit_nodes"] = len(ids)
    return report


def test_a_fresh_editor_opens_on_the_packs_workflow(serve, tmp_path):
    """A fresh serve in a fresh browser shows the pack's main workflow (never ComfyUI's stock graph, whose nodes
    this server lacks), offers the pack's templates, and a later visit keeps the user's open workflow."""
    url, _work = serve
    report = asyncio.run(first_visit(url, tmp_path / "first-screen.png"))
    print("\ne2e first screen:", json.dumps(report))


def test_editor_loads_runs_a_saved_workflow_and_shows_the_result(serve, tmp_path):
    url, work = serve
    shot = tmp_path / "serve-editor.png"
    report = asyncio.run(session(url, work, shot))
    print("\ne2e:", json.dumps(report, indent=1))
    assert shot.stat().st_size < MAX_SCREENSHOT, f"screenshot is {shot.stat().st_size} bytes"
    if not SCREENSHOT.exists() or os.environ.get("NEURAL_COLLAGE_UPDATE_SCREENSHOTS") == "1":
        SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, SCREENSHOT)


# ----------------------------------------------------------------------------------------------------- painter
PAINTER_SHOT = ROOT / "docs" / "images" / "painter.png"


def test_painter_strokes_rerun_the_graph_and_are_saved_in_the_workflow(serve, tmp_path):
    from PIL import Image

    import collage_nodes

    url, work = serve
    shot = tmp_path / "painter.png"
    report = asyncio.run(paint_session(url, work / "output", shot))
    print("\ne2e painter:", json.dumps(report, indent=1))
    # the saved PNG's workflow re-runs headless (fresh engine, no browser) to the same picture
    saved = Image.open(report["last_png"])
    prompt = json.loads(saved.text["prompt"])
    for n in prompt.values():
        if "output_dir" in n["inputs"]:
            n["inputs"]["output_dir"] = str(tmp_path / "headless")
    res = collage_nodes.engine().run(prompt)
    assert res.ok, res.error
    (again,) = [i["path"] for out in res.ui.values() for i in out.get("images", [])]
    assert_pictures_close(again, saved, what="the headless re-run and the editor's picture")
    assert shot.stat().st_size < MAX_SCREENSHOT, f"screenshot is {shot.stat().st_size} bytes"
    if not PAINTER_SHOT.exists() or os.environ.get("NEURAL_COLLAGE_UPDATE_SCREENSHOTS") == "1":
        shutil.copyfile(shot, PAINTER_SHOT)
