"""`kino eval`: generate a prompt suite with a model (or render its ground truth) and score it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kino.commands.options import ModelConfig, ModelOption, load_args, model_flags
from kino.errors import InputError
from kino.eval.suites import Suite  # the CLI's --suite choices come from this Enum


def evaluate_command(
    suite: Annotated[Suite | None, typer.Option(help="Built-in prompt suite (default: world-train).")] = None,
    prompts: Annotated[Path | None, typer.Option(help="JSONL file: {\"prompt\": ..., \"expect\": {...}} "
                                                      "per line, instead of a suite.")] = None,
    seeds: Annotated[int, typer.Option(help="Seeds per prompt (0 .. N-1).")] = 1,
    model: Annotated[Path | None, typer.Option(help="Pipeline directory (default: the built-in model).")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write every result and the summary here.")] = None,
    enhance: Annotated[bool, typer.Option("--enhance/--no-enhance",
                                          help="Generate from the enhanced (detailed) prompt.")] = True,
    steps: Annotated[int | None, typer.Option(help="Sampling steps (default: the model's).")] = None,
    guidance: Annotated[float | None, typer.Option(help="Text guidance scale (default: the model's); choose it "
                                                        "on the margins over chance.")] = None,
    size: Annotated[str | None, typer.Option(help="WIDTHxHEIGHT (default: the model's).")] = None,
    seconds: Annotated[float | None, typer.Option(help="Duration in seconds (default: the model's).")] = None,
    fps: Annotated[float | None, typer.Option(help="Frames per second (default: the model's).")] = None,
    limit: Annotated[int | None, typer.Option(help="Only the first N prompts.")] = None,
    reference: Annotated[bool, typer.Option(help="Render the ground-truth scenes instead of generating "
                                                 "(the analyzer's ceiling; no model needed).")] = False,
    device: Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda.")] = "cpu",
    model_config: ModelConfig = None,
    model_option: ModelOption = None,
) -> None:
    """Measure prompt adherence, temporal consistency, motion smoothness and dynamic degree (and, for the
    conditioning suite, how image-to-video, extension and interpolation keep what they were given)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from kino.commands.generate import parse_size, resolve_model_dir
    from kino.commands.output import console as make_console
    from kino.eval.runner import EvalConfig, evaluate, resolve_canvas
    from kino.eval.suites import load_prompts, suite_prompts

    if suite is not None and prompts is not None:
        raise InputError("give either --suite or --prompts, not both")
    if limit is not None and limit < 1:
        raise InputError(f"--limit must be at least 1, got {limit}")
    width, height = parse_size(size) if size else (None, None)
    config = EvalConfig(seeds=seeds, enhance=enhance, steps=steps, guidance=guidance, width=width, height=height,
                        seconds=seconds, fps=fps, reference=reference)
    items = load_prompts(prompts) if prompts is not None else None  # bad files fail before a model loads
    pipe, model_name = None, "reference"
    if not reference:
        from kino.families import Family, load_model

        model_dir = resolve_model_dir(model)
        args = load_args(model_dir, **model_flags(model_config, model_option))
        loaded = load_model(model_dir, device=device, **args)  # any family; LTX-Video and Wan score low on the world
        pipe = loaded.pipe if loaded.family is Family.KINO else loaded
        model_name = str(model_dir)
    canvas = resolve_canvas(config, pipe)
    if items is None:
        suite = suite or Suite.WORLD_TRAIN
        items = suite_prompts(suite, canvas.width, canvas.height, canvas.fps, canvas.num_frames)
    items = items[:limit] if limit else items
    source = str(prompts) if prompts is not None else suite.value

    err = Console(stderr=True)
    with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task(f"eval {source}", total=len(items) * seeds)
        report = evaluate(items, config, pipe, progress=lambda done, total: bar.update(task, completed=done),
                          source=source, model=model_name)
    for note in report.notes:  # e.g. a real-world model's prompts given as written, once
        typer.echo(f"note: {note}")
    typer.echo(summary_title(report))  # one line, never wrapped mid-phrase by the table's width
    make_console().print(summary_table(report, title=False))
    if json_out is not None:
        path = report.write_json(json_out)
        typer.echo(f"wrote {path} ({len(report.results)} videos)")


def summary_title(report) -> str:
    """What was evaluated, in one line: suite, videos, canvas, model."""
    s, c = report.summary, report.canvas
    return (f"kino eval: {report.source}, {s.videos} video{'' if s.videos == 1 else 's'} ({c.width}x{c.height}, "
            f"{c.num_frames} frames at {c.fps:g} fps), {report.model}")


def summary_table(report, title: bool = True):
    """A rich table: per-attribute adherence, consistency, smoothness, dynamic degree, conditioning (when
    measured), the total last; `title` puts `summary_title` above it."""
    from rich.table import Table

    s = report.summary
    table = Table(title=summary_title(report) if title else None)
    # chance: the same videos scored against the other prompts; margin: value - chance (kino.eval.chance)
    for name, justify in (("metric", "left"), ("met", "right"), ("asked", "right"), ("value", "right"),
                          ("chance", "right"), ("margin", "right")):
        table.add_column(name, justify=justify)
    fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
    chance, margin = s.chance or {}, s.margins()
    for kind, (met, asked) in s.adherence.items():
        ch = chance.get(kind)
        table.add_row(f"adherence: {kind}", str(met), str(asked), fmt(met / asked),
                      fmt(None if ch is None else ch[0] / ch[1]), fmt(margin.get(kind)))
    table.add_section()
    for kind, v in s.consistency.items():
        table.add_row(f"temporal consistency: {kind}", "", "", fmt(v))
    table.add_row("motion smoothness", "", "", fmt(s.smoothness))
    table.add_row("dynamic degree", "", "", fmt(s.dynamic_degree))
    table.add_row("flicker (0-255 per frame step)", "", "", fmt(s.flicker))
    table.add_row("flicker of the ground-truth renders", "", "", fmt(s.render_flicker))
    table.add_row("flicker / render flicker", "", "", fmt(s.flicker_ratio))
    table.add_row("change at latent-frame boundaries / inside", "", "", fmt(s.boundary_ratio))
    if s.conditioning is not None:  # the conditioning suite: how the conditioned frames and seams came out
        table.add_section()
        db = lambda v: "-" if v is None else f"{v:.2f}"  # noqa: E731
        table.add_row("image-to-video: frame-0 PSNR (dB)", "", "", db(s.conditioning["image_to_video_psnr"]))
        table.add_row("interpolation: keyframe PSNR (dB)", "", "", db(s.conditioning["interpolate_psnr"]))
        for kind in ("position", "color"):
            table.add_row(f"extension: seam / ordinary step, {kind}", "", "",
                          fmt(s.conditioning[f"extend_seam_{kind}"]))
    table.add_section()
    met = sum(m for m, _ in s.adherence.values())
    asked = sum(a for _, a in s.adherence.values())
    table.add_row("[bold]adherence: total[/bold]", str(met), str(asked), f"[bold]{fmt(s.total)}[/bold]",
                  fmt(s.chance_total), f"[bold]{fmt(margin.get('total'))}[/bold]")
    return table


def register(app: typer.Typer) -> None:
    app.command("eval")(evaluate_command)
