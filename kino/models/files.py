"""One save/load convention for kino's networks (the DiT and the VAE).

A model folder holds `config.json` (`{"_class_name": NAME, **config}`, diffusers' key) and
`model.safetensors` (the state dict, buffers included), written together into a temporary folder
and renamed into place. Loading checks the class name (a folder saved by another class, or a training
checkpoint's config without one, is told apart), rejects config fields the dataclass does not know
with one clear line (a newer or mistyped config must not load as something else), and returns the
module in eval mode.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any, TypeVar

import torch

from kino.errors import InputError, ModelError

CLASS_KEY = "_class_name"
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"

C = TypeVar("C")
M = TypeVar("M", bound=torch.nn.Module)


def state_dict_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A state dict safetensors accepts: CPU, contiguous and without shared storage."""
    return {k: v.detach().to("cpu").clone().contiguous() for k, v in module.state_dict().items()}


def save_model(module: torch.nn.Module, config: Any, class_name: str, directory: str | os.PathLike) -> Path:
    """Write `directory/config.json` and `directory/model.safetensors` atomically; returns the folder."""
    from safetensors.torch import save_file

    from kino.io import atomic_dir

    out = Path(directory)
    data = json.loads(json.dumps({CLASS_KEY: class_name, **asdict(config)}, default=str))
    with atomic_dir(out) as tmp:
        (tmp / CONFIG_FILE).write_text(json.dumps(data, indent=2) + "\n")
        save_file(state_dict_tensors(module), str(tmp / WEIGHTS_FILE))
    return out


def read_config(directory: str | os.PathLike, config_cls: type[C], class_name: str, label: str,
                legacy: dict[str, Any] | None = None) -> C:
    """The config dataclass stored in `directory/config.json`.

    `label` names the model in messages ("VAE"); `legacy` maps keys older files carry to the value
    they must have (the v1 VAE's `"kind": "vae"`). ModelError, one line, for a missing file, broken
    JSON, another class's folder, an unknown field or an invalid value.
    """
    d = Path(directory)
    if not (d / CONFIG_FILE).is_file() or not (d / WEIGHTS_FILE).is_file():
        raise ModelError(f"{d} is not a {label} model folder: it needs {CONFIG_FILE} and {WEIGHTS_FILE}")
    fail = f"cannot load the {label} in {d}"
    try:
        raw = json.loads((d / CONFIG_FILE).read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{fail}: {CONFIG_FILE} is not readable JSON ({type(e).__name__})") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{fail}: {CONFIG_FILE} is not a JSON object")
    name = raw.pop(CLASS_KEY, class_name)
    for key, value in (legacy or {}).items():
        if key in raw and raw.pop(key) != value:
            name = "different model"
    if name != class_name:
        raise ModelError(f"{fail}: the folder holds a {name}, not a {class_name}")
    known = {f.name for f in fields(config_cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ModelError(f"{fail}: unknown config field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
    try:
        return config_cls(**raw)
    except (InputError, TypeError, ValueError) as e:
        raise ModelError(f"{fail}: invalid config ({(str(e).splitlines() or [type(e).__name__])[0][:200]})") from None


def load_weights(module: M, directory: str | os.PathLike, label: str, device: str | torch.device = "cpu",
                 dtype: torch.dtype | None = None) -> M:
    """Load `directory/model.safetensors` into `module` (strict), move it, and return it in eval mode."""
    from safetensors.torch import load_file

    d = Path(directory)
    try:
        module.load_state_dict(load_file(str(d / WEIGHTS_FILE)))
    except Exception as e:  # truncated file (SafetensorError), mismatched shapes (RuntimeError)
        why = (str(e).splitlines() or [type(e).__name__])[0][:200]
        raise ModelError(f"cannot load the {label} in {d}: {type(e).__name__}: {why}") from None
    return module.to(device=device, dtype=dtype).eval()
