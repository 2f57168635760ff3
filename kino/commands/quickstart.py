"""`kino quickstart`: the README's main job.

Generates a video from a prompt with the built-in model (kino/weights/world-tiny), writes it, and
prints the prompt the model was given, what the world analyzer sees in the result and how much of
the prompt it met. Without the built-in weights (a checkout that removed them) it says so and falls
back to rendering a clip of the procedural world, so the command always shows the system working.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer

DEFAULT_PROMPT = "a red ball bouncing on grass"


def quickstart(
    prompt: str = typer.Argument(DEFAULT_PROMPT, help="What the video should show."),
    out: Path = typer.Option(Path("outputs/quickstart.mp4"), "--output", "-o", "--out",
                             help="Where to write the video (replaced on each run: it is the demo's own file)."),
    seed: int = typer.Option(0, help="Seed of the noise (and of the sampled scene in the fallback)."),
) -> None:
    """Generate a video with the built-in model, write it, and print what the analyzer sees in it."""
    from kino.commands.output import console as make_console
    from kino.pipeline import builtin_model_dir
    from kino.world.analyze import analyze
    from kino.world.parse import parse_prompt
    from kino.world.score import score

    console = make_console()  # whole lines in a log or a pipe, wrapped only on a terminal
    model = builtin_model_dir()
    if not (model / "model_index.json").is_file():
        console.print(f"[yellow]no built-in model at {model}; rendering a clip of the world instead[/yellow]")
        _world_sample(out, seed, console)
        return

    from kino.generation import GenerationRequest, generate_file
    from kino.pipeline import KinoPipeline

    out.parent.mkdir(parents=True, exist_ok=True)  # the default folder, outputs/, is made on first use
    t0 = time.perf_counter()
    pipe = KinoPipeline.from_pretrained(model)
    t_load = time.perf_counter() - t0
    result = generate_file(pipe, GenerationRequest(prompt=prompt, seed=seed), out, model_name=model.name,
                           on_prompt=lambda p: console.print(f"[bold]model prompt[/bold]: {p}"))
    t_all = time.perf_counter() - t0
    frames, fps = result.output.frames, result.output.fps
    analysis = analyze(frames, fps=fps)
    met = score(analysis, parse_prompt(prompt))
    s = result.output.settings
    for note in result.notes:
        console.print(f"note: {note}")
    console.print(f"[bold]analyzer sees[/bold]: {analysis.summary()}")
    console.print(f"[bold]prompt[/bold] {prompt!r}: {met.summary()}")
    console.print(f"{s['width']}x{s['height']}, {s['num_frames']} frames at {fps:g} fps, {s['num_inference_steps']} steps; "
                  f"load {t_load:.1f} s, generate and write {t_all - t_load:.1f} s")
    console.print(f"wrote {out}")


def _world_sample(out: Path, seed: int, console) -> None:
    """The fallback: sample a scene of the world, render it and show the analyzer on it."""
    import numpy as np

    from kino.io import write_video
    from kino.world.analyze import analyze
    from kino.world.caption import CaptionLevel, caption
    from kino.world.parse import parse_prompt
    from kino.world.render import render
    from kino.world.sampler import sample_spec
    from kino.world.score import score

    spec = sample_spec(np.random.default_rng(seed), width=128, height=128, fps=8.0, num_frames=24)
    frames = render(spec, seed=seed)  # (T, H, W, 3)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(out, frames, fps=spec.fps)
    prompt = caption(spec, CaptionLevel.MEDIUM, seed=seed)
    analysis = analyze(frames, fps=spec.fps)
    result = score(analysis, parse_prompt(prompt))
    console.print(f"[bold]scene[/bold]: {caption(spec, CaptionLevel.DETAILED, seed=seed)}")
    console.print(f"[bold]analyzer sees[/bold]: {analysis.summary()}")
    console.print(f"[bold]prompt[/bold] {prompt!r}: {result.summary()}")
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
