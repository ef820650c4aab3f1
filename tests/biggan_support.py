"""Tiny random BigGAN-deep models for tests: the reference package's (saved in its folder layout) and ours."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def make_reference(resolution: int = 128, ch: int = 4, seed: int = 0, num_classes: int = 1000, z_dim: int = 128,
                   attention: int = 8):
    """A ``pytorch_pretrained_biggan.BigGAN`` with random weights, random per-truncation BN statistics, a non-zero
    attention gain and spectral-norm vectors brought near the top singular vectors (eval mode)."""
    from pytorch_pretrained_biggan import BigGAN
    from pytorch_pretrained_biggan import BigGANConfig as RefConfig

    from collage_core.biggan import PRESET_LAYERS

    torch.manual_seed(seed)
    cfg = RefConfig(output_dim=resolution, z_dim=z_dim, class_embed_dim=z_dim, channel_width=ch,
                    num_classes=num_classes, layers=[list(x) for x in PRESET_LAYERS[resolution]],
                    attention_layer_position=attention)
    m = BigGAN(cfg)
    with torch.no_grad():
        for name, buf in m.named_buffers():
            if name.endswith("running_means"):
                buf.copy_(0.3 * torch.randn_like(buf))
            elif name.endswith("running_vars"):
                buf.uniform_(0.5, 1.5)
        for name, p in m.named_parameters():
            if name.endswith("gamma"):
                p.fill_(0.7)
            elif name == "generator.bn.weight":
                p.uniform_(0.5, 1.5)
            elif name == "generator.bn.bias":
                p.normal_(0, 0.1)
            elif name == "embeddings.weight":
                p.normal_(0, 0.3)
        m.train()  # a few power iterations (BN uses stored statistics in both modes)
        for _ in range(3):
            m(torch.randn(2, z_dim), torch.eye(num_classes)[:2], 1.0)
    return m.eval()


def save_reference(model, folder: Path, safetensors: bool = False) -> Path:
    """Write ``model`` in the reference's folder layout (``config.json`` + ``pytorch_model.bin``)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(model.config.to_json_string())
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    if safetensors:
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state.items()}, str(folder / "model.safetensors"))
    else:
        torch.save(state, folder / "pytorch_model.bin")
    return folder


def make_ours(resolution: int = 128, ch: int = 4, seed: int = 0, num_classes: int = 1000, z_dim: int = 16,
              attention: int = 8):
    """Our :class:`~collage_core.biggan.BigGANGenerator` with random weights (no reference package needed)."""
    from collage_core.biggan import BigGANConfig, BigGANGenerator

    torch.manual_seed(seed)
    G = BigGANGenerator(BigGANConfig.preset(resolution, ch, z_dim=z_dim, class_embed_dim=z_dim,
                                            num_classes=num_classes, attention_layer_position=attention))
    with torch.no_grad():
        for name, p in G.named_parameters():
            fan_in = p[0].numel() if p.dim() > 1 else 1
            if name.endswith((".b", "_b", "bias")):
                p.normal_(0, 0.05)
            elif name == "out_bn_weight":
                p.uniform_(0.5, 1.5)
            elif name == "attention.gamma":
                p.fill_(0.7)
            elif name in ("bn_wz", "bn_we"):
                p.normal_(0, 0.3 / p.shape[-1] ** 0.5)
            else:
                p.normal_(0, (1.0 / fan_in) ** 0.5)
        G.embed.normal_(0, 1.0)
        G.bn_means.normal_(0, 0.3)
        G.bn_vars.uniform_(0.5, 1.5)
        G.out_bn_means.normal_(0, 0.3)
        G.out_bn_vars.uniform_(0.5, 1.5)
    return G.eval().requires_grad_(False)


def write_config(folder: Path, **kw) -> None:
    (Path(folder) / "config.json").write_text(json.dumps(kw))
