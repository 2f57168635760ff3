"""From a user's request to a published file: the one path every front end shares.

    GenerationRequest (validated when built) -> check_request (output path, input files: before any model
    loads) -> resolve (the model's defaults, in one place) -> policy on every prompt and their joined text
    -> enhancement -> policy on the enhanced prompts -> VideoModel.generate -> frame review, watermark,
    C2PA signature, atomic write (kino.safety.publish)

The command line, the Python API, the server's worker and storyboards call `generate_file`; none of them
re-implements a step. The request and the checks that need no model are in kino.request (re-exported
here); a request is a flat frozen dataclass of JSON-able fields, so the server stores it and rebuilds it
as `GenerationRequest(**stored)`. Every mode (kino.modes.Mode: text, image-to-video,
extend, loop, interpolate, connect, edit, storyboard) goes through the same path; the mode is recorded
in the C2PA manifest.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from kino.modes import Mode
from kino.request import (  # noqa: F401 (re-exported: every front end imports the request from here)
    GenerationRequest,
    Shot,
    check_device,
    check_output,
    check_request,
    check_size,
    kept_size,
    resolve,
    size_warning,
    trained_sizes,
)

# -- the path --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerationResult:
    """What `generate_file` made and published."""

    path: Path
    output: object  # kino.families.Generated: frames (T, H, W, 3) uint8, fps, settings (a dict), timings
    prompt: str  # what the user typed (a storyboard's shots joined by " | ")
    model_prompt: str  # what the model was given (enhanced, unless --no-enhance)
    enhanced: bool
    report: object  # kino.safety.PublishReport
    mode: str = "text-to-video"
    notes: tuple[str, ...] = ()  # what was adjusted (e.g. an input resized)
    seams: tuple[int, ...] = ()
    request: GenerationRequest | None = None  # the resolved request


def as_model(model):
    """A kino.families.VideoModel; a KinoPipeline is wrapped in KinoModel (the Python API's pipelines)."""
    from kino.families.base import VideoModel

    if isinstance(model, VideoModel):
        return model
    from kino.families.kino import KinoModel

    return KinoModel(model)


def check_prompts(request: GenerationRequest, safety) -> None:
    """The policy on every prompt of the request and, for several, on their joined text (a refused term
    split over shots or windows, e.g. "mickey" | "mouse", is refused as a whole)."""
    from kino.safety import enforce_prompt

    texts = request.all_prompts
    for text in texts:
        enforce_prompt(text, safety)
    if len(texts) > 1:
        enforce_prompt(" ".join(texts), safety)


def enhance_request(request: GenerationRequest, seed: int, safety, enhancer=None,
                    on_prompt: Callable[[str], None] | None = None,
                    notes: list[str] | None = None, family: str | None = None) -> tuple[GenerationRequest, str]:
    """Enhancement, then the policy on what it wrote. Returns the request as the model takes it (a
    storyboard's shots carry their final prompts, the subject folded in) and the main model prompt.
    `family` (the model's) picks the default enhancer: a real-world family gets the prompt as written."""
    from kino.enhance import make_enhancer
    from kino.safety import enforce_prompt

    if request.enhance and enhancer is None:
        enhancer = make_enhancer(family=family)
    if request.mode == Mode.STORYBOARD:
        texts = []
        for shot in request.shots:
            text = request.shot_prompt(shot)
            if request.enhance:
                # one context for every shot: the open attributes are filled the same way in each
                context = request.subject or request.shot_prompt(request.shots[0])
                done = enhancer.enhance(text, seed=seed, context=context)
                text = done.text
                if notes is not None:
                    notes.extend(n for n in done.notes if n not in notes)  # one note, not one per shot
                enforce_prompt(text, safety)
            texts.append(text)
            if on_prompt is not None:
                on_prompt(text)
        shots = tuple(replace(s, prompt=t) for s, t in zip(request.shots, texts, strict=True))
        return replace(request, shots=shots, subject=None), " | ".join(texts)
    model_prompt = request.prompt
    if request.enhance:
        from kino.enhance import request_inputs

        # a conditioned request's caption must agree with its inputs; a still's must not move
        done = enhancer.enhance(request.prompt, seed=seed, inputs=request_inputs(request), still=request.image_only)
        model_prompt = done.text
        if notes is not None:
            notes.extend(done.notes)
        enforce_prompt(model_prompt, safety)
    if on_prompt is not None:
        on_prompt(model_prompt)
    return request, model_prompt


def generate_file(
    model,
    request: GenerationRequest,
    output: str | os.PathLike,
    model_name: str | None = None,
    safety=None,
    enhancer=None,
    callback: Callable[[int, int], None] | None = None,
    on_prompt: Callable[[str], None] | None = None,
) -> GenerationResult:
    """Generate `request` with `model` (a kino.families.VideoModel, or a KinoPipeline) and publish it to
    `output` (MP4, or PNG for one frame).

    `safety` is a kino.safety.SafetyConfig (default: the shipped policy); `enhancer` an Enhancer
    (default: from KINO_ENHANCE_*, the offline world expander unless configured); `on_prompt` is
    told each enhanced prompt before sampling starts; `callback(step, total)` per denoising step.
    Nothing expensive runs before the request, the output path, the inputs, the mode and the size are
    checked; a refused prompt leaves no file.
    """
    from kino.safety import GenerationInfo, SafetyConfig, publish

    model = as_model(model)
    check_request(request, output)
    model.check_mode(request.mode)
    notes: list[str] = []
    request = resolve(request, model.defaults, notes)
    check_output(request, output)  # again: .png needs the resolved frame count
    safety = safety or SafetyConfig.load()
    if not request.c2pa:
        safety = safety.with_(c2pa=False)
    if request.include_prompt:
        safety = safety.with_(include_prompt=True)
    seed = request.seed if request.seed is not None else secrets.randbits(31)
    request = replace(request, seed=seed)

    check_prompts(request, safety)  # before enhancement ...
    # offline, a real-world family's enhancer passes the prompt as written (kino.enhance.make_enhancer)
    run, model_prompt = enhance_request(request, seed, safety, enhancer, on_prompt, notes,
                                        str(model.family))  # ... and after it

    out = model.generate(run, model_prompt, seed, callback)
    mode = request.manifest_mode
    if request.mode == Mode.TEXT:
        mode = "text-to-image" if len(out.frames) == 1 else "text-to-video"
    user_prompt = " | ".join(request.all_prompts) if request.mode == Mode.STORYBOARD else request.prompt
    info = GenerationInfo(
        model=model_name or model.name,
        mode=mode,
        settings={**out.settings, "enhanced": request.enhance, "frames": int(len(out.frames)),
                  **({"loras": list(model.loras)} if getattr(model, "loras", None) else {})},
        prompt=user_prompt,
        enhanced_prompt=model_prompt if request.enhance else None,
    )
    report = publish(out.frames, output, out.fps, info, safety)
    return GenerationResult(Path(output), out, user_prompt, model_prompt, request.enhance, report, mode,
                            tuple(notes) + tuple(out.notes), tuple(out.seams), request)
