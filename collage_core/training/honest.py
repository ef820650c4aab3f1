"""The honest evaluation: a judge that never saw a picture the GAN learned from, in a pretrained feature space.

``neural-collage eval`` judges samples with a classifier trained on the GAN's own training pictures, which
flatters the GAN (it reported 89% where an independent classifier saw 66%). This evaluation instead:

* **features**: a frozen ImageNet-pretrained EfficientNet-lite1 (:mod:`.pretrained`); it never saw an emoji, and
  it is not the lite0 network a projected discriminator trains the generator against (a generator can learn to
  please the features it was trained through, which would flatter it in those features);
* **judge**: a linear classifier on those features, trained only on styles the GAN never sees — the held-out
  OpenMoji style and the judge-only styles (``judge/``: Emoji One v1, Fluent high contrast) of the prepared data,
  with augmentation;
* **trust**: the judge's accuracy on the real pictures of every training style, which it never saw. A sample
  score is only as good as this number: report both;
* **sample accuracy**: untruncated samples, ``samples_per_class`` per class, top-1, per class and mean;
* **Fréchet distance** and **precision / recall** (k-nearest-neighbour manifolds, Kynkäänniemi et al. 2019)
  between samples and the real training pictures in the pretrained feature space;
* **diversity**: mean within-class pairwise distance of sample features relative to the real pictures' (and the
  same in pixels, for comparison with ``eval``).

Several models are judged by one judge, so their numbers compare.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from tqdm.auto import tqdm

from ..conditional import ConditionalGenerator
from ..grid_labels import labelled_grid
from .augment import data_augment
from .dataset import ImageDataset
from .emoji_data import JUDGE_SPLIT, TEST_SPLIT, TRAIN_SPLIT
from .evaluate import _mean_pairwise, frechet_distance
from .pretrained import EfficientNetLite, load_efficientnet_lite

#: the judge's network: not lite0, which the projected discriminator trains the generator against
JUDGE_NETWORK = "lite1"
#: side the 64 px pictures are upsampled to before the pretrained network (it was trained at 224)
FEATURE_SIDE = 128
#: augmented copies of each judge picture the linear judge learns from
JUDGE_AUGMENTS = 16
NEIGHBOURS = 3
#: the pooled head feature is the first part of :func:`pretrained_features`
HEAD_DIM = 1280


@torch.no_grad()
def pretrained_features(net: EfficientNetLite, x: torch.Tensor, batch: int = 64, side: int = FEATURE_SIDE,
                        progress: str | None = None) -> torch.Tensor:
    """Features of images in [-1, 1] (any size; resized to ``side``): the pooled 1280-d head, and the mean and
    max over positions of the stride-8, -16 and -32 maps (2,224 numbers; the middle layers carry the shapes and
    colours that tell drawn animals apart better than the ImageNet head alone)."""
    out = []
    chunks = range(0, len(x), batch)
    for i in tqdm(chunks, desc=progress, unit="batch", disable=progress is None, leave=False):
        xb = F.interpolate(x[i:i + batch].float(), size=(side, side), mode="bilinear", align_corners=False,
                           antialias=x.shape[-1] > side)
        maps = net.stages(xb)
        parts = [net.head(maps[-1]).mean(dim=(2, 3))]
        parts += [m.mean(dim=(2, 3)) for m in maps[1:]] + [m.amax(dim=(2, 3)) for m in maps[1:]]
        out.append(torch.cat(parts, 1))
    return torch.cat(out)


@dataclass
class LinearJudge:
    """Standardised features -> logits; ``classes`` in the GAN's label order."""
    mean: torch.Tensor
    std: torch.Tensor
    weight: torch.Tensor
    bias: torch.Tensor
    classes: list[str]
    trained_on: dict[str, int]

    def logits(self, feats: torch.Tensor) -> torch.Tensor:
        return ((feats - self.mean) / self.std) @ self.weight.T + self.bias

    def predict(self, feats: torch.Tensor) -> torch.Tensor:
        return self.logits(feats).argmax(1)


