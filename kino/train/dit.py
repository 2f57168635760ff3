"""Training the DiT with rectified flow on VAE latents of world clips (captions at every level).

Each step draws a batch of world clips, encodes them with a frozen VAE and the text encoder, samples
logit-normal timesteps (shifted by the token count), drops captions for classifier-free guidance, and
regresses the velocity. Batches either share one shape (plain SDPA) or, with `packed`, mix sizes and
lengths in one sequence with block-diagonal attention (NaViT's patch n' pack). EMA weights are kept and
are what the final pipeline directory holds. Checkpoints (kino.train.checkpoint) hold the model, optimizer,
EMA, RNG states and data position, so `resume` continues exactly.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from kino.diffusion.conditioning import ConditionConfig, sample_masks
from kino.diffusion.flow import FlowConfig, drop_captions, flow_loss, flow_path, sample_t, token_shift
from kino.errors import InputError
from kino.models.dit import DIT_PRESETS, DiT, DiTConfig, DiTPreset, autocast_for


@dataclass(frozen=True)
class DiTTrainConfig:
    """A DiT training recipe; the defaults train world-tiny on a CPU."""

    preset: DiTPreset = DiTPreset.WORLD_TINY
    steps: int = 4000
    batch_size: int = 8
    lr: float = 3e-4
    warmup: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    sizes: tuple[tuple[int, int], ...] = ((64, 64), (96, 64), (64, 96))  # (width, height)
    num_frames: tuple[int, ...] = (9, 17)
    image_prob: float = 0.1
    fps: float = 8.0
    caption_levels: tuple[str, ...] = ("short", "medium", "detailed")
    packed: bool = False  # mix sizes within a batch (block-diagonal attention) instead of one shape per batch
    flow: FlowConfig = field(default_factory=FlowConfig)
    conditioning: ConditionConfig = field(default_factory=ConditionConfig)  # clean condition frames (modes)
    gradient_checkpointing: bool = False
    compile: bool = False
    checkpoint_every: int = 250
    keep: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "preset", DiTPreset(self.preset))
        object.__setattr__(self, "sizes", tuple(tuple(int(v) for v in s) for s in self.sizes))
        object.__setattr__(self, "num_frames", tuple(int(t) for t in self.num_frames))
        if isinstance(self.conditioning, dict):  # from a saved config
            object.__setattr__(self, "conditioning", ConditionConfig(**self.conditioning))
        if min(self.steps, self.batch_size, self.checkpoint_every) < 1 or self.lr <= 0:
            raise InputError("steps, batch_size and checkpoint_every must be >= 1 and lr > 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


def lr_at(step: int, cfg: DiTTrainConfig) -> float:
    """Linear warmup then constant (rectified-flow DiTs train well at a flat rate; EMA smooths)."""
    return cfg.lr * min(1.0, (step + 1) / max(cfg.warmup, 1))


@torch.no_grad()
def update_ema(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * model, parameter by parameter."""
    for e, p in zip(ema.parameters(), model.parameters(), strict=True):
        e.lerp_(p.detach(), 1.0 - decay)


def world_stream(cfg: DiTTrainConfig, start: int) -> Iterable[dict]:
    """The world clips from data position `start`: one shape per batch unless packed."""
    from kino.data.world import WorldClips

    group = 1 if cfg.packed else cfg.batch_size
    return WorldClips(seed=cfg.seed, sizes=cfg.sizes, num_frames=cfg.num_frames, fps=cfg.fps,
                      caption_levels=cfg.caption_levels, image_prob=cfg.image_prob, group=group, start=start)


