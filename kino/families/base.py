"""The interface every model family implements.

A family adapter turns one resolved `kino.generation.GenerationRequest` (mode, prompt, inputs, sizes,
steps, guidance, seed) into frames. Everything around the model (policy, enhancement, frame review,
watermark, C2PA, atomic writes) stays in kino.generation and is the same for every family.

How a folder is recognised and loaded: kino.families.loading.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np

from kino.errors import InputError


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
