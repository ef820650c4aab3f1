"""Manifold projection: find z with G(z, class) close to a target image.

The objective of the original ``optimization.py``::

    l1 = -sum_i <v1_i, v2_i> / sqrt(|v1_i|^2 |v2_i|^2)     v = D.feature_vector(.) of reconstruction / target
    l2 = 0.2 * mean((G(z) - gt)^2)
    loss = l1 + l2,  minimised over z with Chainer's Adam (alpha 0.075, betas 0.9/0.999, eps 1e-8)

Chainer's Adam places eps outside the bias correction (``lr_t = alpha sqrt(1-b2^t)/(1-b1^t)``,
``z -= lr_t m / (sqrt(v) + eps)``), unlike ``torch.optim.Adam``; :class:`ChainerAdam` reproduces it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import torch

from .discriminator import Discriminator
from .generator import Generator

if TYPE_CHECKING:
    from .encoder import Encoder, Encoding


def image_to_model_range(u8: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float, as the original reads targets: ``x / 128 - 1`` (255 -> 0.9921875)."""
    return u8.float() / 128.0 - 1.0


def feature_cosine_loss(D: Discriminator, recon: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """Per-sample negative cosine similarity of discriminator features, shape (N,)."""
    v1 = D.feature_vector(recon)
    v2 = target_features
    denom = torch.sqrt((v1 * v1).sum(1) * (v2 * v2).sum(1))
    return -(v1 * v2).sum(1) / denom


def pixel_loss(recon: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Per-sample mean squared error, shape (N,)."""
    return ((recon - target) ** 2).flatten(1).mean(1)


@dataclass
class ProjectionLoss:
    """Per-sample terms of the objective (each (N,)); ``total`` = feature + pixel."""

    feature: torch.Tensor
    pixel: torch.Tensor

    @property
    def total(self) -> torch.Tensor:
        return self.feature + self.pixel


def projection_loss(recon: torch.Tensor, target: torch.Tensor, D: Discriminator | None = None,
                    target_features: torch.Tensor | None = None, pixel_weight: float = 0.2) -> ProjectionLoss:
    """The original's objective per sample: ``l1`` (feature cosine) and ``l2 = pixel_weight * MSE``.

    The original sums ``l1`` over the batch and averages the MSE over all pixels; for a batch of one (its
    only use) that is ``total[0]``. Without a discriminator ``l1`` is zero (pixel-only projection).
    """
    l2 = pixel_weight * pixel_loss(recon, target.expand_as(recon))
    if D is None:
        return ProjectionLoss(torch.zeros_like(l2), l2)
    if target_features is None:
        with torch.no_grad():
            target_features = D.feature_vector(target)
    l1 = feature_cosine_loss(D, recon, target_features.expand(recon.shape[0], -1))
    return ProjectionLoss(l1, l2)


class ChainerAdam:
    """Adam exactly as ``chainer.optimizers.Adam`` updates a parameter (eps outside the bias correction)."""

    def __init__(self, param: torch.Tensor, alpha: float = 0.075, beta1: float = 0.9, beta2: float = 0.999,
                 eps: float = 1e-8) -> None:
        self.param = param
        self.alpha, self.beta1, self.beta2, self.eps = alpha, beta1, beta2, eps
        self.m = torch.zeros_like(param)
        self.v = torch.zeros_like(param)
        self.t = 0

    @torch.no_grad()
    def step(self, grad: torch.Tensor) -> None:
        self.t += 1
        b1, b2 = self.beta1, self.beta2
        self.m.mul_(b1).add_(grad, alpha=1 - b1)
        self.v.mul_(b2).addcmul_(grad, grad, value=1 - b2)
        lr_t = self.alpha * math.sqrt(1.0 - b2 ** self.t) / (1.0 - b1 ** self.t)
        self.param.sub_(lr_t * self.m / (self.v.sqrt() + self.eps))


class ProjectionCancelled(RuntimeError):
    """Raised when the ``cancel`` callback of :func:`project` asks to stop."""


@dataclass
class ProjectionResult:
    """The best latent found, its class and reconstruction, and the loss history.

    ``history[t]`` holds every candidate's total loss before update ``t`` (candidates = restarts x classes);
    ``best_history[t]`` is the best candidate's loss so far. ``z_trajectory`` (if recorded) holds every
    candidate's z after each update, as the original's golden ``opt_z``, and ``z_start`` the starting latents.
    """

    z: torch.Tensor  # (1, dim_z)
    class_id: int
    reconstruction: torch.Tensor  # (1, 3, R, R) in [-1, 1]
    loss: float
    feature_loss: float
    pixel_loss: float
    steps: int
    history: np.ndarray  # (steps, candidates)
    candidates: list[tuple[int, int]] = field(default_factory=list)  # (restart, class) per candidate
    stopped_early: bool = False
    z_trajectory: np.ndarray | None = None
    z_start: np.ndarray | None = None  # (candidates, dim_z): where each candidate started (with record_z)

    @property
    def best_history(self) -> np.ndarray:
        return np.minimum.accumulate(self.history.min(axis=1))


def rank_classes(D: Discriminator, target: torch.Tensor, k: int) -> list[int]:
    """The ``k`` classes whose projection-discriminator logit for ``target`` is highest."""
    if D.config.n_classes <= 0:
        raise ValueError("the discriminator has no class embedding; give the class explicitly")
    with torch.no_grad():
        ids = torch.arange(D.config.n_classes, device=D.device)
        logits = D(target.expand(len(ids), -1, -1, -1).to(D.device, D.dtype), ids).flatten()
    return [int(i) for i in torch.topk(logits, min(k, len(ids))).indices]


def project(G: Generator, target: torch.Tensor, class_id: int | Sequence[int] | None = None,
            D: Discriminator | None = None, *, steps: int = 200, lr: float = 0.075, pixel_weight: float = 0.2,
            restarts: int = 1, top_k_classes: int | None = None, patience: int | None = None,
            min_improvement: float = 1e-4, narrow_after: int | None = None, seed: int = 0,
            z_init: torch.Tensor | None = None,
            encoder: Encoder | None = None, init_samples: int = 0,
            progress: Callable[[int, int, float], None] | None = None, cancel: Callable[[], bool] | None = None,
            record_z: bool = False) -> ProjectionResult:
    """Manifold projection: minimise the original's objective over z, for several starts/classes at once.

    target: (1, 3, R, R) in [-1, 1] at the generator's resolution (see :func:`collage_core.images.from_uint8`;
        the original reads photos as ``u8 / 128 - 1``).
    class_id: one class, a list of candidate classes, or None with ``top_k_classes`` (ranked by the encoder's
        class logits when an encoder is given, else by ``D``'s logit).
    D: the discriminator for the feature term; None gives pixel-only projection (generators without one).
    restarts: starting points per class, optimised together as one batch; the best candidate wins.
    encoder: an :class:`~collage_core.encoder.Encoder` for ``G``: the first start of every class is ``E(target)``
        (the paper's initialisation) instead of a random latent.
    init_samples: pixel-space restarts: draw this many random latents per class, score each by the objective
        (one forward pass, no optimisation) and start the remaining restarts from the best of them.
    patience: stop when the best loss has not improved by ``min_improvement`` (relative) for this many steps.
    narrow_after: after this many steps keep only the candidate with the lowest loss and go on with it alone (its
        z and Adam state unchanged, so its trajectory is the one it had in the batch); later steps cost one
        forward instead of one per candidate. The dropped candidates' ``history`` entries are ``inf`` from then
        on (and their ``z_trajectory`` NaN).
    progress(step, steps, best_loss) is called after every step; cancel() returning True stops with
    :class:`ProjectionCancelled`.
    Adam is Chainer's (alpha=lr, eps outside the bias correction), so a single start from ``z_init`` reproduces
    the original's trajectory.
    """
    target = _checked_target(G, target, steps, restarts, init_samples)
    encoding = None
    if encoder is not None:
        encoder.check_fits(G)
        encoding = encoder.encode(target)
    classes = _candidate_classes(G, D, target, class_id, encoding, top_k_classes)
    cands = [(r, c) for c in classes for r in range(restarts)]
    tfeat = None
    if D is not None:
        with torch.no_grad():
            tfeat = D.feature_vector(target)
    z0 = _starting_latents(G, D, target, tfeat, pixel_weight, classes, cands, restarts, seed, encoding,
                           init_samples, z_init)
    z_start = z0.float().clone() if record_z else None
    z = z0.to(G.device, G.dtype).requires_grad_(True)
    y = torch.tensor([c for _, c in cands], device=G.device)
    adam = ChainerAdam(z, alpha=lr)
    history, traj = [], []
    best = math.inf
    since_best = 0
    stopped_early = False
    alive = np.arange(len(cands))  # the candidates still optimised (all until narrow_after)
    with torch.enable_grad():
        for t in range(steps):
            if cancel is not None and cancel():
                raise ProjectionCancelled(f"projection cancelled after {t} of {steps} steps")
            recon = G.synthesize(z, classes=y)
            losses = projection_loss(recon, target, D, tfeat, pixel_weight)
            total = losses.total
            (grad,) = torch.autograd.grad(total.sum(), z)
            if narrow_after is not None and t == narrow_after and len(alive) > 1:
                keep = int(torch.argmin(total.detach()))  # the candidates are independent: its row of the batch
                alive, total, grad = alive[keep:keep + 1], total[keep:keep + 1], grad[keep:keep + 1]
                z, y, adam = _narrowed(z, y, adam, keep)
            history.append(_widened(total.detach().float().cpu().numpy(), alive, len(cands), np.inf))
            adam.step(grad)
            if record_z:
                traj.append(_widened(z.detach().float().cpu().numpy(), alive, len(cands), np.nan))
            cur = float(total.detach().min())
            improved = not math.isfinite(best) or cur < best - min_improvement * abs(best)
            if improved:
                best, since_best = cur, 0
            else:
                since_best += 1
            if progress is not None:
                progress(t + 1, steps, min(best, cur))
            if patience is not None and since_best >= patience:
                stopped_early = True
                break
    with torch.no_grad():  # evaluate the final latents (history holds losses *before* each update)
        recon = G.synthesize(z, classes=y)
        final = projection_loss(recon, target, D, tfeat, pixel_weight)
    i = int(torch.argmin(final.total))
    return ProjectionResult(z=z.detach()[i:i + 1].clone(), class_id=cands[alive[i]][1], reconstruction=recon[i:i + 1],
                            loss=float(final.total[i]), feature_loss=float(final.feature[i]),
                            pixel_loss=float(final.pixel[i]), steps=len(history), history=np.stack(history),
                            candidates=cands, stopped_early=stopped_early,
                            z_trajectory=np.stack(traj) if record_z else None,
                            z_start=z_start.numpy() if z_start is not None else None)


def _narrowed(z: torch.Tensor, y: torch.Tensor, adam: ChainerAdam, keep: int
              ) -> tuple[torch.Tensor, torch.Tensor, ChainerAdam]:
    """Candidate ``keep`` alone: its z (a new leaf whose gradient is that row of the batch's), class and Adam
    state (moments and step count), so its update is exactly the one it would get in the batch."""
    z1 = z.detach()[keep:keep + 1].clone().requires_grad_(True)
    a = ChainerAdam(z1, alpha=adam.alpha, beta1=adam.beta1, beta2=adam.beta2, eps=adam.eps)
    a.m, a.v, a.t = adam.m[keep:keep + 1].clone(), adam.v[keep:keep + 1].clone(), adam.t
    return z1, y[keep:keep + 1], a


def _widened(values: np.ndarray, alive: np.ndarray, n: int, fill: float) -> np.ndarray:
    """``values`` of the live candidates placed in a row for all ``n`` candidates (``fill`` for dropped ones)."""
    if len(alive) == n:
        return values.copy()
    out = np.full((n, *values.shape[1:]), fill, dtype=values.dtype)
    out[alive] = values
    return out


def _checked_target(G: Generator, target: torch.Tensor, steps: int, restarts: int, init_samples: int
                    ) -> torch.Tensor:
    """``target`` as (1, 3, R, R) on ``G``'s device and dtype, after checking it and the step counts."""
    if target.dim() == 3:
        target = target[None]
    R = G.resolution
    if target.dim() != 4 or target.shape[0] != 1 or target.shape[1] != 3 or tuple(target.shape[-2:]) != (R, R):
        raise ValueError(f"target has shape {tuple(target.shape)}; expected (1, 3, {R}, {R}) in [-1, 1]")
    if not torch.isfinite(target).all():
        raise ValueError("target contains NaN or infinite values")
    if steps < 1 or restarts < 1:
        raise ValueError("steps and restarts must be at least 1")
    if init_samples < 0:
        raise ValueError(f"init_samples must be at least 0, got {init_samples}")
    return target.to(G.device, G.dtype)


def _candidate_classes(G: Generator, D: Discriminator | None, target: torch.Tensor,
                       class_id: int | Sequence[int] | None, encoding: Encoding | None,
                       top_k_classes: int | None) -> list[int]:
    """The classes to project into: the given ones, else the encoder's or ``D``'s top ``top_k_classes``."""
    if class_id is None:
        if encoding is not None and top_k_classes:
            classes = encoding.top_classes(top_k_classes)[0]
        elif D is None or not top_k_classes:
            raise ValueError("give class_id, or a discriminator (or encoder) and top_k_classes to search classes")
        else:
            classes = rank_classes(D, target, top_k_classes)
    else:
        classes = [int(class_id)] if isinstance(class_id, (int, np.integer)) else [int(c) for c in class_id]
    for c in classes:
        G.class_index(c)  # range check with a clear message
    return classes


def _starting_latents(G: Generator, D: Discriminator | None, target: torch.Tensor, tfeat: torch.Tensor | None,
                      pixel_weight: float, classes: list[int], cands: list[tuple[int, int]], restarts: int,
                      seed: int, encoding: Encoding | None, init_samples: int,
                      z_init: torch.Tensor | None) -> torch.Tensor:
    """One start per candidate (restart, class), (n, dim_z) on the CPU: random (screened by ``init_samples``), the
    encoder's ``E(target)`` for the first restart of every class, then ``z_init`` over the first ones."""
    n = len(cands)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    z0 = torch.randn(n, G.config.dim_z, generator=gen)
    if getattr(G, "truncation", None) is not None:  # BigGAN: its latents are psi * (truncated) normal
        z0 = z0.clamp(-2, 2) * float(G.truncation)
    first_random = 1 if encoding is not None else 0
    if init_samples > 0 and restarts > first_random:
        z0 = _screened_starts(G, D, target, tfeat, pixel_weight, classes, restarts, first_random, init_samples,
                              gen, z0)
    if encoding is not None:
        for i, (r, _) in enumerate(cands):
            if r == 0:
                z0[i] = encoding.z[0].to(z0.dtype).cpu()
    if z_init is not None:
        zi = torch.as_tensor(z_init, dtype=torch.float32).reshape(-1, G.config.dim_z)
        z0[: len(zi)] = zi[:n] if len(zi) <= n else zi[:n]
        for i in range(len(zi), n):  # a given start is used for the first restart of every class
            if cands[i][0] == 0:
                z0[i] = zi[0]
    return z0


@torch.no_grad()
def _screened_starts(G: Generator, D: Discriminator | None, target: torch.Tensor, tfeat: torch.Tensor | None,
                     pixel_weight: float, classes: list[int], restarts: int, first: int, samples: int,
                     gen: torch.Generator, z0: torch.Tensor) -> torch.Tensor:
    """``z0`` with restarts ``first..restarts-1`` of every class replaced by the best-scoring of ``samples``
    random latents of that class (scored by the projection objective, in chunks of 64)."""
    z0 = z0.clone()
    need = restarts - first
    for j, c in enumerate(classes):
        pool = torch.randn(max(samples, need), G.config.dim_z, generator=gen)
        scores = []
        for i in range(0, len(pool), 64):
            zc = pool[i:i + 64].to(G.device, G.dtype)
            recon = G.synthesize(zc, classes=torch.full((len(zc),), c, device=G.device))
            feats = None if tfeat is None else tfeat
            scores.append(projection_loss(recon, target, D, feats, pixel_weight).total.float().cpu())
        best = torch.argsort(torch.cat(scores))[:need]
        z0[j * restarts + first:(j + 1) * restarts] = pool[best]
    return z0


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB between two images in [-1, 1] (peak-to-peak 2)."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10 * math.log10(4.0 / mse)
