"""Measured quality of a trained generator, judged by an independent classifier trained on the real images.

:func:`evaluate` reports:

* **class accuracy**: samples generated per class, classified by the classifier (target >= 90%);
* **sCBN translation**: samples generated through the sCBN path with the whole class map set to another
  class are classified as that class (target >= 90%);
* **locality**: with the left half of the map set to another class, the mean |change| of the left half is
  at least 5x that of the right half;
* **diversity**: mean within-class pairwise RMS distance of samples relative to that of the real images
  (target >= 50%); also in the classifier's feature space;
* **Fréchet distance** between Gaussian fits of classifier features of samples and of real images.

The classifier is a small CNN trained from scratch with strong augmentation on the training split; its own
accuracy is measured on a held-out art style (the OpenMoji test split) and reported alongside.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..generator import Generator
from ..images import grid, save_png, to_uint8
from ..maps import ClassMap
from .augment import data_augment, diff_augment
from .dataset import ImageDataset


class SmallClassifier(nn.Module):
    """Four conv stages (conv-BN-ReLU x2, pool) and a linear head; ``features`` is the pooled 256-d vector."""

    def __init__(self, n_classes: int, width: int = 16) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        cin = 3
        for i, cout in enumerate((width, width * 2, width * 4, width * 8)):
            layers += [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
                       nn.Conv2d(cout, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]
            if i < 3:
                layers.append(nn.MaxPool2d(2))
            cin = cout
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(cin, n_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def train_classifier(data: ImageDataset, steps: int = 1000, batch: int = 64, seed: int = 0, progress: bool = True
                     ) -> SmallClassifier:
    """Train :class:`SmallClassifier` on ``data`` with data augmentation and colour/translation/cutout."""
    torch.manual_seed(seed)
    dev = data.images.device
    model = SmallClassifier(data.n_classes).to(dev)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=2e-3, total_steps=steps)
    gen = torch.Generator(device=dev).manual_seed(seed)
    it = range(steps)
    if progress:
        from tqdm import tqdm
        it = tqdm(it, desc="classifier", unit="step")
    model.train()
    for _ in it:
        x, y = data.sample(batch, gen)
        x = data_augment(x, gen, scale=(0.75, 1.1), shift=0.1, rotate_deg=12)
        # brightness/saturation/contrast changes keep hue, which carries class identity; cutout forces parts
        x = diff_augment(x, "color,cutout", gen) if torch.rand((), generator=gen).item() < 0.5 else x
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
    return model.eval()


@torch.no_grad()
def _predict(model: SmallClassifier, x: torch.Tensor, batch: int = 128) -> tuple[torch.Tensor, torch.Tensor]:
    logits, feats = [], []
    for i in range(0, len(x), batch):
        f = model.features(x[i:i + batch].float())
        feats.append(f)
        logits.append(model.head(f))
    return torch.cat(logits), torch.cat(feats)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussian fits of two feature sets (rows are samples)."""
    mu1, mu2 = a.mean(0), b.mean(0)
    s1, s2 = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    # sqrt of s1 s2 via the symmetric form s1^1/2 s2 s1^1/2 (real, PSD)
    w, v = np.linalg.eigh(s1)
    r1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    m = r1 @ s2 @ r1
    wm = np.linalg.eigvalsh((m + m.T) / 2)
    tr_sqrt = float(np.sqrt(np.clip(wm, 0, None)).sum())
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def _mean_pairwise(x: torch.Tensor) -> float:
    """Mean over pairs i<j of the RMS distance between flattened rows of ``x``."""
    f = x.flatten(1).double()
    d = torch.cdist(f, f) / math.sqrt(f.shape[1])
    n = len(f)
    return float(d.sum() / (n * (n - 1))) if n > 1 else 0.0


@dataclass
class EvalReport:
    class_accuracy: float
    per_class_accuracy: dict[str, float]
    translation_accuracy: float
    locality_ratio: float
    diversity_pixel: float
    diversity_feature: float
    frechet_distance: float
    classifier_heldout_accuracy: float | None
    classifier_train_accuracy: float
    samples_per_class: int
    extra: dict[str, Any] = field(default_factory=dict)

    targets = {"class_accuracy": 0.9, "translation_accuracy": 0.9, "locality_ratio": 5.0, "diversity_pixel": 0.5}

    def passed(self) -> dict[str, bool]:
        return {k: getattr(self, k) >= v for k, v in self.targets.items()}

    def markdown(self) -> str:
        p = self.passed()
        rows = [
            ("class accuracy of samples", f"{self.class_accuracy:.1%}", ">= 90%", p["class_accuracy"]),
            ("sCBN translation accuracy (whole map)", f"{self.translation_accuracy:.1%}", ">= 90%",
             p["translation_accuracy"]),
            ("locality: mean absolute change inside / outside a half-image mask", f"{self.locality_ratio:.1f}x",
             ">= 5x",
             p["locality_ratio"]),
            ("diversity: within-class pairwise RMS distance, samples / real", f"{self.diversity_pixel:.0%}",
             ">= 50%", p["diversity_pixel"]),
            ("diversity in classifier feature space, samples / real", f"{self.diversity_feature:.0%}", "(report)",
             None),
            ("Fréchet distance on classifier features (samples vs real)", f"{self.frechet_distance:.2f}",
             "(report)", None),
            ("classifier accuracy on the held-out OpenMoji style",
             "n/a" if self.classifier_heldout_accuracy is None else f"{self.classifier_heldout_accuracy:.1%}",
             "(report)", None),
        ]
        lines = ["| metric | value | target | met |", "| --- | --- | --- | --- |"]
        for name, val, tgt, ok in rows:
            lines.append(f"| {name} | {val} | {tgt} | {'' if ok is None else ('yes' if ok else 'no')} |")
        return "\n".join(lines)


