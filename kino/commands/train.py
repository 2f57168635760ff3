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
    steps: int = typer.Option(None, help="Total optimizer steps (a resumed run continues to this). [recipe: 3000]"),
    batch_size: int = typer.Option(None, help="Clips per step. [recipe: 2]"),
    lr: float = typer.Option(None, help="Peak learning rate. [recipe: 5e-4]"),
    out: Path = typer.Option(Path("runs/vae-world-tiny"), help="Run folder for checkpoints."),
    resume: bool = typer.Option(False, help="Continue from the latest checkpoint in --out."),
    adversarial: bool = typer.Option(False, help="Add a PatchGAN adversarial loss after adv-start steps."),
    checkpoint_every: int = typer.Option(None, help="Steps between checkpoints. [recipe: 200]"),
    seed: int = typer.Option(0, help="Seed of the model's initialization and of the data stream."),
    threads: int = typer.Option(0, help="Torch CPU threads (0: all cores)."),
    device: str = typer.Option("cpu", help="Torch device, e.g. cpu or cuda."),
) -> None:
    """Train the causal video VAE (L1 + MSE + SSIM + KL) on images and videos of several sizes."""
    import torch

    from kino.errors import InputError
    from kino.train.vae import WORLD, VAETrainConfig, train_vae

    if threads < 0:
        raise InputError(f"--threads {threads} must be >= 0 (0: all cores)")
    if threads:
        torch.set_num_threads(threads)
    if data != WORLD and not Path(data).is_dir():
        raise InputError(f"--data {data!r} is neither 'world' nor a folder")
    given = {"steps": steps, "batch_size": batch_size, "lr": lr, "checkpoint_every": checkpoint_every}
    cfg = VAETrainConfig(preset=str(preset), adversarial=adversarial, seed=seed,
                         **{k: v for k, v in given.items() if v is not None})  # the rest: the recipe's defaults
    path = train_vae(cfg, out, data=data, resume=resume, device=device)
    typer.echo(f"saved {path}")


def register(app: typer.Typer) -> None:
    app.add_typer(train_app, name="train")


@train_app.command("dit")
def train_dit_cmd(
    vae: Path = typer.Option(..., help="A trained VAE folder (from `kino train vae`)."),
    preset: DiTPreset = typer.Option(DiTPreset.WORLD_TINY, help="DiT size."),
    steps: int = typer.Option(4000, help="Total optimizer steps (a resumed run continues to this)."),
    batch_size: int = typer.Option(8, help="Clips per step."),
    lr: float = typer.Option(3e-4, help="Peak learning rate."),
    out: Path = typer.Option(Path("runs/dit-world-tiny"), help="Run folder: checkpoints/ and pipeline/."),
    resume: bool = typer.Option(False, help="Continue from the latest checkpoint in --out."),
    packed: bool = typer.Option(False, help="Mix sizes in a batch (packed, block-diagonal attention)."),
    checkpoint_every: int = typer.Option(250, help="Steps between checkpoints."),
    seed: int = typer.Option(0, help="Seed of the initialization and of the data stream."),
    device: str = typer.Option("cpu", help="Torch device, e.g. cpu or cuda."),
) -> None:
    """Train the DiT with rectified flow on world clips; writes a pipeline directory at the end."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from kino.models.vae import CausalVAE
    from kino.train.dit import DiTTrainConfig, train_dit

    cfg = DiTTrainConfig(preset=preset, steps=steps, batch_size=batch_size, lr=lr, packed=packed,
                         checkpoint_every=checkpoint_every, seed=seed)
    model_vae = CausalVAE.from_pretrained(vae, device=device)
    columns = (TextColumn("training DiT"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
               TimeRemainingColumn())
    with Progress(*columns) as bar:
        task = bar.add_task("train", total=steps, loss="-")
        path = train_dit(cfg, model_vae, out, resume=resume, device=device,
                         on_step=lambda s, n, loss: bar.update(task, completed=s, loss=f"{loss:.4f}"))
    typer.echo(f"saved {path}")
