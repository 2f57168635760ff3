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
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch

from kino.diffusion.conditioning import ConditionConfig, sample_masks
from kino.diffusion.flow import FlowConfig, flow_loss, flow_path, sample_t
from kino.errors import InputError
from kino.models.dit import DIT_PRESETS, DiT, DiTConfig, DiTPreset, autocast_for
from kino.train.schedule import LRSchedule, lr_at

__all__ = ["DiTTrainConfig", "DiTTrainer", "LRSchedule", "Prepared", "StepStats", "lr_at", "preset_for_vae",
           "update_ema"]


def preset_for_vae(vae_config) -> DiTPreset:
    """The DiT design made for a VAE's latent: world-tiny-v2 (1x4x4 patches, x-prediction) for a 4x spatial
    latent such as the built-in v2 VAE's, world-tiny (v1: 1x2x2 patches, velocity) for an 8x one. Both keep a
    64x64x17 clip at 80 tokens."""
    return DiTPreset.WORLD_TINY_V2 if vae_config.spatial_factor <= 4 else DiTPreset.WORLD_TINY


@dataclass(frozen=True)
class DiTTrainConfig:
    """A DiT training recipe; the defaults train world-tiny on a CPU."""

    preset: DiTPreset = DiTPreset.WORLD_TINY
    steps: int = 4000
    batch_size: int = 8  # the global batch: clips per optimizer step over all ranks and accumulation
    grad_accum: int = 1  # micro-batches per optimizer step on each rank
    lr: float = 3e-4
    warmup: int = 100
    schedule: LRSchedule = LRSchedule.CONSTANT
    min_lr_ratio: float = 0.1  # the cosine schedule's final rate, as a fraction of lr
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    sizes: tuple[tuple[int, int], ...] = ((64, 64), (96, 64), (64, 96))  # (width, height)
    num_frames: tuple[int, ...] = (9, 17)
    image_prob: float = 0.1
    # Images first (issue 18): the first image_steps optimizer steps train on 1-frame samples only (world:
    # rendered as images; cache or manifest data: every clip's first frame), then the configured mix.
    image_steps: int = 0
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
        try:
            object.__setattr__(self, "schedule", LRSchedule(self.schedule))
        except ValueError:
            raise InputError(f"schedule {self.schedule!r} is not one of "
                             f"{', '.join(s.value for s in LRSchedule)}") from None
        if self.grad_accum < 1 or self.batch_size % self.grad_accum:
            raise InputError(f"grad_accum {self.grad_accum} must be >= 1 and divide batch_size {self.batch_size}")
        if not 0.0 <= self.min_lr_ratio <= 1.0:
            raise InputError(f"min_lr_ratio must be in [0, 1], got {self.min_lr_ratio}")
        object.__setattr__(self, "sizes", tuple(tuple(int(v) for v in s) for s in self.sizes))
        object.__setattr__(self, "num_frames", tuple(int(t) for t in self.num_frames))
        levels = ("short", "medium", "detailed")
        if not self.caption_levels or any(str(c) not in levels for c in self.caption_levels):
            raise InputError(f"caption levels {', '.join(map(str, self.caption_levels)) or '(none)'}: each must be "
                             f"one of {', '.join(levels)}")
        object.__setattr__(self, "caption_levels", tuple(str(c) for c in self.caption_levels))
        if isinstance(self.conditioning, dict):  # from a saved config
            object.__setattr__(self, "conditioning", ConditionConfig(**self.conditioning))
        if isinstance(self.flow, dict):
            object.__setattr__(self, "flow", FlowConfig(**self.flow))
        if self.image_steps < 0:
            raise InputError(f"image_steps {self.image_steps} must be >= 0")
        if min(self.steps, self.batch_size, self.checkpoint_every) < 1 or self.lr <= 0:
            raise InputError("steps, batch_size and checkpoint_every must be >= 1 and lr > 0")
        if not 0.0 <= self.ema_decay < 1.0:
            raise InputError(f"ema_decay must be in [0, 1), got {self.ema_decay}")


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


@dataclass(frozen=True)
class Prepared:
    """One micro-batch ready for the flow-matching loss: latents and the captions' text states."""

    latents: list[torch.Tensor]  # [(B, C, t, h, w)] of one shape, or [(1, C, t_i, h_i, w_i)] per clip (packed)
    text: torch.Tensor  # (B, L, D) hidden states, zero-padded
    text_mask: torch.Tensor  # (B, L) bool: the real tokens


