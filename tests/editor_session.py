"""A person's session in the ComfyUI editor, driven over the Chrome DevTools Protocol (tests/cdp.py): element
lookups, real mouse clicks and drags, and the class-map painter session shared by the `serve` end-to-end test and
the real-ComfyUI integration test."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from cdp import Browser
from nodes_support import TINY

PAINTER = "app.graph.nodes.find(n => n.type === 'PaintClassMap')"
SAVED = "app.graph.nodes.find(n => n.type === 'CollageSaveImage')"


def js_find(selector: str, text: str, exact: bool = True) -> str:
    """A JavaScript expression: the first visible element matching ``selector`` whose text is (or starts with)
    ``text``."""
    test = f"t === {json.dumps(text)}" if exact else f"t.startsWith({json.dumps(text)})"
    return (f"[...document.querySelectorAll({json.dumps(selector)})].find(e => {{ const t = e.textContent.trim(); "
            f"return {test} && e.getBoundingClientRect().width > 0; }})")


async def click(page, element_js: str) -> None:
    """A real mouse click at the centre of an element (as a person would)."""
    box = await page.wait_for(f"(() => {{ const e = {element_js}; if (!e) return null; e.scrollIntoView({{block: "
                              f"'nearest'}}); const r = e.getBoundingClientRect(); "
                              f"return [r.x + r.width / 2, r.y + r.height / 2]; }})()", timeout=30)
    await page.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": box[0], "y": box[1]})
    for kind in ("mousePressed", "mouseReleased"):
        await page.call("Input.dispatchMouseEvent", {"type": kind, "x": box[0], "y": box[1], "button": "left",
                                                      "clickCount": 1})


TEMPLATES_DIALOG = js_find("[role=dialog]", "Templates", exact=False)


async def first_screen(page, timeout: float = 120) -> bool:
    """Wait for the editor's first screen after a page load: a workflow open with its nodes (serve opens the pack's
    main workflow) or ComfyUI's first-run template dialog over a blank graph, which is closed. True if it was
    there."""
    await page.wait_for("window.app && app.graph && (!app.extensionManager?.workflow || "
                        "app.extensionManager.workflow.activeWorkflow) && "
                        f"(app.graph.nodes.length > 0 || !!{TEMPLATES_DIALOG})", timeout=timeout)
    if not await page.eval(f"!!{TEMPLATES_DIALOG}"):
        return False
    await press(page, "Escape", "Escape", 27)
    await page.wait_for(f"!{TEMPLATES_DIALOG}", timeout=10)
    return True


async def press(page, key: str, code: str, vk: int) -> None:
    for kind in ("keyDown", "keyUp"):
        await page.call("Input.dispatchKeyEvent", {"type": kind, "key": key, "code": code,
                                                   "windowsVirtualKeyCode": vk})


# Resolves with the milliseconds from the painter's last stroke (pointer up) to the saved picture shown on the
# Save node (a new image, loaded), or null after 30 s.
WAIT_NEW_PICTURE = f"""(old) => new Promise(resolve => {{
  const p = {PAINTER}.painter, s = {SAVED}, t0 = performance.now();
  const tick = () => {{
    const im = s.imgs && s.imgs[0];
    if (im && im.src !== old && im.complete && im.naturalWidth > 0) return resolve(performance.now() - p.lastStrokeAt);
    if (performance.now() - t0 > 30000) return resolve(null);
    setTimeout(tick, 5);
  }};
  tick();
}})"""


async def drag(page, points: list[tuple[float, float]]) -> None:
    """A real left-button drag over the painter's canvas through ``points`` (fractions of the canvas)."""
    box = await page.eval(f"(() => {{ const r = {PAINTER}.painter.canvas.getBoundingClientRect(); "
                          "const s = Math.min(r.width, r.height); "  # the square picture, centred
                          "return [r.x + (r.width - s) / 2, r.y + (r.height - s) / 2, s, s]; })()")
    xy = [(box[0] + x * box[2], box[1] + y * box[3]) for x, y in points]
    await page.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": xy[0][0], "y": xy[0][1]})
    await page.call("Input.dispatchMouseEvent", {"type": "mousePressed", "x": xy[0][0], "y": xy[0][1],
                                                  "button": "left", "buttons": 1, "clickCount": 1})
    for x, y in xy[1:]:
        await page.call("Input.dispatchMouseEvent", {"type": "mouseMoved", "x": x, "y": y, "button": "left",
                                                      "buttons": 1})
    await page.call("Input.dispatchMouseEvent", {"type": "mouseReleased", "x": xy[-1][0], "y": xy[-1][1],
                                                  "button": "left", "buttons": 0, "clickCount": 1})


