"""`kino extend | loop | interpolate | connect | edit`: the conditioned modes (kino.modes), each a thin
wrapper that builds a GenerationRequest and runs it through the one publish path (`run_request`)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kino.commands.generate import Overwrite, parse_size, run_request
from kino.commands.options import ModelConfig, ModelOption, model_flags
from kino.errors import InputError

DEFAULT_PROMPT = "a smooth, continuous video"  # when a mode is given no prompt (then it is not enhanced)

Output = Annotated[Path, typer.Option("--output", "-o", help="Output file (.mp4).")]
Seconds = Annotated[float | None, typer.Option(help="Seconds to generate (default: the model's).")]
Fps = Annotated[float | None, typer.Option(help="Frames per second (default: the model's).")]
Size = Annotated[str | None, typer.Option(help="WIDTHxHEIGHT (default: the model's); inputs are resized to it.")]
Steps = Annotated[int | None, typer.Option(help="Sampling steps (default: the model's).")]
Guidance = Annotated[float | None, typer.Option(help="Classifier-free guidance scale of the text.")]
CondGuidance = Annotated[float | None, typer.Option(help="Guidance scale of the condition frames (1: off).")]
Negative = Annotated[str | None, typer.Option(help="Negative prompt.")]
Seed = Annotated[int | None, typer.Option(help="Random seed: the same seed gives the same video.")]
Model = Annotated[Path | None, typer.Option(help="Pipeline directory (default: the built-in model).")]
Device = Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda.")]
Threads = Annotated[int, typer.Option(help="Torch CPU threads (0: torch's default).")]
Enhance = Annotated[bool, typer.Option("--enhance/--no-enhance", help="Expand the prompt first (when one is given).")]
C2pa = Annotated[bool, typer.Option("--c2pa/--no-c2pa", help="Sign the output with C2PA content credentials.")]
IncludePrompt = Annotated[bool, typer.Option(help="Record the prompts in the C2PA manifest (opt-in).")]
Lora = Annotated[list[str] | None, typer.Option(help="A LoRA file FILE[:SCALE] (repeatable).")]


def _common(prompt: str | None, seconds, fps, size, steps, guidance, cond_guidance, negative, seed, enhance, c2pa,
            include_prompt) -> dict:
    width, height = parse_size(size) if size else (None, None)
    return {"prompt": prompt or DEFAULT_PROMPT, "seconds": seconds, "fps": fps, "width": width, "height": height,
            "steps": steps, "guidance": guidance, "condition_guidance": cond_guidance, "negative_prompt": negative,
            "seed": seed, "enhance": enhance and bool(prompt), "c2pa": c2pa, "include_prompt": include_prompt}


def extend(
    video: Annotated[Path, typer.Argument(help="The video to extend.")],
    prompt: Annotated[str | None, typer.Argument(help="What happens next.")] = None,
    backward: Annotated[bool, typer.Option("--backward", help="Extend backward in time (before the start).")] = False,
    output: Output = Path("out.mp4"), overwrite: Overwrite = False, seconds: Seconds = None, fps: Fps = None, size: Size = None,
    steps: Steps = None, guidance: Guidance = None, condition_guidance: CondGuidance = None,
    negative: Negative = None, seed: Seed = None, model: Model = None, device: Device = "cpu", threads: Threads = 0,
    enhance: Enhance = True, c2pa: C2pa = True, include_prompt: IncludePrompt = False, lora: Lora = None,
    model_config: ModelConfig = None, model_option: ModelOption = None,
) -> None:
    """Extend a video forward (any length, in windows) or backward in time, seamless at the seam."""
    from kino.generation import GenerationRequest

    common = _common(prompt, seconds, fps, size, steps, guidance, condition_guidance, negative, seed, enhance, c2pa,
                     include_prompt)
    run_request(GenerationRequest(mode="extend", video=video, backward=backward, **common), output, model, device,
                threads, overwrite, loras=tuple(lora or ()),
                **model_flags(model_config, model_option))


def loop(
    prompt: Annotated[str | None, typer.Argument(help="What the loop shows (not needed with --video).")] = None,
    video: Annotated[Path | None, typer.Option(help="Make this video loop: a transition from its end to its start.")] = None,
    output: Output = Path("out.mp4"), overwrite: Overwrite = False, seconds: Seconds = None, fps: Fps = None, size: Size = None,
    steps: Steps = None, guidance: Guidance = None, condition_guidance: CondGuidance = None,
    negative: Negative = None, seed: Seed = None, model: Model = None, device: Device = "cpu", threads: Threads = 0,
    enhance: Enhance = True, c2pa: C2pa = True, include_prompt: IncludePrompt = False, lora: Lora = None,
    model_config: ModelConfig = None, model_option: ModelOption = None,
) -> None:
    """A seamless loop: the last frame flows into the first. --seconds is the loop's length, or with
    --video the length of the added transition."""
    from kino.generation import GenerationRequest

    if prompt is None and video is None:
        raise InputError('kino loop needs a prompt ("a red ball bounces") or --video IN.mp4')
    common = _common(prompt, seconds, fps, size, steps, guidance, condition_guidance, negative, seed, enhance, c2pa,
                     include_prompt)
    run_request(GenerationRequest(mode="loop", video=video, **common), output, model, device, threads, overwrite, loras=tuple(lora or ()),
                **model_flags(model_config, model_option))


def interpolate(
    keyframes: Annotated[list[str], typer.Argument(help="Keyframes: images, or video frames as clip.mp4@SECONDS.")],
    times: Annotated[str | None, typer.Option(help="Comma-separated seconds of each keyframe, e.g. 0,1.5,3 "
                                                    "(default: evenly over --seconds).")] = None,
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="What happens between the keyframes.")] = None,
    output: Output = Path("out.mp4"), overwrite: Overwrite = False, seconds: Seconds = None, fps: Fps = None, size: Size = None,
    steps: Steps = None, guidance: Guidance = None, condition_guidance: CondGuidance = None,
    negative: Negative = None, seed: Seed = None, model: Model = None, device: Device = "cpu", threads: Threads = 0,
    enhance: Enhance = True, c2pa: C2pa = True, include_prompt: IncludePrompt = False, lora: Lora = None,
    model_config: ModelConfig = None, model_option: ModelOption = None,
) -> None:
    """Fill in the frames between keyframes placed at given times."""
    from kino.generation import GenerationRequest

    key_times = None
    if times is not None:
        try:
            key_times = tuple(float(t) for t in times.split(","))
        except ValueError:
            raise InputError(f"--times {times!r} is not a comma-separated list of seconds, e.g. 0,1.5,3") from None
    common = _common(prompt, seconds, fps, size, steps, guidance, condition_guidance, negative, seed, enhance, c2pa,
                     include_prompt)
    run_request(GenerationRequest(mode="interpolate", keyframes=tuple(keyframes), key_times=key_times, **common),
                output, model, device, threads, overwrite, loras=tuple(lora or ()),
                **model_flags(model_config, model_option))


def connect(
    first: Annotated[Path, typer.Argument(help="The video to start from.")],
    second: Annotated[Path, typer.Argument(help="The video to end in.")],
    prompt: Annotated[str | None, typer.Option("--prompt", "-p", help="What the transition shows.")] = None,
    output: Output = Path("out.mp4"), overwrite: Overwrite = False, seconds: Seconds = None, fps: Fps = None, size: Size = None,
    steps: Steps = None, guidance: Guidance = None, condition_guidance: CondGuidance = None,
    negative: Negative = None, seed: Seed = None, model: Model = None, device: Device = "cpu", threads: Threads = 0,
    enhance: Enhance = True, c2pa: C2pa = True, include_prompt: IncludePrompt = False, lora: Lora = None,
    model_config: ModelConfig = None, model_option: ModelOption = None,
) -> None:
    """Connect two videos: A, then a transition of --seconds from A's end into B's start, then B."""
    from kino.generation import GenerationRequest

    common = _common(prompt, seconds, fps, size, steps, guidance, condition_guidance, negative, seed, enhance, c2pa,
                     include_prompt)
    run_request(GenerationRequest(mode="connect", videos=(first, second), **common), output, model, device, threads, overwrite, loras=tuple(lora or ()),
                **model_flags(model_config, model_option))


def edit(
    video: Annotated[Path, typer.Argument(help="The video to edit.")],
    prompt: Annotated[str, typer.Argument(help="What the edited video shows.")],
    strength: Annotated[float, typer.Option(help="How much to change, 0 (nothing) to 1 (ignore the input).")] = 0.6,
    output: Output = Path("out.mp4"), overwrite: Overwrite = False, fps: Fps = None, size: Size = None,
    steps: Steps = None, guidance: Guidance = None,
    negative: Negative = None, seed: Seed = None, model: Model = None, device: Device = "cpu", threads: Threads = 0,
    enhance: Enhance = True, c2pa: C2pa = True, include_prompt: IncludePrompt = False, lora: Lora = None,
    model_config: ModelConfig = None, model_option: ModelOption = None,
) -> None:
    """Edit a video by prompt (SDEdit: noise it part way, then denoise under the new prompt)."""
    from kino.generation import GenerationRequest

    common = _common(prompt, None, fps, size, steps, guidance, None, negative, seed, enhance, c2pa, include_prompt)
    run_request(GenerationRequest(mode="edit", video=video, strength=strength, **common), output, model, device,
                threads, overwrite, loras=tuple(lora or ()),
                **model_flags(model_config, model_option))


def register(app: typer.Typer) -> None:
    for fn in (extend, loop, interpolate, connect, edit):
        app.command(fn.__name__)(fn)
