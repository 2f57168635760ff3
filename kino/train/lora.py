"""LoRA fine-tuning of an open video model (LTX-Video, Wan) on a family cache of one's own clips.

`run_lora_training(cfg, model_dir, data, out)` is what `kino train lora` runs, on one process or under
torchrun (DDP or FSDP2: kino.train.lora_loop.distribute). The base transformer is frozen in its dtype
(bf16 on a GPU, fp32 on a CPU; fp8 storage with `fp8`, diffusers' layerwise casting); peft wraps its
attention and FFN projections (kino.families.lora.DEFAULT_TARGETS) with trainable fp32 adapters. The data
is a family cache (kino.data.family_cache; a manifest is cached into RUN/cache first), so the text encoder
is never loaded to train. Per step, each rank takes its slices of the step's global batch
(kino.data.buckets_global: the same global order on any world size, restartable at any step), the
family's objective (kino.train.lora_objectives) is accumulated, gradients are clipped and AdamW steps at
kino's LR schedule.

Checkpoints (RUN/checkpoints/step-XXXXXXXX/): the adapter as a diffusers-format LoRA file, the optimizer
keyed by parameter names (gathered from FSDP2's shards), RNG states and step (`state.pt`), so `--resume`
continues exactly, on any world size: every micro-batch's noise, timesteps
and condition frames are a pure function of (seed, step, micro-batch). The final adapter is
RUN/pytorch_lora_weights.safetensors (Wan 2.2 A14B's low-noise expert: ..._low_noise.safetensors).
A non-finite loss or gradient norm stops the run with one line naming the step.
"""

from __future__ import annotations

import json
import math
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path

import torch

from kino.errors import InputError
from kino.families.lora import LOW_NOISE_NAME, WEIGHT_NAME, Expert, LoRASpec
from kino.train.schedule import LRSchedule, lr_at


class Condition(StrEnum):
    """Which latent frames of a clip are given (clean) while training, with probability condition_prob."""

    NONE = "none"
    FIRST = "first"  # image-to-video
    FIRST_LAST = "first-last"  # interpolation between two frames
    RANDOM_KEYFRAMES = "random-keyframes"  # 1 to 3 frames anywhere


class TimestepSampling(StrEnum):
    LOGIT_NORMAL = "logit-normal"  # SD3's default (diffusers' compute_density_for_timestep_sampling)
    UNIFORM = "uniform"


class Experts(StrEnum):
    """Wan 2.2 A14B: train the high-noise expert, the low-noise one, or both (each step picks one)."""

    HIGH = "high"
    LOW = "low"
    BOTH = "both"


@dataclass(frozen=True)
class LoRATrainConfig:
    """A LoRA recipe. Defaults: rank 16, alpha 16, AdamW 1e-4 constant, logit-normal t, the family's shift."""

    rank: int = 16
    alpha: float = 16.0
    targets: tuple[str, ...] = ()  # () = the family's default attention and FFN projections
    steps: int = 1000
    lr: float = 1e-4
    warmup: int = 0
    schedule: LRSchedule = LRSchedule.CONSTANT
    min_lr_ratio: float = 0.1
    batch_size: int = 1  # global: clips per optimizer step over all processes and accumulation
    grad_accum: int = 1
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    timestep_sampling: TimestepSampling = TimestepSampling.LOGIT_NORMAL
    logit_mean: float = 0.0
    logit_std: float = 1.0
    shift: float | None = None  # None: the scheduler's own shift (dynamic for LTX-Video)
    caption_dropout: float = 0.0  # probability of the empty prompt (for guidance with the LoRA)
    condition: Condition = Condition.NONE
    condition_prob: float = 0.5
    expert: Experts = Experts.BOTH  # Wan 2.2 A14B only
    gradient_checkpointing: bool = False
    fp8: bool = False  # the frozen base stored in float8_e4m3fn, computed in the run's dtype
    packed: bool = False  # the sampler's mode (LoRA batches are one shape each)
    checkpoint_every: int = 100
    keep: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        for name, enum in (("schedule", LRSchedule), ("timestep_sampling", TimestepSampling),
                           ("condition", Condition), ("expert", Experts)):
            value = getattr(self, name)
            try:
                object.__setattr__(self, name, enum(value))
            except ValueError:
                raise InputError(f"--{name.replace('_', '-')} {value!r} is not one of "
                                 f"{', '.join(e.value for e in enum)}") from None
        object.__setattr__(self, "targets", tuple(self.targets))
        if min(self.steps, self.batch_size, self.grad_accum, self.checkpoint_every) < 1 or self.lr <= 0:
            raise InputError("--steps, --batch-size, --grad-accum and --checkpoint-every must be >= 1 and --lr > 0")
        if self.batch_size % self.grad_accum:
            raise InputError(f"--grad-accum {self.grad_accum} must divide --batch-size {self.batch_size}")
        if not (0.0 <= self.condition_prob <= 1.0 and 0.0 <= self.caption_dropout <= 1.0):
            raise InputError("--condition-prob and --caption-dropout must be in [0, 1]")
        if self.shift is not None and self.shift <= 0:
            raise InputError(f"--shift {self.shift:g} must be positive")
        LoRASpec(self.rank, self.alpha, self.targets or ("-",))  # validates rank and alpha


