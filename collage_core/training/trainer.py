"""Training a class-conditional GAN: the SNGAN-projection recipe, made to work on a few hundred images.

Recipe: the core :class:`~collage_core.generator.Generator` (conditional BN by class id) and the SN-ResNet
projection :class:`~collage_core.discriminator.Discriminator`, hinge loss, ``n_dis`` D steps per G step,
Adam(beta1=0, beta2=0.9). For small data: DiffAugment on real and fake images before D, classic augmentation
of the real images, and an exponential moving average (EMA) of G's weights, whose BN statistics are
re-estimated before export. bf16 autocast and channels_last on CUDA; runs on the CPU too.

Everything a run writes goes to ``out``:
``state.safetensors`` (resumable training state: G, D, EMA, optimisers, RNG; no pickle),
``samples/iter_XXXXXX.png`` (one row per class, EMA generator, fixed latents), ``log.jsonl`` (losses),
and on :func:`export` ``generator.safetensors`` / ``discriminator.safetensors`` in the native format.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.profiler import record_function

from ..checkpoints import save_discriminator, save_generator
from ..config import PAIRED_DISCRIMINATOR, DiscriminatorConfig, GeneratorConfig
from ..discriminator import Discriminator
from ..generator import Generator
from ..images import grid, save_png, to_uint8
from ..scbn import ClassCondition
from .augment import data_augment, diff_augment
from .dataset import ImageDataset
from .state import read_state, restore, write_state

DEFAULT_LAYOUT = {64: "resnet_64", 128: "resnet_small", 256: "resnet_256"}


@dataclass
class TrainConfig:
    data: str
    out: str
    resolution: int = 64
    layout: str | None = None
    ch: int = 32
    dis_ch: int = 32
    dim_z: int = 128
    batch_size: int = 32
    n_dis: int = 2
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.0
    beta2: float = 0.9
    iterations: int = 5000
    lr_decay_start: int | None = None  # linear decay of both learning rates to 0 at `iterations` from here
    ema_decay: float = 0.999
    # LeCam regularisation (Tseng et al. 2021, "Regularizing GANs under limited data"): weight, EMA decay
    lecam: float = 0.0
    lecam_decay: float = 0.99
    # R1 penalty on (augmented) real images, gamma/2 * |grad D(x)|^2, applied every r1_every D steps (lazy)
    r1_gamma: float = 0.0
    r1_every: int = 16
    diffaug: str = "color,translation,cutout"
    # "sngan": the SN-ResNet projection discriminator; "projected": small discriminators on frozen pretrained
    # EfficientNet-lite0 features (Projected GANs; needs the `train` extra), of width projected_width; "paired":
    # both, their hinge losses weighed equally
    discriminator: str = "sngan"
    projected_width: int = 64
    projected_side: int = 128  # images are resized to this side before the pretrained network
    # False: train on each style's own head only, without the expression variants (cat faces, wise monkeys...)
    variants: bool = True
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    amp: str = "auto"  # auto: bf16 autocast on CUDA, off on CPU; or "bf16" / "off"
    channels_last: bool | None = None  # None: on for CUDA
    log_every: int = 25
    sample_every: int = 250
    checkpoint_every: int = 250
    snapshot_every: int = 0  # every N iterations also keep the exported EMA generator (snapshots/), 0 = never
    sample_columns: int = 8
    num_threads: int | None = None
    # warm start: G, its EMA and D from an exported model (a folder, or an embedded name such as "emoji-animals")
    # whose layout, widths and class names match; optimisers start fresh
    init: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def resolved_layout(self) -> str:
        if self.layout:
            return self.layout
        if self.resolution not in DEFAULT_LAYOUT:
            raise ValueError(f"no default layout for resolution {self.resolution}; give layout")
        return DEFAULT_LAYOUT[self.resolution]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _device(spec: str) -> torch.device:
    if spec == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(spec)


class Trainer:
    """Holds the networks, optimisers and data of one run; :meth:`train` runs (or resumes) it."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.device = _device(cfg.device)
        if cfg.num_threads:
            torch.set_num_threads(cfg.num_threads)
        self.out = Path(cfg.out)
        if cfg.discriminator not in ("sngan", "projected", "paired"):
            raise ValueError(f"discriminator must be 'sngan', 'projected' or 'paired', not {cfg.discriminator!r}")
        self.data = ImageDataset(cfg.data, cfg.resolution, device=self.device, variants=cfg.variants)
        k = self.data.n_classes
        layout = cfg.resolved_layout()
        gcfg = GeneratorConfig.from_layout(layout, cfg.ch, cfg.dim_z, k)
        if gcfg.resolution != cfg.resolution:
            raise ValueError(f"layout {layout} makes {gcfg.resolution}px images, not {cfg.resolution}px")
        dcfg = DiscriminatorConfig.from_layout(PAIRED_DISCRIMINATOR[layout], cfg.dis_ch, k, cfg.resolution)
        torch.manual_seed(cfg.seed)
        self.G = Generator(gcfg, class_names=self.data.class_names).to(self.device)
        # the SN projection discriminator: trained (recipe "sngan"), or carried over from --init for export (the
        # manifold projection's feature objective needs one) while a projected discriminator is trained
        self.D_sngan = Discriminator(dcfg).to(self.device)
        if cfg.init:
            self._warm_start(cfg.init)
        if cfg.discriminator in ("projected", "paired"):
            from .projected import PairedDiscriminator, ProjectedDiscriminator
            self.D = ProjectedDiscriminator(k, width=cfg.projected_width, side=cfg.projected_side,
                                            seed=cfg.seed).to(self.device)
            if cfg.discriminator == "paired":
                self.D = PairedDiscriminator(self.D_sngan, self.D)
        else:
            self.D = self.D_sngan
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        betas = (cfg.beta1, cfg.beta2)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas)
        cuda = self.device.type == "cuda"
        self.amp_dtype = torch.bfloat16 if (cfg.amp == "bf16" or (cfg.amp == "auto" and cuda)) else None
        self.channels_last = cfg.channels_last if cfg.channels_last is not None else cuda
        if self.channels_last:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        self.iteration = 0
        self.d_steps = 0
        # LeCam anchors: EMAs of the mean D output on real and fake images (part of the resumable state)
        self.lecam_ema = torch.zeros(2)
        self.rng = torch.Generator(device=self.device).manual_seed(cfg.seed + 1)
        fixed = torch.Generator().manual_seed(1234)
        self.fixed_z = torch.randn(k * cfg.sample_columns, cfg.dim_z, generator=fixed).to(self.device)
        self.fixed_y = torch.arange(k).repeat_interleave(cfg.sample_columns).to(self.device)

    def _warm_start(self, name: str) -> None:
        """Copy G (the exported EMA generator) and D from the model ``name``; the configs must match exactly."""
        from ..checkpoints import CheckpointError, load_discriminator, load_generator

        folder = Path(name)
        if folder.is_dir():  # an export folder
            G = load_generator(folder / "generator.safetensors")
            D = load_discriminator(folder / "discriminator.safetensors")
        else:  # an embedded model's name
            G, D = load_generator(name), load_discriminator(name)
        if G.config != self.G.config or D.config != self.D_sngan.config:
            raise CheckpointError(f"init {name!r}: its architecture ({G.config}, {D.config}) differs from this "
                                  f"run's ({self.G.config}, {self.D_sngan.config})")
        if list(G.class_names or []) != list(self.data.class_names):
            raise CheckpointError(f"init {name!r}: its classes {list(G.class_names or [])} differ from the "
                                  f"data's {list(self.data.class_names)}")
        with torch.no_grad():
            self.G.load_state_dict({k: v.float() for k, v in G.state_dict().items()})
            self.D_sngan.load_state_dict({k: v.float() for k, v in D.state_dict().items()})

    # ------------------------------------------------------------------------------------------ one step
    def _generate(self, G: Generator, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cond = ClassCondition(y)
        return G([z], [cond] * G.config.n_map_layers)

    def _autocast(self):
        if self.amp_dtype is None:
            return torch.autocast(self.device.type, enabled=False)
        return torch.autocast(self.device.type, dtype=self.amp_dtype)

    def _real_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.data.sample(self.cfg.batch_size, self.rng)
        if self.cfg.augment:
            x = data_augment(x, self.rng)
        return x, y

    def _latents(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        z = torch.randn(n, self.cfg.dim_z, generator=self.rng, device=self.device)
        y = torch.randint(0, self.data.n_classes, (n,), generator=self.rng, device=self.device)
        return z, y

    def _aug(self, x: torch.Tensor) -> torch.Tensor:
        x = diff_augment(x, self.cfg.diffaug, self.rng) if self.cfg.diffaug else x
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def _set_learning_rates(self) -> None:
        """SNGAN's schedule: constant, then (from ``lr_decay_start``) linear decay to zero at ``iterations``."""
        cfg = self.cfg
        scale = 1.0
        if cfg.lr_decay_start is not None and self.iteration >= cfg.lr_decay_start:
            span = max(1, cfg.iterations - cfg.lr_decay_start)
            scale = max(0.0, 1.0 - (self.iteration - cfg.lr_decay_start) / span)
        for opt, lr in ((self.opt_g, cfg.lr_g), (self.opt_d, cfg.lr_d)):
            for group in opt.param_groups:
                group["lr"] = lr * scale

    def step(self) -> dict[str, float]:
        """One iteration: ``n_dis`` discriminator updates, then one generator update and the EMA update.

        The parts are labelled with ``torch.profiler.record_function`` (``benchmarks/training.py`` reads them).
        """
        cfg = self.cfg
        self._set_learning_rates()
        self.G.train()
        self.D.train()
        logs: dict[str, float] = {}
        for _ in range(cfg.n_dis):
            with record_function("augment real"):
                real, y_real = self._real_batch()
            z, y_fake = self._latents(cfg.batch_size)
            r1 = cfg.r1_gamma > 0 and self.d_steps % cfg.r1_every == 0
            with self._autocast():
                with torch.no_grad(), record_function("G forward (D step)"):
                    fake = self._generate(self.G, z, y_fake)
                with record_function("DiffAugment"):
                    real_in = self._aug(real)
                    fake_in = self._aug(fake.detach())
                if r1:
                    real_in = real_in.detach().requires_grad_(True)
                with record_function("D forward"):
                    d_real = self.D(real_in, y_real).float()
                    d_fake = self.D(fake_in, y_fake).float()
                    loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
                    loss_d = loss_d + self._lecam(d_real, d_fake)
            if r1:
                with record_function("R1 penalty"):
                    (grad,) = torch.autograd.grad(d_real.sum(), real_in, create_graph=True)
                    penalty = grad.float().square().sum(dim=(1, 2, 3)).mean()
                    # lazy regularisation: every r1_every steps, scaled up by r1_every (StyleGAN2)
                    loss_d = loss_d + cfg.r1_gamma / 2 * penalty * cfg.r1_every
                    logs["r1"] = float(penalty.detach())
            with record_function("D backward"):
                self.opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
            with record_function("optimiser (D)"):
                self.opt_d.step()
            self.d_steps += 1
        z, y = self._latents(cfg.batch_size)
        self.D.requires_grad_(False)
        with self._autocast():
            with record_function("G forward (G step)"):
                fake = self._generate(self.G, z, y)
            with record_function("DiffAugment"):
                fake_in = self._aug(fake)
            with record_function("D forward (G step)"):
                loss_g = -self.D(fake_in, y).float().mean()
        with record_function("G step backward (D, G)"):
            self.opt_g.zero_grad(set_to_none=True)
            loss_g.backward()
        with record_function("optimiser (G)"):
            self.opt_g.step()
        self.D.requires_grad_(True)
        with record_function("EMA of G"):
            self._ema_update()
        self.iteration += 1
        logs.update(loss_d=loss_d.item(), loss_g=loss_g.item(), d_real=d_real.mean().item(),
                    d_fake=d_fake.mean().item())
        return logs

    def _lecam(self, d_real: torch.Tensor, d_fake: torch.Tensor) -> torch.Tensor:
        """LeCam regulariser: keeps D's outputs on reals near the fakes' running mean and vice versa."""
        cfg = self.cfg
        if cfg.lecam <= 0:
            return d_real.new_zeros(())
        with torch.no_grad():
            means = torch.stack([d_real.mean(), d_fake.mean()]).cpu()
            self.lecam_ema.lerp_(means, 1 - cfg.lecam_decay)
        ema_real, ema_fake = (float(v) for v in self.lecam_ema)
        reg = F.relu(d_real - ema_fake).square().mean() + F.relu(ema_real - d_fake).square().mean()
        return cfg.lecam * reg

    @torch.no_grad()
    def _ema_update(self) -> None:
        # warm-up: a short effective horizon early on, so the EMA does not average in the random init
        decay = min(self.cfg.ema_decay, (1 + self.iteration) / (10 + self.iteration))
        for pe, p in zip(self.G_ema.parameters(), self.G.parameters()):
            pe.lerp_(p.detach(), 1 - decay)
        for be, b in zip(self.G_ema.buffers(), self.G.buffers()):
            be.copy_(b)

    # --------------------------------------------------------------------------------------------- loop
    def train(self, iterations: int | None = None, progress: bool = True,
              callback: Callable[[int, dict[str, float]], None] | None = None) -> None:
        """Run until ``iterations`` (default: the config's) are done, writing samples/checkpoints/logs."""
        cfg = self.cfg
        total = iterations or cfg.iterations
        self.out.mkdir(parents=True, exist_ok=True)
        (self.out / "config.json").write_text(json.dumps(asdict(cfg), indent=1))
        bar = None
        if progress:
            from tqdm import tqdm
            bar = tqdm(total=total, initial=self.iteration, desc="train", unit="it", dynamic_ncols=True)
        log = (self.out / "log.jsonl").open("a")
        t0 = time.perf_counter()
        try:
            while self.iteration < total:
                logs = self.step()
                if not all(math.isfinite(v) for v in logs.values()):
                    raise FloatingPointError(f"non-finite loss at iteration {self.iteration}: {logs}")
                if self.iteration % cfg.log_every == 0 or self.iteration == total:
                    rec = {"iteration": self.iteration, "seconds": round(time.perf_counter() - t0, 2), **logs}
                    log.write(json.dumps(rec) + "\n")
                    log.flush()
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(d=f"{logs['loss_d']:.3f}", g=f"{logs['loss_g']:.3f}")
                if callback is not None:
                    callback(self.iteration, logs)
                if self.iteration % cfg.sample_every == 0 or self.iteration == total:
                    self.save_samples()
                if self.iteration % cfg.checkpoint_every == 0 or self.iteration == total:
                    self.save_state()
                if cfg.snapshot_every and self.iteration % cfg.snapshot_every == 0:
                    self.save_snapshot()
        finally:
            log.close()
            if bar is not None:
                bar.close()

    @torch.no_grad()
    def save_samples(self, path: Path | None = None) -> Path:
        imgs = []
        for i in range(0, len(self.fixed_z), 64):
            imgs.append(self._generate(self.G_ema, self.fixed_z[i:i + 64], self.fixed_y[i:i + 64]).float())
        pic = grid(to_uint8(torch.cat(imgs)), self.cfg.sample_columns)
        return save_png(pic, path or self.out / "samples" / f"iter_{self.iteration:06d}.png")

    # ----------------------------------------------------------------------------------- state and export
    def save_state(self, path: Path | None = None) -> Path:
        """Everything needed to resume, as one safetensors file (tensors + JSON metadata); no pickle."""
        meta = {"iteration": self.iteration, "d_steps": self.d_steps, "config": asdict(self.cfg)}
        extra = {"lecam_ema": self.lecam_ema, "rng/torch": torch.get_rng_state(), "rng/train": self.rng.get_state()}
        return write_state(path or self.out / "state.safetensors", self._modules(), self._optimizers(), meta, extra)

    def load_state(self, path: str | Path) -> None:
        tensors, meta = read_state(path)
        restore(tensors, meta, self._modules(), self._optimizers(), self.device)
        torch.set_rng_state(tensors["rng/torch"])
        self.rng.set_state(tensors["rng/train"].to(self.rng.device) if self.device.type != "cpu"
                           else tensors["rng/train"])
        self.iteration = int(meta["iteration"])
        self.d_steps = int(meta.get("d_steps", self.iteration * self.cfg.n_dis))
        if "lecam_ema" in tensors:
            self.lecam_ema = tensors["lecam_ema"].float().cpu()

    def _modules(self) -> dict[str, torch.nn.Module]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    def _optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"opt_g": self.opt_g, "opt_d": self.opt_d}

    @torch.no_grad()
    def recalibrate_ema(self, batches: int = 32) -> None:
        """Re-estimate the EMA generator's BN statistics for its own weights (cumulative average)."""
        G = self.G_ema
        bns = [m for m in G.modules() if hasattr(m, "avg_mean") and hasattr(m, "momentum")]
        for m in bns:
            m.avg_mean.zero_()
            m.avg_var.zero_()
        G.train()
        gen = torch.Generator(device=self.device).manual_seed(99)
        for i in range(batches):
            for m in bns:
                m.momentum = 1.0 / (i + 1)
            z = torch.randn(self.cfg.batch_size, self.cfg.dim_z, generator=gen, device=self.device)
            y = torch.arange(self.cfg.batch_size, device=self.device) % self.data.n_classes
            self._generate(G, z, y)
        for m in bns:
            m.momentum = 0.1
        G.eval()

    def save_snapshot(self) -> Path:
        """``snapshots/generator_XXXXXX.safetensors``: the EMA generator as :meth:`export` writes it (float16), to
        measure quality against iterations afterwards (``neural-collage eval`` on each)."""
        self.recalibrate_ema()
        prov = {"trainer": "neural-collage", "iterations": self.iteration, "config": asdict(self.cfg),
                "data": self.data.provenance, "snapshot": True}
        path = self.out / "snapshots" / f"generator_{self.iteration:06d}.safetensors"
        return save_generator(self.G_ema.float(), path, provenance=prov, dtype=torch.float16)

    def export(self, folder: str | Path, half: bool = True, provenance: dict[str, Any] | None = None
               ) -> tuple[Path, Path]:
        """Write ``generator.safetensors`` (EMA, BN recalibrated) and ``discriminator.safetensors``."""
        folder = Path(folder)
        self.recalibrate_ema()
        prov = {"trainer": "neural-collage", "iterations": self.iteration, "config": asdict(self.cfg),
                "data": self.data.provenance, **(provenance or {})}
        dtype = torch.float16 if half else None
        g = save_generator(self.G_ema.float(), folder / "generator.safetensors", provenance=prov, dtype=dtype)
        if self.cfg.discriminator == "projected":
            prov["discriminator"] = (f"the SN projection discriminator of {self.cfg.init!r}, carried over unchanged "
                                     f"(this run trained a projected discriminator)")
        d = save_discriminator(self.D_sngan.float(), folder / "discriminator.safetensors", provenance=prov,
                               dtype=dtype)
        return g, d


def train(cfg: TrainConfig, resume: bool = True, progress: bool = True) -> Trainer:
    """Train (resuming from ``out/state.safetensors`` when present and ``resume``) and return the trainer."""
    tr = Trainer(cfg)
    state = Path(cfg.out) / "state.safetensors"
    if resume and state.is_file():
        tr.load_state(state)
    tr.train(progress=progress)
    return tr