class DiTTrainer:
    """Holds the model, EMA, optimizer, frozen VAE and text encoder; `step(batch)` trains once."""

    def __init__(self, cfg: DiTTrainConfig, vae, text_encoder, device: torch.device | str = "cpu",
                 model_config: DiTConfig | None = None) -> None:
        self.cfg, self.device = cfg, torch.device(device)
        self.vae = vae.to(self.device).eval().requires_grad_(False)
        self.text_encoder = text_encoder
        self.text_encoder.device = self.device
        torch.manual_seed(cfg.seed)
        config = model_config or DIT_PRESETS[cfg.preset](
            in_channels=vae.config.latent_channels, out_channels=vae.config.latent_channels,
            text_dim=text_encoder.dim,
        )  # model_config overrides the preset (tests, experiments)
        self.model = DiT(config).to(self.device).train()
        self.model.gradient_checkpointing = cfg.gradient_checkpointing
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.99),
                                     weight_decay=cfg.weight_decay)
        self.forward = self.model.compile_blocks() if cfg.compile else self.model  # state dict unchanged
        self.step_count = 0

    def loss(self, videos: list[torch.Tensor], captions: list[str], generator: torch.Generator) -> torch.Tensor:
        """Flow-matching loss of clips (3, T_i, H_i, W_i) with their captions."""
        cfg, dev = self.cfg, self.device
        captions = drop_captions(captions, cfg.flow.caption_dropout, generator)
        text = self.text_encoder.encode(captions).to(dev)
        p = self.model.config.patch_size
        same = all(v.shape == videos[0].shape for v in videos)
        with torch.no_grad():
            if same and not cfg.packed:
                latents = [self.vae.encode(torch.stack(videos).to(dev))]  # [(B, C, T, H, W)]
            else:
                latents = [self.vae.encode(v[None].to(dev)) for v in videos]  # [(1, C, T_i, H_i, W_i)]
        paths, weights = [], []
        for z in latents:
            tokens = z.shape[2] // p[0] * z.shape[3] // p[1] * z.shape[4] // p[2]
            shift = token_shift(tokens, cfg.flow.base_shift, cfg.flow.reference_tokens, cfg.flow.max_shift)
            t = sample_t((z.shape[0],), cfg.flow, shift, generator).to(dev)
            noise = torch.randn(z.shape, generator=generator).to(dev)
            if cfg.conditioning.prob > 0 and z.shape[2] > 1:  # clean condition frames (kino.diffusion.conditioning)
                masks = sample_masks(z.shape[0], z.shape[2], cfg.conditioning, generator)
                t, w = masks.timesteps(t).to(dev), masks.loss_weight().to(dev)  # (B, T), (B, T)
            else:
                w = None
            paths.append(flow_path(z, noise, t))
            weights.append(w)
        with autocast_for(dev):
            if len(paths) == 1:
                pred = self.forward(paths[0].x_t, paths[0].t, text=text.hidden, text_mask=text.mask)
                return flow_loss(pred, paths[0], weights[0])
            preds = self.forward([q.x_t[0] for q in paths], [q.t[0] for q in paths], text=text.hidden,
                                 text_mask=text.mask)
        # each clip's mean error, weighted by its trained size, equals the mean over all trained values
        per_frame = [q.target[0, 0, 0].numel() * q.target.shape[1] for q in paths]
        sizes = torch.tensor([q.target.numel() if w is None else float(w.sum()) * n
                              for q, w, n in zip(paths, weights, per_frame, strict=True)],
                             dtype=torch.float32, device=dev)
        losses = torch.stack([flow_loss(pr[None], q, w) for pr, q, w in zip(preds, paths, weights, strict=True)])
        return (losses * sizes).sum() / sizes.sum().clamp_min(1.0)

    def step(self, batch: list[dict]) -> float:
        """One optimizer step on a batch of data-set items; returns the loss."""
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step_count)  # a pure fn of step
        for group in self.opt.param_groups:
            group["lr"] = lr_at(self.step_count, self.cfg)
        loss = self.loss([b["video"] for b in batch], [b["caption"] for b in batch], g)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        self.opt.step()
        update_ema(self.ema, self.model, self.cfg.ema_decay)
        self.step_count += 1
        return float(loss.detach())

    def save(self, run_dir: Path) -> Path:
        from kino.train.checkpoint import save_checkpoint

        return save_checkpoint(run_dir, self.step_count, self.model, self.model.config, self.opt, self.ema,
                               data_position=self.step_count * self.cfg.batch_size,
                               extra={"train": _plain(asdict(self.cfg))}, keep=self.cfg.keep)

    def resume(self, run_dir: Path) -> bool:
        """Load the latest checkpoint in run_dir, if any; True when one was loaded."""
        from kino.train.checkpoint import latest_checkpoint, load_checkpoint

        last = latest_checkpoint(run_dir)
        if last is None:
            return False
        self.step_count = load_checkpoint(last, self.model, self.opt, self.ema).step
        return True


def train_dit(cfg: DiTTrainConfig, vae, out_dir: str | Path, resume: bool = False,
              device: torch.device | str = "cpu", data: Callable[[DiTTrainConfig, int], Iterable[dict]] | None = None,
              on_step: Callable[[int, int, float], None] | None = None,
              model_config: DiTConfig | None = None) -> Path:
    """Train (or resume) into out_dir/checkpoints and write the EMA pipeline to out_dir/pipeline.

    data(cfg, start) gives the stream of items {"video", "caption"} from data position `start` (default:
    the world). on_step(step, total, loss) reports progress; model_config replaces the preset's DiT config.
    Returns the pipeline directory.
    """
    from kino.models.text import TextEncoder
    from kino.pipeline import KinoPipeline

    out = Path(out_dir)
    trainer = DiTTrainer(cfg, vae, TextEncoder(), device, model_config)
    if resume:
        trainer.resume(out / "checkpoints")
    stream: Iterator[dict] = iter((data or world_stream)(cfg, trainer.step_count * cfg.batch_size))
    while trainer.step_count < cfg.steps:
        loss = trainer.step([next(stream) for _ in range(cfg.batch_size)])
        if not math.isfinite(loss):
            raise InputError(f"the loss became {loss} at step {trainer.step_count}; lower --lr")
        if trainer.step_count % cfg.checkpoint_every == 0 or trainer.step_count == cfg.steps:
            trainer.save(out / "checkpoints")
        if on_step is not None:
            on_step(trainer.step_count, cfg.steps, loss)
    pipe = KinoPipeline(trainer.ema, trainer.vae, trainer.text_encoder, device=device)
    return pipe.save_pretrained(out / "pipeline")


def _plain(d):
    """Enums and tuples as JSON-ready values."""
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return str(d) if hasattr(d, "value") else d