@dataclass(frozen=True)
class StepStats:
    step: int
    loss: float
    grad_norm: float
    lr: float
    samples: int
    tokens: int


def _plain(d):
    if isinstance(d, dict):
        return {k: _plain(v) for k, v in d.items()}
    if isinstance(d, (list, tuple)):
        return [_plain(v) for v in d]
    return str(d) if hasattr(d, "value") else d


@dataclass
class Denoisers:
    """A folder's transformer(s) and what training them needs from its configs."""

    family: str
    by_expert: dict[str, torch.nn.Module]  # "high" -> transformer, "low" -> transformer_2 (A14B)
    scheduler: dict
    boundary: float | None  # Wan 2.2 A14B's boundary_ratio
    expand_timesteps: bool
    patch: tuple[int, int, int]
    kind: str  # the transformer class
    meta: dict = field(default_factory=dict)
    variant: str = ""  # Wan: "i2v", "flf2v" or "vace" (conditioned through cached inputs), else ""
    conditions: tuple[str, ...] = ()  # the --condition kinds the variant trains (family_cache.condition_kinds)


def load_denoisers(model_dir: str | Path, device: torch.device, dtype: torch.dtype) -> Denoisers:
    """The transformer(s) of an LTX-Video or Wan folder, frozen in `dtype` on `device` (no VAE, no text)."""
    import diffusers

    from kino.families.base import Family
    from kino.families.diffusers_common import quiet
    from kino.families.loading import detect_family, read_index

    folder = Path(model_dir)
    family = detect_family(folder)
    if family is Family.KINO:  # kino's DiT in its pipeline (with the pipeline kept for validation and "")
        from kino.pipeline import KinoPipeline

        pipe = KinoPipeline.from_pretrained(folder, device=device)
        dit = pipe.transformer.requires_grad_(False).eval()
        return Denoisers("kino", {"high": dit}, {}, None, False, tuple(dit.config.patch_size), "DiT", {"pipe": pipe})
    from kino.data.family_cache import condition_kinds

    index = read_index(folder)
    pipeline = str(index.get("_class_name"))
    wan = ("WanPipeline", "WanImageToVideoPipeline", "WanVACEPipeline")
    if family is Family.WAN and pipeline not in wan:
        raise InputError(f"{folder} is a {pipeline} folder; kino trains Wan LoRAs on {', '.join(wan)} folders")
    out = {}
    for expert, name in (("high", "transformer"), ("low", "transformer_2")):
        entry = index.get(name)
        if not entry or entry[0] is None:
            continue
        cls = getattr(diffusers, entry[1])
        with quiet():
            model = cls.from_pretrained(folder / name, torch_dtype=dtype, local_files_only=True)
        out[expert] = model.to(device).requires_grad_(False).eval()
    sched_dir = folder / "scheduler"
    sched = json.loads(next(sched_dir.glob("scheduler_config.json")).read_text()) if sched_dir.is_dir() else {}
    cfg = out["high"].config
    patch = ((int(cfg.patch_size_t), int(cfg.patch_size), int(cfg.patch_size)) if family is Family.LTX
             else tuple(int(p) for p in cfg.patch_size))
    expand = bool(index.get("expand_timesteps"))
    variant, kinds = condition_kinds(pipeline, expand, dict(cfg)) if family is Family.WAN else ("", ())
    return Denoisers(str(family), out, sched, index.get("boundary_ratio"), expand, patch, type(out["high"]).__name__,
                     variant=variant, conditions=kinds)


