"""KinoPipeline: text -> video. The one way in: the CLI, the server and the evaluator wrap it.

A pipeline directory has one subfolder per component and a model_index.json naming them, as diffusers
lays them out:

    model_index.json         {"_class_name": "KinoPipeline", "transformer": ["kino", "DiT"], ...}
    transformer/             config.json + model.safetensors (kino.models.dit.DiT)
    vae/                     config.json + model.safetensors (kino.models.vae.CausalVAE)
    text_encoder/            config.json (naming the packaged MiniLM) or a Hugging Face encoder folder
    scheduler/               config.json (SchedulerConfig: solver, steps, guidance, shift, limits)

__call__ reads as its steps: check inputs, encode prompt, prepare latents, set timesteps, denoise, decode.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from kino.diffusion.flow import token_shift
from kino.diffusion.samplers import Solver, guided, model_calls, solve, timesteps
from kino.errors import InputError, ModelError
from kino.io import atomic_dir
from kino.models.dit import DiT, autocast_for
from kino.models.text import TextEncoder

COMPONENTS = {"transformer": "DiT", "vae": "CausalVAE", "text_encoder": "TextEncoder", "scheduler": "SchedulerConfig"}
BUILTIN_MODEL = "world-tiny"


def builtin_model_dir() -> Path:
    """Where kino's built-in model lives (kino/weights/world-tiny); it may not exist yet."""
    return Path(__file__).resolve().parent / "weights" / BUILTIN_MODEL


@dataclass(frozen=True)
class SchedulerConfig:
    """Sampling defaults and limits stored with a pipeline."""

    solver: Solver = Solver.EULER
    num_inference_steps: int = 20
    guidance_scale: float = 4.0
    base_shift: float = 1.0  # time shift at reference_tokens; grows as sqrt(tokens / reference_tokens)
    reference_tokens: int = 256
    max_shift: float = 8.0
    fps: float = 8.0
    width: int = 64
    height: int = 64
    seconds: float = 2.0
    max_latent_frames: int = 16  # what one pass holds: 1 + 4 * 15 = 61 pixel frames with the 4x VAE

    def __post_init__(self) -> None:
        object.__setattr__(self, "solver", Solver(self.solver))
        if self.num_inference_steps < 1 or self.max_latent_frames < 1 or self.fps <= 0 or self.seconds <= 0:
            raise InputError("scheduler config needs steps >= 1, max_latent_frames >= 1, fps > 0, seconds > 0")

    @classmethod
    def from_dict(cls, d: dict) -> SchedulerConfig:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


@dataclass(frozen=True)
class GenerationSettings:
    """What a call resolved its arguments to."""

    prompt: str
    negative_prompt: str
    width: int
    height: int
    num_frames: int
    fps: float
    num_inference_steps: int
    guidance_scale: float
    solver: str
    shift: float
    seed: int | None
    latent_shape: tuple[int, ...]


@dataclass(frozen=True)
class VideoOutput:
    """A generated video: uint8 frames (T, H, W, 3), the resolved settings and timings in seconds."""

    frames: np.ndarray
    settings: GenerationSettings
    timings: dict[str, float] = field(default_factory=dict)


