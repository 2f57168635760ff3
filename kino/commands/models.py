"""`kino model info DIR` and `kino models DIR...`: what a model folder holds and what it can do.

Family, variant, components with parameter counts, dtype, the modes it supports, default size / frames
/ steps / guidance, and an estimate of a default generation's peak memory (kino.families.ModelInfo).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Annotated

import typer


def describe(info) -> list[str]:
    """The lines `kino model info` prints for one kino.families.ModelInfo."""
    from kino.families.diffusers_common import short_count

    d = info.defaults
    frames = max(1, round(d.seconds * d.fps))
    per_pass = f", at most {d.max_frames} per pass" if d.max_frames else ""
    total = sum(info.components.values())
    parts = ", ".join(f"{name} {short_count(n)}" for name, n in info.components.items() if n)
    lines = [
        f"family      {info.family}",
        f"variant     {info.variant}",
        f"path        {info.path}",
        f"dtype       {info.dtype}",
        f"modes       {', '.join(info.modes)}",
        f"defaults    {d.width}x{d.height}, {frames} frames ({d.seconds:.3g} s at {d.fps:g} fps), {d.steps} steps, "
        f"guidance {d.guidance:g}",
        f"sizes       multiples of {d.size_multiple}; frames 1 + {d.frame_multiple}k{per_pass}",
        f"parameters  {short_count(total)} ({parts})",
        f"memory      about {info.memory_gb:g} GB for a default generation (estimate: weights + activations)",
    ]
    lines += [f"note        {n}" for n in info.notes]
    return lines


def info(
    directory: Annotated[Path, typer.Argument(help="A kino pipeline folder, a diffusers LTX-Video or Wan folder, "
                                                   "or a single .safetensors transformer (with --model-config).")],
    model_config: Annotated[Path | None, typer.Option(help="The diffusers folder of a single-file checkpoint.")] = None,
    device: Annotated[str, typer.Option(help="Device the estimate is for (cpu, cuda).")] = "cpu",
    dtype: Annotated[str | None, typer.Option(help="float32, bfloat16 or float16 (default: bf16 on a GPU).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the information as JSON.")] = False,
) -> None:
    """Family, variant, components and parameter counts, dtype, modes, defaults and estimated memory."""
    from kino.families import load_model

    got = load_model(directory, device=device, dtype=dtype, config=model_config).info()
    if as_json:
        typer.echo(json.dumps(asdict(got), default=str, indent=2))
        return
    for line in describe(got):
        typer.echo(line)


def models(
    directories: Annotated[list[Path], typer.Argument(help="Model folders to describe.")],
) -> None:
    """One block per model folder, as `kino model info` prints it."""
    from kino.families import load_model

    for i, d in enumerate(directories):
        if i:
            typer.echo("")
        for line in describe(load_model(d).info()):
            typer.echo(line)


def register(app: typer.Typer) -> None:
    from kino.commands.generate import model_app

    model_app.command("info")(info)
    app.command("models")(models)