@torch.no_grad()
def _generate(G: Generator, z: torch.Tensor, y: torch.Tensor, batch: int = 64) -> torch.Tensor:
    return torch.cat([G.synthesize(z[i:i + batch], classes=y[i:i + batch]) for i in range(0, len(z), batch)])


@dataclass
class Judge:
    """The classifier trained on a dataset's real images, with what every evaluation against it reuses."""
    data: ImageDataset
    classifier: SmallClassifier
    real_features: torch.Tensor
    train_accuracy: float
    heldout_accuracy: float | None


def make_judge(data_root: str | Path, resolution: int, device: torch.device | str = "cpu", steps: int = 1000,
               seed: int = 0, batch: int = 64, progress: bool = True) -> Judge:
    """Train the judge for ``data_root`` (train split; its accuracy on ``test_openmoji`` when present)."""
    torch.manual_seed(seed)
    data = ImageDataset(data_root, resolution, device=device)
    with torch.enable_grad():
        clf = train_classifier(data, steps=steps, batch=batch, seed=seed, progress=progress)
    real_logits, real_feats = _predict(clf, data.images)
    train_acc = float((real_logits.argmax(1) == data.labels).float().mean())
    heldout_acc = None
    root = Path(data_root)
    if (root / "test_openmoji").is_dir():
        test = ImageDataset(root, resolution, split="test_openmoji", device=device, class_names=data.class_names,
                            require_all_classes=False)
        lg, _ = _predict(clf, test.images)
        heldout_acc = float((lg.argmax(1) == test.labels).float().mean())
    return Judge(data, clf, real_feats, train_acc, heldout_acc)


@torch.no_grad()
def evaluate(G: Generator, data_root: str | Path, out_dir: str | Path | None = None, samples_per_class: int = 50,
             classifier_steps: int = 1000, seed: int = 0, progress: bool = True, classifier_batch: int = 64,
             judge: Judge | None = None) -> EvalReport:
    """Evaluate ``G`` against the real images in ``data_root`` (train split + optional test_openmoji).

    ``judge``: a :func:`make_judge` result to reuse (several generators judged by one classifier, e.g. the
    snapshots of a run); by default one is trained here with ``classifier_steps`` and ``seed``.
    """
    dev = G.device
    R = G.resolution
    if judge is None:
        judge = make_judge(data_root, R, dev, classifier_steps, seed, classifier_batch, progress)
    torch.manual_seed(seed)
    data, clf, real_feats = judge.data, judge.classifier, judge.real_features
    train_acc, heldout_acc = judge.train_accuracy, judge.heldout_accuracy
    if data.class_names != G.class_names:
        raise ValueError(f"the data's classes {data.class_names} differ from the generator's {G.class_names}")
    if data.images.shape[-1] != R:
        raise ValueError(f"the judge's pictures are {data.images.shape[-1]}px, the generator makes {R}px")
    K = data.n_classes

    gen = torch.Generator(device=dev).manual_seed(seed + 7)
    n = samples_per_class
    z = torch.randn(K * n, G.config.dim_z, generator=gen, device=dev)
    y = torch.arange(K, device=dev).repeat_interleave(n)
    x = _generate(G, z, y)
    logits, feats = _predict(clf, x)
    pred = logits.argmax(1)
    per_class = {name: float((pred[y == k] == k).float().mean()) for k, name in enumerate(data.class_names)}
    acc = float((pred == y).float().mean())

    # sCBN translation: the whole map (every layer) set to another class, through the map path
    shift = torch.randint(1, K, (len(y),), generator=gen, device=dev)
    target = (y + shift) % K
    xt = _translated(G, z, target)
    t_acc = float((_predict(clf, xt)[0].argmax(1) == target).float().mean())

    # locality: left half of the map -> another class, right half keeps the sample's class
    inside, outside = _half_map_change(G, z, x, y, target, K)
    locality = inside / max(outside, 1e-12)

    # diversity
    div_s, div_r, fdiv_s, fdiv_r = _within_class_spreads(data, x, y, feats, real_feats)
    diversity = _ratio(np.mean(div_s), np.mean(div_r))
    fdiversity = _ratio(np.mean(fdiv_s), np.mean(fdiv_r))

    # Fréchet distance against augmented real images (the 152 originals alone give a degenerate covariance)
    aug_gen = torch.Generator(device=dev).manual_seed(seed + 11)
    n_aug = max(64, K * n)
    real_aug = data_augment(data.sample(n_aug, aug_gen)[0], aug_gen, jitter=0.0)
    _, real_aug_feats = _predict(clf, real_aug)
    fd = frechet_distance(feats.cpu().double().numpy(), real_aug_feats.cpu().double().numpy())

    report = EvalReport(class_accuracy=acc, per_class_accuracy=per_class, translation_accuracy=t_acc,
                        locality_ratio=locality, diversity_pixel=diversity, diversity_feature=fdiversity,
                        frechet_distance=fd, classifier_heldout_accuracy=heldout_acc,
                        classifier_train_accuracy=train_acc, samples_per_class=n,
                        extra={"locality_inside": inside, "locality_outside": outside,
                               "within_class_rms_samples": float(np.mean(div_s)),
                               "within_class_rms_real": float(np.mean(div_r))})
    if out_dir is not None:
        _write_outputs(G, report, x, y, z, target, K, Path(out_dir))
    return report


