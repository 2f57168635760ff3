"""`kino train ...`: the training commands (`kino train vae`; the DiT's `kino train dit` joins here)."""

from __future__ import annotations

from pathlib import Path

import typer

from kino.models.presets import DiTPreset, VAEPreset  # CLI choices, without importing torch

train_app = typer.Typer(help="Train kino's models.", no_args_is_help=True)


@train_app.command("vae")
def train_vae_cmd(
    preset: VAEPreset = typer.Option(VAEPreset.WORLD_TINY, help="Model size."),
    data: str = typer.Option("world", help="'world' (kino's procedural world) or a folder of videos."),
    steps: int = typer.Option(None, help="Total optimizer steps (a resumed run continues to this; 0 saves the "
                              "initialized model, e.g. world-tiny-v2's fitted block code). [recipe: 3000]"),
    batch_size: int = typer.Option(None, help="Clips per step. [recipe: 2]"),
    lr: float = typer.Option(None, help="Peak learning rate. [recipe: 5e-4]"),
    out: Path = typer.Option(Path("runs/vae-world-tiny"), help="Run folder for checkpoints."),
    resume: bool = typer.Option(False, help="Continue from the latest checkpoint in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in --out (its checkpoints; "
                                   "without it, an existing run is refused unless --resume)."),
    adversarial: bool = typer.Option(False, help="Add a PatchGAN adversarial loss after adv-start steps."),
    checkpoint_every: int = typer.Option(None, help="Steps between checkpoints. [recipe: 200]"),
    seed: int = typer.Option(0, help="Seed of the model's initialization and of the data stream."),
    init_from: Path = typer.Option(None, help="Start a new run from this VAE folder or checkpoint's weights."),
    freeze_encoder: bool = typer.Option(False, help="Train the decoder only (the latent space stays fixed)."),
    threads: int = typer.Option(0, help="Torch CPU threads (0: all cores)."),
    device: str = typer.Option("cpu", help="Torch device, e.g. cpu or cuda."),
) -> None:
    """Train the causal video VAE (L1 + MSE + SSIM + KL) on images and videos of several sizes."""
    import torch

    from kino.errors import InputError
    from kino.train.vae import WORLD, VAETrainConfig, train_vae

    if threads < 0:
        raise InputError(f"--threads {threads} must be >= 0 (0: all cores)")
    if data != WORLD and not Path(data).is_dir():
        raise InputError(f"--data {data!r} is neither 'world' nor a folder")
    if threads:
        torch.set_num_threads(threads)
    warn_if_oversubscribed(torch.get_num_threads(), device)  # after the checks: an error stays one line
    given = {"steps": steps, "batch_size": batch_size, "lr": lr, "checkpoint_every": checkpoint_every}
    if freeze_encoder and init_from is None and not resume:
        raise InputError("--freeze-encoder needs --init-from (a trained VAE whose encoder to keep) or --resume")
    cfg = VAETrainConfig(preset=str(preset), adversarial=adversarial, seed=seed, train_encoder=not freeze_encoder,
                         **{k: v for k, v in given.items() if v is not None})  # the rest: the recipe's defaults
    path = train_vae(cfg, out, data=data, resume=resume, device=device,
                     init_from=None if resume else init_from, overwrite=overwrite)
    typer.echo(f"saved {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")


def _size(text: str) -> tuple[int, int]:
    from kino.errors import InputError

    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise InputError(f"--size {text!r} is not WIDTHxHEIGHT, e.g. 64x64") from None
    return w, h


def oversubscribed(threads: int, cores: int, load: float) -> bool:
    """True when `threads` CPU threads would share `cores` with about `load` busy processes: OpenMP
    threads then wait on each other at every parallel region, and training runs several times slower
    than with fewer threads (measured 2026-11-29: 2 threads on 2 cores next to one busy process ran
    ~10x slower than 1 thread)."""
    return threads > 1 and threads + load > cores + 0.5


