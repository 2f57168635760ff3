"""Training the causal VAE: L1 + MSE + SSIM + KL (+ an optional adversarial loss) on mixed clips.

Each step takes one batch of one shape: images (1 frame) and videos (1 + 4k frames) at several
sizes, chosen per batch by the data stream (see kino.data.world). Checkpoints hold the model
(with the latent statistics measured on training clips), the optimizer, RNG states and the data
position, so `resume` continues exactly where a run stopped.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from kino.errors import InputError
from kino.models.vae import CausalVAE, vae_preset
from kino.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint
from kino.train.losses import (
    PatchDiscriminator,
    generator_adv_loss,
    hinge_d_loss,
    kl_divergence,
    psnr,
    ssim,
)
from kino.train.schedule import lr_at  # one schedule for both trainers: warmup, then cosine to min_lr_ratio

WORLD = "world"


@dataclass(frozen=True)
class VAETrainConfig:
    """A VAE training recipe. The defaults are the world-tiny recipe for a CPU core."""

    preset: str = "world-tiny"
    steps: int = 2000
    batch_size: int = 2
    # 3e-4, not higher: every causal conv has 3 temporal taps that see the same frame on images, so its
    # effective 2D step is ~3x Adam's (5e-4..3e-3 stalled near 15 dB in 300 steps; 1e-4..3e-4 did not).
    lr: float = 3e-4
    warmup: int = 50
    min_lr_ratio: float = 0.05  # cosine decay to lr * this at the last step
    sizes: tuple[tuple[int, int], ...] = ((64, 64), (96, 64), (64, 96))  # (width, height)
    num_frames: tuple[int, ...] = (9, 17)
    image_prob: float = 0.3  # share of batches that are images
    fps: float = 8.0
    # L1 alone stalls at "background only" on the world's flat scenes (a single 64x64 frame stays
    # near 15 dB for ~200 steps); the squared error's larger pull on the object's big errors gets past
    # it (34 dB on that frame in 300 steps), so both are used. Measured 2026-11-22, 2-core CPU.
    mse_weight: float = 4.0
    ssim_weight: float = 0.5
    kl_weight: float = 1e-6
    adversarial: bool = False
    adv_weight: float = 0.05
    adv_start: int = 1000
    grad_clip: float = 1.0
    checkpoint_every: int = 200
    keep: int = 3
    log_every: int = 25
    stats_clips: int = 64  # training clips used to measure the latent mean and std
    code_fit_clips: int = 256  # training clips whose blocks fit a fresh block code (PCA), world-tiny v2
    # Decoder fine-tuning (as Stable Diffusion's ft-MSE VAE decoder): with the encoder frozen, the
    # latent space (and its stored statistics) stays fixed, so a DiT can train on it while the
    # decoder keeps improving.
    train_encoder: bool = True
    seed: int = 0

    def __post_init__(self) -> None:
        vae_preset(self.preset)  # raises for an unknown name
        object.__setattr__(self, "sizes", tuple(tuple(int(v) for v in s) for s in self.sizes))
        object.__setattr__(self, "num_frames", tuple(int(t) for t in self.num_frames))
        if self.steps < 0 or self.batch_size < 1 or self.checkpoint_every < 1 or self.log_every < 1:
            raise InputError("batch_size, checkpoint_every and log_every must be >= 1 and steps >= 0 (0: save the "
                             "initialized model, e.g. a fitted block code)")
        if not self.lr > 0:
            raise InputError(f"lr {self.lr} must be > 0")


def _architecture(config) -> dict:
    """The fields of a VAEConfig that shape the weights (streaming settings left out)."""
    return {k: v for k, v in asdict(config).items()
            if k not in ("chunk_frames", "tile_size", "tile_overlap", "latent_scale")}


def make_dataset(data: str, cfg: VAETrainConfig, seed: int, start: int = 0, group: int | None = None):
    """The training stream: the world (`data == "world"`) or random crops of a folder of videos."""
    group = cfg.batch_size if group is None else group
    if data == WORLD:
        from kino.data.world import WorldClips

        return WorldClips(seed=seed, sizes=cfg.sizes, num_frames=cfg.num_frames, fps=cfg.fps,
                          caption_levels=(), image_prob=cfg.image_prob, group=group, start=start)
    from kino.data.folder import FolderClips

    return FolderClips(data, seed=seed, sizes=cfg.sizes, num_frames=cfg.num_frames,
                       image_prob=cfg.image_prob, group=group, start=start)


@torch.no_grad()
def measure_latent_stats(model: CausalVAE, clips, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std (Z,) of the raw posterior means of `count` clips."""
    was = model.training
    model.eval()
    total = total_sq = None
    n = 0
    for i, item in zip(range(count), clips, strict=False):
        del i
        mean, _ = model.moments(item["video"][None])  # (1, Z, T', H', W')
        flat = mean.transpose(0, 1).reshape(mean.shape[1], -1).double()  # (Z, N)
        total = flat.sum(1) if total is None else total + flat.sum(1)
        total_sq = flat.pow(2).sum(1) if total_sq is None else total_sq + flat.pow(2).sum(1)
        n += flat.shape[1]
    model.train(was)
    mu = total / n
    return mu.float(), (total_sq / n - mu**2).clamp_min(0).sqrt().float()


