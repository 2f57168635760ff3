"""`kino quickstart`: the README's main job.

Until the built-in model ships, it samples a clip of the procedural world, writes it to an MP4
and prints what the analyzer sees in it next to the clip's caption.
"""

from __future__ import annotations

from pathlib import Path

import typer


def quickstart(
    out: Path = typer.Option(Path("outputs/quickstart.mp4"), "--out", "-o", help="Where to write the video."),
    seed: int = typer.Option(0, help="Seed of the sampled scene."),
) -> None:
    """Sample a clip of the world, write it, and print what the analyzer sees in it."""
    import numpy as np
    from rich.console import Console

    from kino.io import write_video
    from kino.world.analyze import analyze
    from kino.world.caption import CaptionLevel, caption
    from kino.world.parse import parse_prompt
    from kino.world.render import render
    from kino.world.sampler import sample_spec
    from kino.world.score import score

    console = Console()
    spec = sample_spec(np.random.default_rng(seed), width=128, height=128, fps=8.0, num_frames=24)
    frames = render(spec, seed=seed)  # (T, H, W, 3)
    out.parent.mkdir(parents=True, exist_ok=True)
    write_video(out, frames, fps=spec.fps)
    prompt = caption(spec, CaptionLevel.MEDIUM, seed=seed)
    analysis = analyze(frames, fps=spec.fps)
    result = score(analysis, parse_prompt(prompt))
    console.print(f"[bold]scene[/bold]: {caption(spec, CaptionLevel.DETAILED, seed=seed)}")
    console.print(f"[bold]analyzer sees[/bold]: {analysis.summary()}")
    console.print(f"[bold]prompt[/bold] {prompt!r}: {result.fraction:.2f} of asked attributes met")
    console.print(f"wrote {out}")


def register(app: typer.Typer) -> None:
    app.command("quickstart")(quickstart)
