"""From a user's request to a published file: the steps every front end shares.

    check the prompt against the policy -> enhance it -> check the enhanced prompt ->
    KinoPipeline -> frame review, watermark, atomic write, C2PA signature (kino.safety.publish)

The command line (and later the server) call `generate_file`; none of them re-implements a step.
Every mode (kino.modes: image-to-video, extend, loop, interpolate, connect, edit) and text-to-image
go through the same path; the mode is recorded in the C2PA manifest.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kino.errors import InputError

MODES = ("text", "image-to-video", "extend", "loop", "interpolate", "connect", "edit")  # = kino.modes.Mode


@dataclass(frozen=True)
class GenerationRequest:
    """What a user asks for. None means "the model's default"."""

    prompt: str
    negative_prompt: str | None = None
    seconds: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None
    enhance: bool = True  # expand the prompt into the detailed caption style the model trained on
    c2pa: bool = True  # sign the output with C2PA content credentials
    include_prompt: bool = False  # put the prompts into the C2PA manifest (opt-in)
    mode: str = "text"  # one of MODES
    image_only: bool = False  # one frame, written as a PNG (text-to-image)
    from_image: str | os.PathLike | None = None  # image-to-video: the first frame (or last, with to_image)
    to_image: bool = False
    video: str | os.PathLike | None = None  # extend, loop (optional), edit
    videos: tuple[str | os.PathLike, ...] = ()  # connect: (A, B)
    keyframes: tuple[str | os.PathLike, ...] = ()  # interpolate: images, or video frames as clip.mp4@SECONDS
    key_times: tuple[float, ...] | None = None  # seconds of each keyframe (default: evenly spread)
    strength: float | None = None  # edit: SDEdit noise level in [0, 1] (default 0.6)
    backward: bool = False  # extend before the video instead of after it
    condition_guidance: float | None = None  # guidance scale of the condition frames (1: off)
    prompts: tuple[str, ...] = ()  # long videos: one prompt per window (cycled), besides `prompt`

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InputError('the prompt is empty; describe the video, e.g. "a red circle moves left"')
        if self.mode not in MODES:
            raise InputError(f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        need = {"image-to-video": ("from_image", self.from_image), "extend": ("video", self.video),
                "edit": ("video", self.video)}
        if self.mode in need and not need[self.mode][1]:
            raise InputError(f"mode {self.mode} needs {need[self.mode][0]}")
        if self.mode == "connect" and len(self.videos) != 2:
            raise InputError(f"mode connect needs two videos, got {len(self.videos)}")
        if self.mode == "interpolate" and len(self.keyframes) < 2:
            raise InputError(f"mode interpolate needs at least 2 keyframes, got {len(self.keyframes)}")
        if self.key_times is not None and len(self.key_times) != len(self.keyframes):
            raise InputError(f"{len(self.keyframes)} keyframes but {len(self.key_times)} key times")
        if self.strength is not None and not 0.0 <= self.strength <= 1.0:
            raise InputError(f"strength must be in [0, 1] (0 keeps the input, 1 ignores it), got {self.strength}")
        if self.image_only and self.mode != "text":
            raise InputError(f"--image-only makes a text-to-image still; it does not combine with mode {self.mode}")
        if self.mode == "text" and self.from_image:
            object.__setattr__(self, "mode", "image-to-video")  # --from-image alone means image-to-video

    @property
    def manifest_mode(self) -> str:
        """The mode as the C2PA manifest records it."""
        if self.mode == "text":
            return "text-to-image" if self.image_only else "text-to-video"
        return self.mode


@dataclass(frozen=True)
class GenerationResult:
    path: Path
    output: object  # kino.pipeline.VideoOutput
    prompt: str  # what the user typed
    model_prompt: str  # what the model was given (enhanced, unless --no-enhance)
    enhanced: bool
    report: object  # kino.safety.PublishReport
    mode: str = "text-to-video"
    notes: tuple[str, ...] = ()  # what was adjusted (e.g. an input resized)
    seams: tuple[int, ...] = ()


def generate_file(
    pipe,
    request: GenerationRequest,
    output: str | os.PathLike,
    model_name: str = "kino",
    safety=None,
    enhancer=None,
    callback: Callable[[int, int], None] | None = None,
    on_prompt: Callable[[str], None] | None = None,
) -> GenerationResult:
    """Generate `request` with `pipe` and publish it to `output` (MP4, or PNG for one frame).

    `safety` is a kino.safety.SafetyConfig (default: the shipped policy); `enhancer` an Enhancer
    (default: from KINO_ENHANCE_*, the offline world expander unless configured); `on_prompt` is
    told the enhanced prompt before sampling starts.
    """
    from kino.enhance import make_enhancer
    from kino.safety import GenerationInfo, SafetyConfig, enforce_prompt, publish

    safety = safety or SafetyConfig.load()
    if not request.c2pa:
        safety = safety.with_(c2pa=False)
    if request.include_prompt:
        safety = safety.with_(include_prompt=True)
    seed = request.seed if request.seed is not None else secrets.randbits(31)

    enforce_prompt(request.prompt, safety)  # before enhancement ...
    model_prompt = request.prompt
    if request.enhance:
        model_prompt = (enhancer or make_enhancer()).enhance(request.prompt, seed=seed).text
        enforce_prompt(model_prompt, safety)  # ... and again after it
    extra = [p for p in request.prompts if p.strip()]
    for p in extra:
        enforce_prompt(p, safety)
    if on_prompt is not None:
        on_prompt(model_prompt)

    out, notes, seams = run_mode(pipe, request, model_prompt, seed, callback, extra_prompts=extra)
    settings = asdict(out.settings)
    settings.pop("prompt", None)
    settings.pop("negative_prompt", None)
    for key in ("latent_shape", "condition_frames"):
        settings[key] = list(settings[key])  # JSON arrays, not bytes, in the manifest
    mode = request.manifest_mode
    if request.mode == "text":
        mode = "text-to-image" if len(out.frames) == 1 else "text-to-video"
    info = GenerationInfo(
        model=model_name,
        mode=mode,
        settings={**settings, "enhanced": request.enhance, "frames": int(len(out.frames))},
        prompt=request.prompt,
        enhanced_prompt=model_prompt if request.enhance else None,
    )
    report = publish(out.frames, output, out.settings.fps, info, safety)
    return GenerationResult(Path(output), out, request.prompt, model_prompt, request.enhance, report, mode,
                            notes, seams)


def run_mode(pipe, request: GenerationRequest, model_prompt: str, seed: int,
             callback: Callable[[int, int], None] | None = None, extra_prompts: list[str] | None = None):
    """Run the request's mode on the pipeline; returns (output with .frames/.settings, notes, seams).

    Inputs (images, videos) are read and fitted to the asked size here, before any sampling, so a bad
    input fails fast with one line and nothing written.
    """
    from kino import modes

    s = pipe.scheduler
    fps = float(request.fps or s.fps)
    width, height = int(request.width or s.width), int(request.height or s.height)
    kw = {"negative_prompt": request.negative_prompt, "fps": fps, "width": width, "height": height,
          "num_inference_steps": request.steps, "guidance_scale": request.guidance, "seed": seed,
          "callback": callback, "condition_guidance": request.condition_guidance}
    seconds = request.seconds if request.seconds is not None else s.seconds
    if seconds <= 0:
        raise InputError(f"--seconds must be positive, got {seconds:g}")
    frames = max(1, round(seconds * fps))
    notes: list[str] = []
    if request.mode == "text":
        prompts = [model_prompt, *(extra_prompts or [])]
        out = pipe(prompts if len(prompts) > 1 else model_prompt, num_frames=1 if request.image_only else frames,
                   **{k: v for k, v in kw.items() if v is not None})
        return out, (), out.seams
    if request.mode == "image-to-video":
        image = modes.load_image(request.from_image, width, height, notes)
        res = modes.image_to_video(pipe, model_prompt, image, frames, to_image=request.to_image, **kw)
    elif request.mode == "extend":
        video = modes.load_video(request.video, width, height, notes)
        res = modes.extend(pipe, model_prompt, video, frames, backward=request.backward, **kw)
    elif request.mode == "loop":
        video = modes.load_video(request.video, width, height, notes) if request.video else None
        res = modes.loop(pipe, model_prompt, frames, video=video, **kw)
    elif request.mode == "interpolate":
        keys = [modes.load_image(k, width, height, notes) for k in request.keyframes]
        res = modes.interpolate(pipe, model_prompt, keys, num_frames=frames if request.seconds else None,
                                key_times=request.key_times, **kw)
    elif request.mode == "connect":
        a, b = (modes.load_video(v, width, height, notes) for v in request.videos)
        res = modes.connect(pipe, model_prompt, a, b, frames, **kw)
    else:  # edit
        video = modes.load_video(request.video, width, height, notes, max_frames=pipe.max_frames + 1)
        if len(video) > pipe.max_frames:
            raise InputError(f"{request.video}: edit works on videos of up to {pipe.max_frames} frames "
                             f"({pipe.max_frames / fps:g} s at {fps:g} fps); trim it first")
        res = modes.edit(pipe, model_prompt, video, 0.6 if request.strength is None else request.strength, **kw)
    return res, tuple(notes) + res.notes, res.seams
