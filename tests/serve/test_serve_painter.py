"""What the painter needs from `neural-collage serve`: the pack's editor extensions listed and served like ComfyUI
serves a WEB_DIRECTORY (confined to it), the model's labels for the class picker, and ComfyUI's POST /upload/mask
(the mask editor's alpha written into the original picture)."""

from __future__ import annotations

import asyncio
import io
import json
import os

import numpy as np
import pytest

aiohttp = pytest.importorskip("aiohttp", reason="the server needs aiohttp (pip install 'neural-collage[serve]')")

from PIL import Image, PngImagePlugin  # noqa: E402

from collage_core.strokes import class_colors  # noqa: E402
from nodes_support import CLASS_NAMES, TINY  # noqa: E402
from serve_support import get_json, post_form, raw, start  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture
def pack(tmp_path):
    """`neural-collage serve`'s server (no editor files) on a loopback port, --model the tiny generator."""
    from collage_app.serve import make_server

    server = make_server(str(tmp_path / "srv"), model=str(TINY), device="cpu", web_root="", examples=False)
    bg = start(server)
    yield bg, server
    bg.stop()
    server.close()


def test_extensions_are_listed_and_served_from_the_pack_web_folder(pack):
    bg, _ = pack
    for prefix in ("", "/api"):
        status, listed = get_json(bg.url, prefix + "/extensions")
        files = ("classes.js", "model.js", "painter.js")
        assert status == 200 and listed == [f"/extensions/neural-collage/{f}" for f in files] + \
            ["/extensions/neural-collage-serve/first_screen.js"]  # serve's own (collage_app/web), not the pack's
    status, headers, body = raw(bg.url, "GET", "/extensions/neural-collage/painter.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    with open(os.path.join(ROOT, "nodes", "web", "painter.js"), "rb") as f:
        assert body == f.read()
    assert b"app.registerExtension" in body and b'"PaintClassMap"' in body
    for bad in ("/extensions/neural-collage/../serve.py", "/extensions/neural-collage/%2e%2e/paint.py",
                "/extensions/neural-collage/nothing.js", "/extensions/other-pack/painter.js"):
        status, _, body = raw(bg.url, "GET", bad)
        assert status in (400, 403, 404) and b"import" not in body, bad


def test_labels_of_the_connected_model(pack):
    bg, _ = pack
    for prefix in ("", "/api"):
        status, body = get_json(bg.url, prefix + "/neural-collage/labels?model=emoji-animals")  # --model stands in
        assert status == 200, body
        assert body == {"model": "emoji-animals", "labels": CLASS_NAMES, "colors": class_colors(21)}
    status, body = get_json(bg.url, "/api/neural-collage/labels?model=/etc/passwd")
    assert status == 404 and "not allowed" in body["error"]  # confined like the workflow's model input
    status, body = get_json(bg.url, "/api/neural-collage/labels?model=")
    assert status == 404


def _png(array: np.ndarray, text: dict | None = None) -> bytes:
    info = PngImagePlugin.PngInfo()
    for k, v in (text or {}).items():
        info.add_text(k, v)
    buf = io.BytesIO()
    Image.fromarray(array).save(buf, format="PNG", pnginfo=info)
    return buf.getvalue()


async def _post(url: str, path: str, data: bytes, **fields: str) -> tuple[int, object]:
    form = aiohttp.FormData()
    form.add_field("image", io.BytesIO(data), filename="clipspace-mask.png", content_type="image/png")
    for k, v in fields.items():
        form.add_field(k, v)
    return await post_form(url, path, form)


def test_upload_mask_writes_the_alpha_into_the_original(pack):
    bg, server = pack
    rgb = np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)
    with open(os.path.join(server.input_dir, "photo.png"), "wb") as f:
        f.write(_png(rgb, {"prompt": "{}"}))
    mask = np.zeros((16, 24, 4), np.uint8)
    mask[:, :12, 3] = 255  # the editor sends the mask as alpha (what stays opaque)
    ref = json.dumps({"filename": "photo.png", "subfolder": "", "type": "input"})
    status, body = asyncio.run(_post(bg.url, "/api/upload/mask", _png(mask), original_ref=ref, type="input",
                                     subfolder="clipspace"))
    assert status == 200, body
    assert body == {"name": "clipspace-mask.png", "subfolder": "clipspace", "type": "input"}
    out = Image.open(os.path.join(server.input_dir, "clipspace", "clipspace-mask.png"))
    assert out.mode == "RGBA" and out.text.get("prompt") == "{}"  # the original's pixels and text chunks
    a = np.asarray(out)
    assert np.array_equal(a[..., :3], rgb) and np.array_equal(a[..., 3], mask[..., 3])
    # the annotated form of ComfyUI ("name [input]"), and the route without /api
    ref2 = json.dumps({"filename": "photo.png [input]"})
    assert asyncio.run(_post(bg.url, "/upload/mask", _png(mask), original_ref=ref2, overwrite="true"))[0] == 200


@pytest.mark.parametrize("ref, status, match", [
    (None, 400, "original_ref must be JSON"),
    ("not json", 400, "original_ref must be JSON"),
    (json.dumps({"filename": "missing.png", "type": "input"}), 404, "not there"),
    (json.dumps({"filename": "../secret.png", "type": "input"}), 400, "refused"),
    (json.dumps({"filename": "photo.png", "subfolder": "../..", "type": "input"}), 400, "must not contain"),
    (json.dumps({"filename": "photo.png", "type": "elsewhere"}), 400, "type must be"),
    (json.dumps({"filename": "small.png", "type": "input"}), 400, "must match"),
])
def test_upload_mask_refusals(pack, ref, status, match):
    bg, server = pack
    with open(os.path.join(server.input_dir, "small.png"), "wb") as f:
        f.write(_png(np.zeros((4, 4, 3), np.uint8)))
    fields = {} if ref is None else {"original_ref": ref}
    got, body = asyncio.run(_post(bg.url, "/api/upload/mask", _png(np.zeros((16, 24, 4), np.uint8)), **fields))
    assert got == status, body
    assert match in json.dumps(body)
    assert sorted(os.listdir(server.input_dir)) == ["small.png"]  # nothing stored
