"""The part of a diffusers family adapter that does not depend on the family.

`DiffusersModel.generate` resolves the request (size, frames, steps, guidance, seed), reads its inputs
(images and videos, fitted to the size), dispatches to the family's method for the mode, and returns
uint8 frames with the settings the manifest records. A family (kino.families.ltx, kino.families.wan)
implements one method per mode it has a mechanism for, each a diffusers pipeline call:

    def text_once(self, job, frames) -> frames   def image_to_video(self, job) -> Pass
    def extend(self, job) -> Pass                def loop(self, job) -> Pass
    def interpolate(self, job) -> Pass           def connect(self, job) -> Pass
    def edit(self, job) -> Pass                  def extend_once(self, job, video, frames) -> frames

`text`, `extend_forward` and `storyboard` are built here from `text_once` and `extend_once`: a video longer
than one pass is made in windows, each an extension of the frames so far (kino's windows over the
family's extension mechanism).

Letters: T frames, H height, W width.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from kino.errors import InputError
from kino.families.base import Generated, ModelDefaults, ModelInfo, VideoModel
from kino.families.diffusers_common import (
    RunOptions,
    check_size,
    config_folder,
    estimate_memory_gb,
    load_components,
    parameter_counts,
    resolve_dtype,
    round_frames,
    sample,
    to_uint8,
)


@dataclass
class Job:
    """One resolved request: what a family's mode method reads."""

    request: object  # kino.generation.GenerationRequest
    prompt: str
    seed: int
    width: int
    height: int
    fps: float
    frames: int  # frames asked for (new frames for extend/connect/loop), before rounding
    steps: int
    guidance: float
    callback: Callable[[int, int], None] | None
    notes: list[str] = field(default_factory=list)

    def generator(self):
        import torch

        return torch.Generator("cpu").manual_seed(self.seed)  # CPU noise: the same video on any device

    def image(self, path) -> np.ndarray:
        from kino.modes import load_image

        return load_image(path, self.width, self.height, self.notes)  # (H, W, 3) uint8

    def video(self, path, max_frames: int | None = None) -> np.ndarray:
        from kino.modes import load_video

        return load_video(path, self.width, self.height, self.notes, max_frames=max_frames)  # (T, H, W, 3)


@dataclass(frozen=True)
class Pass:
    """A mode's frames (T, H, W, 3) float32 in [0, 1] (given frames included) and where parts meet."""

    frames: np.ndarray
    seams: tuple[int, ...] = ()
    calls: int = 1  # pipeline calls made


