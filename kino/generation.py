"""From a user's request to a published file: the steps every front end shares.

    check the prompt against the policy -> enhance it -> check the enhanced prompt ->
    KinoPipeline -> frame review, watermark, atomic write, C2PA signature (kino.safety.publish)

The command line (and later the server) call `generate_file`; none of them re-implements a step.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from kino.errors import InputError


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

    def __post_init__(self) -> None:
        if not isinstance(self.prompt, str) or not self.prompt.strip():
            raise InputError('the prompt is empty; describe the video, e.g. "a red circle moves left"')


@dataclass(frozen=True)
class GenerationResult:
    path: Path
    output: object  # kino.pipeline.VideoOutput
    prompt: str  # what the user typed
    model_prompt: str  # what the model was given (enhanced, unless --no-enhance)
    enhanced: bool
    report: object  # kino.safety.PublishReport


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
    if on_prompt is not None:
        on_prompt(model_prompt)

    out = pipe(
        model_prompt,
        negative_prompt=request.negative_prompt,
        seconds=request.seconds,
        fps=request.fps,
        width=request.width,
        height=request.height,
        num_inference_steps=request.steps,
        guidance_scale=request.guidance,
        seed=seed,
        callback=callback,
    )
    settings = asdict(out.settings)
    settings.pop("prompt", None)
    settings.pop("negative_prompt", None)
    settings["latent_shape"] = list(out.settings.latent_shape)  # JSON arrays, not bytes, in the manifest
    info = GenerationInfo(
        model=model_name,
        mode="text-to-image" if out.settings.num_frames == 1 else "text-to-video",
        settings={**settings, "enhanced": request.enhance},
        prompt=request.prompt,
        enhanced_prompt=model_prompt if request.enhance else None,
    )
    report = publish(out.frames, output, out.settings.fps, info, safety)
    return GenerationResult(Path(output), out, request.prompt, model_prompt, request.enhance, report)
