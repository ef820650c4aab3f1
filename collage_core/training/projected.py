"""A projected discriminator (Sauer et al., "Projected GANs Converge Faster", NeurIPS 2021) for small data.

The discriminator does not learn its features from the few hundred training pictures: it looks at them through a
frozen ImageNet-pretrained EfficientNet-lite0 (:mod:`.pretrained`). The feature maps at four resolutions are
mixed by fixed random 1x1 convolutions across channels (CCM) and fused coarse-to-fine by fixed random 3x3
convolutions across scales (CSM), so no single pretrained feature dominates; small trainable, spectrally
normalised discriminators then judge each scale, conditioned on the class by projection (Miyato & Koyama 2018).

Only the per-scale discriminators are trained; the pretrained network and the random mixing stay fixed. The
generator is unchanged (the class-conditional SNGAN with conditional BN), so sCBN and feature blending work on a
generator trained against it exactly as before.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import spectral_norm

from .pretrained import EfficientNetLite0, load_efficientnet_lite0

#: side the images are resized to before the pretrained network (64 px pictures are upsampled)
PROJECTED_SIDE = 128
#: channels after cross-channel mixing, per scale (finest first)
MIX_CHANNELS = (64, 128, 256, 256)


class _Fixed(nn.Module):
    """A random, never-trained convolution (its weight is a buffer, so optimisers and exports ignore it)."""

    def __init__(self, cin: int, cout: int, k: int, seed: int) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        w = torch.randn(cout, cin, k, k, generator=gen) * math.sqrt(2.0 / (cin * k * k))  # Kaiming normal
        self.register_buffer("weight", w)
        self.pad = k // 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight.to(x.dtype), padding=self.pad)


class _ScaleDiscriminator(nn.Module):
    """Strided conv blocks from a feature map down to 4x4, then per-position class-projection logits."""

    def __init__(self, cin: int, size: int, n_classes: int, width: int, embed_dim: int = 64) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        c = cin
        while size > 4:
            cout = min(width * 2, 256) if layers else width
            layers += [spectral_norm(nn.Conv2d(c, cout, 4, 2, 1)), nn.LeakyReLU(0.2)]
            c, size, width = cout, size // 2, cout
        self.body = nn.Sequential(*layers)
        self.out = spectral_norm(nn.Conv2d(c, embed_dim, 1))
        self.embed = nn.Embedding(n_classes, embed_dim)
        self.scale = 1 / math.sqrt(embed_dim)

    def forward(self, h: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = self.out(self.body(h))
        e = self.embed(y).to(h.dtype)[:, :, None, None]
        return (h * e).sum(1).flatten(1) * self.scale  # (N, positions)


class ProjectedDiscriminator(nn.Module):
    """``D(x, y)`` -> (N, P) logits over positions of all scales, for images ``x`` in [-1, 1]."""

    def __init__(self, n_classes: int, width: int = 64, side: int = PROJECTED_SIDE,
                 features: EfficientNetLite0 | None = None, seed: int = 0) -> None:
        super().__init__()
        net = features if features is not None else load_efficientnet_lite0()
        # kept out of the module tree: frozen, not saved with D's weights, not seen by the optimiser
        self._features = (net,)
        self.side = side
        chans = EfficientNetLite0.STAGE_CHANNELS
        self.ccm = nn.ModuleList(_Fixed(c, m, 1, seed + i) for i, (c, m) in enumerate(zip(chans, MIX_CHANNELS)))
        # CSM: each coarser map is upsampled and added to the next finer one, then mixed by a fixed 3x3 conv
        self.csm = nn.ModuleList(_Fixed(MIX_CHANNELS[i + 1], MIX_CHANNELS[i], 3, seed + 10 + i)
                                 for i in range(len(MIX_CHANNELS) - 1))
        sizes = [side // s for s in (4, 8, 16, 32)]
        self.heads = nn.ModuleList(_ScaleDiscriminator(m, s, n_classes, width) for m, s in zip(MIX_CHANNELS, sizes))

    @property
    def features(self) -> EfficientNetLite0:
        return self._features[0]

    def _apply(self, fn, recurse=True):  # .to(device) / .half() also move the frozen network
        self._features[0]._apply(fn)
        return super()._apply(fn, recurse)

    def mixed_features(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = F.interpolate(x, size=(self.side, self.side), mode="bilinear", align_corners=False)
        maps = [ccm(m) for ccm, m in zip(self.ccm, self.features.stages(x))]
        fused = [maps[-1]]
        for i in range(len(maps) - 2, -1, -1):
            up = F.interpolate(fused[0], size=maps[i].shape[-2:], mode="bilinear", align_corners=False)
            fused.insert(0, maps[i] + self.csm[i](up))
        return fused

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        feats = self.mixed_features(x)
        return torch.cat([head(f, y) for head, f in zip(self.heads, feats)], dim=1)


class PairedDiscriminator(nn.Module):
    """The SN projection discriminator and a projected one judging together (recipe ``"paired"``).

    ``D(x, y)`` returns (N, 2P): the SN discriminator's one logit repeated P times beside the projected one's P
    logits, so the trainer's hinge loss (a mean over logits) weighs the two discriminators equally. The SN
    discriminator keeps learning against the generator, so its features stay fit for the manifold projection.
    """

    def __init__(self, sngan: nn.Module, projected: ProjectedDiscriminator) -> None:
        super().__init__()
        self.sngan = sngan
        self.projected = projected

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        p = self.projected(x, y)
        s = self.sngan(x, y).reshape(-1, 1).expand(-1, p.shape[1])
        return torch.cat([s, p], dim=1)
