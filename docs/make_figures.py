"""Make the README's pictures by running the saved workflows on the embedded model.

    python docs/make_figures.py [--model emoji-animals] [--out docs/images]

The first picture (``hero.png``) is made with the Python API (:func:`hero`); every other one comes from a
workflow in ``workflows/api/`` run through the same engine as ``neural-collage run`` (the
workflows are changed only as noted: the model, and for the real-image ones nothing else), then laid out with
labels. The per-class sample grid comes from ``neural-collage eval`` (``samples_per_class.png``).
"""

from __future__ import annotations

import argparse
import copy
import json
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

import collage_nodes

ROOT = Path(__file__).resolve().parents[1]


def path_of(name: str) -> Path:
    return ROOT / "workflows" / "api" / f"{name}.json"


def run(name: str, model: str, out: Path) -> dict[str, list[Path]]:
    """Run ``workflows/api/NAME.json`` with the model replaced; returns saved PNG paths by saver title."""
    from collage_nodes.base import LOADERS
    from collage_nodes.runner import workflow_paths

    path = ROOT / "workflows" / "api" / f"{name}.json"
    api = copy.deepcopy(json.loads(path.read_text()))
    for node in api.values():
        if node["class_type"] in LOADERS:
            node["inputs"]["model"] = model
        if "output_dir" in node["inputs"]:
            node["inputs"]["output_dir"] = str(out)
    res = collage_nodes.engine(paths=workflow_paths(str(path))).run(api)  # paths next to the workflow, as the CLI
    res.raise_for_status()
    saved: dict[str, list[Path]] = {}
    for nid, ui in res.ui.items():
        title = api[nid].get("_meta", {}).get("title", nid)
        saved[title] = [Path(i["path"]) for i in ui.get("images", [])]
    return saved


def labelled_row(images: list[Image.Image], labels: list[str], height: int = 160, pad: int = 6) -> Image.Image:
    """Images scaled to one height, side by side, each with a caption underneath."""
    scaled = [im.convert("RGB").resize((max(1, round(im.width * height / im.height)), height), Image.NEAREST)
              for im in images]
    w = sum(im.width for im in scaled) + pad * (len(scaled) + 1)
    canvas = Image.new("RGB", (w, height + 2 * pad + 16), "white")
    draw = ImageDraw.Draw(canvas)
    x = pad
    for im, label in zip(scaled, labels):
        canvas.paste(im, (x, pad))
        draw.text((x, height + pad + 2), label, fill=(40, 40, 40))
        x += im.width + pad
    return canvas


HERO_SEED = 5
HERO_CLASSES = ("fox", "panda", "tiger", "raccoon")


def hero(model: str, out: Path, scale: int = 3) -> None:
    """The README's first picture: one dog, and the same latent with the right half of its class map painted
    another class (sCBN on every layer). Enlarged ``scale`` x with nearest-neighbour so 64 px reads."""
    import torch

    from collage_core import load_generator
    from collage_core.collage import new_class_map, paint_class, synthesize_collage
    from collage_core.images import image_to_uint8, to_image
    from collage_core.latents import sample_z
    from collage_core.masks import rectangle

    G = load_generator(model)
    z = sample_z(1, G.config.dim_z, HERO_SEED, 0.0)
    base = new_class_map(G, "dog", 0, -1)
    right = rectangle(G.resolution, G.resolution, 0.5, 0.0, 0.5, 1.0)
    maps = [base] + [paint_class(base, right, c, [1.0]) for c in HERO_CLASSES]
    with torch.no_grad():
        pics = [Image.fromarray(image_to_uint8(to_image(synthesize_collage(G, z, class_map=m)))[0]) for m in maps]
    labels = [f"dog (seed {HERO_SEED})"] + [f"right half -> {c}" for c in HERO_CLASSES]
    labelled_row(pics, labels, height=G.resolution * scale).save(out / "hero.png")


THUMB_SIZE = (384, 256)


def thumbnail(picture: Image.Image | None, dest: Path, text: str = "") -> None:
    """``dest`` (a ``.jpg`` beside a workflow: its card in ComfyUI's template browser): ``picture`` fitted into
    384x256 on white, or ``text`` on a plain card when there is no picture to show."""
    card = Image.new("RGB", THUMB_SIZE, "white")
    if picture is not None:
        pic = picture.convert("RGB")
        scale = min(THUMB_SIZE[0] / pic.width, THUMB_SIZE[1] / pic.height)
        size = (max(1, round(pic.width * scale)), max(1, round(pic.height * scale)))
        pic = pic.resize(size, Image.NEAREST if scale >= 2 else Image.LANCZOS)
        card.paste(pic, ((THUMB_SIZE[0] - size[0]) // 2, (THUMB_SIZE[1] - size[1]) // 2))
    else:
        draw = ImageDraw.Draw(card)
        for i, line in enumerate(text.split("\n")):
            draw.text((20, 90 + 22 * i), line, fill=(40, 40, 40))
    card.save(dest, quality=88)


def thumbnails(figures: Path) -> None:
    """One ``workflows/NAME.jpg`` per workflow, from its figure (the BigGAN ones say what they need instead)."""
    for path in sorted((ROOT / "workflows" / "api").glob("*.json")):
        figure = figures / f"{path.stem}.png"
        dest = ROOT / "workflows" / f"{path.stem}.jpg"
        if figure.is_file():
            thumbnail(Image.open(figure), dest)
        elif path.stem.startswith("biggan_"):
            thumbnail(None, dest, f"{path.stem}\nBigGAN-deep 256 (1000 ImageNet classes)\n"
                                  "needs its weights: see docs/biggan.md\n(no picture: none were available here)")
        else:
            raise SystemExit(f"no figure for workflow {path.stem}: add it to main()")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="emoji-animals")
    ap.add_argument("--out", default=str(ROOT / "docs" / "images"))
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    hero(args.model, out)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        s = run("class_collage", args.model, tmp / "collage")
        src, col = Image.open(s["Save source"][0]), Image.open(s["Save collage"][0])
        labelled_row([src, col], ["dog (z, seed 7)", "sCBN: face region -> cat"]).save(out / "class_collage.png")

        s = run("paint_collage", args.model, tmp / "paint")
        painted = Image.open(s["Save collage"][0])  # the same latent and base class as class_collage's source
        labelled_row([src, painted], ["dog (z, seed 7)", "two painted strokes -> cat"]).save(out / "paint_collage.png")

        for name in ("class_interpolation_grid", "layer_ablation_grid", "class_and_feature_grid", "feature_transplant"):
            s = run(name, args.model, tmp / name)
            (path,) = [p for paths in s.values() for p in paths]
            Image.open(path).save(out / f"{name}.png")

        for name, labels in (("real_image_edit", ["held-out OpenMoji dog", "crop", "projection", "sCBN edit",
                                                   "pasted back (Poisson)"]),
                             ("photo_edit", ["photo (CC0)", "crop", "projection", "sCBN edit -> tiger",
                                             "pasted back (Poisson)"])):
            s = run(name, args.model, tmp / name)
            photo_path = json.loads(path_of(name).read_text())["3"]["inputs"]["path"]
            ims = [Image.open(path_of(name).parent / photo_path)] + [Image.open(s[t][0]) for t in
                                                      ("Save crop", "Save reconstruction", "Save edited crop",
                                                       "Save result")]
            labelled_row(ims, labels).save(out / f"{name}.png")
    thumbnails(out)
    print(f"wrote figures to {out} and the workflows' thumbnails")


if __name__ == "__main__":
    main()
