"""`kino model export`: write a pipeline folder for shipping (half-precision weights, chosen defaults).

The built-in model is shipped this way: the trained EMA pipeline from `kino train dit` is exported
with float16 weights (loaded back into float32 modules, so inference is unchanged in kind) and the
sampling defaults measured for it; each weights file must stay within the repository's 16 MiB.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kino.errors import InputError

DTYPES = ("float16", "bfloat16", "float32")
MAX_FILE_MIB = 16.0


def export(
    source: Annotated[Path, typer.Argument(help="A pipeline folder (e.g. RUN/pipeline from `kino train dit`), or a "
                                                "training checkpoint (RUN/checkpoints/step-N) with --vae.")],
    dest: Annotated[Path, typer.Argument(help="Where to write the exported pipeline folder.")],
    dtype: Annotated[str, typer.Option(help=f"Weights dtype: {', '.join(DTYPES)}.")] = "float16",
    steps: Annotated[int | None, typer.Option(help="Default sampling steps to store.")] = None,
    guidance: Annotated[float | None, typer.Option(help="Default text guidance scale to store.")] = None,
    guidance_min_t: Annotated[float | None, typer.Option(help="Store: text guidance only at steps whose noise "
                                                        "level t is above this (0: every step).")] = None,
    vae: Annotated[Path | None, typer.Option(help="A VAE whose decoder replaces the pipeline's (a decoder "
                                                  "fine-tuned with --freeze-encoder: same encoder, same latents); "
                                                  "for a checkpoint SOURCE, the VAE its run trained on.")] = None,
    weights: Annotated[str, typer.Option(help="A checkpoint SOURCE's weights: ema (what the run's pipeline gets) "
                                              "or raw (the optimizer's).")] = "ema",
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing destination.")] = False,
    force: Annotated[bool, typer.Option("--force", hidden=True, help="The old name of --overwrite.")] = False,
) -> None:
    """Copy a pipeline with its weights cast to DTYPE and, optionally, new sampling defaults."""
    import dataclasses

    import torch

    from kino.pipeline import KinoPipeline

    if dtype not in DTYPES:
        raise InputError(f"--dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    if dest.exists() and not (overwrite or force):
        raise InputError(f"{dest} already exists; pass --overwrite to replace it")
    if steps is not None and steps < 1:
        raise InputError(f"--steps must be at least 1, got {steps}")
    if weights not in ("ema", "raw"):
        raise InputError(f"--weights {weights!r} is not ema or raw")
    if not source.is_dir():
        raise InputError(f"{source} does not exist; give a pipeline folder (RUN/pipeline) or a training checkpoint "
                         "(RUN/checkpoints/step-N)")
    if (source / "state.pt").is_file():  # a training checkpoint: the DiT, its run's VAE and recipe
        pipe = _checkpoint_pipeline(source, vae, weights)
    else:
        pipe = KinoPipeline.from_pretrained(source)
        if vae is not None:
            pipe.vae = _same_latent_space(pipe.vae, vae)
    changes = {k: v for k, v in {"num_inference_steps": steps, "guidance_scale": guidance,
                                 "guidance_min_t": guidance_min_t}.items() if v is not None}
    if changes:
        pipe.scheduler = dataclasses.replace(pipe.scheduler, **changes)
    to = getattr(torch, dtype)
    pipe.transformer.to(to)
    pipe.vae.to(to)
    pipe.save_pretrained(dest)
    sizes = {p.relative_to(dest): p.stat().st_size / 2**20 for p in sorted(dest.rglob("*.safetensors"))}
    for p, mib in sizes.items():
        typer.echo(f"{p}: {mib:.2f} MiB")
    typer.echo(f"wrote {dest} ({dtype}, {sum(sizes.values()):.2f} MiB of weights)")
    too_big = [str(p) for p, mib in sizes.items() if mib > MAX_FILE_MIB]
    if too_big:
        typer.echo(f"note: {', '.join(too_big)} {'is' if len(too_big) == 1 else 'are'} over {MAX_FILE_MIB:g} MiB: "
                   f"fine to use, but kino's own repository ships no weights file that large")


def _checkpoint_pipeline(source: Path, vae: Path | None, weights: str):
    """A pipeline from a `kino train dit` checkpoint folder: its EMA (or raw) DiT, the VAE the run trained
    on and the sampling defaults of its recipe (time shift, fps, trained sizes: kino.train.loop)."""
    import json

    from kino.models.dit import DiT, DiTConfig
    from kino.models.text import TextEncoder
    from kino.models.vae import CausalVAE
    from kino.pipeline import KinoPipeline
    from kino.train.checkpoint import is_sharded, load_checkpoint
    from kino.train.dit import DiTTrainConfig
    from kino.train.loop import training_scheduler
    from kino.train.vae_folder import resolve_vae

    if vae is None:
        raise InputError(f"{source} is a training checkpoint: give --vae, the VAE its run trained on")
    if is_sharded(source):
        raise InputError(f"{source} is a sharded (DCP) checkpoint; resume its run on one process and let it "
                         "write RUN/pipeline, or export a single-process checkpoint")
    dit = DiT(DiTConfig.from_dict(json.loads((source / "config.json").read_text())))
    # the raw weights, then the EMA over them where the checkpoint holds one
    saved = load_checkpoint(source, model=dit, ema=dit if weights == "ema" else None, restore_rng=False)
    train = dict(saved.extra.get("train") or {})
    cfg = DiTTrainConfig(**{k: v for k, v in train.items() if k in DiTTrainConfig.__dataclass_fields__})
    model_vae = CausalVAE.from_pretrained(resolve_vae(vae))
    if model_vae.config.latent_channels != dit.config.in_channels:
        raise InputError(f"--vae {vae} has {model_vae.config.latent_channels} latent channels; the checkpoint's "
                         f"DiT takes {dit.config.in_channels}")
    return KinoPipeline(dit, model_vae, TextEncoder(), training_scheduler(cfg))


def _same_latent_space(old, path: Path):
    """The VAE at `path`, if its encoder and latent statistics equal `old`'s (the DiT's latent space)."""
    import torch

    from kino.models.vae import CausalVAE

    new = CausalVAE.from_pretrained(path)
    a, b = old.state_dict(), new.state_dict()
    keys = [k for k in a if k.startswith("encoder.")] + ["latent_mean", "latent_std"]
    if a.keys() != b.keys() or any(not torch.equal(a[k].float(), b[k].float()) for k in keys):
        raise InputError(f"--vae {path} has another encoder or latent statistics than the pipeline's VAE; "
                         "only a decoder fine-tuned with `kino train vae --freeze-encoder` can replace it")
    return new


def register(app: typer.Typer) -> None:
    from kino.commands.generate import model_app

    model_app.command("export")(export)