def _keep_captions(n: int, p: float, generator: torch.Generator) -> list[bool]:
    """Which of n captions survive classifier-free-guidance dropout (probability p each), one draw each."""
    return (torch.rand(n, generator=generator) >= p).tolist()


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
        self.opt = self.make_optimizer()
        self.forward = self.model.compile_blocks() if cfg.compile else self.model  # state dict unchanged
        self.step_count = 0
        # Set by kino.train.distributed.distribute: the process layout and gradient-sync switch.
        self.dist: Any = None
        self.sync: Callable[[bool], AbstractContextManager] = lambda last: nullcontext()
        self._null_text: Any = None

    def make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the model's (possibly sharded) parameters."""
        return torch.optim.AdamW(self.model.parameters(), lr=self.cfg.lr, betas=(0.9, 0.99),
                                 weight_decay=self.cfg.weight_decay)

    def prepare_videos(self, videos: list[torch.Tensor], captions: list[str],
                       generator: torch.Generator) -> Prepared:
        """Clips (3, T_i, H_i, W_i) and captions -> latents (frozen VAE) and text states (text encoder).

        Captions are dropped to the empty prompt with the flow config's probability (one draw per clip
        from `generator`, as `prepare_cached` draws), for classifier-free guidance.
        """
        cfg, dev = self.cfg, self.device
        keep = _keep_captions(len(captions), cfg.flow.caption_dropout, generator)
        text = self.text_encoder.encode([c if k else "" for c, k in zip(captions, keep, strict=True)])
        same = all(v.shape == videos[0].shape for v in videos)
        with torch.no_grad():
            if same and not cfg.packed:
                latents = [self.vae.encode(torch.stack(videos).to(dev))]  # [(B, C, T, H, W)]
            else:
                latents = [self.vae.encode(v[None].to(dev)) for v in videos]  # [(1, C, T_i, H_i, W_i)]
        return Prepared(latents, text.hidden.to(dev), text.mask.bool().to(dev))

    def prepare_cached(self, batch: list[dict], generator: torch.Generator) -> Prepared:
        """Cached items (kino data cache): latents (C, t, h, w), text states (L, D) with their mask ->
        the same as `prepare_videos` gives for the clips they were made from (a dropped or missing
        caption becomes the empty prompt's states)."""
        cfg, dev = self.cfg, self.device
        keep = _keep_captions(len(batch), cfg.flow.caption_dropout, generator)
        null = self.null_text()
        texts = [b["text"][b["text_mask"]].float() if k and bool(b["text_mask"].any()) else null
                 for b, k in zip(batch, keep, strict=True)]  # each (L_i, D)
        width = max(x.shape[0] for x in texts)
        text = torch.zeros(len(texts), width, texts[0].shape[1])  # (B, L, D)
        mask = torch.zeros(len(texts), width, dtype=torch.bool)  # (B, L)
        for i, x in enumerate(texts):
            text[i, : x.shape[0]], mask[i, : x.shape[0]] = x, True
        same = all(b["latent"].shape == batch[0]["latent"].shape for b in batch)
        if same and not cfg.packed:
            latents = [torch.stack([b["latent"] for b in batch]).float().to(dev)]  # [(B, C, t, h, w)]
        else:
            latents = [b["latent"][None].float().to(dev) for b in batch]  # [(1, C, t_i, h_i, w_i)]
        return Prepared(latents, text.to(dev), mask.to(dev))

    def flow_matching_loss(self, prepared: Prepared, generator: torch.Generator) -> torch.Tensor:
        """The rectified-flow loss of prepared latents: token-shifted logit-normal t, noise, clean
        condition frames with their loss weights (kino.diffusion.conditioning), the velocity regressed;
        packed clips are one sequence and their losses one mean weighted by each clip's trained size."""
        cfg, dev = self.cfg, self.device
        p = self.model.config.patch_size
        paths, weights = [], []
        for z in prepared.latents:
            tokens = z.shape[2] // p[0] * z.shape[3] // p[1] * z.shape[4] // p[2]
            shift = cfg.flow.time_shift(tokens)
            t = sample_t((z.shape[0],), cfg.flow, shift, generator).to(dev)
            noise = torch.randn(z.shape, generator=generator).to(dev)
            w = None
            if cfg.conditioning.prob > 0 and z.shape[2] > 1:
                masks = sample_masks(z.shape[0], z.shape[2], cfg.conditioning, generator)
                t, w = masks.timesteps(t).to(dev), masks.loss_weight().to(dev)  # (B, T), (B, T)
            paths.append(flow_path(z, noise, t))
            weights.append(w)
        text, mask = prepared.text, prepared.text_mask
        with autocast_for(dev):
            if len(paths) == 1:
                pred = self.forward(paths[0].x_t, paths[0].t, text=text, text_mask=mask)
                return flow_loss(pred, paths[0], weights[0], self.cfg.flow.temporal_weight)
            preds = self.forward([q.x_t[0] for q in paths], [q.t[0] for q in paths], text=text, text_mask=mask)
        # each clip's mean error, weighted by its trained size, equals the mean over all trained values
        per_frame = [q.target[0, 0, 0].numel() * q.target.shape[1] for q in paths]
        sizes = torch.tensor([q.target.numel() if w is None else float(w.sum()) * n
                              for q, w, n in zip(paths, weights, per_frame, strict=True)],
                             dtype=torch.float32, device=dev)
        tw = self.cfg.flow.temporal_weight
        losses = torch.stack([flow_loss(pr[None], q, w, tw) for pr, q, w in zip(preds, paths, weights, strict=True)])
        return (losses * sizes).sum() / sizes.sum().clamp_min(1.0)

    def loss(self, videos: list[torch.Tensor], captions: list[str], generator: torch.Generator) -> torch.Tensor:
        """Flow-matching loss of clips (3, T_i, H_i, W_i) with their captions."""
        return self.flow_matching_loss(self.prepare_videos(videos, captions, generator), generator)

    def step(self, batch: list[dict]) -> float:
        """One optimizer step on a batch of data-set items; returns the loss."""
        return self.train_step([batch]).loss

    def micro_generator(self, micro: int) -> torch.Generator:
        """The randomness of global micro-batch `micro` of this step: a pure function of (seed, step, micro).

        The same samples get the same caption drops, timesteps and noise however a step's micro-batches are
        spread over ranks and accumulation (micro 0 is the single-batch stream of earlier runs).
        """
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step_count + micro * 1_000_000_007)

    def batch_loss(self, batch: list[dict], generator: torch.Generator) -> torch.Tensor:
        """The loss of one micro-batch: clips {"video", "caption"} or cached items {"latent", "text", ...}."""
        if "latent" in batch[0]:
            prepared = self.prepare_cached(batch, generator)
        else:
            prepared = self.prepare_videos([b["video"] for b in batch], [b["caption"] for b in batch], generator)
        return self.flow_matching_loss(prepared, generator)

    def train_step(self, micro_batches: list[list[dict]], first_micro: int = 0) -> StepStats:
        """One optimizer step over this rank's micro-batches: gradients accumulate and sync on the last.

        first_micro: the global index of this rank's first micro-batch in the step (rank x grad_accum).
        The loss of each micro-batch is divided by their count, so accumulating equals one big batch;
        DDP and FSDP average over ranks, so N ranks equal one process accumulating N x as many.
        """
        lr = lr_at(self.step_count, self.cfg)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        n, total = len(micro_batches), 0.0
        for k, batch in enumerate(micro_batches):
            with self.sync(k == n - 1):  # DDP no_sync / FSDP2 set_requires_gradient_sync before the last
                loss = self.batch_loss(batch, self.micro_generator(first_micro + k)) / n
                loss.backward()
            total += float(loss.detach())
        norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        if hasattr(norm, "full_tensor"):  # a DTensor under FSDP2
            norm = norm.full_tensor()
        self.opt.step()
        update_ema(self.ema, self.model, self.cfg.ema_decay)
        self.step_count += 1
        tokens = sum(self.item_tokens(b) for batch in micro_batches for b in batch)
        return StepStats(self.step_count, total, float(norm), lr, sum(len(b) for b in micro_batches), tokens)

    def item_tokens(self, item: dict) -> int:
        """DiT tokens of one item: its latent's (t/pt) x (h/ph) x (w/pw)."""
        p = self.model.config.patch_size
        if "latent" in item:
            t, h, w = item["latent"].shape[1:]
        else:
            vc = self.vae.config
            frames, height, width = item["video"].shape[1:]
            t, h, w = vc.latent_frames(frames), height // vc.spatial_factor, width // vc.spatial_factor
        return -(-t // p[0]) * (h // p[1]) * (w // p[2])

    def null_text(self) -> torch.Tensor:
        """Hidden states (L, D) of the empty caption: what a dropped or missing cached caption becomes."""
        if self._null_text is None:
            e = self.text_encoder.encode([""])
            self._null_text = e.hidden[0][e.mask[0].bool()].float().cpu()  # (L, D)
        return self._null_text

    def latent_loss(self, batch: list[dict], generator: torch.Generator) -> torch.Tensor:
        """Flow-matching loss of cached items (kino data cache): latents (C, t, h, w), text states (L, D)."""
        return self.flow_matching_loss(self.prepare_cached(batch, generator), generator)

    def save(self, run_dir: Path) -> Path:
        """A checkpoint of this step: one safetensors file, or DCP shards when running distributed."""
        from kino.train.checkpoint import save_checkpoint, save_sharded_checkpoint

        save = save_sharded_checkpoint if self.dist is not None and self.dist.active else save_checkpoint
        return save(run_dir, self.step_count, self.model, self.model.config, self.opt, self.ema,
                    data_position=self.step_count * self.cfg.batch_size,
                    extra={"train": _plain(asdict(self.cfg))}, keep=self.cfg.keep)

    def resume(self, run_dir: Path) -> bool:
        """Load the latest checkpoint in run_dir (either format, any world size); True when one was loaded."""
        from kino.train import checkpoint as ck

        last = ck.latest_checkpoint(run_dir)
        if last is None:
            return False
        sharded = ck.is_sharded(last) or (self.dist is not None and self.dist.active)
        load = ck.load_sharded_checkpoint if sharded else ck.load_checkpoint
        self.step_count = load(last, self.model, self.opt, self.ema).step
        return True


@dataclass(frozen=True)
class StepStats:
    """What one optimizer step did on this rank."""

    step: int  # the step count after it
    loss: float  # mean over this rank's micro-batches
    grad_norm: float  # before clipping, over all ranks
    lr: float
    samples: int  # clips on this rank
    tokens: int  # DiT tokens on this rank


def _plain(d):
    """Enums and tuples as JSON-ready values."""
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return str(d) if hasattr(d, "value") else d
