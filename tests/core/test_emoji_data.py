"""Offline tests of the emoji training-data preparation (no npm, no network)."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import hashlib
import io
import json
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from collage_core.training import emoji_data as ed

ALLOWED_LICENSES = {"Apache-2.0", "CC-BY-4.0", "MIT", "CC-BY-SA-4.0"}


# ------------------------------------------------------------------------------------------------ tables
def test_every_class_has_enough_training_styles() -> None:
    assert ed.kept_classes(ed.default_sets()) == list(ed.CLASSES)
    for cls in ed.CLASSES:
        styles = [s.style for s in ed.TRAIN_SETS if cls in s.icons]
        assert len(styles) >= ed.MIN_TRAIN_STYLES, (cls, styles)


def test_openmoji_is_held_out_and_sets_are_openly_licensed() -> None:
    assert all(s.split == ed.TRAIN_SPLIT for s in ed.TRAIN_SETS)
    assert all(s.split == ed.TEST_SPLIT for s in ed.TEST_SETS)
    assert all(s.split == ed.JUDGE_SPLIT for s in ed.JUDGE_SETS)  # the evaluation judge's own styles
    assert {s.style for s in ed.JUDGE_SETS}.isdisjoint(s.style for s in ed.TRAIN_SETS)
    assert "openmoji" not in {s.style for s in ed.TRAIN_SETS}
    assert all(s.license != "CC-BY-SA-4.0" for s in ed.TRAIN_SETS)
    sets = ed.default_sets()
    assert len({s.style for s in sets}) == len(sets)
    for s in sets:
        assert s.license in ALLOWED_LICENSES
        assert re.fullmatch(r"\d+\.\d+\.\d+", s.version), s.spec
        assert s.integrity and s.integrity.startswith("sha512-")
        assert not re.search(r"apple|facebook|joypixels", s.package, re.I)
        assert set(s.icons) <= set(ed.CLASSES)
    # nothing excluded from training is trained on (the judge-only styles are named there, with why)
    assert not set(ed.EXCLUDED_SETS) & {s.style for s in ed.TRAIN_SETS}
    assert all("judge only" in ed.EXCLUDED_SETS[s.style] for s in ed.JUDGE_SETS)


def test_excluded_icons_are_not_in_the_tables() -> None:
    by_style = {s.style: s for s in ed.default_sets()}
    for style, cls in ed.EXCLUDED_ICONS:
        assert cls not in by_style[style].icons, (style, cls)
    for (style, icon) in ed.EXCLUDED_VARIANTS:
        assert all(icon not in names for names in by_style[style].icons.values()), (style, icon)
    # fxemoji's fox* icons are Firefox foxes: they belong to the fox class only, never to cat
    fx = by_style["fxemoji"]
    assert all(n.startswith("fox") for n in fx.icon_names("fox")) and fx.icon_names("cat") == ("cat",)


def test_icon_tables_list_heads_first_and_no_duplicates() -> None:
    total = 0
    for s in ed.TRAIN_SETS:
        for cls, names in s.icons.items():
            assert isinstance(names, tuple) and len(set(names)) == len(names), (s.style, cls)
            total += len(names)
        if "cat" in s.icons and len(s.icons["cat"]) > 1:  # the style's own cat face comes first
            assert s.icons["cat"][0] in ("cat-face", "1f431"), s.style
    assert total >= 300
    with pytest.raises(ValueError, match="lists no icon"):
        ed.EmojiSet("x", "p", "1.0.0", "MIT", None, "iconify", ed.TRAIN_SPLIT, {"dog": ()})


def test_kept_classes_drops_rare_classes() -> None:
    sets = [ed.EmojiSet(f"s{i}", f"p{i}", "1.0.0", "MIT", None, "iconify", ed.TRAIN_SPLIT,
                        {"dog": "d", **({"cat": "c"} if i < 2 else {})}) for i in range(3)]
    assert ed.kept_classes(sets, ("dog", "cat")) == ["dog"]


def test_tarball_name_follows_npm() -> None:
    assert ed.TRAIN_SETS[0].tarball_name == "iconify-json-noto-1.2.9.tgz"
    assert ed.TEST_SETS[0].tarball_name == "openmoji-17.0.0.tgz"


# -------------------------------------------------------------------------------------------- iconify
def test_resolve_iconify_alias_chain_and_svg() -> None:
    icon_set = {"prefix": "t", "width": 32, "height": 24,
                "icons": {"base": {"body": "<path d='M0 0h1v1z'/>", "height": 30}},
                "aliases": {"mid": {"parent": "base", "hFlip": True}, "top": {"parent": "mid", "hFlip": True,
                                                                            "rotate": 1}}}
    data = ed.resolve_iconify_icon(icon_set, "mid")
    assert (data["width"], data["height"], data["hFlip"], data["rotate"]) == (32, 30, True, 0)
    svg = ed.iconify_svg(data)
    assert 'viewBox="0 0 32 30"' in svg and "scale(-1 1)" in svg
    top = ed.resolve_iconify_icon(icon_set, "top")
    assert (top["hFlip"], top["rotate"]) == (False, 1)
    assert 'viewBox="0 0 30 32"' in ed.iconify_svg(top)  # a quarter turn swaps the box
    with pytest.raises(KeyError):
        ed.resolve_iconify_icon(icon_set, "missing")


# ----------------------------------------------------------------------------------------- compositing
def _bbox_of_non_white(img: Image.Image) -> tuple[int, int, int, int]:
    a = np.asarray(img).astype(int)
    ys, xs = np.nonzero((255 - a).sum(axis=2) > 30)
    return xs.min(), ys.min(), xs.max() + 1, ys.max() + 1


def test_composite_centered_scales_and_centres() -> None:
    src = Image.new("RGBA", (300, 200), (0, 0, 0, 0))
    src.paste(Image.new("RGBA", (80, 40), (200, 20, 20, 255)), (10, 150))  # off-centre, bottom left
    src.putpixel((290, 5), (0, 0, 0, 10))  # faint dust below the alpha threshold is ignored
    out = ed.composite_centered(src, 64, fill=0.875)
    assert out.mode == "RGB" and out.size == (64, 64)
    assert out.getpixel((0, 0)) == (255, 255, 255) and out.getpixel((63, 63)) == (255, 255, 255)
    x0, y0, x1, y1 = _bbox_of_non_white(out)
    assert abs((x1 - x0) - 56) <= 1 and abs((y1 - y0) - 28) <= 1
    assert abs((x0 + x1) / 2 - 32) <= 1 and abs((y0 + y1) / 2 - 32) <= 1
    r, g, b = out.getpixel((32, 32))
    assert r > 150 and g < 60 and b < 60


def test_composite_centered_rejects_empty_image() -> None:
    with pytest.raises(ValueError):
        ed.composite_centered(Image.new("RGBA", (10, 10), (0, 0, 0, 0)), 32)


def test_save_png_has_no_metadata(tmp_path: Path) -> None:
    path = tmp_path / "a.png"
    ed.save_png(Image.new("RGB", (4, 4), (1, 2, 3)), path)
    data = path.read_bytes()
    chunks, i = [], 8
    while i < len(data):
        n = int.from_bytes(data[i:i + 4], "big")
        chunks.append(data[i + 4:i + 8].decode("ascii"))
        i += 12 + n
    assert chunks == ["IHDR", "IDAT", "IEND"]


# -------------------------------------------------------------------------------------- errors / no network
def test_missing_npm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ed.shutil, "which", lambda name: None)
    with pytest.raises(ed.EmojiDataError, match=r"npm is needed to download @iconify-json/noto@1\.2\.9 .*not fo"):
        ed.fetch_npm_package(ed.TRAIN_SETS[0], tmp_path)


def test_cached_tarball_with_wrong_hash_is_not_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ed.shutil, "which", lambda name: None)
    (tmp_path / ed.TRAIN_SETS[0].tarball_name).write_bytes(b"not the real tarball")
    with pytest.raises(ed.EmojiDataError, match="not found"):
        ed.fetch_npm_package(ed.TRAIN_SETS[0], tmp_path)


def test_npm_failures_name_the_package_and_cause() -> None:
    stdout = json.dumps({"error": {"code": "ENOTFOUND", "summary": "request to https://r/x failed"}})
    msg = ed._describe_npm_failure("pkg@1.0.0", stdout, "npm error code ENOTFOUND\n")
    assert "pkg@1.0.0" in msg and "unreachable" in msg and "ENOTFOUND" in msg
    msg = ed._describe_npm_failure("pkg@9.9.9", "", "npm error code ETARGET\nnpm error     at x\n")
    assert "no package pkg@9.9.9" in msg and " at x" not in msg


def test_missing_rasteriser_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "resvg_py", None)
    with pytest.raises(ed.EmojiDataError, match="pip install resvg-py"):
        ed.render_svg("<svg xmlns='http://www.w3.org/2000/svg' width='1' height='1'/>", 8)


def test_import_needs_no_rasteriser_and_starts_nothing() -> None:
    code = ("import socket, subprocess, sys\n"
            "def refuse(*a, **k): raise AssertionError('network or subprocess used at import time')\n"
            "socket.socket.connect = socket.create_connection = subprocess.Popen.__init__ = refuse\n"
            "import collage_core.training.emoji_data\n"
            "assert 'resvg_py' not in sys.modules\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "ok"


def test_command_line_arguments() -> None:
    parser = argparse.ArgumentParser()
    ed.add_arguments(parser)
    args = parser.parse_args(["out", "--cache", "c", "--size", "64"])
    assert (args.out_dir, args.cache, args.size, args.no_progress) == (Path("out"), Path("c"), 64, False)
    assert parser.parse_args(["out"]).size == 128


# ---------------------------------------------------------------------------------- fake package fixture
_SVG_BODY = '<circle cx="16" cy="16" r="10" fill="#{}"/>'


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(f"package/{name}")
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _fake_iconify(cache: Path, style: str, colour: str) -> ed.EmojiSet:
    package = f"@fake-json/{style}"
    s = ed.EmojiSet(style, package, "1.0.0", "MIT", None, "iconify", ed.TRAIN_SPLIT, {"dog": "dog-face"})
    with tarfile.open(cache / s.tarball_name, "w:gz") as tar:
        _add(tar, "package.json", json.dumps({"name": package, "version": "1.0.0", "license": "MIT"}).encode())
        _add(tar, "info.json", json.dumps({"name": f"Fake {style}", "author": {"name": f"Author {style}",
                                                                              "url": "https://example.org"},
                                           "license": {"spdx": "MIT"}}).encode())
        _add(tar, "icons.json", json.dumps({"prefix": style, "width": 32, "height": 32, "icons": {
            "dog": {"body": _SVG_BODY.format(colour)}}, "aliases": {"dog-face": {"parent": "dog"}}}).encode())
    digest = hashlib.sha512((cache / s.tarball_name).read_bytes()).digest()
    return dataclasses.replace(s, integrity="sha512-" + base64.b64encode(digest).decode())


def _fake_openmoji(cache: Path) -> ed.EmojiSet:
    s = ed.EmojiSet("openmoji", "openmoji", "17.0.0", "CC-BY-SA-4.0", None, "openmoji", ed.TEST_SPLIT,
                    {"dog": "1F436"})
    with tarfile.open(cache / s.tarball_name, "w:gz") as tar:
        _add(tar, "package.json", json.dumps({"name": "openmoji", "version": "17.0.0",
                                              "license": "CC-BY-SA-4.0"}).encode())
        _add(tar, "data/openmoji.json", json.dumps([{"hexcode": "1F436", "annotation": "dog face",
                                                     "openmoji_author": "A. Designer"}]).encode())
        svg = ('<svg viewBox="0 0 72 72" xmlns="http://www.w3.org/2000/svg">'
               '<rect x="10" y="20" width="30" height="40" fill="#ea5a47"/></svg>')
        _add(tar, "color/svg/1F436.svg", svg.encode())
    return s


def _fake_files(cache: Path, style: str, kind: str) -> ed.EmojiSet:
    """A package of one file per icon: SVGs (kind svg-files) or a WebP/PNG pair (raster-files, with a variant)."""
    package = f"fake-{style}"
    if kind == "svg-files":
        s = ed.EmojiSet(style, package, "2.0.0", "CC-BY-4.0", None, kind, ed.TRAIN_SPLIT, {"dog": "1f436"},
                        member="svg/{icon}.svg", author="Fake Artist", art_url="https://example.org/art")
    else:
        s = ed.EmojiSet(style, package, "2.0.0", "MIT", None, kind, ed.TRAIN_SPLIT, {"dog": ("1f436", "1f415")},
                        member="assets/{icon}.webp", author="Raster Artist", note="converted from PNGs")
    with tarfile.open(cache / s.tarball_name, "w:gz") as tar:
        _add(tar, "package.json", json.dumps({"name": package, "version": "2.0.0"}).encode())
        if kind == "svg-files":
            svg = '<svg viewBox="0 0 36 36" xmlns="http://www.w3.org/2000/svg"><rect x="4" y="8" width="28" ' \
                  'height="20" fill="#20a0a0"/></svg>'
            _add(tar, "svg/1f436.svg", svg.encode())
        else:
            for icon, colour in (("1f436", (200, 120, 20, 255)), ("1f415", (20, 120, 200, 255))):
                im = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
                im.paste(colour, (10, 5, 30, 35))
                buf = io.BytesIO()
                im.save(buf, format="WEBP", lossless=True)
                _add(tar, f"assets/{icon}.webp", buf.getvalue())
    digest = hashlib.sha512((cache / s.tarball_name).read_bytes()).digest()
    return dataclasses.replace(s, integrity="sha512-" + base64.b64encode(digest).decode())


def test_build_dataset_from_file_packages_and_variants(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("resvg_py", reason="the SVG rasteriser resvg-py is not installed (pip install resvg-py)")
    monkeypatch.setattr(ed.shutil, "which", lambda name: None)
    cache = tmp_path / "cache"
    cache.mkdir()
    sets = [_fake_iconify(cache, "style0", "c03030"), _fake_files(cache, "svgs", "svg-files"),
            _fake_files(cache, "rasters", "raster-files")]
    out = ed.build_dataset(tmp_path / "out", sets, cache, size=32, progress=False, classes=("dog",))
    names = sorted(p.name for p in (out / "train" / "dog").iterdir())
    assert names == ["rasters--1f415.png", "rasters.png", "style0.png", "svgs.png"]
    base = np.asarray(Image.open(out / "train" / "dog" / "rasters.png"))
    variant = np.asarray(Image.open(out / "train" / "dog" / "rasters--1f415.png"))
    assert base[16, 16, 0] > 150 and variant[16, 16, 2] > 150  # each file is its own picture, on white
    assert (base[0, 0] == 255).all()
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["format_version"] == 2
    assert {(r["style"], r["variant"]) for r in manifest["images"]} == {("style0", 0), ("svgs", 0), ("rasters", 0),
                                                                         ("rasters", 1)}
    attribution = (out / "ATTRIBUTION.md").read_text()
    assert "Fake Artist (https://example.org/art)" in attribution and "converted from PNGs" in attribution
    assert "dog: `1f415`" in attribution
    broken = dataclasses.replace(sets[1], member="svg/missing-{icon}.svg")
    with pytest.raises(ed.EmojiDataError, match="has no file package/svg/missing-1f436.svg"):
        ed.build_dataset(tmp_path / "out2", [sets[0], broken, sets[2]], cache, size=32, progress=False,
                         classes=("dog",))


def test_build_dataset_from_fake_packages(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("resvg_py", reason="the SVG rasteriser resvg-py is not installed (pip install resvg-py)")
    monkeypatch.setattr(ed.shutil, "which", lambda name: None)  # any npm call would fail: all must come from cache
    cache = tmp_path / "cache"
    cache.mkdir()
    sets = [_fake_iconify(cache, f"style{i}", c) for i, c in enumerate(("c03030", "30c030", "3030c0"))]
    sets.append(_fake_openmoji(cache))

    out = ed.build_dataset(tmp_path / "out", sets, cache, size=32, progress=False, classes=("dog", "cat"))
    for s in sets[:3]:
        img = Image.open(out / "train" / "dog" / f"{s.style}.png")
        assert img.mode == "RGB" and img.size == (32, 32)
    assert (out / "test_openmoji" / "dog" / "openmoji.png").is_file()
    assert not (out / "train" / "dog" / "openmoji.png").exists()

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["classes"] == ["dog"] and manifest["size"] == 32
    images = {r["style"]: r for r in manifest["images"]}
    assert set(images) == {"style0", "style1", "style2", "openmoji"}
    assert images["openmoji"] == {"path": "test_openmoji/dog/openmoji.png", "class": "dog", "class_index": 0,
                                  "style": "openmoji", "variant": 0, "package": "openmoji", "version": "17.0.0",
                                  "icon": "1F436", "license": "CC-BY-SA-4.0", "split": ed.TEST_SPLIT}
    assert all(r["split"] == ed.TRAIN_SPLIT for k, r in images.items() if k != "openmoji")

    attribution = (out / "ATTRIBUTION.md").read_text()
    for s in sets:
        assert f"`{s.package}` version {s.version}" in attribution and s.license in attribution
    assert "Author style1" in attribution and "A. Designer" in attribution
    assert (out / "contact_sheet.png").is_file()

    def hashes(root: Path) -> dict[str, str]:
        return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}

    first = hashes(out)
    ed.build_dataset(tmp_path / "out", sets, cache, size=32, progress=False, classes=("dog", "cat"))
    assert hashes(out) == first  # byte-identical on a rerun
