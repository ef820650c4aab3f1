"""The SN-ResNet projection discriminator (``dis_models/snresnet*.py`` of the original).

Shapes for the 128 layout (``snresnet_small``, ch=c)::

    x (N, 3, 128, 128) -block1-> (N, c, 64, 64) -block2-> (N, 2c, 32, 32) ... -block6-> (N, 8c, 4, 4)
    feature_vector(x) = relu(h).reshape(N, -1)                       # flattened C, H, W; not pooled
    logit(x, y) = l7(sum_hw relu h) + sum_c l_y(y) * sum_hw relu h   # projection discriminator

Blocks: the first (``OptimizedBlock``) is ``pool(c2(relu(c1(x)))) + c_sc(pool(x))``; the others are
``pool(c2(relu(c1(relu(x))))) + pool(c_sc(x))`` (pool after the shortcut conv; no pool on the last block).
Every conv, the last linear and the class embedding are spectrally normalised (see :mod:`collage_core.layers`).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .config import DiscriminatorBlockSpec, DiscriminatorConfig
from .layers import SNConv2d, SNEmbedID, SNLinear


class DisBlock(nn.Module):
    def __init__(self, spec: DiscriminatorBlockSpec) -> None:
        super().__init__()
        self.spec = spec
        gain = math.sqrt(2)
        self.c1 = SNConv2d(spec.in_channels, spec.hidden_channels, 3, gain)
        self.c2 = SNConv2d(spec.hidden_channels, spec.out_channels, 3, gain)
        if spec.learnable_sc:
            self.c_sc = SNConv2d(spec.in_channels, spec.out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.spec
        if s.optimized:
            h = F.avg_pool2d(self.c2(F.relu(self.c1(x))), 2)
            return h + self.c_sc(F.avg_pool2d(x, 2))
        h = self.c2(F.relu(self.c1(F.relu(x))))
        sc = self.c_sc(x) if s.learnable_sc else x
        if s.downsample:
            h, sc = F.avg_pool2d(h, 2), F.avg_pool2d(sc, 2)
        return h + sc


class Discriminator(nn.Module):
    """Projection discriminator; :meth:`feature_vector` is what manifold projection compares."""

    def __init__(self, config: DiscriminatorConfig) -> None:
        super().__init__()
        self.config = config
        for i, spec in enumerate(config.blocks):
            self.add_module(f"block{i + 1}", DisBlock(spec))
        self.add_module(config.last_linear_name, SNLinear(config.feature_channels, 1))
        if config.n_classes > 0:
            self.l_y = SNEmbedID(config.n_classes, config.feature_channels)

    @property
    def blocks(self) -> list[DisBlock]:
        return [getattr(self, f"block{i + 1}") for i in range(len(self.config.blocks))]

    @property
    def device(self) -> torch.device:
        return self.block1.c1.W.device

    @property
    def dtype(self) -> torch.dtype:
        return self.block1.c1.W.dtype

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """``relu(h)`` after the last block, (N, C, h, w)."""
        h = x
        for blk in self.blocks:
            h = blk(h)
        return F.relu(h)

    def feature_vector(self, x: torch.Tensor) -> torch.Tensor:
        """(N, C*h*w): the flattened, un-pooled last feature map, as the original's ``feature_vector``."""
        x = self._check_images(x)
        h = self.features(x)
        return h.reshape(h.shape[0], -1)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """Logits (N, 1); with class ids ``y`` the projection term is added."""
        h = self.features(x).sum(dim=(2, 3))
        out = getattr(self, self.config.last_linear_name)(h)
        if y is not None:
            if self.config.n_classes <= 0:
                raise ValueError("this discriminator has no class embedding; call it without y")
            out = out + (self.l_y(y) * h).sum(dim=1, keepdim=True)
        return out

    def _check_images(self, x) -> torch.Tensor:
        if not isinstance(x, torch.Tensor):
            x = torch.as_tensor(x)
        r = self.config.resolution
        if x.dim() != 4 or x.shape[1] != 3 or tuple(x.shape[2:]) != (r, r):
            raise ValueError(f"images have shape {tuple(x.shape)}; expected (N, 3, {r}, {r})")
        return x.to(device=self.device, dtype=self.dtype)
