"""`kino generate "PROMPT" -o out.mp4` and `kino model init DIR`: thin wrappers over KinoPipeline.

`kino generate` also makes images (--image-only), animates one (--from-image, --to-image) and makes videos
longer than one pass in windows (--seconds 60, optional --then prompts per window). `run_request` is the
one runner every generating command (kino.commands.modes, storyboard) shares.
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer

from kino.commands.options import ModelConfig, ModelOption, load_args, model_flags
from kino.errors import InputError, ModelError
from kino.models.presets import DiTPreset  # the CLI's preset choices, without importing torch

model_app = typer.Typer(help="Pipeline directories: create a freshly initialised one (init) or copy one for shipping (export).", no_args_is_help=True)


Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace the output if it exists (otherwise refused).")]
Force = Annotated[bool, typer.Option("--force", hidden=True, help="The old name of --overwrite.")]


def check_overwrite(output: Path, overwrite: bool) -> None:
    """InputError when `output` exists and --overwrite was not given (every command that writes a file)."""
    if output.exists() and not overwrite:
        raise InputError(f"{output} already exists; pass --overwrite to replace it, or choose another output")


def parse_size(size: str) -> tuple[int, int]:
    """'WxH' -> (width, height); InputError for anything else."""
    parts = size.lower().split("x")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise InputError(f"size {size!r} is not WIDTHxHEIGHT, e.g. 64x64")
    return int(parts[0]), int(parts[1])


def resolve_model_dir(model: Path | None) -> Path:
    """The --model directory, or the built-in one; ModelError saying how to make one when it is absent."""
    from kino.pipeline import builtin_model_dir

    if model is not None:
        return model
    d = builtin_model_dir()
    if not (d / "model_index.json").is_file():
        raise ModelError(f"the built-in model {d} does not exist yet; pass --model DIR, made by "
                         "`kino model init DIR` (untrained) or `kino train dit`")
    return d


def generate(
    prompt: Annotated[str, typer.Argument(help="What the video shows.")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output file: .mp4 (or .png for one frame).")] = Path("out.mp4"),
    seconds: Annotated[float | None, typer.Option(help="Duration in seconds (default: the model's).")] = None,
    fps: Annotated[float | None, typer.Option(help="Frames per second (default: the model's).")] = None,
    size: Annotated[str | None, typer.Option(help="WIDTHxHEIGHT, e.g. 64x64 (default: the model's).")] = None,
    steps: Annotated[int | None, typer.Option(help="Sampling steps (default: the model's).")] = None,
    guidance: Annotated[float | None, typer.Option(help="Classifier-free guidance scale.")] = None,
    negative: Annotated[str | None, typer.Option(help="Negative prompt.")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed: the same seed gives the same video.")] = None,
    image_only: Annotated[bool, typer.Option("--image-only", help="Make one image (write it as .png).")] = False,
    from_image: Annotated[Path | None, typer.Option(help="Animate this image: it is the first frame.")] = None,
    to_image: Annotated[bool, typer.Option("--to-image", help="With --from-image: the image is the last frame.")] = False,
    then: Annotated[list[str] | None, typer.Option(help="A prompt for the next window of a long video (repeatable).")] = None,
    condition_guidance: Annotated[float | None, typer.Option(help="Guidance scale of the image condition (1: off).")] = None,
    model: Annotated[Path | None, typer.Option(help="Pipeline directory (default: the built-in model).")] = None,
    device: Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda.")] = "cpu",
    threads: Annotated[int, typer.Option(help="Torch CPU threads (0: torch's default; 1 is faster on a busy CPU).")] = 0,
    enhance: Annotated[bool, typer.Option("--enhance/--no-enhance", help="Expand the prompt into a detailed caption first.")] = True,
    c2pa: Annotated[bool, typer.Option("--c2pa/--no-c2pa", help="Sign the output with C2PA content credentials.")] = True,
    include_prompt: Annotated[bool, typer.Option(help="Record the prompts in the C2PA manifest (opt-in).")] = False,
    lora: Annotated[list[str] | None, typer.Option(help="A LoRA file FILE[:SCALE] (diffusers or ComfyUI format; "
                                                        "repeatable).")] = None,
    model_config: ModelConfig = None,
    model_option: ModelOption = None,
    overwrite: Overwrite = False,
) -> None:
    """Generate a video (or, with --image-only, an image) from a text prompt."""
    from kino.generation import GenerationRequest

    width, height = parse_size(size) if size else (None, None)
    if to_image and from_image is None:
        raise InputError("--to-image needs --from-image IMAGE")
    if image_only and output.suffix.lower() == ".mp4" and output == Path("out.mp4"):
        output = Path("out.png")
    request = GenerationRequest(prompt, negative_prompt=negative, seconds=seconds, fps=fps, width=width,
                                height=height, steps=steps, guidance=guidance, seed=seed, enhance=enhance,
                                c2pa=c2pa, include_prompt=include_prompt, image_only=image_only,
                                from_image=from_image, to_image=to_image, prompts=tuple(then or ()),
                                condition_guidance=condition_guidance)
    run_request(request, output, model, device, threads, overwrite, loras=tuple(lora or ()),
                **model_flags(model_config, model_option))


def run_request(request, output: Path, model: Path | None, device: str, threads: int,
                overwrite: bool = False, loras: tuple[str, ...] = (), model_config: Path | None = None,
                model_options: str = "") -> None:
    """Check everything that needs no model (request, output path, inputs, device, the model folder's
    sizes), then load the model and run generate_file with progress; print notes, provenance and what
    was written."""
    import time

    from kino.families import Family, detect_family, load_model
    from kino.generation import check_device, check_request, generate_file, resolve, size_warning

    if threads < 0:
        raise InputError(f"--threads {threads} must be >= 0 (0: torch's default)")
    check_request(request, output)  # the output path and every input file, before anything loads
    check_overwrite(output, overwrite)
    check_device(device)
    model_dir = resolve_model_dir(model)
    if not model_dir.exists():
        raise ModelError(f"model directory {model_dir} does not exist; make one with `kino model init {model_dir}`")
    notes: list[str] = []
    args = load_args(model_dir, model_config, model_options)  # one line for a bad option, before anything loads
    if detect_family(model_dir, args["config"]) is Family.KINO:  # the sizes from its config files, before the weights load
        from kino.families.kino import peek_defaults

        defaults = peek_defaults(model_dir)
        request = resolve(request, defaults, notes)
        check_request(request, output)
        warn = size_warning(request, defaults)
        if warn:
            typer.echo(f"warning: {warn}", err=True)
    if threads:
        import torch

        torch.set_num_threads(threads)
    for note in notes:
        typer.echo(f"note: {note}")
    if loras:  # the files and scales checked before the model loads
        from kino.families.lora import LoRAUse, lora_path

        uses = [LoRAUse.parse(text) for text in loras]
        for use in uses:
            lora_path(use.path)
    loaded = load_model(model_dir, device=device, **args)
    if loras:
        from kino.families.lora import apply_model_loras

        for rec in apply_model_loras(loaded, uses):
            typer.echo(f"note: LoRA {rec['path']} at scale {rec['scale']:g} (rank {rec['rank']}, {rec['expert']} expert)")
    t0 = time.perf_counter()
    with progress_reporter() as (callback, say):
        result = generate_file(loaded, request, output, model_name=model_dir.name, callback=callback,
                               on_prompt=(lambda text: say(f"enhanced prompt: {text}")) if request.enhance else None)
    for note in result.notes:
        typer.echo(f"note: {note}")
    s, r = result.output.settings, result.report
    frames = len(result.output.frames)
    typer.echo(f"provenance: C2PA {'signed' if r.c2pa_signed else 'off'}, watermark {r.watermark_id or 'off'}, "
               f"frame review {r.frame_review}")
    what = result.mode
    if result.request is not None and result.request.shots:
        n = len(result.request.shots)
        what = f"{what}, {n} shot{'s' if n != 1 else ''}"
    typer.echo(f"wrote {result.path} ({what}, {s['width']}x{s['height']}, {frames} frame{'s' if frames != 1 else ''} "
               f"at {result.output.fps:g} fps, seed {s['seed']}, {time.perf_counter() - t0:.1f} s)")


@contextmanager
def progress_reporter():
    """(callback(step, total), say(line)) for a generation: a progress bar on a terminal; elsewhere (a
    pipe, a log file) a plain line at every tenth of the way, so a long run is never silent."""
    import sys

    if sys.stdout.isatty():
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        with Progress(TextColumn("[progress.description]{task.description}"), BarColumn(),
                      TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(), transient=True) as bar:
            task = bar.add_task("denoising", total=None)
            yield (lambda step, total: bar.update(task, completed=step, total=total)), bar.console.print
        return
    last = {"tenth": -1, "step": 0}

    def plain(step: int, total: int) -> None:
        if step < last["step"]:  # a new phase (a loop makes its body, then the seam)
            last["tenth"] = -1
        last["step"] = step
        tenth = 10 * step // max(total, 1)
        if tenth > last["tenth"]:
            last["tenth"] = tenth
            typer.echo(f"denoising: step {step}/{total}")

    yield plain, typer.echo


@model_app.command("init")
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write the pipeline directory.")],
    preset: Annotated[DiTPreset, typer.Option(help="DiT preset.")] = DiTPreset.WORLD_TINY,
    vae: Annotated[Path | None, typer.Option(help="A trained VAE: a VAE, pipeline or `kino train vae` run folder (default: a fresh one).")] = None,
    vae_preset: Annotated[str, typer.Option(help="VAE preset when --vae is not given.")] = "world-tiny",
    seed: Annotated[int, typer.Option(help="Seed of the initial weights.")] = 0,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing directory.")] = False,
    force: Force = False,
) -> None:
    """Write a freshly initialised (untrained) pipeline directory from presets."""
    from kino.pipeline import KinoPipeline

    if directory.exists() and not (overwrite or force):
        raise InputError(f"{directory} already exists; pass --overwrite to replace it")
    from kino.train.vae_folder import resolve_vae

    vae_dir = None if vae is None else resolve_vae(vae)  # a VAE, pipeline or `kino train vae` run folder
    pipe = KinoPipeline.from_presets(str(preset), vae_preset=vae_preset, vae_dir=vae_dir, seed=seed)
    pipe.save_pretrained(directory)
    typer.echo(f"wrote {directory} (DiT {preset}, {pipe.transformer.num_params() / 1e6:.1f}M parameters, "
               "untrained)")


def register(app: typer.Typer) -> None:
    app.command("generate")(generate)
    app.add_typer(model_app, name="model")