def fit_linear_judge(feats: torch.Tensor, labels: torch.Tensor, n_classes: int, l2: float = 1e-3,
                     steps: int = 300) -> tuple[torch.Tensor, ...]:
    """Multinomial logistic regression (L-BFGS, L2 ``l2`` on the weights) on standardised features."""
    mean, std = feats.mean(0), feats.std(0).clamp_min(1e-6)
    z = (feats - mean) / std
    w = torch.zeros(n_classes, z.shape[1], requires_grad=True)
    b = torch.zeros(n_classes, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=steps, history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = F.cross_entropy(z @ w.T + b, labels) + l2 * (w ** 2).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return mean, std, w.detach(), b.detach()


def _style_of(files: list[str], manifest: dict[str, Any]) -> list[str]:
    styles = {r["path"]: r["style"] for r in manifest.get("images", [])}
    return [styles.get(f, Path(f).stem.split("--")[0]) for f in files]


def _balanced_accuracy(pred: torch.Tensor, labels: torch.Tensor, classes: list[str]) -> tuple[float, dict]:
    """Mean over classes of the per-class accuracy (and the per-class accuracies)."""
    per = {}
    for k, c in enumerate(classes):
        m = labels == k
        if m.any():
            per[c] = float((pred[m] == k).float().mean())
    return float(np.mean(list(per.values()))), per


@dataclass
class HonestJudge:
    """What the evaluation of any number of models reuses: the network, two judges and the real features.

    * ``strict`` learned only from styles the GAN never saw: it never saw a GAN training picture;
      ``strict_trust`` is its class-balanced accuracy on the GAN's real training pictures;
    * ``all_styles`` learned from every real picture (training styles included, never a sample);
      ``unseen_style_accuracy`` is what the same recipe scores on a style left out of its training, averaged
      over the styles left out one at a time (per style in ``unseen_per_style``).
    """
    net: EfficientNetLite
    strict: LinearJudge
    all_styles: LinearJudge
    classes: list[str]
    real: ImageDataset
    real_features: torch.Tensor
    strict_trust: float
    strict_trust_per_class: dict[str, float]
    unseen_style_accuracy: float
    unseen_per_style: dict[str, float]


def _fit(feats, labels, classes, trained_on) -> LinearJudge:
    mean, std, w, b = fit_linear_judge(feats, labels, len(classes))
    return LinearJudge(mean, std, w, b, classes, trained_on)


def make_honest_judge(data_root: str | Path, seed: int = 0, augments: int = JUDGE_AUGMENTS,
                      progress: bool = True) -> HonestJudge:
    """Train both judges on augmented real pictures and measure them on styles they never saw."""
    root = Path(data_root)
    manifest = json.loads((root / "manifest.json").read_text()) if (root / "manifest.json").is_file() else {}
    real = ImageDataset(root, 64, split=TRAIN_SPLIT)
    classes = real.class_names
    parts = [(split, ImageDataset(root, 64, split=split, class_names=classes, require_all_classes=False))
             for split in (TRAIN_SPLIT, TEST_SPLIT, JUDGE_SPLIT) if (root / split).is_dir()]
    if len(parts) < 2:
        raise FileNotFoundError(f"{root} has no {TEST_SPLIT}/ or {JUDGE_SPLIT}/ pictures to train the judge on; "
                                f"prepare the data again with `neural-collage data emoji-animals`")
    x = torch.cat([d.images for _, d in parts])
    y = torch.cat([d.labels for _, d in parts])
    styles = _style_of([f for _, d in parts for f in d.files], manifest)
    unseen_by_gan = torch.tensor([split != TRAIN_SPLIT for split, d in parts for _ in d.files])
    net = load_efficientnet_lite(JUDGE_NETWORK)
    gen = torch.Generator().manual_seed(seed)
    xa = torch.cat([x, data_augment(x.repeat(augments - 1, 1, 1, 1), gen, scale=(0.75, 1.1), shift=0.08,
                                    rotate_deg=12, jitter=0.2)])
    feats = pretrained_features(net, xa, progress="judge features" if progress else None)
    ya, style_a, unseen_a = y.repeat(augments), styles * augments, unseen_by_gan.repeat(augments)
    n_real = len(real)
    real_feats = feats[:n_real]  # the un-augmented training pictures come first

    def count(mask):
        picked = [s for s, m in zip(styles, mask.tolist()) if m]
        return {s: picked.count(s) for s in sorted(set(picked))}

    strict = _fit(feats[unseen_a], ya[unseen_a], classes, count(unseen_by_gan))
    trust, trust_per_class = _balanced_accuracy(strict.predict(real_feats), real.labels, classes)
    all_styles = _fit(feats, ya, classes, count(torch.ones_like(unseen_by_gan)))
    per_style = {}
    style_t = np.array(style_a)
    for s in tqdm(sorted(set(styles)), desc="leave-one-style-out", disable=not progress, leave=False):
        held = torch.from_numpy(style_t == s)
        judge = _fit(feats[~held], ya[~held], classes, {})
        test = torch.tensor([t == s for t in styles])
        per_style[s] = float((judge.predict(feats[:len(x)][test]) == y[test]).float().mean())
    return HonestJudge(net, strict, all_styles, classes, real, real_feats, trust, trust_per_class,
                       float(np.mean(list(per_style.values()))), per_style)


def precision_recall(real: torch.Tensor, fake: torch.Tensor, k: int = NEIGHBOURS) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) with k-NN balls in feature space."""
    def radii(f):
        d = torch.cdist(f, f)
        return d.kthvalue(k + 1, dim=1).values  # +1: the point itself is at distance 0

    r_real, r_fake = radii(real), radii(fake)
    d = torch.cdist(fake, real)
    precision = float((d <= r_real[None, :]).any(1).float().mean())
    recall = float((d.T <= r_fake[None, :]).any(1).float().mean())
    return precision, recall


def _within_class(x: torch.Tensor, y: torch.Tensor, classes: int) -> dict[int, float]:
    """Per class with at least two rows: the mean pairwise RMS distance of its rows."""
    return {k: _mean_pairwise(x[y == k]) for k in range(classes) if int((y == k).sum()) > 1}


def _diversity(real_x, real_y, fake_x, fake_y, classes: int) -> float:
    """Mean over classes with >= 2 real pictures of (within-class spread of samples / of real pictures)."""
    r, s = _within_class(real_x, real_y, classes), _within_class(fake_x, fake_y, classes)
    ratios = [s[k] / r[k] for k in r if k in s and r[k] > 0]
    return float(np.mean(ratios)) if ratios else float("nan")


@dataclass
class HonestReport:
    model: str
    accuracy: float                  # by the strict judge
    per_class: dict[str, float]
    accuracy_all_styles: float       # by the judge that learned every real style
    per_class_all_styles: dict[str, float]
    frechet_distance: float
    precision: float
    recall: float
    diversity_feature: float
    diversity_pixel: float
    samples_per_class: int
    strict_trust: float
    unseen_style_accuracy: float
    extra: dict[str, Any] = field(default_factory=dict)


@torch.no_grad()
def sample_untruncated(G: ConditionalGenerator, per_class: int, seed: int, batch: int = 64
                       ) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_class`` samples of every class from z ~ N(0, I) (no truncation), class-major order."""
    gen = torch.Generator().manual_seed(seed)
    y = torch.arange(G.config.n_classes).repeat_interleave(per_class)
    z = torch.randn(len(y), G.config.dim_z, generator=gen)
    xs = [G.synthesize(z[i:i + batch], classes=y[i:i + batch]).float().clamp(-1, 1) for i in range(0, len(y), batch)]
    return torch.cat(xs), y