class KinoPipeline:
    """Text encoder + DiT + VAE + sampler settings; call it with a prompt to get a video."""

    def __init__(self, transformer: DiT, vae, text_encoder: TextEncoder,
                 scheduler: SchedulerConfig | None = None, device: torch.device | str = "cpu") -> None:
        self.transformer = transformer.eval()
        self.vae = vae.eval()
        self.text_encoder = text_encoder
        self.scheduler = scheduler or SchedulerConfig()
        if transformer.config.text_dim != text_encoder.dim:
            raise ModelError(f"the DiT expects text width {transformer.config.text_dim} but the text encoder "
                             f"gives {text_encoder.dim}")
        if transformer.config.in_channels != vae.config.latent_channels:
            raise ModelError(f"the DiT expects {transformer.config.in_channels} latent channels but the VAE "
                             f"has {vae.config.latent_channels}")
        self.to(device)

    def to(self, device: torch.device | str) -> KinoPipeline:
        self.device = torch.device(device)
        self.transformer.to(self.device)
        self.vae.to(self.device)
        self.text_encoder.device = self.device
        if self.text_encoder._model is not None:
            self.text_encoder._model.to(self.device)
        return self

    # -- sizes --------------------------------------------------------------------------------------

    @property
    def size_multiple(self) -> int:
        """Height and width must be multiples of this (VAE factor x DiT patch)."""
        p = self.transformer.config.patch_size
        return self.vae.config.spatial_factor * math.lcm(p[1], p[2])

    @property
    def max_frames(self) -> int:
        """The most pixel frames one pass holds."""
        return self.vae.config.pixel_frames(self.scheduler.max_latent_frames)

    def check_inputs(self, prompt: str, width: int, height: int, num_frames: int, fps: float,
                     steps: int) -> None:
        """Raise InputError with one line for anything this pipeline cannot generate."""
        if not isinstance(prompt, str) or not prompt.strip():
            raise InputError("the prompt is empty; describe the video, e.g. \"a red circle moves left\"")
        m = self.size_multiple
        if width < m or height < m or width % m or height % m:
            lo_w, lo_h = max(m, width // m * m), max(m, height // m * m)
            hi_w, hi_h = max(m, -(-width // m) * m), max(m, -(-height // m) * m)
            near = f"{lo_w}x{lo_h}" if (lo_w, lo_h) == (hi_w, hi_h) else f"{lo_w}x{lo_h} or {hi_w}x{hi_h}"
            raise InputError(f"size {width}x{height} is not a multiple of {m}; try {near}")
        if fps <= 0:
            raise InputError(f"fps must be positive, got {fps}")
        if num_frames < 1:
            raise InputError(f"the video needs at least 1 frame, got {num_frames}")
        if num_frames > self.max_frames:
            longest = self.max_frames / fps
            raise InputError(f"{num_frames} frames ({num_frames / fps:g} s at {fps:g} fps) is more than one pass "
                             f"holds ({self.max_frames} frames); use --seconds <= {math.floor(longest * 10) / 10:g}, "
                             "or the long-video mode (coming)")
        if steps < 1:
            raise InputError(f"the number of steps must be at least 1, got {steps}")

    # -- the call -----------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, prompt: str, negative_prompt: str | None = None, seconds: float | None = None,
                 num_frames: int | None = None, fps: float | None = None, height: int | None = None,
                 width: int | None = None, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, solver: Solver | str | None = None,
                 shift: float | None = None, generator: torch.Generator | None = None, seed: int | None = None,
                 callback: Callable[[int, int], None] | None = None) -> VideoOutput:
        """Generate a video. Give seconds or num_frames (else the scheduler's default seconds).

        A generator (CPU) or a seed makes the result reproducible; callback(step, total) reports progress.
        """
        s = self.scheduler
        t_start = time.perf_counter()
        fps = float(fps if fps is not None else s.fps)
        width, height = int(width or s.width), int(height or s.height)
        if num_frames is None:
            num_frames = max(1, round((seconds if seconds is not None else s.seconds) * fps))
        steps = int(num_inference_steps or s.num_inference_steps)
        guidance = float(s.guidance_scale if guidance_scale is None else guidance_scale)
        solver = Solver(solver or s.solver)
        negative_prompt = negative_prompt or ""

        # 1. check inputs
        self.check_inputs(prompt, width, height, num_frames, fps, steps)

        # 2. encode prompt (and the negative prompt, for guidance)
        t0 = time.perf_counter()
        cond, uncond = self.encode_prompt(prompt, negative_prompt if guidance != 1.0 else None)
        t_encode = time.perf_counter() - t0

        # 3. prepare latents: the VAE's frames are 1 + 4k, trimmed to num_frames after decoding
        vc = self.vae.config
        lat_t = vc.latent_frames(1 + -(-(num_frames - 1) // vc.temporal_factor) * vc.temporal_factor)
        shape = (1, vc.latent_channels, lat_t, height // vc.spatial_factor, width // vc.spatial_factor)
        if generator is None:
            seed = seed if seed is not None else secrets.randbits(63)  # reported in settings, so re-runnable
            generator = torch.Generator().manual_seed(seed)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32).to(self.device)

        # 4. set timesteps, shifted by the token count
        p = self.transformer.config.patch_size
        tokens = lat_t // p[0] * (shape[3] // p[1]) * (shape[4] // p[2])
        if shift is None:
            shift = token_shift(tokens, s.base_shift, s.reference_tokens, s.max_shift)
        times = timesteps(steps, shift, self.device)

        # 5. denoising loop
        t0 = time.perf_counter()
        with autocast_for(self.device):
            latent = solve(guided(self.transformer, cond, uncond, guidance), noise, times, solver, callback)
        t_denoise = time.perf_counter() - t0

        # 6. decode
        t0 = time.perf_counter()
        frames = self.decode_latents(latent)[:num_frames]
        t_decode = time.perf_counter() - t0

        settings = GenerationSettings(prompt, negative_prompt, width, height, num_frames, fps, steps, guidance,
                                      str(solver), float(shift), seed, tuple(shape))
        timings = {"encode_s": t_encode, "denoise_s": t_denoise, "decode_s": t_decode,
                   "total_s": time.perf_counter() - t_start, "model_calls": float(model_calls(solver, steps))}
        return VideoOutput(frames, settings, timings)

    def encode_prompt(self, prompt: str, negative_prompt: str | None) -> tuple[dict, dict | None]:
        """The DiT's text conditions for the prompt and (when guiding) the negative prompt."""
        prompts = [prompt] if negative_prompt is None else [prompt, negative_prompt]
        emb = self.text_encoder.encode(prompts).to(self.device)
        cond = {"text": emb.hidden[:1], "text_mask": emb.mask[:1]}
        uncond = None if negative_prompt is None else {"text": emb.hidden[1:], "text_mask": emb.mask[1:]}
        return cond, uncond

    def decode_latents(self, latent: torch.Tensor) -> np.ndarray:
        """Normalized latent (1, C, T, H, W) -> uint8 frames (T', H', W', 3)."""
        video = self.vae.decode(latent.to(next(self.vae.parameters()).dtype))  # (1, 3, T', H', W')
        x = ((video[0].float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)  # (3, T', H', W')
        return x.permute(1, 2, 3, 0).cpu().numpy()  # (T', H', W', 3)

    # -- files --------------------------------------------------------------------------------------

    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write the pipeline directory; it is assembled beside the target and renamed into place."""
        out = Path(directory)
        with atomic_dir(out) as tmp:
            self.transformer.save_pretrained(tmp / "transformer")
            self.vae.save_pretrained(tmp / "vae")
            self.text_encoder.save_pretrained(tmp / "text_encoder")
            (tmp / "scheduler").mkdir()
            sched = {"_class_name": "SchedulerConfig", **asdict(self.scheduler)}
            (tmp / "scheduler" / "config.json").write_text(json.dumps(sched, indent=2, default=str) + "\n")
            index = {"_class_name": "KinoPipeline", **{k: ["kino", v] for k, v in COMPONENTS.items()}}
            (tmp / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
        return out

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: torch.device | str = "cpu",
                        dtype: torch.dtype | None = None) -> KinoPipeline:
        """Load a pipeline directory; ModelError with one line when it is missing or broken."""
        from kino.models.vae import CausalVAE

        d = Path(directory)
        if not d.is_dir():
            raise ModelError(f"model directory {d} does not exist; make one with `kino model init {d}`")
        index = d / "model_index.json"
        try:
            names = json.loads(index.read_text())
        except (OSError, ValueError):
            raise ModelError(f"{d} is not a kino pipeline: {index.name} is missing or not JSON") from None
        missing = [k for k in COMPONENTS if k not in names or not (d / k).is_dir()]
        if missing:
            raise ModelError(f"{d} is not a complete kino pipeline: missing {', '.join(missing)}")
        try:
            scheduler = SchedulerConfig.from_dict(json.loads((d / "scheduler" / "config.json").read_text()))
        except (OSError, ValueError, InputError) as e:
            raise ModelError(f"{d}/scheduler/config.json is broken ({str(e).splitlines()[0][:120]})") from None
        transformer = DiT.from_pretrained(d / "transformer", device=device, dtype=dtype)
        vae = CausalVAE.from_pretrained(d / "vae", device=device, dtype=dtype)
        text_encoder = TextEncoder.from_pretrained(d / "text_encoder", device=device)
        return cls(transformer, vae, text_encoder, scheduler, device)

    @classmethod
    def from_presets(cls, dit_preset: str = "world-tiny", vae_preset: str = "world-tiny",
                     vae_dir: str | os.PathLike | None = None, device: torch.device | str = "cpu",
                     seed: int = 0, scheduler: SchedulerConfig | None = None) -> KinoPipeline:
        """A freshly initialised pipeline (an existing trained VAE can be given with vae_dir)."""
        from kino.models.dit import DIT_PRESETS
        from kino.models.vae import CausalVAE
        from kino.models.vae import vae_preset as make_vae_config

        if dit_preset not in DIT_PRESETS:
            raise InputError(f"unknown DiT preset {dit_preset!r}; choose one of {', '.join(DIT_PRESETS)}")
        torch.manual_seed(seed)
        if vae_dir is not None:
            vae = CausalVAE.from_pretrained(vae_dir)
        else:
            vae = CausalVAE(make_vae_config(vae_preset))
        text_encoder = TextEncoder()
        config = DIT_PRESETS[dit_preset](in_channels=vae.config.latent_channels,
                                         out_channels=vae.config.latent_channels, text_dim=text_encoder.dim)
        return cls(DiT(config), vae, text_encoder, scheduler, device)
