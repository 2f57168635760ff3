"""kino's own model family: a KinoPipeline folder (DiT + causal VAE + text encoder + scheduler) behind
the VideoModel interface, with every mode of kino.modes and storyboards.

`KinoModel.generate` takes a resolved request (kino.generation.resolve: no setting left None) and the
policy-checked, maybe enhanced prompt; it reads the request's input files, fits them to the asked size
(a note says so), runs the mode and returns the frames with the settings the manifest records.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from kino.errors import InputError, ModelError
from kino.families.base import Family, Generated, ModelDefaults, ModelInfo, VideoModel
from kino.modes import Mode
from kino.request import EDIT_STRENGTH


def defaults_of(pipe) -> ModelDefaults:
    """A loaded KinoPipeline's defaults and size limits."""
    s = pipe.scheduler
    return ModelDefaults(width=s.width, height=s.height, fps=float(s.fps), seconds=float(s.seconds),
                         steps=s.num_inference_steps, guidance=float(s.guidance_scale),
                         size_multiple=pipe.size_multiple, frame_multiple=pipe.vae.config.temporal_factor,
                         max_frames=pipe.max_frames, trained_sizes=tuple(s.trained_sizes))


def peek_defaults(path: str | os.PathLike) -> ModelDefaults:
    """A pipeline folder's defaults read from its config files, without loading any weights (so a
    request is checked against the model before the model loads); ModelError for a broken folder."""
    import math

    from kino.pipeline import SchedulerConfig

    d = Path(path)
    try:
        s = SchedulerConfig.from_dict(json.loads((d / "scheduler" / "config.json").read_text()))
        vae = json.loads((d / "vae" / "config.json").read_text())
        vae = vae.get("config", vae)  # the config's fields, at the top or under "config"
        dit = json.loads((d / "transformer" / "config.json").read_text())
        dit = dit.get("config", dit)
        spatial, temporal = int(vae.get("spatial_factor", 8)), int(vae.get("temporal_factor", 4))
        patch = [int(p) for p in dit.get("patch_size", (1, 2, 2))]
    except (OSError, ValueError, TypeError, AttributeError, InputError) as e:
        raise ModelError(f"{d} is not a readable kino pipeline ({type(e).__name__}: {str(e)[:120]})") from None
    return ModelDefaults(width=s.width, height=s.height, fps=float(s.fps), seconds=float(s.seconds),
                         steps=s.num_inference_steps, guidance=float(s.guidance_scale),
                         size_multiple=spatial * math.lcm(patch[1], patch[2]), frame_multiple=temporal,
                         max_frames=1 + (s.max_latent_frames - 1) * temporal, trained_sizes=tuple(s.trained_sizes))


class KinoModel(VideoModel):
    """A KinoPipeline as a VideoModel: every mode, storyboards included."""

    family = Family.KINO
    modes = frozenset(m.value for m in Mode)

    def __init__(self, pipe, name: str = "kino", path: str = "") -> None:
        self.pipe = pipe
        self.name, self.path = name, path
        self.defaults = defaults_of(pipe)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "cpu", dtype: str | None = None, **options) -> KinoModel:
        """Load a pipeline folder (`dtype`: float32, bfloat16 or float16; no other options)."""
        import torch

        from kino.pipeline import KinoPipeline

        if options:
            raise InputError(f"kino models take no loading options; got {', '.join(sorted(options))}")
        torch_dtype = None
        if dtype is not None:
            torch_dtype = getattr(torch, str(dtype), None)
            if not isinstance(torch_dtype, torch.dtype):
                raise InputError(f"unknown dtype {dtype!r}; use float32, bfloat16 or float16")
        pipe = KinoPipeline.from_pretrained(path, device=device, dtype=torch_dtype)
        return cls(pipe, Path(path).name, str(path))

    def info(self) -> ModelInfo:
        p = self.pipe
        components = {"transformer": p.transformer.num_params(),
                      "vae": sum(t.numel() for t in p.vae.parameters()),
                      "text_encoder": 0, "scheduler": 0}
        dtype = str(next(p.transformer.parameters()).dtype).removeprefix("torch.")
        size = 4 if dtype == "float32" else 2
        memory = (sum(components.values()) * size + 90e6) / 1e9  # weights + MiniLM; activations are small here
        return ModelInfo(Family.KINO, "kino", self.path, components, dtype, tuple(sorted(self.modes)), self.defaults,
                         round(memory, 3))

    def generate(self, request, prompt: str, seed: int,
                 callback: Callable[[int, int], None] | None = None) -> Generated:
        out, notes, seams = run_mode(self.pipe, request, prompt, seed, callback)
        settings = asdict(out.settings)
        settings.pop("prompt", None)
        settings.pop("negative_prompt", None)
        for key in ("latent_shape", "condition_frames"):
            settings[key] = list(settings[key])  # JSON arrays, not bytes, in the manifest
        if request.mode == Mode.STORYBOARD:
            settings["shots"] = [{"seconds": s.seconds, "transition": s.transition} for s in request.shots]
        return Generated(out.frames, float(out.settings.fps), settings, tuple(notes), tuple(seams),
                         dict(getattr(out, "timings", {}) or {}))


