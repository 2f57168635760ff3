"""Where a VAE is, from what people pass as `--vae` / `--model`: nothing (the built-in model's VAE), a VAE
folder, a pipeline folder, a `kino train vae` run folder (its newest checkpoint) or a `kino train dit`
run folder (its pipeline's VAE). `kino train dit`, `kino data cache` and `kino vae ...` all read it so."""

from __future__ import annotations

import os
from pathlib import Path

from kino.errors import ModelError

VAE_FILES = ("config.json", "model.safetensors")


def resolve_vae(path: str | os.PathLike | None) -> Path:
    """The folder holding a VAE's config.json and model.safetensors (see the module docstring)."""
    from kino.train.checkpoint import latest_checkpoint

    if path is None:
        from kino.pipeline import builtin_model_dir

        p = builtin_model_dir() / "vae"
        if not _is_vae(p):
            raise ModelError(f"the built-in model's VAE is missing ({p}); pass a VAE with --vae DIR "
                             f"(train one with `kino train vae --out runs/vae`)")
        return p
    p = Path(path)
    if not p.exists():
        raise ModelError(f"no VAE in {p}: the folder does not exist")
    for candidate in (p, p / "vae", p / "pipeline" / "vae"):  # a VAE, a pipeline, a DiT run's pipeline
        if _is_vae(candidate):
            return candidate
    for runs in (p, p / "checkpoints"):  # a `kino train vae` run: its newest complete checkpoint
        last = latest_checkpoint(runs) if runs.is_dir() else None
        if last is not None and _is_vae(last):
            return last
    raise ModelError(f"no VAE in {p}: pass a VAE folder (config.json + model.safetensors), a pipeline folder "
                     f"(model_index.json), or a `kino train vae` run folder (step-XXXXXXXX checkpoints)")


def _is_vae(p: Path) -> bool:
    return all((p / name).is_file() for name in VAE_FILES)