async def paint_session(url: str, output: Path, shot: Path, open_via: str = "sidebar") -> dict:
    """Open paint_collage (from the Workflows sidebar, as serve seeds it, or as ComfyUI's template browser does:
    its file from /api/workflow_templates), run it, paint three strokes with real mouse drags; the report holds
    the stroke-to-picture times and the last PNG. ``output`` is the server's output folder."""
    from collage_core.models import embedded_model_path

    report: dict = {}
    async with Browser.launch(width=1600, height=1000) as browser:
        page = await browser.page()
        await page.navigate(url + "/", timeout=120)
        await page.wait_for("window.app && app.graph && window.LiteGraph && "
                            "LiteGraph.registered_node_types['PaintClassMap'] && true", timeout=120)
        await first_screen(page)
        # the pack's extension was listed by /extensions and loaded
        urls = [ev["request"]["url"] for m, ev in page.events if m == "Network.requestWillBeSent"]
        assert any(u.endswith("/extensions/neural-collage/painter.js") for u in urls)

        if open_via == "sidebar":  # open the painter workflow from the Workflows sidebar, then close the sidebar
            await click(page, "document.querySelector('button[aria-label^=\"Workflows\"]')")
            await click(page, js_find("[role=treeitem]", "neural-collage", exact=False))
            await click(page, js_find("[role=treeitem]", "paint_collage"))
            await page.wait_for(f"app.graph.nodes.length === 7 && {PAINTER} && {PAINTER}.painter && true", timeout=30)
            await click(page, "document.querySelector('button[aria-label^=\"Workflows\"]')")
        else:  # what a template card does: the pack's template file, loaded as a graph
            await page.eval("(async () => { const r = await fetch('/api/workflow_templates/neural-collage/"
                            "paint_collage.json'); await app.loadGraphData(await r.json()); return true; })()",
                            timeout=60)
            await page.wait_for(f"app.graph.nodes.length === 7 && {PAINTER} && {PAINTER}.painter && true", timeout=30)
        if embedded_model_path("emoji-animals") is None:
            await page.eval("(() => { const g = app.graph.nodes.find(n => n.type === 'LoadGenerator'); "
                            f"g.widgets.find(w => w.name === 'model').value = {json.dumps(str(TINY))}; }})()")
        # the class picker holds the model's labels (from /neural-collage/labels)
        labels = await page.wait_for(f"(() => {{ const o = [...{PAINTER}.painter.classSelect.options]"
                                     ".map(o => o.value); return o.length > 1 && o; })()", timeout=30)
        assert labels[:3] == ["dog", "cat", "tiger"], labels
        # bring the painter into view: the painter and the Save node side by side
        await page.eval(f"""(() => {{
          const p = {PAINTER}, s = {SAVED}, c = app.canvas;
          s.pos = [p.pos[0] + p.size[0] + 40, p.pos[1]];
          const g = app.graph.nodes.find(n => n.type === 'Generate' && n.pos[0] > p.pos[0]);
          g.pos = [s.pos[0], p.pos[1] + p.size[1] + 60];  // out from under the painter
          c.ds.scale = 1.0;
          c.ds.offset = [60 - p.pos[0], 90 - p.pos[1]];
          c.setDirty(true, true);
        }})()""")

        # first run by the Run button: the painter gets the picture, the Save node the collage
        await click(page, js_find("button", "Run"))
        await page.wait_for(f"(() => {{ const s = {SAVED}; return s.imgs && s.imgs.length && "
                            f"s.imgs[0].complete && {PAINTER}.painter.background && true; }})()", timeout=120)
        strokes0 = json.loads(await page.eval(f"{PAINTER}.widgets.find(w => w.name === 'strokes').value"))

        # paint: tiger over the lower face, fox at the top left, then erase a dab; each stroke re-runs the graph
        latencies = []
        for cls, erase, path in [("tiger", False, [(0.3, 0.7), (0.45, 0.72), (0.6, 0.7), (0.7, 0.65)]),
                                 ("fox", False, [(0.15, 0.15), (0.25, 0.2), (0.3, 0.3)]),
                                 ("fox", True, [(0.25, 0.2)])]:
            await page.eval(f"(() => {{ const p = {PAINTER}.painter; p.classSelect.value = {json.dumps(cls)}; "
                            f"p.classSelect.dispatchEvent(new Event('change')); p.erase.checked = {json.dumps(erase)};"
                            " })()")
            old = await page.eval(f"{SAVED}.imgs[0].src")
            waiting = page.eval(f"({WAIT_NEW_PICTURE})({json.dumps(old)})", timeout=40)
            task = asyncio.ensure_future(waiting)
            await drag(page, path)
            ms = await task
            assert ms is not None, "no new picture after a stroke"
            latencies.append(round(ms))
            await asyncio.sleep(0.4)  # the next stroke comes after the debounce gap
        report["stroke_to_picture_ms"] = latencies
        assert max(latencies) < 3000, latencies  # each stroke is queued at once (not held back by the debounce)

        # the strokes are in the widget, hence in the saved workflow JSON and in the prompt that ran
        strokes = json.loads(await page.eval(f"{PAINTER}.widgets.find(w => w.name === 'strokes').value"))
        assert strokes[:len(strokes0)] == strokes0 and len(strokes) == len(strokes0) + 3
        assert [s.get("class") for s in strokes[-3:]] == ["tiger", "fox", None] and strokes[-1]["erase"] is True
        assert all(0 <= v <= 1 for s in strokes for p in s["points"] for v in p)
        first = strokes[len(strokes0)]["points"][0]
        assert abs(first[0] - 0.3) < 0.01 and abs(first[1] - 0.7) < 0.01, first  # where the pointer went down
        saved_ui = await page.eval("app.graph.serialize()")
        (node,) = [n for n in saved_ui["nodes"] if n["type"] == "PaintClassMap"]
        assert json.loads(node["widgets_values"][0]) == strokes and len(node["widgets_values"]) == 2

        # the picture on the Save node is the last file, and its embedded prompt re-runs headless to it
        pngs = sorted((output / "paint_collage").glob("*.png"))
        report["runs"] = len(pngs)
        assert len(pngs) >= 4
        report["shown"] = await page.eval(f"{SAVED}.imgs[0].src")
        assert pngs[-1].name in report["shown"]
        await page.eval(FIT_PAINTER)
        await asyncio.sleep(0.8)
        data = await page.screenshot(str(shot))
        report["screenshot_bytes"] = len(data)
        statuses = {ev["response"]["url"]: ev["response"]["status"] for m, ev in page.events
                    if m == "Network.responseReceived"}
        assert not {u: s for u, s in statuses.items() if s >= 500}
    report["last_png"] = str(pngs[-1])
    return report


FIT_PAINTER = f"""(() => {{
  const p = {PAINTER}, s = {SAVED}, c = app.canvas, dpr = window.devicePixelRatio || 1;
  s.setSize([300, p.size[1]]);
  const x0 = p.pos[0] - 20, y0 = p.pos[1] - 50, x1 = s.pos[0] + s.size[0] + 20, y1 = p.pos[1] + p.size[1] + 20;
  const w = c.canvas.width / dpr, h = c.canvas.height / dpr;
  const scale = Math.min((w - 120) / (x1 - x0), (h - 160) / (y1 - y0), 1.6);
  c.ds.scale = scale;
  c.ds.offset = [80 / scale - x0, 100 / scale - y0];
  c.setDirty(true, true);
}})()"""