class LoRATrainer:
    """The frozen transformer(s) with trainable adapters, the optimizer and the step counter."""

    def __init__(self, cfg: LoRATrainConfig, model_dir: str | Path, device: torch.device | str = "cpu",
                 dtype: str | None = None, index: dict | None = None) -> None:
        from kino.families.diffusers_common import resolve_dtype
        from kino.families.lora import add_lora, default_targets

        self.cfg, self.device, self.model_dir = cfg, torch.device(device), Path(model_dir)
        self.dtype = resolve_dtype(str(device), dtype)
        self.index = index or {}
        torch.manual_seed(cfg.seed)
        self.den = load_denoisers(self.model_dir, self.device, self.dtype)
        if self.index and self.index.get("family", "kino") != self.den.family:
            raise InputError(f"the cache was made with a {self.index.get('family')} model; --model is "
                             f"{self.den.family}")
        self.check_condition()
        self.spec = LoRASpec(cfg.rank, cfg.alpha, cfg.targets or default_targets(self.den.family))
        self.experts = self.trained_experts()
        for e in self.experts:
            t = self.den.by_expert[e]
            if cfg.fp8:  # diffusers' layerwise casting: weights stored in fp8, each layer upcast to compute
                t.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=self.dtype)
                t._kino_compute_dtype = self.dtype
            add_lora(t, self.spec)
            for p in t.parameters():
                if p.requires_grad:
                    p.data = p.data.float()  # trainable adapters in fp32 (diffusers' cast_training_params)
            if cfg.gradient_checkpointing:
                t.enable_gradient_checkpointing()
            t.train()
        self.forward = dict(self.den.by_expert)  # DDP wrappers replace these (distribute)
        self.modules = torch.nn.ModuleDict({e: self.den.by_expert[e] for e in self.experts})  # FQNs: "high.blocks.0..."
        self.opt = self.make_optimizer()
        self.step_count = 0
        self.dist = None
        self.sharded = False  # FSDP2 (kino.train.lora_loop.distribute): parameters are DTensor shards
        self._null: torch.Tensor | None = None

    # -- set-up ----------------------------------------------------------------------------------

    def check_condition(self) -> None:
        cfg, den = self.cfg, self.den
        if den.variant:  # Wan I2V / FLF2V / VACE: the cache holds the pipeline's conditioning inputs
            kinds = den.conditions
            if cfg.condition not in kinds and not (den.variant == "vace" and cfg.condition is Condition.NONE):
                raise InputError(f"a Wan {den.variant.upper()} folder trains --condition {' or '.join(kinds)}"
                                 f"{' (or none)' if den.variant == 'vace' else ''}, not {cfg.condition}")
            made = self.index.get("variant")
            if self.index and made != den.variant:
                raise InputError(f"the cache holds no Wan {den.variant.upper()} conditioning inputs (it was made with "
                                 f"a {made or self.index.get('family')} folder); make it with `kino data cache "
                                 f"MANIFEST --model {self.model_dir}`")
            if self.index and cfg.condition is not Condition.NONE and str(cfg.condition) not in self.index.get(
                    "conditions", kinds):
                raise InputError(f"the cache holds no --condition {cfg.condition} inputs (it has "
                                 f"{', '.join(self.index.get('conditions', ()))}); make it again with `kino data "
                                 f"cache MANIFEST --model {self.model_dir}`")
            return
        if cfg.condition is Condition.NONE or den.family in ("ltx", "kino"):
            return
        if not den.expand_timesteps:
            raise InputError(f"--condition {cfg.condition} on Wan needs a TI2V, I2V, FLF2V or VACE folder (conditioning "
                             f"inputs); this is a {den.kind} text-to-video folder. Use LTX-Video, Wan 2.2 TI2V-5B, "
                             f"Wan 2.1 I2V / FLF2V or Wan VACE")
        if cfg.condition is not Condition.FIRST:
            raise InputError(f"--condition {cfg.condition}: Wan 2.2 TI2V conditions on the first frame only; use "
                             f"--condition first, or LTX-Video for first-last and keyframes")

    def trained_experts(self) -> list[str]:
        two = "low" in self.den.by_expert and self.den.boundary is not None
        if not two:
            if self.cfg.expert is Experts.LOW:
                raise InputError("--expert low needs Wan 2.2 A14B (two experts); this model has one transformer")
            return ["high"]
        return ["high", "low"] if self.cfg.expert is Experts.BOTH else [str(self.cfg.expert)]

    def parameters(self) -> list[torch.nn.Parameter]:
        return [p for e in self.experts for p in self.den.by_expert[e].parameters() if p.requires_grad]

    def make_optimizer(self) -> torch.optim.Optimizer:
        """AdamW over the adapters (again after FSDP2 sharding, over the DTensor shards)."""
        cfg = self.cfg
        return torch.optim.AdamW(self.parameters(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)

    def grad_sync(self, expert: str, last: bool):
        """Gradients are reduced on a step's last micro-batch only: DDP's no_sync, FSDP2's requires-sync flag."""
        model = self.forward[expert]
        if self.sharded:
            from kino.train.distributed import GradientSync

            return GradientSync(model, last)
        if last or model is self.den.by_expert[expert]:
            return nullcontext()
        return model.no_sync()

    # -- one micro-batch ---------------------------------------------------------------------------

    def micro_generator(self, micro: int) -> torch.Generator:
        """Randomness of global micro-batch `micro` of this step: a pure function of (seed, step, micro)."""
        return torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + self.step_count + micro * 1_000_000_007)

    def step_expert(self) -> str:
        """The expert this step trains (the same on every rank): with both, drawn by its share of u."""
        if len(self.experts) == 1:
            return self.experts[0]
        g = torch.Generator().manual_seed(self.cfg.seed * 7_919 + self.step_count)
        return "high" if float(torch.rand(1, generator=g)) >= self.boundary_u() else "low"

    def boundary_u(self) -> float:
        from kino.train.lora_objectives import unshift_sigma

        return unshift_sigma(float(self.den.boundary), self.shift(0))

    def shift(self, tokens: int) -> float:
        from kino.train.lora_objectives import scheduler_shift

        return self.cfg.shift if self.cfg.shift is not None else scheduler_shift(self.den.scheduler, tokens)

    def sample_sigma(self, n: int, tokens: int, expert: str, g: torch.Generator) -> torch.Tensor:
        """(n,) sigmas: u from the sampling density, shifted; an A14B expert's u range when two are trained."""
        from kino.train.lora_objectives import shift_sigma

        cfg = self.cfg
        if cfg.timestep_sampling is TimestepSampling.LOGIT_NORMAL:
            u = torch.sigmoid(torch.randn(n, generator=g) * cfg.logit_std + cfg.logit_mean)
        else:
            u = torch.rand(n, generator=g)
        if "low" in self.den.by_expert and self.den.boundary is not None:
            b = self.boundary_u()  # high-noise expert: sigma >= boundary; low: below (WanPipeline's switch)
            u = b + (1 - b) * u if expert == "high" else b * u
        return shift_sigma(u, self.shift(tokens)).clamp(1e-4, 1.0)

    def sample_clean(self, n: int, frames: int, g: torch.Generator) -> torch.Tensor:
        """(n, frames) bool: the latent frames given as conditions (none with probability 1 - condition_prob)."""
        cfg = self.cfg
        clean = torch.zeros(n, frames, dtype=torch.bool)
        for i in range(n):
            draw = float(torch.rand(1, generator=g))
            if cfg.condition is Condition.NONE or frames < 2 or draw >= cfg.condition_prob:
                continue
            if cfg.condition is Condition.FIRST:
                clean[i, 0] = True
            elif cfg.condition is Condition.FIRST_LAST:
                clean[i, [0, frames - 1]] = True
            else:
                k = 1 + int(torch.randint(0, min(3, frames - 1), (1,), generator=g))
                clean[i, torch.randperm(frames, generator=g)[:k]] = True
        return clean

    def null_text(self, dataset) -> torch.Tensor:
        """States (L, D) of the empty prompt: from the family cache, or kino's text encoder."""
        if self._null is None:
            if self.den.family == "kino":
                e = self.den.meta["pipe"].text_encoder.encode([""])
                self._null = e.hidden[0][e.mask[0].bool()].float().cpu()  # (L, D)
            else:
                self._null = dataset.null_text()
        return self._null

    def texts(self, batch: list[dict], keep: list[bool], null: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L, D) text states zero-padded (Wan: to its 512 tokens, as its pipeline pads), (B, L) mask."""
        texts = [b["text"] if k else null for b, k in zip(batch, keep, strict=True)]
        length = max(x.shape[0] for x in texts)
        if self.den.family == "wan":
            length = max(length, int(self.index.get("text_length", 512)))
        text = torch.zeros(len(texts), length, texts[0].shape[1])  # (B, L, D)
        mask = torch.zeros(len(texts), length, dtype=torch.bool)  # (B, L)
        for i, x in enumerate(texts):
            text[i, : x.shape[0]], mask[i, : x.shape[0]] = x, True
        return text.to(self.device), mask.to(self.device)

    def batch_loss(self, batch: list[dict], g: torch.Generator, expert: str, null: torch.Tensor,
                   sigma: torch.Tensor | None = None) -> torch.Tensor:
        """The family's loss of one micro-batch of cached items {"latent", "text", "fps"} (one shape)."""
        from kino.train.lora_objectives import ltx_loss, noised, wan_loss

        if self.den.family == "kino":
            return self.kino_loss(batch, g, null)
        x0 = torch.stack([b["latent"] for b in batch]).float().to(self.device)  # (B, C, F, H, W)
        b, _, f, h, w = x0.shape
        p = self.den.patch
        tokens = -(-f // p[0]) * (h // p[1]) * (w // p[2])
        keep = (torch.rand(b, generator=g) >= self.cfg.caption_dropout).tolist()
        if sigma is None:
            sigma = self.sample_sigma(b, tokens, expert, g)
        noise = torch.randn(x0.shape, generator=g).to(self.device)
        if self.den.variant:  # every frame is noised; the given frames come in through the conditioning inputs
            clean = torch.zeros(b, f, dtype=torch.bool)
            inputs = self.wan_conditioning(batch, g)
        else:
            clean, inputs = self.sample_clean(b, f, g), {}
        path = noised(x0, noise, sigma, clean)
        text, mask = self.texts(batch, keep, null)
        model = self.forward[expert]
        with self.autocast():
            if self.den.family == "ltx":
                fps = torch.tensor([float(x.get("fps", 25.0)) for x in batch])
                factors = self.index.get("factors", {})
                return ltx_loss(model, path, text, mask, fps, p, int(factors.get("temporal", 8)),
                                int(factors.get("spatial", 32)))
            return wan_loss(model, path, text, p, **inputs)

    def wan_conditioning(self, batch: list[dict], g: torch.Generator) -> dict[str, torch.Tensor]:
        """The transformer's conditioning inputs for a micro-batch on a Wan I2V / FLF2V / VACE folder, from the
        cache's per-clip encodings (kino.data.family_cache) as each pipeline feeds them:
          - I2V / FLF2V: channels = cat(mask (B, 4, F, H, W), condition latent (B, C, F, H, W)) after x_t, and
            encoder_hidden_states_image (B, N, D) (FLF2V: (2B, N, D), the transformer folds the two images'
            tokens into (B, 2N, D)); every clip is conditioned (the pipelines always are); Wan 2.2 I2V with
            --condition first-last: a clip gets the first and last frames with condition_prob, else the
            first only (both are WanImageToVideoPipeline calls: with and without last_image);
          - VACE: control_hidden_states = cat(inactive + reactive latents (B, 2C, F, H, W), mask (B, s^2, F, H,
            W)); with condition_prob a clip gets the --condition frames (random-keyframes: one of the cached
            draws), otherwise the text-only context (no frame given)."""
        from kino.train.lora_objectives import wan_i2v_mask, wan_vace_mask

        variant, cfg = self.den.variant, self.cfg
        conds = []
        for item in batch:
            c = item.get("conditions")
            if not c:
                raise InputError(f"clip {item.get('id')} has no cached {variant.upper()} inputs (clips of one frame "
                                 f"have none); make the cache with `kino data cache MANIFEST --model "
                                 f"{self.model_dir}` from clips of 2 frames or more")
            conds.append(c)
        b = len(batch)
        _, f, h, w = batch[0]["latent"].shape
        factors = self.index.get("factors", {})
        temporal, spatial = int(factors.get("temporal", 4)), int(factors.get("spatial", 8))
        frames = 1 + temporal * (f - 1)
        if variant in ("i2v", "flf2v"):
            name = "first" if variant == "i2v" else "first_last"
            lasts = [variant == "flf2v"] * b
            if variant == "i2v" and cfg.condition is Condition.FIRST_LAST:  # Wan 2.2 I2V: first + last or first
                lasts = [float(torch.rand(1, generator=g)) < cfg.condition_prob for _ in conds]
            mask = torch.cat([wan_i2v_mask(1, frames, h, w, temporal, last=last) for last in lasts])  # (B, 4, F, H, W)
            latent = torch.stack([c["first_last" if last else "first"] for c, last in zip(conds, lasts, strict=True)])
            out = {"channels": torch.cat([mask, latent], dim=1).to(self.device)}  # (B, 4 + C, F, H, W)
            if f"{name}_image" in conds[0]:
                out["encoder_hidden_states_image"] = torch.cat([c[f"{name}_image"] for c in conds]).to(self.device)
            return out
        names = []
        for c in conds:
            draw = float(torch.rand(1, generator=g))
            if cfg.condition is Condition.NONE or draw >= cfg.condition_prob:
                names.append("none")
            elif cfg.condition is Condition.RANDOM_KEYFRAMES:
                sets = sorted(k for k in c if k.startswith("keyframes") and not k.endswith("_at"))
                names.append(sets[int(torch.randint(0, len(sets), (1,), generator=g))])
            else:
                names.append("first" if cfg.condition is Condition.FIRST else "first_last")
        ctx = [torch.cat([c[n], wan_vace_mask(c[f"{n}_at"].tolist(), frames, f, h, w, spatial)], dim=0)
               for c, n in zip(conds, names, strict=True)]  # (2C + s^2, F, H, W) each
        return {"control_hidden_states": torch.stack(ctx).to(self.device)}

    def kino_loss(self, batch: list[dict], g: torch.Generator, null: torch.Tensor) -> torch.Tensor:
        """kino's DiT: the flow-matching loss of `kino train dit` itself (DiTTrainer.prepare_cached and
        flow_matching_loss: token-shifted logit-normal t, kino's condition masks), on the adapted DiT."""
        from types import SimpleNamespace

        from kino.diffusion.conditioning import ConditionConfig
        from kino.diffusion.flow import FlowConfig
        from kino.train.dit import DiTTrainConfig, DiTTrainer

        cfg = self.cfg
        prob = cfg.condition_prob if cfg.condition is not Condition.NONE else 0.0
        recipe = DiTTrainConfig(flow=FlowConfig(caption_dropout=cfg.caption_dropout, logit_mean=cfg.logit_mean,
                                                logit_std=cfg.logit_std), conditioning=ConditionConfig(prob=prob))
        duck = SimpleNamespace(cfg=recipe, device=self.device, model=self.den.by_expert["high"],
                               forward=self.forward["high"], null_text=lambda: null)
        return DiTTrainer.flow_matching_loss(duck, DiTTrainer.prepare_cached(duck, batch, g), g)

    def autocast(self):
        if self.device.type == "cuda" and self.dtype != torch.float32:
            return torch.autocast("cuda", dtype=self.dtype)
        return nullcontext()

    # -- one optimizer step ------------------------------------------------------------------------

    def train_step(self, micro_batches: list[list[dict]], first_micro: int, null: torch.Tensor) -> StepStats:
        """One optimizer step over this rank's micro-batches (gradients synced on the last); NaN-checked."""
        lr = lr_at(self.step_count, self.cfg)
        for group in self.opt.param_groups:
            group["lr"] = lr
        self.opt.zero_grad(set_to_none=True)
        expert = self.step_expert()
        n, total = len(micro_batches), 0.0
        for k, batch in enumerate(micro_batches):
            with self.grad_sync(expert, k == n - 1):
                loss = self.batch_loss(batch, self.micro_generator(first_micro + k), expert, null) / n
                if not torch.isfinite(loss):
                    raise InputError(f"the loss became {float(loss.detach())} at step {self.step_count + 1}; the run stops "
                                     f"(lower --lr, or check the data); the last checkpoint is intact")
                loss.backward()
            total += float(loss.detach())
        params = [p for p in self.den.by_expert[expert].parameters() if p.requires_grad]
        norm = torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # FSDP2: a replicated DTensor
        if not math.isfinite(norm):
            raise InputError(f"the gradient norm became {norm} at step {self.step_count + 1}; the run stops "
                             f"(lower --lr); the last checkpoint is intact")
        self.opt.step()
        self.step_count += 1
        tokens = sum(int(b["latent"][0].numel()) for batch in micro_batches for b in batch)  # latent positions
        return StepStats(self.step_count, total, norm, lr, sum(len(b) for b in micro_batches), tokens)

    @torch.no_grad()
    def eval_loss(self, items: list[dict], null: torch.Tensor, sigmas=(0.2, 0.5, 0.8)) -> float:
        """Mean loss of held-out clips at fixed sigmas and a fixed noise seed (comparable across steps)."""
        was = {e: self.den.by_expert[e].training for e in self.experts}
        for e in self.experts:
            self.den.by_expert[e].eval()
        losses = []
        for i, item in enumerate(items):
            for s in sigmas:
                expert = "high"
                if "low" in self.den.by_expert and self.den.boundary is not None:
                    expert = "high" if s >= float(self.den.boundary) else "low"
                    expert = expert if expert in self.experts else self.experts[0]
                g = torch.Generator().manual_seed(10_007 * i + int(s * 1000))
                losses.append(float(self.batch_loss([item], g, expert, null, sigma=torch.tensor([s]))))
        for e, t in was.items():
            self.den.by_expert[e].train(t)
        return sum(losses) / max(len(losses), 1)

    # -- files -------------------------------------------------------------------------------------

    @property
    def is_main(self) -> bool:
        return self.dist is None or self.dist.is_main

    def lora_states(self) -> dict[str, dict]:
        """Each trained expert's whole adapter on the CPU (under FSDP2 a collective: every rank calls it)."""
        from kino.families.lora import lora_state

        return {e: lora_state(self.den.by_expert[e]) for e in self.experts}

    def write_loras(self, folder: Path, states: dict[str, dict] | None = None) -> list[Path]:
        """The adapters (`states`, default lora_states()) as diffusers-format files in `folder` (the low-noise
        expert's beside the other). Every rank calls it (the adapters are gathered under FSDP2); rank 0 writes."""
        from kino.families.lora import save_lora

        meta = {"base": str(self.model_dir.resolve()), "step": self.step_count, "rank": self.cfg.rank,
                "condition": str(self.cfg.condition)}
        paths = []
        for e, state in (states if states is not None else self.lora_states()).items():
            path = folder / (LOW_NOISE_NAME if e == "low" else WEIGHT_NAME)
            paths.append(save_lora(path, state, self.spec, self.den.family, Expert(e), meta) if self.is_main else path)
        return paths

    def optimizer_state(self) -> dict:
        """The whole optimizer state keyed by parameter names (torch.distributed.checkpoint.state_dict's
        full state dict: gathered from the FSDP2 shards onto rank 0), so it reloads on any world size."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(self.modules, self.opt,
                                        options=StateDictOptions(full_state_dict=True, cpu_offload=True))

    def load_optimizer_state(self, state: dict) -> None:
        """Load optimizer_state()'s dict into this (maybe sharded) optimizer; every rank reads the whole dict."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        set_optimizer_state_dict(self.modules, self.opt, state, options=StateDictOptions(full_state_dict=True))

    def save(self, run_dir: Path) -> Path:
        """RUN/checkpoints/step-XXXXXXXX/: the LoRA file(s), optimizer, RNG states, step (atomically).

        Every rank calls it (gathering the FSDP2 shards is collective); rank 0 writes."""
        import shutil

        from kino.io import atomic_dir
        from kino.train.checkpoint import STATE_FILE, list_checkpoints, rng_state

        final = run_dir / f"step-{self.step_count:08d}"
        states, optimizer = self.lora_states(), self.optimizer_state()
        if not self.is_main:
            return final
        run_dir.mkdir(parents=True, exist_ok=True)
        with atomic_dir(final) as tmp:
            self.write_loras(tmp, states)
            (tmp / "config.json").write_text(json.dumps(_plain(asdict(self.cfg)), indent=2, sort_keys=True))
            torch.save({"step": self.step_count, "data_position": self.step_count * self.cfg.batch_size,
                        "optimizer": optimizer, "optimizer_keys": "names", "rng": rng_state(),
                        "experts": self.experts, "extra": {"train": _plain(asdict(self.cfg))}}, tmp / STATE_FILE)
        for old in list_checkpoints(run_dir)[:-self.cfg.keep] if self.cfg.keep > 0 else []:
            shutil.rmtree(old, ignore_errors=True)
        return final

    def resume(self, run_dir: Path) -> bool:
        """Continue from the latest checkpoint in run_dir (adapters, optimizer, RNG, step); False if none."""
        from kino.families.lora import read_lora
        from kino.train.checkpoint import STATE_FILE, latest_checkpoint, set_rng_state

        last = latest_checkpoint(run_dir)
        if last is None:
            return False
        state = torch.load(last / STATE_FILE, map_location="cpu", weights_only=False)
        if list(state.get("experts", ["high"])) != self.experts:
            raise InputError(f"{last} trained the experts {state.get('experts')}; this run trains {self.experts} "
                             f"(give the same --expert)")
        for e in self.experts:
            lora = read_lora(last / (LOW_NOISE_NAME if e == "low" else WEIGHT_NAME))
            self.set_adapter(e, {k: v.float() for k, v in lora.state.items()})
        if state.get("optimizer_keys") == "names":
            self.load_optimizer_state(state["optimizer"])
        else:  # a checkpoint written before the optimizer state was keyed by names (one process or DDP)
            self.opt.load_state_dict(state["optimizer"])
        set_rng_state(state["rng"])
        self.step_count = int(state["step"])
        return True

    def init_from(self, path: str | Path) -> None:
        """Start from an existing LoRA (diffusers or ComfyUI format) of the same rank and targets."""
        from kino.families.lora import read_lora

        lora = read_lora(path)
        if lora.spec.rank != self.spec.rank or lora.spec.alpha != self.spec.alpha:
            raise InputError(f"--init-lora {path} has rank {lora.spec.rank} and alpha {lora.spec.alpha:g}; give "
                             f"--rank {lora.spec.rank} --alpha {lora.spec.alpha:g}")
        expert = str(lora.expert) if str(lora.expert) in self.experts else self.experts[0]
        self.set_adapter(expert, {k: v.float() for k, v in lora.state.items()})

    def set_adapter(self, expert: str, state: dict) -> None:
        """Load peft-keyed adapter weights into an expert; under FSDP2 each rank copies its shard."""
        from kino.families.lora import ADAPTER, set_lora_state

        model = self.den.by_expert[expert]
        if not self.sharded:
            set_lora_state(model, state)
            return
        from torch.distributed.tensor import distribute_tensor

        for name, p in model.named_parameters():
            if not p.requires_grad:
                continue
            key = name.replace(f".{ADAPTER}.", ".")  # "...to_q.lora_A.default.weight" -> "...to_q.lora_A.weight"
            if key not in state:
                raise InputError(f"the LoRA has no weight {key} (another model or other --targets?)")
            full = state[key].to(p.dtype)
            with torch.no_grad():
                p.to_local().copy_(distribute_tensor(full, p.device_mesh, p.placements).to_local())