def run_mode(pipe, request, model_prompt: str, seed: int, callback: Callable[[int, int], None] | None = None):
    """Run a resolved request's mode on the pipeline; returns (output with .frames/.settings, notes, seams).

    Inputs (images, videos) are read and fitted to the asked size here, before any sampling, so a bad
    input fails fast with one line and nothing written.
    """
    from kino import modes

    fps, width, height = float(request.fps), int(request.width), int(request.height)
    kw = {"negative_prompt": request.negative_prompt, "fps": fps, "width": width, "height": height,
          "num_inference_steps": request.steps, "guidance_scale": request.guidance, "seed": seed,
          "callback": callback, "condition_guidance": request.condition_guidance}
    frames = max(1, round(request.seconds * fps))
    notes: list[str] = []
    mode = Mode(request.mode)
    if mode is Mode.TEXT:
        prompts = [model_prompt, *(p for p in request.prompts if p.strip())]
        out = pipe(prompts if len(prompts) > 1 else model_prompt, num_frames=1 if request.image_only else frames,
                   **{k: v for k, v in kw.items() if v is not None})
        return out, (), out.seams
    if mode is Mode.STORYBOARD:
        return _storyboard(pipe, request, seed, callback)
    if mode is Mode.IMAGE_TO_VIDEO:
        image = modes.load_image(request.from_image, width, height, notes)
        res = modes.image_to_video(pipe, model_prompt, image, frames, to_image=request.to_image, **kw)
    elif mode is Mode.EXTEND:
        video = modes.load_video(request.video, width, height, notes)
        res = modes.extend(pipe, model_prompt, video, frames, backward=request.backward, **kw)
    elif mode is Mode.LOOP:
        video = modes.load_video(request.video, width, height, notes) if request.video else None
        res = modes.loop(pipe, model_prompt, frames, video=video, **kw)
    elif mode is Mode.INTERPOLATE:
        keys = [modes.load_image(k, width, height, notes) for k in request.keyframes]
        res = modes.interpolate(pipe, model_prompt, keys, num_frames=frames, key_times=request.key_times, **kw)
    elif mode is Mode.CONNECT:
        a, b = (modes.load_video(v, width, height, notes) for v in request.videos)
        res = modes.connect(pipe, model_prompt, a, b, frames, **kw)
    else:  # edit
        video = modes.load_video(request.video, width, height, notes, max_frames=pipe.max_frames + 1)
        if len(video) > pipe.max_frames:
            raise InputError(f"{request.video}: edit works on videos of up to {pipe.max_frames} frames "
                             f"({pipe.max_frames / fps:g} s at {fps:g} fps); trim it first")
        res = modes.edit(pipe, model_prompt, video, EDIT_STRENGTH if request.strength is None else request.strength, **kw)
    return res, tuple(notes) + res.notes, res.seams


def _storyboard(pipe, request, seed: int, callback):
    """A storyboard's shots (their prompts final) as windows: continuous shots continue the last frames,
    cuts restart from the shared seed's noise."""
    import numpy as np

    from kino.pipeline import GenerationSettings, Shot, VideoOutput, plan_windows

    fps, width, height = float(request.fps), int(request.width), int(request.height)
    shots = [Shot(s.prompt, max(1, round(s.seconds * fps)), s.transition == "continuous") for s in request.shots]
    for s in shots:  # sizes, fps and steps fail before sampling too
        pipe.check_inputs(s.prompt, width, height, 1, fps, request.steps)
    windows = plan_windows(shots, pipe.max_frames, pipe.overlap_frames, pipe.vae.config.temporal_factor)
    frames = np.concatenate(list(pipe.stream(windows, negative_prompt=request.negative_prompt or "", fps=fps,
                                             width=width, height=height, steps=request.steps,
                                             guidance_scale=request.guidance, seed=seed, callback=callback)))
    shape = pipe.latent_shape(min(len(frames), pipe.max_frames), width, height)
    settings = GenerationSettings(shots[0].prompt, request.negative_prompt or "", width, height, len(frames), fps,
                                  int(request.steps), float(request.guidance), str(pipe.scheduler.solver),
                                  pipe.shift_for(shape), seed, shape, windows=len(windows))
    seams = tuple(w.start for w in windows[1:])
    return VideoOutput(frames, settings, {}, seams), (), seams