def save_sample_sheet(x: torch.Tensor, per_class: int, classes: Sequence[str], path: Path, cols: int = 8) -> Path:
    """The first ``cols`` samples of every class (class-major ``x`` in [-1, 1]), one row per class, labelled."""
    cols = min(cols, per_class)
    keep = torch.cat([torch.arange(k * per_class, k * per_class + cols) for k in range(len(classes))])
    tiles = ((x[keep].float() + 1) / 2).clamp(0, 1).permute(0, 2, 3, 1)
    sheet = labelled_grid(tiles, cols, row_labels=[c.replace("_", " ") for c in classes])[0]
    Image.fromarray((sheet * 255).round().to(torch.uint8).numpy()).save(path)
    return path


def evaluate_honestly(G: ConditionalGenerator, hj: HonestJudge, name: str, per_class: int = 48, seed: int = 0,
                      out_dir: str | Path | None = None, progress: bool = True) -> HonestReport:
    """Judge ``G``'s untruncated samples with ``hj`` (see the module text)."""
    if G.config.n_classes != len(hj.classes):
        raise ValueError(f"{name} has {G.config.n_classes} classes, the data {len(hj.classes)}")
    x, y = sample_untruncated(G, per_class, seed)
    feats = pretrained_features(hj.net, x, progress=f"{name} features" if progress else None)
    acc, per = _balanced_accuracy(hj.strict.predict(feats), y, hj.classes)
    acc_all, per_all = _balanced_accuracy(hj.all_styles.predict(feats), y, hj.classes)
    # distances in the 1280-d pooled ImageNet feature (as FID does in Inception's); the judges use all features
    head, real_head = feats[:, :HEAD_DIM], hj.real_features[:, :HEAD_DIM]
    fd = frechet_distance(head.double().numpy(), real_head.double().numpy())
    pick = torch.randperm(len(feats), generator=torch.Generator().manual_seed(seed + 1))[:len(real_head)]
    precision, recall = precision_recall(real_head, head[pick])
    n = G.config.n_classes
    div_f = _diversity(real_head, hj.real.labels, head, y, n)
    div_p = _diversity(hj.real.images, hj.real.labels, x, y, n)
    report = HonestReport(name, acc, per, acc_all, per_all, fd, precision, recall, div_f, div_p, per_class,
                          hj.strict_trust, hj.unseen_style_accuracy)
    if out_dir is not None:
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        save_sample_sheet(x, per_class, hj.classes, out / "samples_per_class.png")
        (out / "report.json").write_text(json.dumps(asdict(report), indent=1))
    return report