def _translated(G: Generator, z: torch.Tensor, target: torch.Tensor, batch: int = 64) -> torch.Tensor:
    """``G(z)`` with the whole class map (every layer) set to ``target``, through the sCBN map path."""
    xt = []
    for i in range(0, len(z), batch):
        # per-sample one-hot maps over the target classes present in the chunk
        tgt = target[i:i + batch]
        classes = tuple(int(c) for c in torch.unique(tgt))
        w = torch.stack([(tgt == c).float() for c in classes], 1)[:, :, None, None].expand(-1, -1, 4, 4)
        cm = ClassMap(w.contiguous(), classes)
        xt.append(G.synthesize(z[i:i + batch], class_maps=cm))
    return torch.cat(xt)


def _half_map_change(G: Generator, z: torch.Tensor, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor, K: int,
                     batch: int = 64) -> tuple[float, float]:
    """Mean absolute change of ``x = G(z, y)`` in the left and the right half when the left half of the class map
    is set to ``target`` and the right half keeps ``y`` (locality of sCBN)."""
    dev, R = x.device, x.shape[-1]
    half = torch.zeros(len(y), 2, R, R, device=dev)
    half[:, 0, :, : R // 2] = 1
    half[:, 1, :, R // 2:] = 1
    ratios_in, ratios_out = [], []
    for i in range(0, len(z), batch):
        sl = slice(i, i + batch)
        src, tgt = y[sl], target[sl]
        maps = []
        for j in range(len(src)):
            w = torch.zeros(1, K, R, R, device=dev)
            w[0, tgt[j]] += half[j, 0]
            w[0, src[j]] += half[j, 1]
            maps.append(w)
        w = torch.cat(maps)
        used = tuple(int(c) for c in torch.unique(torch.cat([src, tgt])))
        cm = ClassMap(w[:, list(used)].contiguous(), used)
        xl = G.synthesize(z[sl], class_maps=cm)
        diff = (xl - x[sl]).abs().mean(1)  # (n, R, R)
        ratios_in.append(diff[:, :, : R // 2].mean(dim=(1, 2)))
        ratios_out.append(diff[:, :, R // 2:].mean(dim=(1, 2)))
    return torch.cat(ratios_in).mean().item(), torch.cat(ratios_out).mean().item()


def _within_class_spreads(data: ImageDataset, x: torch.Tensor, y: torch.Tensor, feats: torch.Tensor,
                          real_feats: torch.Tensor) -> tuple[list[float], list[float], list[float], list[float]]:
    """Per class (with at least two real pictures): the mean pairwise distance of the samples and of the real
    pictures, in pixels and in normalised classifier features."""
    div_s, div_r, fdiv_s, fdiv_r = [], [], [], []
    for k in range(data.n_classes):
        real_k = data.images[data.labels == k]
        if len(real_k) < 2:
            continue
        div_s.append(_mean_pairwise(x[y == k]))
        div_r.append(_mean_pairwise(real_k))
        fs = F.normalize(feats[y == k], dim=1)
        fr = F.normalize(real_feats[data.labels == k], dim=1)
        fdiv_s.append(_mean_pairwise(fs))
        fdiv_r.append(_mean_pairwise(fr))
    return div_s, div_r, fdiv_s, fdiv_r


def _ratio(a: float, b: float) -> float:
    return float(a / b) if b > 0 else float("nan")


def _write_outputs(G: Generator, report: EvalReport, x, y, z, target, K: int, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(asdict(report), indent=1))
    (out / "report.md").write_text(report.markdown() + "\n")
    cols = min(8, report.samples_per_class)
    pick = torch.cat([torch.nonzero(y == k).flatten()[:cols] for k in range(K)])
    save_png(grid(to_uint8(x[pick], "round"), cols), out / "samples_per_class.png")


def save_report(report: EvalReport, path: str | Path) -> None:
    Path(path).write_text(json.dumps(asdict(report), indent=1))