def train_vae(cfg: VAETrainConfig, out_dir: str | Path, data: str = WORLD, resume: bool = False,
              device: str | torch.device = "cpu", progress: bool = True,
              init_from: str | Path | None = None, overwrite: bool = False) -> Path:
    """Train (or resume) a VAE into `out_dir`; returns the last checkpoint's folder.

    A new run into a folder that holds one is refused unless `overwrite` (which removes its checkpoints
    first, as `kino train dit --overwrite` does).

    `init_from` (a VAE folder or checkpoint) starts a new run from those weights and latent
    statistics, e.g. to fine-tune the decoder with `cfg.train_encoder=False`.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    out = Path(out_dir)
    if not resume and (held := latest_checkpoint(out)) is not None:  # a new run would restart at step 0 over it
        if not overwrite:
            raise InputError(f"{out} already holds a run at {held.name}; continue it with --resume, train into a "
                             f"new --out, or replace it with --overwrite")
        import shutil

        for old in list_checkpoints(out):
            shutil.rmtree(old)
    torch.manual_seed(cfg.seed)
    if init_from is not None:
        model = CausalVAE.from_pretrained(init_from, device=device).train()
        if _architecture(model.config) != _architecture(vae_preset(cfg.preset)):
            raise InputError(f"{init_from} is not a {cfg.preset} VAE; pass its preset with --preset")
    else:
        model = CausalVAE(vae_preset(cfg.preset)).to(device).train()
    if not cfg.train_encoder:
        model.encoder.requires_grad_(False)
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    disc = d_opt = None
    if cfg.adversarial:
        disc = PatchDiscriminator().to(device)
        d_opt = torch.optim.AdamW(disc.parameters(), lr=cfg.lr * 0.5, betas=(0.5, 0.9))
    start = 0
    last = latest_checkpoint(out) if resume else None
    if last is not None:
        ck = load_checkpoint(last, model, opt)
        start = ck.step
        if disc is not None and "disc" in ck.extra:
            disc.load_state_dict(ck.extra["disc"])
            d_opt.load_state_dict(ck.extra["d_opt"])
    elif resume:
        Console(stderr=True).print(f"no checkpoint in {out}; starting from step 0")
    if last is None and init_from is None and model.code is not None:  # a fresh block code: PCA of training blocks
        fit_clips = make_dataset(data, cfg, cfg.seed + 2_000_003, group=1)
        kept = model.init_block_code(item["video"].to(device) for _, item in zip(range(cfg.code_fit_clips),
                                                                                 fit_clips, strict=False))
        Console(stderr=True).print(f"block code fitted on {cfg.code_fit_clips} clips: variance kept "
                                   f"{kept[0]:.4f} (frame 0), {kept[1]:.4f} (later blocks)")
    stream = iter(make_dataset(data, cfg, cfg.seed, start=start * cfg.batch_size))
    stats_clips = make_dataset(data, cfg, cfg.seed + 1_000_003, group=1)

    def batch() -> torch.Tensor:
        items = [next(stream) for _ in range(cfg.batch_size)]
        return torch.stack([it["video"] for it in items]).to(device)  # (B, 3, T, H, W)

    def checkpoint(step: int) -> Path:
        if cfg.train_encoder:  # a frozen encoder keeps the statistics it came with
            model.set_latent_stats(*measure_latent_stats(model, iter(stats_clips), cfg.stats_clips))
        extra: dict[str, Any] = {"train": asdict(cfg), "data": data}
        if disc is not None:
            extra |= {"disc": disc.state_dict(), "d_opt": d_opt.state_dict()}
        return save_checkpoint(out, step, model, model.config, opt, data_position=step * cfg.batch_size,
                               extra=extra, keep=cfg.keep)

    console = Console(width=None if Console().is_terminal else 160, log_path=False)  # whole lines, no source location
    path = last
    frames_seen, t0 = 0, time.perf_counter()
    cols = (TextColumn("train vae"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeRemainingColumn())
    with Progress(*cols, console=console, disable=not progress, transient=False) as bar:
        task = bar.add_task("train", total=cfg.steps, completed=start, info="")
        for step in range(start, cfg.steps):
            x = batch()
            for group in opt.param_groups:
                group["lr"] = lr_at(step, cfg)
            outp = model(x)
            l1 = (outp.recon - x).abs().mean()
            mse = (outp.recon - x).pow(2).mean()
            s = ssim(outp.recon, x)
            kl = kl_divergence(outp.mean, outp.logvar)
            loss = l1 + cfg.mse_weight * mse + cfg.ssim_weight * (1 - s) + cfg.kl_weight * kl
            use_adv = disc is not None and step >= cfg.adv_start
            if use_adv:
                loss = loss + cfg.adv_weight * generator_adv_loss(disc(outp.recon))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(trainable, cfg.grad_clip)
            opt.step()
            if use_adv:
                d_loss = hinge_d_loss(disc(x), disc(outp.recon.detach()))
                d_opt.zero_grad(set_to_none=True)
                d_loss.backward()
                d_opt.step()
            frames_seen += x.shape[0] * x.shape[2]
            fps = frames_seen / (time.perf_counter() - t0)
            info = f"loss {loss.item():.4f} psnr {psnr(outp.recon, x).item():.1f} {fps:.0f} frames/s"
            bar.update(task, advance=1, info=info)
            if (step + 1) % cfg.log_every == 0 or step == start:
                console.log(f"step {step + 1} {info} l1 {l1.item():.4f} ssim {s.item():.4f} kl {kl.item():.2f} "
                            f"lr {lr_at(step, cfg):.2e} shape {tuple(x.shape)}")
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                path = checkpoint(step + 1)
                console.log(f"checkpoint {path}")
    return path if path is not None else checkpoint(cfg.steps)
