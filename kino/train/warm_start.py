"""Start a DiT run from another model's weights where they fit (`kino train dit --init-from`).

A new latent (world-tiny v2's 24-channel 4x4x4 VAE, issue 18) changes only the DiT's patch embedding and
output projection; its blocks, text and timestep embedders keep their shapes, and with 1x4x4 patches on
the 16x16 latent a token still covers the 16x16-pixel, 4-frame region that v1's 1x2x2 patches on its 8x8
latent covered. So every tensor whose name and shape match is copied (into the model and its EMA) and
the rest keep their fresh initialization: what was learned about text, time and layout carries over.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file

from kino.errors import InputError


@dataclass(frozen=True)
class WarmStart:
    """What `warm_start` copied: tensor names copied, those left at their init (name: why), and the source's
    tensors this model has no place for (dropped: a DiT built without a part the source has loses it)."""

    source: Path
    copied: tuple[str, ...]
    skipped: tuple[str, ...]
    dropped: tuple[str, ...] = ()

    def summary(self) -> str:
        kept = ", ".join(self.skipped) if self.skipped else "none"
        dropped = ", ".join(self.dropped) if self.dropped else "none"
        return (f"initialized {len(self.copied)} tensors from {self.source}; left at their init: {kept}; "
                f"not used from the source: {dropped}")


def transformer_weights(source: str | os.PathLike) -> Path:
    """The DiT weights file of `source`: "builtin" (the shipped model), a pipeline folder, a `kino train dit`
    run folder (its pipeline/), or a DiT folder."""
    if str(source) == "builtin":
        from kino.pipeline import builtin_model_dir

        source = builtin_model_dir()
    root = Path(source)
    for candidate in (root / "transformer", root / "pipeline" / "transformer", root):
        if (candidate / "model.safetensors").is_file():
            return candidate / "model.safetensors"
    raise InputError(f"{root} holds no DiT weights; give a pipeline folder, a `kino train dit` run folder, "
                     "a DiT folder or 'builtin'")


@torch.no_grad()
def warm_start(model: torch.nn.Module, source: str | os.PathLike,
               ema: torch.nn.Module | None = None) -> WarmStart:
    """Copy every tensor of `source`'s DiT whose name and shape match `model`'s (and `ema`'s)."""
    path = transformer_weights(source)
    theirs = load_file(str(path))
    ours = model.state_dict()
    copied, skipped = [], []
    for name, tensor in ours.items():
        other = theirs.get(name)
        if other is None:
            skipped.append(f"{name} (absent)")
        elif other.shape != tensor.shape:
            skipped.append(f"{name} ({tuple(other.shape)} there, {tuple(tensor.shape)} here)")
        else:
            tensor.copy_(other.to(tensor.dtype))
            copied.append(name)
    if not copied:
        raise InputError(f"no tensor of {path} fits this DiT (different names or shapes everywhere)")
    if ema is not None:
        ema.load_state_dict(model.state_dict())
    dropped = tuple(name for name in theirs if name not in ours)
    return WarmStart(path.parent, tuple(copied), tuple(skipped), dropped)


__all__ = ["WarmStart", "transformer_weights", "warm_start"]
