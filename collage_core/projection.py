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
from dataclasses import dataclass

import torch

from .discriminator import Discriminator


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
