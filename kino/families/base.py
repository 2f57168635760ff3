"""The interface every model family implements, and how a folder is recognised.

A family adapter turns one resolved `kino.generation.GenerationRequest` (mode, prompt, inputs, sizes,
steps, guidance, seed) into frames. Everything around the model (policy, enhancement, frame review,
watermark, C2PA, atomic writes) stays in kino.generation and is the same for every family.

Detection (first match wins):
- a folder whose model_index.json names `KinoPipeline`                 -> Family.KINO
- a diffusers folder whose model_index.json names an LTX pipeline
  (`LTXPipeline`, `LTXConditionPipeline`, `LTXImageToVideoPipeline`, ...)  -> Family.LTX
- a diffusers folder whose model_index.json names a Wan pipeline
  (`WanPipeline`, `WanImageToVideoPipeline`, `WanVACEPipeline`, ...)       -> Family.WAN
- a single-file checkpoint (.safetensors) with `config=DIR` naming a diffusers folder: that folder's family
"""

from __future__ import annotations

import json
import os
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from kino.errors import InputError, ModelError


class Family(StrEnum):
    """The model families kino runs."""

    KINO = "kino"
    LTX = "ltx"
    WAN = "wan"


@dataclass(frozen=True)
class ModelDefaults:
    """What a model generates when the request leaves a setting open, and the sizes it accepts."""

    width: int
    height: int
    fps: float
    seconds: float
    steps: int
    guidance: float
    size_multiple: int = 16  # width and height must be multiples of this
    frame_multiple: int = 4  # a pass holds 1 + k * frame_multiple frames (the VAE's temporal factor)
    max_frames: int | None = None  # the most frames one pass holds (None: no fixed limit)
    trained_sizes: tuple[tuple[int, int], ...] = ()  # (width, height) it was trained at (empty: the default size)


@dataclass(frozen=True)
class ModelInfo:
    """What `kino model info DIR` prints."""

    family: Family
    variant: str
    path: str
    components: dict[str, int]  # component name -> parameter count (0 for a tokenizer or scheduler)
    dtype: str
    modes: tuple[str, ...]
    defaults: ModelDefaults
    memory_gb: float  # estimated peak memory of a default generation (weights + activations)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generated:
    """A model's output: uint8 frames (T, H, W, 3), their rate, and what the manifest records."""

    frames: np.ndarray
    fps: float
    settings: dict  # JSON-able: the resolved size, frames, steps, guidance, seed, family, checkpoint...
    notes: tuple[str, ...] = ()  # what was adjusted, for the user (e.g. "size rounded to 704x480")
    seams: tuple[int, ...] = ()  # frame indices where generated frames meet given ones or a window starts
    timings: dict[str, float] = field(default_factory=dict)


class VideoModel(ABC):
    """One loaded model of some family. Subclasses set `family`, `name`, `modes`, `defaults`."""

    family: Family
    name: str  # what the manifest and `GET /v1/models` call it (the folder's name by default)
    path: str
    modes: frozenset[str]  # kino.modes.Mode values this model can do
    defaults: ModelDefaults

    def supports(self, mode: str) -> bool:
        return str(mode) in self.modes

    def check_mode(self, mode: str) -> None:
        """InputError with one line naming the modes this model can do (and who can do this one)."""
        if self.supports(mode):
            return
        can = ", ".join(sorted(self.modes))
        raise InputError(f"{self.family} model {self.name!r} cannot do {mode}; it can do: {can}"
                         f"{_who_can(mode)}")

    @abstractmethod
    def generate(self, request, prompt: str, seed: int,
                 callback: Callable[[int, int], None] | None = None) -> Generated:
        """Run `request` (a kino.generation.GenerationRequest) with `prompt` (the policy-checked, maybe
        enhanced text) and `seed`; `callback(step, total)` per denoising step."""

    @abstractmethod
    def info(self) -> ModelInfo:
        """Family, variant, components, parameter counts, dtype, modes, defaults, memory estimate."""


# which models would do a mode another cannot (the adapters' capability tables: kino.families.ltx, .wan)
WHO_CAN: dict[str, tuple[str, ...]] = {
    "text": ("kino", "LTX-Video", "Wan T2V / TI2V / VACE"),
    "image-to-video": ("kino", "LTX-Video", "Wan I2V / TI2V / VACE"),
    "interpolate": ("kino", "LTX-Video", "Wan FLF2V (first + last) / VACE"),
    "extend": ("kino", "LTX-Video", "Wan VACE"),
    "loop": ("kino", "LTX-Video", "Wan FLF2V / VACE"),
    "connect": ("kino", "LTX-Video", "Wan FLF2V / VACE"),
    "edit": ("kino", "LTX-Video", "Wan 2.1 T2V"),
    "storyboard": ("kino", "LTX-Video", "Wan VACE"),
}


