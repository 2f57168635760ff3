"""KinoPipeline: text -> video (and image, and every conditioned mode). The one way in: the CLI, the
server and the evaluator wrap it.

A pipeline directory has one subfolder per component and a model_index.json naming them, as diffusers
lays them out:

    model_index.json         {"_class_name": "KinoPipeline", "transformer": ["kino", "DiT"], ...}
    transformer/             config.json + model.safetensors (kino.models.dit.DiT)
    vae/                     config.json + model.safetensors (kino.models.vae.CausalVAE)
    text_encoder/            config.json (naming the packaged MiniLM) or a Hugging Face encoder folder
    scheduler/               config.json (SchedulerConfig: solver, steps, guidance, shift, limits)

__call__ reads as its steps: check inputs, encode prompt, prepare latents, set timesteps, denoise, decode.
Conditions (kino.diffusion.conditioning) put clean latents of given pixels into chosen latent frames;
`init_latent` + `strength` start part way along the path (SDEdit). A video longer than one pass is made
in windows that overlap by a few latent frames, each conditioned on the end of the last (`stream`), so
memory does not grow with length; the modes that build conditions from images and videos are in
kino.modes.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from kino.diffusion.conditioning import Condition, conditioned
from kino.diffusion.flow import token_shift
from kino.diffusion.samplers import Solver, model_calls, solve, timesteps
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
    guidance_min_t: float = 0.0  # guidance only at steps with t above this (kino.diffusion.conditioning)
    base_shift: float = 1.0  # time shift at reference_tokens; grows as sqrt(tokens / reference_tokens)
    reference_tokens: int = 256
    max_shift: float = 8.0
    fps: float = 8.0
    width: int = 64
    height: int = 64
    seconds: float = 2.0
    max_latent_frames: int = 16  # what one pass holds: 1 + 4 * 15 = 61 pixel frames with the 4x VAE
    window_overlap: int = 2  # latent frames a window of a long video shares with the one before
    condition_guidance: float = 1.0  # guidance scale of condition frames (1: off; see conditioning.py)
    trained_sizes: tuple[tuple[int, int], ...] = ()  # (width, height) the model was trained at (a size warning)

    def __post_init__(self) -> None:
        object.__setattr__(self, "solver", Solver(self.solver))
        object.__setattr__(self, "trained_sizes", tuple((int(w), int(h)) for w, h in self.trained_sizes))
        if self.num_inference_steps < 1 or self.max_latent_frames < 1 or self.fps <= 0 or self.seconds <= 0:
            raise InputError("scheduler config needs steps >= 1, max_latent_frames >= 1, fps > 0, seconds > 0")
        if not 0.0 <= self.guidance_min_t < 1.0:
            raise InputError(f"guidance_min_t must be in [0, 1) (guidance at steps with t above it), "
                             f"got {self.guidance_min_t}")
        if not 1 <= self.window_overlap < max(self.max_latent_frames, 2):
            raise InputError(f"window_overlap must be in [1, max_latent_frames), got {self.window_overlap}")

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
    latent_shape: tuple[int, ...]  # of one pass (one window of a long video)
    condition_frames: tuple[int, ...] = ()  # latent frames held clean (a single pass)
    condition_guidance: float = 1.0
    strength: float | None = None  # SDEdit: the noise level sampling started from
    windows: int = 1
    guidance_min_t: float = 0.0  # guidance only at steps with t above this (SchedulerConfig)


@dataclass(frozen=True)
class VideoOutput:
    """A generated video: uint8 frames (T, H, W, 3), the resolved settings and timings in seconds."""

    frames: np.ndarray
    settings: GenerationSettings
    timings: dict[str, float] = field(default_factory=dict)
    seams: tuple[int, ...] = ()  # frame indices where a new window's own frames begin


@dataclass(frozen=True)
class Window:
    """One pass of a long video: `cond_frames` pixel frames repeat the end of the video so far (clean
    conditions), then `new_frames` are generated; `pixel_frames` (1 + 4k) is what the pass decodes."""

    prompt: str
    start: int  # index in the output of the first new frame
    new_frames: int
    cond_frames: int  # 0 for a first window or after a cut, else 1 + 4 (overlap - 1)
    pixel_frames: int
    reseed: bool = False  # restart the noise from the seed (a cut in a storyboard: shared seed)


@dataclass(frozen=True)
class Shot:
    """A piece of a long video: its prompt, length in frames, and whether it continues the previous one."""

    prompt: str
    num_frames: int
    continuous: bool = True


def plan_windows(shots: Sequence[Shot], max_frames: int, overlap_frames: int, temporal_factor: int = 4,
                 first_cond: int = 0) -> list[Window]:
    """Cut shots into windows of at most max_frames pixel frames (1 + 4k). A window after the first
    (or the first of a continuous shot) re-uses the last overlap_frames output frames as conditions;
    first_cond > 0 makes the very first window continue that many given frames (extension)."""
    tf = temporal_factor

    def pixels(n: int) -> int:  # frames a pass must decode to hold n
        return 1 + -(-(n - 1) // tf) * tf

    if overlap_frames >= max_frames:
        raise InputError(f"the window overlap ({overlap_frames} frames) must be shorter than a pass ({max_frames})")
    out: list[Window] = []
    start = 0
    for i, shot in enumerate(shots):
        if shot.num_frames < 1:
            raise InputError(f"shot {i + 1} has no frames; give it seconds > 0")
        left, first = shot.num_frames, True
        while left > 0:
            cond = overlap_frames if out and (shot.continuous or not first) else (first_cond if not out else 0)
            new = min(left, max_frames - cond)
            out.append(Window(shot.prompt, start, new, cond, pixels(cond + new), reseed=first and i > 0 and not cond))
            start, left, first = start + new, left - new, False
    return out


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
                     steps: int, windowed: bool = True) -> None:
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
        if num_frames > self.max_frames and not windowed:
            longest = self.max_frames / fps
            raise InputError(f"{num_frames} frames ({num_frames / fps:g} s at {fps:g} fps) is more than one pass "
                             f"holds ({self.max_frames} frames) in this mode; use --seconds <= "
                             f"{math.floor(longest * 10) / 10:g}")
        if steps < 1:
            raise InputError(f"the number of steps must be at least 1, got {steps}")

    # -- the call -----------------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, prompt: str | Sequence[str], negative_prompt: str | None = None, seconds: float | None = None,
                 num_frames: int | None = None, fps: float | None = None, height: int | None = None,
                 width: int | None = None, num_inference_steps: int | None = None,
                 guidance_scale: float | None = None, solver: Solver | str | None = None,
                 shift: float | None = None, generator: torch.Generator | None = None, seed: int | None = None,
                 callback: Callable[[int, int], None] | None = None, condition: Condition | None = None,
                 condition_guidance: float | None = None, init_latent: torch.Tensor | None = None,
                 strength: float | None = None) -> VideoOutput:
        """Generate a video (or an image: num_frames=1). Give seconds or num_frames (else the default seconds).

        A generator (CPU) or a seed makes the result reproducible; callback(step, total) reports progress.
        `condition` holds clean latents in chosen frames of the pass; `init_latent` (1, C, T, h, w) with
        `strength` in [0, 1] starts sampling from that latent noised to t = strength (SDEdit). A video
        longer than one pass is made in windows (see `stream`); a list of prompts gives one per window.
        """
        s = self.scheduler
        t_start = time.perf_counter()
        fps = float(fps if fps is not None else s.fps)
        width, height = int(width or s.width), int(height or s.height)
        if num_frames is None:
            num_frames = max(1, round((seconds if seconds is not None else s.seconds) * fps))
        steps = int(num_inference_steps or s.num_inference_steps)
        guidance = float(s.guidance_scale if guidance_scale is None else guidance_scale)
        cond_scale = float(s.condition_guidance if condition_guidance is None else condition_guidance)
        solver = Solver(solver or s.solver)
        negative_prompt = negative_prompt or ""
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        if generator is None:
            seed = seed if seed is not None else secrets.randbits(63)  # reported in settings, so re-runnable
            generator = torch.Generator().manual_seed(seed)

        # 1. check inputs
        single = condition is not None or init_latent is not None
        for p in prompts or [""]:
            self.check_inputs(p, width, height, num_frames, fps, steps, windowed=not single)
        if strength is not None and not 0.0 <= strength <= 1.0:
            raise InputError(f"strength must be in [0, 1] (0 keeps the input, 1 ignores it), got {strength}")

        if num_frames > self.max_frames or len(prompts) > 1:  # a long video: windows, then collect
            shots = _split_prompts(prompts, num_frames, self.max_frames)
            windows = plan_windows(shots, self.max_frames, self.overlap_frames, self.vae.config.temporal_factor)
            frames = np.concatenate(list(self.stream(
                windows, negative_prompt=negative_prompt, fps=fps, width=width, height=height, steps=steps,
                guidance_scale=guidance, solver=solver, shift=shift, generator=generator, seed=seed,
                condition_guidance=cond_scale, callback=callback)))
            shape = self.latent_shape(windows[0].pixel_frames, width, height)
            settings = GenerationSettings(prompts[0], negative_prompt, width, height, num_frames, fps, steps, guidance,
                                          str(solver), float(shift or self.shift_for(shape)), seed, shape, (),
                                          cond_scale, None, windows=len(windows), guidance_min_t=s.guidance_min_t)
            timings = {"total_s": time.perf_counter() - t_start,
                       "model_calls": float(model_calls(solver, steps) * len(windows))}
            return VideoOutput(frames, settings, timings, tuple(w.start for w in windows[1:]))

        # 2. encode prompt (and the negative prompt, for guidance)
        t0 = time.perf_counter()
        cond, uncond = self.encode_prompt(prompts[0], negative_prompt if guidance != 1.0 or cond_scale != 1.0
                                          else None)
        t_encode = time.perf_counter() - t0

        # 3. prepare latents: the VAE's frames are 1 + 4k, trimmed to num_frames after decoding
        shape = self.latent_shape(num_frames, width, height)
        noise = torch.randn(shape, generator=generator, dtype=torch.float32).to(self.device)

        # 4. set timesteps, shifted by the token count
        shift = self.shift_for(shape) if shift is None else shift
        times = timesteps(steps, shift, self.device)
        x = noise
        if init_latent is not None:  # SDEdit (Meng et al. 2022): noise the input to t = strength
            strength = 1.0 if strength is None else float(strength)
            if tuple(init_latent.shape) != shape:
                raise InputError(f"the input latent is {tuple(init_latent.shape)}, this pass needs {shape}")
            times = torch.cat([times.new_tensor([strength]), times[times < strength]])
            x = (1.0 - strength) * init_latent.float().to(self.device) + strength * noise
        if condition is not None:
            if tuple(condition.latent.shape) != shape:
                raise InputError(f"the condition latent is {tuple(condition.latent.shape)}, this pass needs {shape}")
            if condition.mask.any() and self.transformer.config.patch_size[0] != 1:
                raise ModelError("conditioning frames needs a DiT with temporal patch size 1")
            x = condition.impose(x)

        # 5. denoising loop
        t0 = time.perf_counter()
        velocity = conditioned(self.transformer, cond, uncond, guidance, condition, cond_scale, noise,
                               s.guidance_min_t)
        with autocast_for(self.device):
            latent = solve(velocity, x, times, solver, callback)
        t_denoise = time.perf_counter() - t0

        # 6. decode
        t0 = time.perf_counter()
        frames = self.decode_latents(latent)[:num_frames]
        t_decode = time.perf_counter() - t0

        settings = GenerationSettings(prompts[0], negative_prompt, width, height, num_frames, fps, steps, guidance,
                                      str(solver), float(shift), seed, tuple(shape),
                                      tuple(condition.frames) if condition is not None else (), cond_scale,
                                      strength if init_latent is not None else None,
                                      guidance_min_t=s.guidance_min_t)
        timings = {"encode_s": t_encode, "denoise_s": t_denoise, "decode_s": t_decode,
                   "total_s": time.perf_counter() - t_start,
                   "model_calls": float(model_calls(solver, len(times) - 1))}
        return VideoOutput(frames, settings, timings)

    # -- long videos ----------------------------------------------------------------------------------

    @property
    def overlap_frames(self) -> int:
        """Pixel frames two windows share: 1 + 4 (overlap - 1), re-encoded as the next window's head."""
        return self.vae.config.pixel_frames(self.scheduler.window_overlap)

    def stream(self, windows: Sequence[Window], negative_prompt: str = "", fps: float | None = None,
               width: int | None = None, height: int | None = None, steps: int | None = None,
               guidance_scale: float | None = None, solver: Solver | str | None = None, shift: float | None = None,
               generator: torch.Generator | None = None, seed: int | None = None,
               condition_guidance: float | None = None, callback: Callable[[int, int], None] | None = None,
               first_condition: np.ndarray | None = None) -> Iterator[np.ndarray]:
        """Yield each window's new frames (t, H, W, 3) uint8 as it is made (plan them with plan_windows).

        A window with cond_frames > 0 re-encodes the last cond_frames frames made so far as a fresh clip
        (latent frame 0 codes its first frame alone, as in training's head masks) and holds them clean;
        only those frames are kept between windows, so memory does not grow with the video's length.
        `first_condition` (cond_frames of the first window, uint8) continues a given video instead.
        A cut window (reseed) restarts the noise from `seed`: shots share their seed.
        """
        if seed is None and generator is None:
            seed = secrets.randbits(63)
        generator = generator or torch.Generator().manual_seed(seed)
        width, height = int(width or self.scheduler.width), int(height or self.scheduler.height)
        tail = first_condition
        for i, w in enumerate(windows):
            if w.reseed and seed is not None:
                generator = torch.Generator().manual_seed(seed)
            condition = None
            if w.cond_frames:
                if tail is None or len(tail) < w.cond_frames:
                    raise InputError(f"window {i + 1} continues {w.cond_frames} frames, but none came before it")
                z = self.encode_frames(tail[-w.cond_frames:])  # (1, C, k, h, w)
                shape = self.latent_shape(w.pixel_frames, width, height)
                mask = torch.zeros(shape[2], dtype=torch.bool)
                mask[:z.shape[2]] = True
                full = torch.zeros(shape, device=self.device)
                full[:, :, :z.shape[2]] = z
                condition = Condition(full, mask)
            step_cb = None if callback is None else (lambda k, n, i=i: callback(i * n + k, len(windows) * n))
            out = self(w.prompt, negative_prompt=negative_prompt, num_frames=w.pixel_frames, fps=fps, width=width,
                       height=height, num_inference_steps=steps, guidance_scale=guidance_scale, solver=solver,
                       shift=shift, generator=generator, callback=step_cb, condition=condition,
                       condition_guidance=condition_guidance)
            new = out.frames[w.cond_frames:w.cond_frames + w.new_frames]  # (new, H, W, 3)
            keep = self.overlap_frames
            tail = np.concatenate([tail, new])[-keep:] if tail is not None else new[-keep:]
            yield new

    # -- latents --------------------------------------------------------------------------------------

    def latent_shape(self, num_frames: int, width: int, height: int) -> tuple[int, int, int, int, int]:
        """(1, C, T, h, w) of a pass that holds num_frames pixel frames (rounded up to 1 + 4k)."""
        vc = self.vae.config
        lat_t = vc.latent_frames(1 + -(-(num_frames - 1) // vc.temporal_factor) * vc.temporal_factor)
        return (1, vc.latent_channels, lat_t, height // vc.spatial_factor, width // vc.spatial_factor)

    def shift_for(self, shape: Sequence[int]) -> float:
        """The scheduler's time shift for a latent of this shape (more tokens, more shift)."""
        s, p = self.scheduler, self.transformer.config.patch_size
        tokens = shape[2] // p[0] * (shape[3] // p[1]) * (shape[4] // p[2])
        return token_shift(tokens, s.base_shift, s.reference_tokens, s.max_shift)

    def encode_frames(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames (T, H, W, 3) with T = 1 + 4k -> normalized latent (1, C, 1 + k, h, w).

        A fresh causal clip: its latent frame 0 codes frame 0 alone, latent frame j frames 4j-3..4j.
        """
        dtype = next(self.vae.parameters()).dtype
        x = torch.from_numpy(np.array(frames, dtype=np.uint8)).to(self.device)  # (T, H, W, 3), a writable copy
        x = x.permute(3, 0, 1, 2)[None].to(dtype) / 127.5 - 1.0  # (1, 3, T, H, W) in [-1, 1]
        return self.vae.encode(x).float()

    def encode_inner(self, frames: np.ndarray) -> torch.Tensor:
        """uint8 frames (4m, H, W, 3) meant for latent frames after the first -> latent (1, C, m, h, w).

        Such a latent frame codes four pixel frames with a causal past. The clip given to the VAE is
        the first frame, then the frames: its first latent frame (the lone first frame) is dropped and the
        rest code the frames with that frame as their past. An image there is four copies of it.
        """
        tf = self.vae.config.temporal_factor
        if len(frames) % tf or not len(frames):
            raise InputError(f"inner condition frames come in groups of {tf}, got {len(frames)}")
        return self.encode_frames(np.concatenate([frames[:1], frames]))[:, :, 1:]

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


def _split_prompts(prompts: list[str], num_frames: int, max_frames: int) -> list[Shot]:
    """One prompt: one shot. Several: the video's frames shared out evenly, one continuous shot each."""
    if len(prompts) == 1:
        return [Shot(prompts[0], num_frames)]
    n = len(prompts)
    if num_frames < n:
        raise InputError(f"{n} prompts need at least {n} frames, got {num_frames}")
    sizes = [num_frames // n + (i < num_frames % n) for i in range(n)]
    return [Shot(p, k, continuous=True) for p, k in zip(prompts, sizes, strict=True)]
