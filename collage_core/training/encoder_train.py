"""Training an encoder E: image -> (z, class logits) for a trained generator (the paper's projection start).

Each step draws a batch in two parts:

* **generated pictures** ``x = G(z, y)`` with z ~ N(0, I) and a uniform class: E must return ``z`` (latent
  loss) and ``y`` (class loss), and ``G(E(x))`` must look like ``x``;
* **real pictures** from the generator's training folder (optional, augmented as in GAN training): there is
  no true latent, so only ``G(E(x), y)`` looking like ``x`` and the class count. This is what makes the
  encoder useful on pictures the generator cannot reproduce exactly.

"Look like" is the projection objective itself: pixel MSE plus the discriminator-feature cosine loss (when a
discriminator is given), so the encoder lands where :func:`collage_core.projection.project` would go.
G and D are frozen (eval mode); only E learns. Everything is written to ``out``: ``encoder.safetensors``
(the result), ``state.safetensors`` (resumable), ``log.jsonl`` and ``samples/`` (pictures, reconstructions).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from ..checkpoints import load_discriminator, load_generator
from ..encoder import Encoder, EncoderConfig, load_encoder, save_encoder
from ..images import grid, save_png, to_uint8
from .augment import data_augment
from .dataset import ImageDataset
from .state import read_state, restore, write_state


@dataclass
class EncoderTrainConfig:
    out: str
    generator: str = "emoji-animals"
    discriminator: str | None = None  # default: the generator's own (same embedded name), if it has one
    data: str | None = None  # the generator's training images (ROOT/train/<class>/*.png), optional
    steps: int = 3000
    batch_size: int = 32
    real_fraction: float = 0.5  # share of each batch taken from the real pictures (when data is given)
    lr: float = 5e-4
    ch: int = 32
    w_latent: float = 0.2
    w_pixel: float = 1.0
    w_feature: float = 0.5
    w_class: float = 0.1
    init: str | None = None  # start from this encoder (a path or embedded name) instead of random weights
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # bf16 autocast: auto = on CUDA only
    num_threads: int | None = None
    log_every: int = 25
    checkpoint_every: int = 250
    sample_every: int = 500

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EncoderTrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


class EncoderTrainer:
    """Holds G, D, E, the optimiser and the data of one encoder run; :meth:`train` runs (or resumes) it."""

    def __init__(self, cfg: EncoderTrainConfig) -> None:
        self.cfg = cfg
        if cfg.device == "auto":
            self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        else:
            self.device = torch.device(cfg.device)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        if not 0.0 <= cfg.real_fraction <= 1.0:
            raise ValueError(f"real_fraction must be in [0, 1], got {cfg.real_fraction}")
        if cfg.steps < 1 or cfg.batch_size < 2:
            raise ValueError("steps must be at least 1 and batch_size at least 2")
        self.out = Path(cfg.out)
        self.G = load_generator(cfg.generator, device=self.device)
        self.D = None
        d_name = cfg.discriminator if cfg.discriminator is not None else cfg.generator
        if cfg.w_feature > 0 and d_name:
            try:
                self.D = load_discriminator(d_name, device=self.device)
            except ValueError:
                if cfg.discriminator is not None:
                    raise  # asked for explicitly: its error is the user's answer
        self.data = None
        if cfg.data and cfg.real_fraction > 0:
            self.data = ImageDataset(cfg.data, self.G.resolution, device=self.device,
                                     class_names=list(self.G.class_names))
        torch.manual_seed(cfg.seed)
        if cfg.init:
            self.E = load_encoder(cfg.init, device=self.device)
            self.E.check_fits(self.G)
            self.E.requires_grad_(True)
        else:
            ecfg = EncoderConfig(resolution=self.G.resolution, dim_z=self.G.config.dim_z,
                                 n_classes=self.G.config.n_classes, ch=cfg.ch)
            self.E = Encoder(ecfg, class_names=list(self.G.class_names)).to(self.device)
        self.opt = torch.optim.Adam(self.E.parameters(), lr=cfg.lr, betas=(0.9, 0.99))
        self.amp_dtype = torch.bfloat16 if (cfg.amp == "bf16" or (cfg.amp == "auto" and self.device.type == "cuda")) \
            else None
        self.step_count = 0
        self.rng = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        fixed = torch.Generator().manual_seed(4321)
        k = self.G.config.n_classes
        self.fixed_z = torch.randn(min(k, 8), self.G.config.dim_z, generator=fixed).to(self.device)
        self.fixed_y = torch.arange(min(k, 8), device=self.device)

    # ------------------------------------------------------------------------------------------ one step
    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _set_learning_rate(self) -> None:
        """Cosine decay from ``lr`` to zero over ``steps``."""
        scale = 0.5 * (1 + math.cos(math.pi * min(1.0, self.step_count / self.cfg.steps)))
        for group in self.opt.param_groups:
            group["lr"] = self.cfg.lr * scale

    def _batch(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, int]:
        """Pictures, classes, true latents of the generated part, and how many pictures are generated."""
        cfg, G = self.cfg, self.G
        n_real = int(round(cfg.batch_size * cfg.real_fraction)) if self.data is not None else 0
        n_gen = cfg.batch_size - n_real
        z = torch.randn(n_gen, G.config.dim_z, generator=self.rng, device=self.device)
        y = torch.randint(0, G.config.n_classes, (n_gen,), generator=self.rng, device=self.device)
        with torch.no_grad():
            x = G.synthesize(z, classes=y).float()
        if n_real:
            xr, yr = self.data.sample(n_real, self.rng)
            xr = data_augment(xr, self.rng)
            x, y = torch.cat([x, xr]), torch.cat([y, yr])
        return x, y, z, n_gen

    def step(self) -> dict[str, float]:
        cfg = self.cfg
        self._set_learning_rate()
        self.E.train()
        x, y, z, n_gen = self._batch()
        logs: dict[str, float] = {}
        with self._autocast():  # E, and G and D on E's output (bf16 when asked; the losses in float32)
            z_hat, logits = self.E(x)
            z_hat, logits = z_hat.float(), logits.float()
            recon = self.G.synthesize(z_hat, classes=y).float()
            target_features = recon_features = None
            if self.D is not None and cfg.w_feature > 0:
                with torch.no_grad():
                    target_features = self.D.feature_vector(x).float()
                recon_features = self.D.feature_vector(recon).float()
        loss = cfg.w_pixel * F.mse_loss(recon, x)
        logs["pixel"] = float(F.mse_loss(recon.detach(), x))
        if n_gen and cfg.w_latent > 0:
            lat = F.mse_loss(z_hat[:n_gen], z)
            loss = loss + cfg.w_latent * lat
            logs["latent"] = float(lat.detach())
        if recon_features is not None:
            feat = (1 - F.cosine_similarity(recon_features, target_features, dim=1, eps=1e-12)).mean()  # 0: aligned
            loss = loss + cfg.w_feature * feat
            logs["feature"] = float(feat.detach())
        if cfg.w_class > 0:
            ce = F.cross_entropy(logits, y)
            loss = loss + cfg.w_class * ce
            logs["class_acc"] = float((logits.detach().argmax(1) == y).float().mean())
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.step_count += 1
        logs["loss"] = float(loss.detach())
        return logs

    # --------------------------------------------------------------------------------------------- loop
    def train(self, progress: bool = True) -> Path:
        """Run until ``steps`` are done (resuming counts), then write ``encoder.safetensors``; returns its path."""
        cfg = self.cfg
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=cfg.steps, initial=self.step_count, desc="train-encoder", unit="step",
                       dynamic_ncols=True)
        t0 = time.perf_counter()
        with (self.out / "log.jsonl").open("a") as log:
            try:
                while self.step_count < cfg.steps:
                    logs = self.step()
                    if not all(math.isfinite(v) for v in logs.values()):
                        raise FloatingPointError(f"non-finite loss at step {self.step_count}: {logs}")
                    if self.step_count % cfg.log_every == 0 or self.step_count == cfg.steps:
                        rec = {"step": self.step_count, "seconds": round(time.perf_counter() - t0, 2), **logs}
                        log.write(json.dumps(rec) + "\n")
                        log.flush()
                    if bar is not None:
                        bar.update(1)
                        bar.set_postfix(pix=f"{logs['pixel']:.3f}", feat=f"{logs.get('feature', 0):.3f}")
                    if self.step_count % cfg.sample_every == 0 or self.step_count == cfg.steps:
                        self.save_samples()
                    if self.step_count % cfg.checkpoint_every == 0 or self.step_count == cfg.steps:
                        self.save_state()
            finally:
                if bar is not None:
                    bar.close()
        return self.export(self.out / "encoder.safetensors")

    @torch.no_grad()
    def save_samples(self) -> Path:
        """Top row: generated pictures (and real ones, if any); bottom row: ``G(E(x))``."""
        self.E.eval()
        x = self.G.synthesize(self.fixed_z, classes=self.fixed_y).float()
        y = self.fixed_y
        if self.data is not None:
            idx = torch.linspace(0, len(self.data) - 1, 8).long().to(self.device)
            x, y = torch.cat([x, self.data.images[idx]]), torch.cat([y, self.data.labels[idx]])
        z_hat, _ = self.E(x)
        recon = self.G.synthesize(z_hat.float(), classes=y)
        pic = grid(to_uint8(torch.cat([x, recon])), len(x))
        return save_png(pic, self.out / "samples" / f"step_{self.step_count:06d}.png")

    def save_state(self) -> Path:
        meta = {"step": self.step_count, "config": asdict(self.cfg)}
        extra = {"rng/torch": torch.get_rng_state(), "rng/train": self.rng.get_state()}
        return write_state(self.out / "state.safetensors", {"E": self.E}, {"opt": self.opt}, meta, extra)

    def load_state(self, path: str | Path) -> None:
        tensors, meta = read_state(path)
        restore(tensors, meta, {"E": self.E}, {"opt": self.opt}, self.device)
        torch.set_rng_state(tensors["rng/torch"])
        self.rng.set_state(tensors["rng/train"].to(self.rng.device) if self.device.type != "cpu"
                           else tensors["rng/train"])
        self.step_count = int(meta["step"])

    def export(self, path: str | Path, half: bool = False) -> Path:
        prov = {"trainer": "neural-collage train-encoder", "steps": self.step_count,
                "generator": self.cfg.generator, "generator_provenance": {
                    k: self.G.provenance.get(k) for k in ("trainer", "iterations") if k in self.G.provenance},
                "config": asdict(self.cfg)}
        return save_encoder(self.E.eval(), path, provenance=prov, dtype=torch.float16 if half else None)


def train_encoder(cfg: EncoderTrainConfig, resume: bool = True, progress: bool = True) -> Path:
    """Train (resuming from ``out/state.safetensors`` when present and ``resume``); returns the encoder's path."""
    tr = EncoderTrainer(cfg)
    state = Path(cfg.out) / "state.safetensors"
    if resume and state.is_file():
        tr.load_state(state)
    return tr.train(progress=progress)
