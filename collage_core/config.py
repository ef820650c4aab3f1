"""Architecture configurations of the generator and discriminator family.

One config class per network describes every layout of the original code (and any custom one) by its
channel plan, so there is one implementation, not one class per variant:

================  ==========  ======================================  =====================================
generator layout  resolution  channels (multiples of ``ch``)          original module
================  ==========  ======================================  =====================================
``resnet_64``     64          16 | 8 4 2 1                            ``gen_models/resnet_64.py``
``resnet_small``  128         8 | 8 4 4 2 1                           ``gen_models/resnet_small(_scbn).py``
``resnet``        128         16 | 16 8 4 2 1                         ``gen_models/resnet.py`` (ImageNet)
``resnet_256``    256         16 | 16 8 8 4 2 1                       ``gen_models/resnet_256(_scbn).py``
================  ==========  ======================================  =====================================

The first number is the head (``l1``) width at ``bottom_width`` x ``bottom_width``; each following number is
one up-sampling block's output width. ``ch`` is the last block's width.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

GENERATOR_LAYOUTS: dict[str, tuple[int, tuple[int, ...]]] = {
    "resnet_64": (16, (8, 4, 2, 1)),
    "resnet_small": (8, (8, 4, 4, 2, 1)),
    "resnet": (16, (16, 8, 4, 2, 1)),
    "resnet_256": (16, (16, 8, 8, 4, 2, 1)),
}

# (out multiple, downsample) per block after the first (OptimizedBlock 3 -> ch), and where hidden width comes from.
DISCRIMINATOR_LAYOUTS: dict[str, tuple[tuple[tuple[int, bool], ...], str]] = {
    "snresnet_64": (((2, True), (4, True), (8, True), (16, True)), "in"),
    "snresnet_small": (((2, True), (4, True), (4, True), (8, True), (8, False)), "in"),
    "snresnet": (((2, True), (4, True), (8, True), (16, True), (16, False)), "in"),
    "snresnet_256": (((2, True), (4, True), (8, True), (8, True), (16, True), (16, False)), "out"),
}

#: the discriminator layout the original pairs with each generator layout
PAIRED_DISCRIMINATOR = {
    "resnet_64": "snresnet_64",
    "resnet_small": "snresnet_small",
    "resnet": "snresnet",
    "resnet_256": "snresnet_256",
}


@dataclass(frozen=True)
class GeneratorConfig:
    """Shape of an SNGAN-projection ResNet generator with (spatial) conditional batch norm.

    ``channels[0]`` is the width of the ``l1`` head reshaped to ``bottom_width`` x ``bottom_width``;
    ``channels[k]`` (k >= 1) is the output width of block ``k+1`` (the original names blocks from 2).
    Every block doubles the resolution.
    """

    channels: tuple[int, ...]
    dim_z: int = 128
    n_classes: int = 1
    bottom_width: int = 4
    layout: str | None = None
    bn_eps: float = 2e-5

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if len(self.channels) < 2 or any(c <= 0 for c in self.channels):
            raise ValueError(f"channels must list the head width and at least one block width, got {self.channels}")
        for name in ("dim_z", "n_classes", "bottom_width"):
            if int(getattr(self, name)) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    @classmethod
    def from_layout(cls, layout: str, ch: int, dim_z: int = 128, n_classes: int = 1, bottom_width: int = 4
                    ) -> GeneratorConfig:
        if layout not in GENERATOR_LAYOUTS:
            raise ValueError(f"unknown generator layout {layout!r}; expected one of {sorted(GENERATOR_LAYOUTS)}")
        head, blocks = GENERATOR_LAYOUTS[layout]
        return cls(channels=(head * ch, *(m * ch for m in blocks)), dim_z=dim_z, n_classes=n_classes,
                   bottom_width=bottom_width, layout=layout)

    @property
    def n_blocks(self) -> int:
        return len(self.channels) - 1

    @property
    def ch(self) -> int:
        return self.channels[-1]

    @property
    def resolution(self) -> int:
        return self.bottom_width * 2 ** self.n_blocks

    @property
    def n_map_layers(self) -> int:
        """Number of sCBN layers: two per block (``b1`` before the block's up-sampling, ``b2`` after it)."""
        return 2 * self.n_blocks

    @property
    def n_blend_layers(self) -> int:
        """Number of feature-blending points: the head plus every block's output."""
        return self.n_blocks + 1

    @property
    def map_sizes(self) -> list[int]:
        """Resolution of the class map each sCBN layer reads (``weights[2k]`` -> block k+2's b1, ...)."""
        return [self.bottom_width * 2 ** (i // 2 + i % 2) for i in range(self.n_map_layers)]

    @property
    def blend_sizes(self) -> list[int]:
        return [self.bottom_width * 2 ** i for i in range(self.n_blend_layers)]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> GeneratorConfig:
        known = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class DiscriminatorBlockSpec:
    in_channels: int
    hidden_channels: int
    out_channels: int
    downsample: bool
    optimized: bool = False  # the first block: conv, relu, conv, pool (+ pooled 1x1 shortcut)

    @property
    def learnable_sc(self) -> bool:
        return self.optimized or self.downsample or self.in_channels != self.out_channels


@dataclass(frozen=True)
class DiscriminatorConfig:
    """Shape of an SN-ResNet projection discriminator."""

    blocks: tuple[DiscriminatorBlockSpec, ...]
    n_classes: int = 0
    resolution: int = 128
    layout: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        blocks = tuple(b if isinstance(b, DiscriminatorBlockSpec) else DiscriminatorBlockSpec(**b)
                       for b in self.blocks)
        object.__setattr__(self, "blocks", blocks)
        if not blocks:
            raise ValueError("a discriminator needs at least one block")

    @classmethod
    def from_layout(cls, layout: str, ch: int, n_classes: int = 0, resolution: int | None = None
                    ) -> DiscriminatorConfig:
        if layout not in DISCRIMINATOR_LAYOUTS:
            raise ValueError(f"unknown discriminator layout {layout!r}; "
                             f"expected one of {sorted(DISCRIMINATOR_LAYOUTS)}")
        plan, hidden_from = DISCRIMINATOR_LAYOUTS[layout]
        blocks = [DiscriminatorBlockSpec(3, ch, ch, True, optimized=True)]
        cin = ch
        for mult, down in plan:
            cout = mult * ch
            blocks.append(DiscriminatorBlockSpec(cin, cin if hidden_from == "in" else cout, cout, down))
            cin = cout
        if resolution is None:
            resolution = {"snresnet_64": 64, "snresnet_256": 256}.get(layout, 128)
        return cls(blocks=tuple(blocks), n_classes=n_classes, resolution=resolution, layout=layout)

    @property
    def feature_channels(self) -> int:
        return self.blocks[-1].out_channels

    @property
    def last_linear_name(self) -> str:
        return f"l{len(self.blocks) + 1}"

    def to_dict(self) -> dict[str, Any]:
        return {"blocks": [asdict(b) for b in self.blocks], "n_classes": self.n_classes,
                "resolution": self.resolution, "layout": self.layout}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DiscriminatorConfig:
        return cls(blocks=tuple(DiscriminatorBlockSpec(**b) for b in d["blocks"]), n_classes=d.get("n_classes", 0),
                   resolution=d.get("resolution", 128), layout=d.get("layout"))
