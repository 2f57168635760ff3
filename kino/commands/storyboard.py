"""`kino storyboard story.yaml -o out.mp4`: several shots in one video (format: kino.storyboard)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kino.commands.modes import C2pa, Device, Guidance, IncludePrompt, Model, Seed, Steps, Threads
from kino.errors import InputError


def storyboard(
    story: Annotated[Path, typer.Argument(help="The storyboard YAML file (see docs/modes.md).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (.mp4).")] = Path("out.mp4"),
    steps: Steps = None, guidance: Guidance = None, seed: Seed = None, model: Model = None,
    device: Device = "cpu", threads: Threads = 0,
    enhance: Annotated[bool, typer.Option("--enhance/--no-enhance", help="Expand each shot's prompt into a detailed caption first (the "
                                          "subject's open attributes filled the same way in every shot).")] = True,
    c2pa: C2pa = True, include_prompt: IncludePrompt = False,
) -> None:
    """Make a storyboard (shots with prompt, seconds, cut or continuous transition) into one video."""
    import time

    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from kino.commands.generate import resolve_model_dir
    from kino.pipeline import KinoPipeline
    from kino.storyboard import generate_storyboard_file, load_storyboard

    if threads < 0:
        raise InputError(f"--threads {threads} must be >= 0 (0: torch's default)")
    board = load_storyboard(story)  # a bad file fails before the model loads
    if threads:
        import torch

        torch.set_num_threads(threads)
    model_dir = resolve_model_dir(model)
    pipe = KinoPipeline.from_pretrained(model_dir, device=device)
    t0 = time.perf_counter()
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), transient=True) as bar:
        task = bar.add_task("denoising", total=None)
        result = generate_storyboard_file(
            pipe, board, output, model_name=model_dir.name, enhance=enhance, c2pa=c2pa,
            include_prompt=include_prompt, steps=steps, guidance=guidance, seed=seed,
            callback=lambda step, total: bar.update(task, completed=step, total=total))
    s, r = result.output.settings, result.report
    typer.echo(f"provenance: C2PA {'signed' if r.c2pa_signed else 'off'}, watermark {r.watermark_id or 'off'}, "
               f"frame review {r.frame_review}")
    typer.echo(f"wrote {result.path} (storyboard, {len(board.shots)} shots, {s.width}x{s.height}, "
               f"{len(result.output.frames)} frames at {s.fps:g} fps, seed {s.seed}, {time.perf_counter() - t0:.1f} s)")


def register(app: typer.Typer) -> None:
    app.command("storyboard")(storyboard)