def markdown(reports: Sequence[HonestReport], hj: HonestJudge) -> str:
    """The summary table, the per-class table and what the judges score on real pictures they never saw."""
    names = " | ".join(r.model for r in reports)
    rows = [
        ("sample accuracy, strict judge (never saw a GAN training picture)", lambda r: f"{r.accuracy:.1%}"),
        ("sample accuracy, all-styles judge", lambda r: f"{r.accuracy_all_styles:.1%}"),
        ("Fréchet distance, EfficientNet-lite1 features (lower is better)", lambda r: f"{r.frechet_distance:.1f}"),
        ("precision (k=3)", lambda r: f"{r.precision:.1%}"),
        ("recall (k=3)", lambda r: f"{r.recall:.1%}"),
        ("within-class diversity, pretrained features, samples / real", lambda r: f"{r.diversity_feature:.0%}"),
        ("within-class diversity, pixels, samples / real", lambda r: f"{r.diversity_pixel:.0%}"),
    ]
    lines = [f"| metric | {names} |", "| --- |" + " --- |" * len(reports)]
    lines += [f"| {label} | " + " | ".join(fn(r) for r in reports) + " |" for label, fn in rows]
    strict_on = ", ".join(f"{s}: {n}" for s, n in hj.strict.trained_on.items())
    lines += ["", f"Samples: {reports[0].samples_per_class} per class, z ~ N(0, I) untruncated, seed fixed; "
              f"accuracies are class-balanced top-1.", "",
              f"- The **strict judge** learned from {sum(hj.strict.trained_on.values())} pictures of styles the GAN "
              f"never saw ({strict_on}). On the GAN's real training pictures it scores **{hj.strict_trust:.1%}**: "
              f"a sample score by it is trustworthy up to about that level.",
              f"- The **all-styles judge** learned from every real picture (never a sample). Left out of its "
              f"training one style at a time, the same recipe recognises **{hj.unseen_style_accuracy:.1%}** of "
              f"the left-out style's pictures (per style below).", "",
              "| class | strict judge on real pictures | " + " | ".join(
                  f"{r.model}: strict / all-styles" for r in reports) + " |",
              "| --- | --- |" + " --- |" * len(reports)]
    for c in hj.classes:
        lines.append(f"| {c} | {hj.strict_trust_per_class.get(c, float('nan')):.0%} | " + " | ".join(
            f"{r.per_class.get(c, float('nan')):.0%} / {r.per_class_all_styles.get(c, float('nan')):.0%}"
            for r in reports) + " |")
    lines += ["", "| style left out | all-styles recipe on its pictures |", "| --- | --- |"]
    lines += [f"| {s} | {a:.0%} |" for s, a in hj.unseen_per_style.items()]
    return "\n".join(lines)
