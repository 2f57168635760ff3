"""`kino storyboard story.yaml -o out.mp4`: several shots in one video (format: kino.storyboard)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kino.commands.generate import Overwrite
from kino.commands.modes import C2pa, Device, Guidance, IncludePrompt, Model, Seed, Steps, Threads
from kino.commands.options import ModelConfig, ModelOption, model_flags
from kino.errors import InputError


def storyboard(
    story: Annotated[Path, typer.Argument(help="The storyboard YAML file (see docs/modes.md).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file (.mp4).")] = Path("out.mp4"),
    steps: Steps = None, guidance: Guidance = None, seed: Seed = None, model: Model = None,
    device: Device = "cpu", threads: Threads = 0,
    enhance: Annotated[bool, typer.Option("--enhance/--no-enhance", help="Expand each shot's prompt into a detailed caption first (the "
                                          "subject's open attributes filled the same way in every shot).")] = True,
    c2pa: C2pa = True, include_prompt: IncludePrompt = False, overwrite: Overwrite = False,
    model_config: ModelConfig = None, model_option: ModelOption = None,
) -> None:
    """Make a storyboard (shots with prompt, seconds, cut or continuous transition) into one video."""
    from kino.commands.generate import run_request
    from kino.storyboard import load_storyboard, storyboard_request

    board = load_storyboard(story)  # a bad file fails before the model loads
    request = storyboard_request(board, steps=steps, guidance=guidance, seed=seed, enhance=enhance, c2pa=c2pa,
                                 include_prompt=include_prompt)
    try:
        run_request(request, output, model, device, threads, overwrite, **model_flags(model_config, model_option))
    except InputError as e:  # a size the model cannot make: say where in the file it was set
        line = next((n for n, text in enumerate(story.read_text(encoding="utf-8").splitlines(), 1)
                     if text.startswith("size:")), None)
        if board.width is None or line is None or not str(e).startswith("size "):
            raise
        raise InputError(f"{story} line {line}: {e}") from None


def register(app: typer.Typer) -> None:
    app.command("storyboard")(storyboard)