class DiffusersModel(VideoModel):
    """A diffusers pipeline behind kino's interface. Subclasses set family, modes, defaults, variant."""

    variant: str = ""
    notes: tuple[str, ...] = ()

    def __init__(self, pipe, path: str | os.PathLike, device: str, torch_dtype, options: RunOptions,
                 single_file: str | None = None):
        self.pipe = pipe
        self.path = str(path)
        self.name = Path(path).stem if Path(path).is_file() else Path(path).name
        self.device = device
        self.torch_dtype = torch_dtype
        self.options = options
        self.single_file = single_file
        self.configure()  # first: LTX-Video may rebuild the pipeline around the loaded components
        self.options_used = options.apply(self.pipe, device)
        self.pipe.set_progress_bar_config(disable=True)  # kino draws its own progress from the step callback

    def configure(self) -> None:
        """Set variant, modes and defaults from the loaded components (subclasses)."""

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu", dtype: str | None = None,
             config: str | os.PathLike | None = None, **options):
        """Load a diffusers folder (or a single transformer file with its folder as `config`)."""
        opts = RunOptions.from_options(options)
        torch_dtype = resolve_dtype(device, dtype)
        _, single = config_folder(path, config)
        pipe = load_components(path, config, torch_dtype)
        return cls(pipe, path, device, torch_dtype, opts, single_file=str(single) if single else None)

    # -- the request ---------------------------------------------------------------------------------

    def job(self, request, prompt: str, seed: int, callback=None) -> Job:
        d = self.defaults
        width, height = int(request.width or d.width), int(request.height or d.height)
        check_size(width, height, d.size_multiple, f"{self.family} ({self.variant})")
        fps = float(request.fps or d.fps)
        seconds = request.seconds if request.seconds is not None else d.seconds
        if seconds <= 0:
            raise InputError(f"--seconds must be positive, got {seconds:g}")
        frames = 1 if getattr(request, "image_only", False) else max(1, round(seconds * fps))
        steps = int(request.steps or d.steps)
        guidance = float(request.guidance if request.guidance is not None else d.guidance)
        return Job(request, prompt, seed, width, height, fps, frames, steps, guidance, callback)

    def total_frames(self, job: Job, n: int, what: str = "frames") -> int:
        """n rounded up to what one pass holds (1 + k * frame_multiple), within max_frames."""
        m = round_frames(n, self.defaults.frame_multiple, job.notes, what) if n > 1 else 1
        if self.defaults.max_frames is not None and m > self.defaults.max_frames:
            raise InputError(f"{self.family} ({self.variant}) makes at most {self.defaults.max_frames} frames in one "
                             f"pass ({self.defaults.max_frames / job.fps:g} s at {job.fps:g} fps); this needs {m}")
        return m

    def edit_input(self, job: Job) -> tuple[np.ndarray, float, int]:
        """The video to edit padded to what one pass holds (total, H, W, 3), the SDEdit strength, and
        the video's own length (what the edit is trimmed back to)."""
        from kino.request import EDIT_STRENGTH

        video = job.video(job.request.video, max_frames=self.defaults.max_frames)
        strength = EDIT_STRENGTH if job.request.strength is None else float(job.request.strength)
        if int(job.steps * strength) < 1:
            raise InputError(f"strength {strength:g} with {job.steps} steps denoises nothing; raise --strength "
                             f"to at least {1 / job.steps:.2g} or give more --steps")
        n = len(video)
        total = self.total_frames(job, n, "frames of the video")
        return np.concatenate([video, np.repeat(video[-1:], total - n, axis=0)]), strength, n

    def common(self, job: Job) -> dict:
        """The pipeline arguments every call shares."""
        req = job.request
        return {"prompt": job.prompt, "negative_prompt": req.negative_prompt, "width": job.width,
                "height": job.height, "num_inference_steps": job.steps, "guidance_scale": job.guidance,
                "generator": job.generator()}

    def call(self, pipe, job: Job, **kwargs) -> np.ndarray:
        """One diffusers call: (T, H, W, 3) float32 frames in [0, 1]."""
        return sample(pipe, {**self.common(job), **kwargs}, job.callback)

    # -- VideoModel ----------------------------------------------------------------------------------

    def run(self, request, prompt: str, seed: int, callback=None) -> tuple[Pass, Job]:
        """The mode's float frames (what the equivalence tests compare with diffusers) and the job."""
        self.check_mode(request.mode)
        job = self.job(request, prompt, seed, callback)
        method = {"text": self.text, "image-to-video": self.image_to_video, "extend": self.extend,
                  "loop": self.loop, "interpolate": self.interpolate, "connect": self.connect,
                  "edit": self.edit, "storyboard": self.storyboard}[str(request.mode)]
        return method(job), job

    def generate(self, request, prompt: str, seed: int, callback=None) -> Generated:
        t0 = time.perf_counter()
        out, job = self.run(request, prompt, seed, callback)
        settings = {"family": str(self.family), "variant": self.variant, "checkpoint": self.checkpoint,
                    "width": job.width, "height": job.height, "fps": job.fps, "frames": int(len(out.frames)),
                    "steps": job.steps, "guidance": job.guidance, "seed": seed, "dtype": self.dtype_name,
                    "options": list(self.options_used)}
        return Generated(to_uint8(out.frames), job.fps, settings, tuple(job.notes), out.seams,
                         {"generate": time.perf_counter() - t0})

    @property
    def checkpoint(self) -> str:
        """What the manifest names: the folder (and the single file when one was given)."""
        return self.single_file or self.path

    @property
    def dtype_name(self) -> str:
        return str(self.torch_dtype).removeprefix("torch.")

    def tokens(self) -> tuple[int, int, int]:
        """(tokens of a default generation, hidden size, blocks) of the transformer (subclasses)."""
        return 0, 0, 0

    def info(self) -> ModelInfo:
        counts = parameter_counts(self.pipe)
        tokens, hidden, layers = self.tokens()
        nbytes = 2 if self.dtype_name in ("bfloat16", "float16") else 4
        memory = estimate_memory_gb(counts, nbytes, tokens, hidden, layers, self.options.offload)
        notes = self.notes + tuple(f"option: {u}" for u in self.options_used)
        if self.single_file:
            notes += (f"transformer from {self.single_file}",)
        return ModelInfo(self.family, self.variant, self.path, counts, self.dtype_name,
                         tuple(sorted(self.modes)), self.defaults, memory, notes)

    # -- the modes (a family overrides the ones it can do; check_mode refuses the rest first) ---------

    def text_once(self, job: Job, frames: int) -> np.ndarray:
        """One text-to-video pass of `frames` (rounded up to what the VAE encodes)."""
        raise NotImplementedError

    def extend_once(self, job: Job, video: np.ndarray, frames: int) -> np.ndarray:
        """`frames` new frames (float) continuing `video` (uint8 (T, H, W, 3)) in one pass."""
        raise NotImplementedError

    def not_here(self, job: Job) -> Pass:
        raise NotImplementedError

    image_to_video = extend = loop = interpolate = connect = edit = not_here
    context_frames = 0  # frames of the video so far that an extension window sees

    def text(self, job: Job) -> Pass:
        """Text to video; longer than one pass (with an extension mechanism): windows, each continuing the
        last under the next of the request's prompts (cycled)."""
        limit = self.defaults.max_frames
        if limit is None or job.frames <= limit or "extend" not in self.modes:
            return Pass(self.text_once(job, job.frames))
        first = self.text_once(job, limit)
        rest, seams = self.windows(job, to_uint8(first), job.frames - len(first), start=1)
        return Pass(np.concatenate([first, rest]), tuple(len(first) + s for s in seams), calls=1 + len(seams))

    def extend_forward(self, job: Job, video: np.ndarray) -> Pass:
        """The video, then job.frames more in windows (kino's windows over the family's extension)."""
        new, seams = self.windows(job, video, job.frames)
        return Pass(np.concatenate([self.given(video), new]), tuple(len(video) + s for s in seams), calls=len(seams))

    def windows(self, job: Job, video: np.ndarray, frames: int, start: int = 0) -> tuple[np.ndarray, list[int]]:
        """`frames` new frames after `video`, one extension pass per window of at most what a pass holds
        beside its context; window i uses prompt i of (prompt, *request.prompts), cycled, and seed + i."""
        limit = max((self.defaults.max_frames or frames + self.context_frames) - self.context_frames,
                    self.defaults.frame_multiple)
        prompts = [job.prompt, *[p for p in getattr(job.request, "prompts", ()) if p.strip()]]
        parts, seams, done, i = [], [], 0, start
        while done < frames:
            n = min(frames - done, limit)
            win = replace(job, prompt=prompts[i % len(prompts)], seed=job.seed + i)
            new = self.extend_once(win, video[-max(self.context_frames, 1):], n)
            seams.append(done)
            parts.append(new)
            video = np.concatenate([video, to_uint8(new)])[-max(self.context_frames, 1):]
            done, i = done + len(new), i + 1
        return np.concatenate(parts), seams

    def storyboard(self, job: Job) -> Pass:
        """Shots in order: the first (and each after a cut) from its prompt, each continuous one extending
        the video so far; every shot exactly its seconds long."""
        parts, seams, total = [], [], 0
        for k, shot in enumerate(job.request.shots):
            n = max(1, round(float(shot.seconds) * job.fps))
            prompt = job.request.shot_prompt(shot) if hasattr(job.request, "shot_prompt") else shot.prompt
            sj = replace(job, prompt=prompt, frames=n, seed=job.seed + 1000 * k)
            if k == 0 or str(shot.transition) == "cut":
                frames = self.text(sj).frames[:n]
            else:
                frames, _ = self.windows(sj, to_uint8(np.concatenate(parts)), n)
            if k:
                seams.append(total)
            parts.append(frames)
            total += len(frames)
        return Pass(np.concatenate(parts), tuple(seams), calls=len(parts))

    # -- helpers for the modes -----------------------------------------------------------------------

    @staticmethod
    def given(frames: np.ndarray) -> np.ndarray:
        """uint8 (T, H, W, 3) -> float32 in [0, 1], to join given frames with generated ones."""
        return frames.astype(np.float32) / 255.0

    @staticmethod
    def key_indices(job: Job, n_keys: int, total: int | None) -> list[int]:
        """The output frame of each keyframe: at key_times (seconds), or spread evenly over `total`."""
        times = job.request.key_times
        if times is None:
            last = (total or job.frames) - 1
            return [round(last * i / (n_keys - 1)) for i in range(n_keys)]
        idx = [round(float(t) * job.fps) for t in times]
        if idx[0] < 0:
            raise InputError(f"keyframe times must be >= 0, got {times[0]:g}")
        for i in range(1, len(idx)):
            if idx[i] <= idx[i - 1]:
                raise InputError(f"keyframes {i} and {i + 1} ({times[i - 1]:g} s, {times[i]:g} s) are not in order "
                                 f"or fall on the same frame at {job.fps:g} fps; give increasing times")
        return idx


def defaults(width: int, height: int, fps: float, frames: int, steps: int, guidance: float, size_multiple: int,
             frame_multiple: int, max_frames: int | None) -> ModelDefaults:
    """A family's ModelDefaults from its natural units (frames, not seconds)."""
    return ModelDefaults(width=width, height=height, fps=fps, seconds=frames / fps, steps=steps, guidance=guidance,
                         size_multiple=size_multiple, frame_multiple=frame_multiple, max_frames=max_frames,
                         trained_sizes=((width, height),))
