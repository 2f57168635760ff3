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
    source: Annotated[Path, typer.Argument(help="A pipeline folder (e.g. RUN/pipeline from `kino train dit`).")],
    dest: Annotated[Path, typer.Argument(help="Where to write the exported pipeline folder.")],
    dtype: Annotated[str, typer.Option(help=f"Weights dtype: {', '.join(DTYPES)}.")] = "float16",
    steps: Annotated[int | None, typer.Option(help="Default sampling steps to store.")] = None,
    guidance: Annotated[float | None, typer.Option(help="Default text guidance scale to store.")] = None,
    vae: Annotated[Path | None, typer.Option(help="A VAE whose decoder replaces the pipeline's (a decoder "
                                                  "fine-tuned with --freeze-encoder: same encoder, same latents).")] = None,
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
    pipe = KinoPipeline.from_pretrained(source)
    if vae is not None:
        pipe.vae = _same_latent_space(pipe.vae, vae)
    changes = {k: v for k, v in {"num_inference_steps": steps, "guidance_scale": guidance}.items() if v is not None}
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
