"""A labelled image folder held in memory, sampled class-balanced.

Layout: ``ROOT/train/<class>/*.png`` (or ``ROOT/<class>/*.png``). The class order is taken from
``ROOT/manifest.json`` (its ``classes`` list) when present, else sorted folder names. Images are converted to
RGB (alpha composited on white) and resized to the training resolution with a Lanczos filter.

Sampling is class-balanced (a uniform class, then an image of it). When the manifest records each image's
``style`` (art set), an image is drawn with weight 1 / (images of its class in its style), so a style that
draws nine expressions of its cat counts as much as one that draws a single cat: class, then style, then
variant are uniform.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


def load_rgb(path: str | Path, size: int | None = None, background: tuple[int, int, int] = (255, 255, 255)
             ) -> np.ndarray:
    """An image file as uint8 RGB ``(H, W, 3)``; transparency is composited on ``background``."""
    with Image.open(path) as im:
        im.load()
        if im.mode in ("RGBA", "LA", "P", "PA") or "transparency" in im.info:
            im = im.convert("RGBA")
            bg = Image.new("RGBA", im.size, (*background, 255))
            im = Image.alpha_composite(bg, im)
        im = im.convert("RGB")
        if size is not None and im.size != (size, size):
            im = im.resize((size, size), Image.LANCZOS)
        return np.asarray(im, np.uint8).copy()


class ImageDataset:
    """All images of a class-labelled folder as one tensor ``(N, 3, R, R)`` in [-1, 1] plus labels."""

    def __init__(self, root: str | Path, resolution: int, split: str = "train", device: str | torch.device = "cpu",
                 class_names: list[str] | None = None, require_all_classes: bool = True,
                 variants: bool = True) -> None:
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"dataset folder not found: {root}")
        base = root / split if (root / split).is_dir() else root
        manifest: dict[str, Any] = {}
        if (root / "manifest.json").is_file():
            manifest = json.loads((root / "manifest.json").read_text())
        names = list(class_names or manifest.get("classes") or sorted(p.name for p in base.iterdir() if p.is_dir()))
        images, labels, files = [], [], []
        # variants=False: only each style's own head (manifest "variant" 0), not its expression variants
        skip = set() if variants else {r.get("path") for r in manifest.get("images", [])
                                       if isinstance(r, dict) and r.get("variant", 0) != 0}
        for k, name in enumerate(names):
            folder = base / name
            for f in sorted(folder.iterdir()) if folder.is_dir() else []:
                if f.suffix.lower() in IMAGE_SUFFIXES and str(f.relative_to(root).as_posix()) not in skip:
                    images.append(load_rgb(f, resolution))
                    labels.append(k)
                    files.append(str(f.relative_to(root)))
        if not images:
            raise ValueError(f"no images found under {base}/<class>/")
        present = sorted(set(labels))
        if require_all_classes and len(present) != len(names):
            missing = [n for k, n in enumerate(names) if k not in present]
            raise ValueError(f"classes without images under {base}: {missing}")
        self.root = root
        self.class_names = names
        self.files = files
        x = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
        self.images = x.to(device)
        self.labels = torch.tensor(labels, dtype=torch.long, device=device)
        styles = {r.get("path"): r.get("style") for r in manifest.get("images", []) if isinstance(r, dict)}
        groups = [(k, styles.get(f)) for k, f in zip(labels, files)]
        per_group = {g: groups.count(g) for g in set(groups)}
        weight = torch.tensor([1.0 / per_group[g] for g in groups], dtype=torch.float64)
        # cumulative weights, normalised to 1 within each class and offset by the class id: sampling is a
        # search for (class + uniform) in this one sorted array
        cum = torch.zeros(len(files), dtype=torch.float64)
        for k in range(len(names)):
            idx = torch.tensor([i for i, lab in enumerate(labels) if lab == k], dtype=torch.long)
            if len(idx):
                w = weight[idx]
                c = torch.cumsum(w, 0) / w.sum()
                c[-1] = 1.0  # exactly the class's upper end, whatever the rounding
                cum[idx] = k + c
        self.weights = weight.float()
        self._cum = cum.to(device)
        self.provenance = {"root": str(root), "images": len(files), "classes": names,
                           "manifest": {k: manifest[k] for k in ("packages", "version") if k in manifest}}

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.labels)

    def sample(self, n: int, gen: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` images drawn class-balanced: a uniform class, then an image of it (style-balanced, see above)."""
        dev = self.labels.device
        y = torch.randint(0, self.n_classes, (n,), generator=gen, device=dev)
        r = torch.rand(n, generator=gen, device=dev)
        idx = torch.searchsorted(self._cum, y.double() + r.double(), right=True).clamp_max(len(self._cum) - 1)
        return self.images[idx], self.labels[idx]