def _who_can(mode: str) -> str:
    names = WHO_CAN.get(str(mode))
    return f" ({mode} needs {' or '.join(names)})" if names else ""


def read_index(folder: Path) -> dict:
    """A folder's model_index.json, or ModelError saying what a model folder holds."""
    index = folder / "model_index.json"
    if not index.is_file():
        raise ModelError(f"{folder}: no model_index.json; give a kino pipeline folder or a diffusers-format "
                         f"LTX-Video or Wan folder (or a .safetensors file with --model-config DIR)")
    try:
        return json.loads(index.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{index}: not readable JSON ({e})") from None


def detect_family(path: str | os.PathLike, config: str | os.PathLike | None = None) -> Family:
    """Which family a folder (or a single file with its config folder) holds; ModelError if none."""
    p = Path(path)
    if p.is_file() and config is None:
        config = env_config()
    folder = Path(config) if (p.is_file() and config is not None) else p
    if p.is_file() and config is None:
        raise ModelError(f"{p}: a single-file checkpoint needs its diffusers config folder (--model-config DIR, "
                         f"or config=DIR in KINO_MODEL_OPTIONS)")
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist")
    name = str(read_index(folder).get("_class_name", ""))
    if name == "KinoPipeline":
        return Family.KINO
    if name.startswith("LTX"):
        return Family.LTX
    if name.startswith("Wan"):
        return Family.WAN
    raise ModelError(f"{folder}: model_index.json names {name or 'no class'}; kino runs KinoPipeline, "
                     f"LTX-Video (LTXPipeline, LTXConditionPipeline) and Wan (WanPipeline, ...) folders")


def load_model(path: str | os.PathLike, device: str = "cpu", dtype: str | None = None,
               config: str | os.PathLike | None = None, **options) -> VideoModel:
    """Load the model at `path` as its family's adapter (`options`: offload, tiling, attention...).

    For LTX-Video and Wan, KINO_MODEL_OPTIONS (e.g. "offload=model,vae_tiling,dtype=bfloat16,
    config=DIR") gives what the call leaves unset, so every front end (CLI, server, eval) takes them.
    """
    if Path(path).is_file() and config is None:
        config = env_config()
    family = detect_family(path, config)
    if family is not Family.KINO and os.environ.get("KINO_MODEL_OPTIONS"):
        env = parse_model_options(os.environ["KINO_MODEL_OPTIONS"])
        env.pop("config", None)
        dtype = dtype or env.pop("dtype", None)
        env.pop("dtype", None)
        options = {**env, **options}
    if family is Family.KINO:
        from kino.families.kino import KinoModel

        return KinoModel.load(path, device=device, dtype=dtype, **options)
    if family is Family.LTX:
        from kino.families.ltx import LTXModel

        return LTXModel.load(path, device=device, dtype=dtype, config=config, **options)
    from kino.families.wan import WanModel

    return WanModel.load(path, device=device, dtype=dtype, config=config, **options)


def env_config() -> str | None:
    """The config=DIR of KINO_MODEL_OPTIONS (a single-file checkpoint's diffusers folder), if any."""
    text = os.environ.get("KINO_MODEL_OPTIONS")
    return parse_model_options(text).get("config") if text else None


def parse_model_options(text: str) -> dict:
    """"offload=model,vae_tiling,first_block_cache=0.1" -> {"offload": "model", "vae_tiling": True, ...}.

    A bare name is True; numbers become floats; InputError (one line) for an empty name."""
    out: dict = {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not key:
            raise InputError(f"KINO_MODEL_OPTIONS: {item!r} has no name; write e.g. offload=model,vae_tiling")
        if not eq:
            out[key] = True
            continue
        value = value.strip()
        try:
            out[key] = float(value) if key == "first_block_cache" else value
        except ValueError:
            raise InputError(f"KINO_MODEL_OPTIONS: first_block_cache={value!r} is not a number (e.g. 0.1)") from None
        if value.lower() in ("true", "false", "1", "0") and key in ("vae_tiling", "vae_slicing", "compile"):
            out[key] = value.lower() in ("true", "1")
    return out
