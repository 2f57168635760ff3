"""`kino world ...`: sample clips of the procedural world, and analyze a video against a prompt.

kino world sample --n 8 --out data/world [--split train|heldout] [--size 64x64] [--seconds 2] [--fps 8]
kino world analyze clip.mp4 [--prompt "a red ball bouncing"] [--json]
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from kino.errors import InputError
from kino.io import atomic_write

world_app = typer.Typer(help="The procedural world: sample clips, analyze videos.", no_args_is_help=True)


def parse_size(text: str) -> tuple[int, int]:
    """'WxH' -> (width, height), checked against the world's canvas rule."""
    from kino.world.spec import check_size

    parts = text.lower().replace("×", "x").split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise InputError(f"size {text!r} is not WxH; try 64x64 or 128x96")
    w, h = int(parts[0]), int(parts[1])
    check_size(w, h)
    return w, h


@world_app.command("sample")
def sample(
    n: int = typer.Option(8, "--n", help="How many clips to write."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the MP4s and specs.jsonl (created)."),
    split: str = typer.Option("train", "--split", help="Which split of the world: train or heldout."),
    size: str = typer.Option("64x64", "--size", help="Canvas WxH, multiples of 8 from 32 to 512."),
    seconds: float = typer.Option(2.0, "--seconds", help="Clip length in seconds."),
    fps: float = typer.Option(8.0, "--fps", help="Frames per second."),
    seed: int = typer.Option(
        0, "--seed", help="Seed of the whole sample; the same seed writes the same clips."
    ),
) -> None:
    """Write N clips of the world as MP4s plus specs.jsonl (file, spec, seed, captions at every level)."""
    import numpy as np
    from rich.progress import Progress

    from kino.io import write_video
    from kino.world.caption import captions
    from kino.world.render import iter_render
    from kino.world.sampler import Split, sample_spec
    from kino.world.spec import MAX_FRAMES

    splits = {s.value: s for s in Split}
    if split not in splits:
        raise InputError(f"unknown split {split!r}; valid: {', '.join(splits)}")
    width, height = parse_size(size)
    if n < 1:
        raise InputError(f"--n {n} must be at least 1")
    if not (0 < fps <= 240):
        raise InputError(f"fps {fps:g} is out of range; use a value in (0, 240]")
    num_frames = round(seconds * fps)
    if not (1 <= num_frames <= MAX_FRAMES):
        raise InputError(f"{seconds:g} s at {fps:g} fps is {num_frames} frames; use 1 to {MAX_FRAMES}")
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    lines = []
    with Progress(transient=True) as bar:
        task = bar.add_task("sampling the world", total=n)
        for i in range(n):
            spec = sample_spec(rng, splits[split], width=width, height=height, fps=fps, num_frames=num_frames)
            clip_seed = int(rng.integers(2**31 - 1))
            name = f"clip_{i:05d}.mp4"
            frames = (f for chunk in iter_render(spec, clip_seed) for f in chunk)  # (H, W, 3) each
            write_video(out / name, frames, fps=fps)
            caps = {str(k): v for k, v in captions(spec, seed=clip_seed).items()}
            lines.append(
                json.dumps({"file": name, "spec": spec.to_dict(), "seed": clip_seed, "captions": caps})
            )
            bar.advance(task)
    # specs.jsonl appears whole or not at all
    with atomic_write(out / "specs.jsonl") as fh:
        fh.write("\n".join(lines) + "\n")
    typer.echo(f"wrote {n} clips ({width}x{height}, {num_frames} frames at {fps:g} fps, {split}) to {out}")


@world_app.command("analyze")
def analyze_cmd(
    video: Path = typer.Argument(..., help="A video (MP4, GIF, PNG frames) to analyze."),
    prompt: str | None = typer.Option(None, "--prompt", "-p", help="Score the video against this prompt."),
    as_json: bool = typer.Option(False, "--json", help="Print the analysis (and score) as JSON."),
) -> None:
    """Print what the world's analyzer sees in a video and, with --prompt, which asked attributes are met."""
    from kino.io import read_video
    from kino.world.analyze import analyze
    from kino.world.parse import parse_prompt
    from kino.world.score import score

    clip = read_video(video)  # raises MediaError on a missing, empty or corrupt file
    analysis = analyze(clip.frames, clip.fps)
    result = score(analysis, parse_prompt(prompt)) if prompt is not None else None
    if as_json:
        doc = {"analysis": analysis.to_dict()}
        if result is not None:
            doc["prompt"] = prompt
            doc["score"] = result.to_dict()
        typer.echo(json.dumps(doc))
        return
    _print_analysis(analysis, result)


def _print_analysis(analysis, result) -> None:
    from rich.table import Table

    from kino.commands.output import console as make_console

    console = make_console()  # whole lines in a log or a pipe, wrapped only on a terminal
    a = analysis
    console.print(
        f"{a.width}x{a.height}, {a.num_frames} frames at {a.fps:g} fps; background [bold]{a.background}[/bold], "
        f"camera [bold]{a.camera}[/bold], {a.count} object(s)"
    )
    table = Table("#", "color", "shape", "size", "motion", "seen", "start", "end")
    for i, o in enumerate(a.objects):
        pts = [p for p in o.track if p is not None]
        fmt = "({:.0f}, {:.0f})".format
        table.add_row(str(i + 1), o.color, o.shape, o.size, o.motion, f"{o.seen}/{a.num_frames}",
                      fmt(*pts[0]) if pts else "-", fmt(*pts[-1]) if pts else "-")  # fmt: skip
    console.print(table)
    events = ", ".join(f"{e.kind} (object {e.subject + 1}, frame {e.frame})" for e in a.events)
    console.print(f"events: {events or 'none'}")
    if result is None:
        return
    checks = Table("asked", "want", "seen", "")
    for c in result.checks:
        checks.add_row(
            c.label, c.asked, c.seen or "-", "[green]met[/green]" if c.met else "[red]missed[/red]"
        )
    console.print(checks)
    console.print(result.summary())
    if result.fraction is not None:
        print(f"score: {result.fraction:.3f}")


def register(app: typer.Typer) -> None:
    app.add_typer(world_app, name="world")