def warn_if_oversubscribed(threads: int, device: str) -> None:
    """One warning line on stderr when a CPU run would oversubscribe the cores (see `oversubscribed`)."""
    import os

    try:
        load = os.getloadavg()[0]
    except (AttributeError, OSError):  # not on every platform
        return
    cores = os.cpu_count() or 1
    if str(device).startswith("cpu") and oversubscribed(threads, cores, load):
        typer.echo(f"kino: warning: {threads} torch threads on {cores} cores with a load average of {load:.1f}: "
                   f"busy processes make the threads wait on each other (several times slower); "
                   f"consider --threads {max(1, int(cores - load + 0.5))}", err=True)


@train_app.command("dit")
def train_dit_cmd(
    vae: Path = typer.Option(None, help="The VAE: a `kino train vae` run folder (its newest checkpoint), a VAE "
                             "or pipeline folder. [default: the built-in model's VAE]"),
    preset: DiTPreset = typer.Option(None, help="DiT size. [default: the design made for the VAE: world-tiny-v2 "
                                     "for a 4x spatial VAE (the built-in one), world-tiny for an 8x one]"),
    dit_config: Path = typer.Option(None, help="A JSON file of DiTConfig fields that replaces the preset."),
    init_from: str = typer.Option(None, help="Start a new run from this DiT's weights where names and shapes "
                                  "match (a pipeline, run or DiT folder, or 'builtin'); the rest start fresh."),
    data: str = typer.Option("world", help="'world' (rendered on the fly), a latent cache folder "
                             "(kino data cache) or a manifest file (kino data prepare)."),
    steps: int = typer.Option(None, help="Total optimizer steps (a resumed run continues to this). [recipe: 4000]"),
    batch_size: int = typer.Option(None, help="Global batch: clips per step over all processes. [recipe: 8]"),
    grad_accum: int = typer.Option(None, help="Micro-batches accumulated per step on each process. [recipe: 1]"),
    lr: float = typer.Option(None, help="Peak learning rate. [recipe: 3e-4]"),
    warmup: int = typer.Option(None, help="Linear warmup steps. [recipe: 100]"),
    schedule: str = typer.Option(None, help="After warmup: constant or cosine. [recipe: constant]"),
    grad_clip: float = typer.Option(None, help="Clip the gradient norm to this. [recipe: 1.0]"),
    ema_decay: float = typer.Option(None, help="EMA decay per step. [recipe: 0.999]"),
    size: list[str] = typer.Option(None, help="World clip size WIDTHxHEIGHT (repeat for several). [recipe: "
                                   "64x64, 96x64, 64x96]"),
    frames: list[int] = typer.Option(None, help="World clip frame counts, 1 + 4k (repeat). [recipe: 9, 17]"),
    image_steps: int = typer.Option(None, help="Images first: the first N steps train on 1-frame samples only "
                                    "(world: rendered as images; a cache or manifest: each clip's first frame), "
                                    "then the configured mix. [recipe: 0]"),
    caption_level: list[str] = typer.Option(None, help="Caption levels short|medium|detailed, drawn "
                                            "evenly (repeat one to weight it; a cache draws among each clip's). [recipe: short, medium, detailed]"),
    flow_option: list[str] = typer.Option(None, help="A rectified-flow setting KEY=VALUE (repeat): base_shift, "
                                          "reference_tokens, max_shift, sampling, logit_mean, logit_std, "
                                          "caption_dropout, temporal_weight; the shift also becomes the "
                                          "pipeline's sampling shift (docs/training.md)."),
    allow_uncaptioned: bool = typer.Option(False, "--allow-uncaptioned", help="Train on cache/manifest data "
                                           "without captions (unconditional); refused otherwise."),
    token_budget: int = typer.Option(0, help="DiT tokens per micro-batch for cache/manifest data "
                                     "(0: micro-batch x the largest clip)."),
    packed: bool = typer.Option(False, help="Mix sizes in a batch (packed, block-diagonal attention)."),
    gradient_checkpointing: bool = typer.Option(False, help="Recompute block activations in backward."),
    compile: bool = typer.Option(False, "--compile", help="torch.compile each DiT block."),
    parallel: str = typer.Option("none", help="none, or ddp / fsdp under torchrun "
                                 "(torchrun --nproc-per-node N -m kino train dit ...)."),
    workers: int = typer.Option(0, help="Data-loading worker processes per process."),
    out: Path = typer.Option(Path("runs/dit-world-tiny"), help="Run folder: checkpoints/, pipeline/, "
                             "tensorboard/, samples/, eval/, metrics.jsonl."),
    resume: bool = typer.Option(False, help="Continue from the latest checkpoint in --out."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace a run already in --out (without it, "
                                   "an existing run is refused unless --resume)."),
    checkpoint_every: int = typer.Option(None, help="Steps between checkpoints. [recipe: 250]"),
    keep: int = typer.Option(None, help="Checkpoints kept (the newest). [recipe: 3]"),
    sample_every: int = typer.Option(0, help="Steps between sample videos (RUN/samples/); 0: none."),
    sample_prompt: list[str] = typer.Option(None, help="A prompt for the sample videos (repeat for several)."),
    eval_every: int = typer.Option(0, help="Steps between world evaluations (RUN/eval/); 0: none."),
    log_every: int = typer.Option(10, help="Steps between log lines when stderr is not a terminal."),
    tensorboard: bool = typer.Option(True, help="Write TensorBoard logs to RUN/tensorboard/."),
    seed: int = typer.Option(0, help="Seed of the initialization and of the data stream."),
    threads: int = typer.Option(0, help="Torch CPU threads per process (0: the default)."),
    device: str = typer.Option("cpu", help="Torch device, e.g. cpu or cuda (under torchrun: cuda:LOCAL_RANK)."),
) -> None:
    """Train the DiT with rectified flow; writes the EMA pipeline to RUN/pipeline at the end."""
    import json
    import os

    import torch

    from kino.diffusion.flow import FlowConfig
    from kino.errors import InputError
    from kino.models.dit import DiTConfig
    from kino.models.vae import CausalVAE
    from kino.train.distributed import Parallel
    from kino.train.dit import DiTTrainConfig, preset_for_vae
    from kino.train.loop import DEFAULT_PROMPTS, train_dit
    from kino.train.vae_folder import resolve_vae

    if threads < 0:
        raise InputError(f"--threads {threads} must be >= 0 (0: the default)")
    if parallel not in {p.value for p in Parallel}:
        raise InputError(f"--parallel {parallel!r} is not one of {', '.join(p.value for p in Parallel)}")
    model_config = None
    if dit_config is not None:
        try:
            model_config = DiTConfig.from_dict(json.loads(dit_config.read_text()))
        except (OSError, json.JSONDecodeError) as e:
            raise InputError(f"--dit-config {dit_config}: {type(e).__name__}: {e}") from None
    given = {"steps": steps, "batch_size": batch_size, "grad_accum": grad_accum, "lr": lr, "warmup": warmup,
             "schedule": schedule, "grad_clip": grad_clip, "ema_decay": ema_decay,
             "checkpoint_every": checkpoint_every, "keep": keep,
             "sizes": tuple(_size(s) for s in size) if size else None,
             "num_frames": tuple(frames) if frames else None, "image_steps": image_steps,
             "caption_levels": tuple(caption_level) if caption_level else None,
             "flow": FlowConfig.from_options(flow_option) if flow_option else None}
    model_vae = CausalVAE.from_pretrained(resolve_vae(vae))  # the trainer moves it to this rank's device
    cfg = DiTTrainConfig(preset=preset or preset_for_vae(model_vae.config), packed=packed,
                         gradient_checkpointing=gradient_checkpointing, compile=compile, seed=seed,
                         **{k: v for k, v in given.items() if v is not None})  # the rest: the recipe's defaults
    if threads:
        torch.set_num_threads(threads)
    warn_if_oversubscribed(torch.get_num_threads(), device)  # after the checks: an error stays one line
    path = train_dit(cfg, model_vae, out, resume=resume, device=device, model_config=model_config,
                     parallel=parallel, source=data, token_budget=token_budget, workers=workers,
                     log_every=log_every, tensorboard=tensorboard, console=True, sample_every=sample_every,
                     sample_prompts=tuple(sample_prompt) if sample_prompt else DEFAULT_PROMPTS,
                     eval_every=eval_every, overwrite=overwrite, allow_uncaptioned=allow_uncaptioned,
                     init_from=init_from)
    if os.environ.get("RANK", "0") == "0":  # one line from rank 0 under torchrun
        typer.echo(f"saved {path}")
