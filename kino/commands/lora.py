"""`kino train lora ...` (LoRA fine-tuning of an LTX-Video or Wan folder) and `kino lora export ...`.

`kino train lora` joins the `kino train` group (kino.commands.train's typer app); `kino lora` is its own
group for LoRA files. Both are thin wrappers over kino.train.lora_loop and kino.families.lora.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

lora_app = typer.Typer(help="LoRA files: export to ComfyUI's format.", no_args_is_help=True)


def train_lora_cmd(
    model: Annotated[Path, typer.Option(help="The base model: a diffusers-format LTX-Video or Wan folder.")],
    data: Annotated[Path, typer.Option(help="A family cache (kino data cache MANIFEST --model DIR) or a manifest "
                                            "(kino data prepare; cached into RUN/cache first).")],
    out: Annotated[Path, typer.Option(help="Run folder: pytorch_lora_weights.safetensors, checkpoints/, "
                                           "samples/, tensorboard/, metrics.jsonl.")] = Path("runs/lora"),
    rank: Annotated[int, typer.Option(help="LoRA rank.")] = 16,
    alpha: Annotated[float, typer.Option(help="LoRA alpha (the update is scaled by alpha / rank).")] = 16.0,
    targets: Annotated[str | None, typer.Option(help="Comma-separated module names to adapt (default: the "
                                                     "family's attention and FFN projections).")] = None,
    steps: Annotated[int, typer.Option(help="Total optimizer steps (a resumed run continues to this).")] = 1000,
    lr: Annotated[float, typer.Option(help="Learning rate (AdamW).")] = 1e-4,
    warmup: Annotated[int, typer.Option(help="Linear warmup steps.")] = 0,
    batch_size: Annotated[int, typer.Option(help="Global batch: clips per step over all processes.")] = 1,
    grad_accum: Annotated[int, typer.Option(help="Micro-batches accumulated per step on each process.")] = 1,
    timestep_sampling: Annotated[str, typer.Option(help="logit-normal or uniform.")] = "logit-normal",
    shift: Annotated[float | None, typer.Option(help="Timestep shift (default: the model's scheduler's).")] = None,
    caption_dropout: Annotated[float, typer.Option(help="Probability of the empty prompt per clip.")] = 0.0,
    condition: Annotated[str, typer.Option(help="none, first (image-to-video), first-last or random-keyframes: "
                                                "frames given while training (LTX-Video: all; Wan: TI2V-5B and "
                                                "2.1 I2V first, 2.2 I2V A14B first or first-last, FLF2V "
                                                "first-last, VACE all).")] = "none",
    condition_prob: Annotated[float, typer.Option(help="Probability that a clip is conditioned.")] = 0.5,
    expert: Annotated[str, typer.Option(help="Wan 2.2 A14B: high, low or both experts.")] = "both",
    gradient_checkpointing: Annotated[bool, typer.Option("--gradient-checkpointing",
                                                         help="Recompute block activations in backward.")] = False,
    fp8: Annotated[bool, typer.Option("--fp8", help="Store the frozen base in float8 (diffusers' layerwise "
                                                    "casting); computed in --dtype.")] = False,
    dtype: Annotated[str | None, typer.Option(help="The base's dtype: float32, bfloat16 or float16 "
                                                   "(default: bfloat16 on a GPU, float32 on a CPU).")] = None,
    size: Annotated[int, typer.Option(help="With a manifest as --data: pixels per frame of the buckets, e.g. "
                                           "409920 for 832x480.")] = 64 * 64,
    frames: Annotated[int, typer.Option(help="With a manifest as --data: at most this many frames per clip.")] = 17,
    init_lora: Annotated[Path | None, typer.Option(help="Start from this LoRA (diffusers or ComfyUI format).")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from the latest checkpoint in --out.")] = False,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace a run already in --out.")] = False,
    checkpoint_every: Annotated[int, typer.Option(help="Steps between checkpoints.")] = 100,
    keep: Annotated[int, typer.Option(help="Checkpoints kept (the newest).")] = 3,
    validate_every: Annotated[int, typer.Option(help="Steps between validation videos (RUN/samples/); 0: none.")] = 0,
    validation_prompt: Annotated[list[str] | None, typer.Option(help="A validation prompt (repeatable).")] = None,
    validation_image: Annotated[Path | None, typer.Option(help="A conditioned LoRA's validation: "
                                                                "image-to-video from this image.")] = None,
    validation_steps: Annotated[int, typer.Option(help="Sampling steps of validation videos.")] = 20,
    eval_every: Annotated[int, typer.Option(help="Steps between eval losses on held-out clips; 0: none.")] = 0,
    eval_clips: Annotated[int, typer.Option(help="Clips held out of training for the eval loss.")] = 1,
    parallel: Annotated[str, typer.Option(help="none, or ddp / fsdp under torchrun (torchrun --nproc-per-node N "
                                               "-m kino train lora ... --parallel ddp); fsdp shards the frozen "
                                               "base, the adapters and AdamW over the processes (FSDP2).")] = "none",
    log_every: Annotated[int, typer.Option(help="Steps between log lines when stderr is not a terminal.")] = 10,
    seed: Annotated[int, typer.Option(help="Seed of the adapters' initialization and of the data order.")] = 0,
    threads: Annotated[int, typer.Option(help="Torch CPU threads per process (0: the default).")] = 0,
    device: Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda.")] = "cpu",
) -> None:
    """Fine-tune an LTX-Video or Wan model on your clips with LoRA; writes RUN/pytorch_lora_weights.safetensors."""
    import torch

    from kino.commands.train import warn_if_oversubscribed
    from kino.errors import InputError
    from kino.train.lora import LoRATrainConfig
    from kino.train.lora_loop import LoRARunOptions, run_lora_training

    if threads < 0:
        raise InputError(f"--threads {threads} must be >= 0")
    if not model.is_dir():
        raise InputError(f"--model {model}: no such folder (a diffusers-format LTX-Video or Wan folder)")
    cfg = LoRATrainConfig(rank=rank, alpha=alpha, targets=tuple(t.strip() for t in (targets or "").split(",") if t.strip()),
                          steps=steps, lr=lr, warmup=warmup, batch_size=batch_size, grad_accum=grad_accum,
                          timestep_sampling=timestep_sampling, shift=shift, caption_dropout=caption_dropout,
                          condition=condition, condition_prob=condition_prob, expert=expert,
                          gradient_checkpointing=gradient_checkpointing, fp8=fp8, checkpoint_every=checkpoint_every,
                          keep=keep, seed=seed)
    options = LoRARunOptions(parallel=parallel, dtype=dtype, init_lora=str(init_lora) if init_lora else None,
                             cache_area=size, cache_frames=frames, log_every=log_every, console=True,
                             validate_every=validate_every, validation_prompts=tuple(validation_prompt or ()),
                             validation_image=str(validation_image) if validation_image else None,
                             validation_steps=validation_steps, eval_every=eval_every, eval_clips=eval_clips,
                             overwrite=overwrite)
    if init_lora is not None:
        from kino.families.lora import lora_path

        lora_path(init_lora)
    if threads:
        torch.set_num_threads(threads)
    warn_if_oversubscribed(torch.get_num_threads(), device)
    path = run_lora_training(cfg, model, data, out, resume=resume, device=device, options=options)
    from kino.families.lora import LOW_NOISE_NAME

    low = path.parent / LOW_NOISE_NAME  # Wan 2.2 A14B's low-noise expert, when this run trained it
    both = str(cfg.expert) == "both" and low.is_file()
    typer.echo(f"saved {path}" + (f" and {low}" if both else ""))


@lora_app.command("export")
def export_cmd(
    lora: Annotated[Path, typer.Argument(help="A LoRA file (or a run folder holding pytorch_lora_weights.safetensors).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The file to write (.safetensors).")],
    format: Annotated[str, typer.Option("--format", help="comfyui (original module names under diffusion_model.).")] = "comfyui",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace the output if it exists.")] = False,
) -> None:
    """Convert a LoRA to another tool's format (ComfyUI's for LTX-Video and Wan)."""
    from kino.commands.generate import check_overwrite
    from kino.errors import InputError
    from kino.families.lora import LoRAFormat, export_comfyui

    if format != LoRAFormat.COMFYUI:
        raise InputError(f"--format {format!r}: kino exports comfyui (kino writes the diffusers format itself)")
    if output.suffix != ".safetensors":
        raise InputError(f"--output {output}: give a .safetensors file name")
    check_overwrite(output, overwrite)
    path = export_comfyui(lora, output)
    typer.echo(f"wrote {path} (ComfyUI: put it in models/loras and load it with a LoraLoaderModelOnly node)")


def register(app: typer.Typer) -> None:
    from kino.commands.train import train_app

    train_app.command("lora")(train_lora_cmd)
    app.add_typer(lora_app, name="lora")
