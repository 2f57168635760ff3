"""What the diffusers-based families (LTX-Video, Wan) share: loading, memory and speed options, counts.

A family adapter (kino.families.ltx, kino.families.wan) maps a kino request onto one diffusers pipeline
call; this file loads that pipeline from a user's folder (or a single-file transformer with the folder
as its config), applies the memory/speed options users rely on, and turns diffusers' output into frames.

    load_components(path, config, dtype)  -> a diffusers pipeline with every component of the folder
    RunOptions(...).apply(pipe, device)   -> dtype, offload, VAE tiling/slicing, attention, cache, compile
    sample(pipe, kwargs, callback)        -> (T, H, W, 3) float32 frames in [0, 1]

Letters: T frames, H height, W width.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

import numpy as np

from kino.errors import InputError, ModelError

DTYPES = ("float32", "bfloat16", "float16")


class Offload(StrEnum):
    """Where the weights wait while another component runs."""

    NONE = "none"
    MODEL = "model"  # whole components move to the GPU when used (diffusers' enable_model_cpu_offload)
    GROUP = "group"  # blocks stream to the GPU with the next one prefetched (enable_group_offload)
    SEQUENTIAL = "sequential"  # one layer at a time (slowest, least memory)


def resolve_dtype(device: str, dtype: str | None):
    """The torch dtype: bf16 by default on a GPU, fp32 on a CPU; ModelError for another name."""
    import torch

    name = dtype or ("bfloat16" if str(device).startswith("cuda") else "float32")
    if name not in DTYPES:
        raise ModelError(f"dtype {name!r} is not one of {', '.join(DTYPES)}")
    return getattr(torch, name)


@dataclass(frozen=True)
class RunOptions:
    """Memory and speed options of a diffusers family (the CLI's and the server's flags)."""

    offload: Offload = Offload.NONE
    vae_tiling: bool = False
    vae_slicing: bool = False
    attention: str | None = None  # a diffusers attention backend ("native" = SDPA, "flash", "sage", ...)
    first_block_cache: float | None = None  # First Block Cache threshold (ParaAttention's idea; 0.05-0.1)
    compile: bool = False  # torch.compile of the transformer's repeated blocks

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "offload", Offload(self.offload))
        except ValueError:
            raise InputError(f"offload {self.offload!r} is not one of {', '.join(Offload)}") from None
        if self.attention is not None:
            from diffusers.models.attention_dispatch import AttentionBackendName

            names = [b.value for b in AttentionBackendName if not b.value.startswith("_")]
            if self.attention not in [b.value for b in AttentionBackendName]:
                raise InputError(f"attention backend {self.attention!r} is not one of {', '.join(names)}")
        if self.first_block_cache is not None and not 0.0 < self.first_block_cache < 1.0:
            raise InputError(f"the First Block Cache threshold must be in (0, 1) (0.05-0.1 is usual), "
                             f"got {self.first_block_cache:g}")

    @classmethod
    def from_options(cls, options: dict) -> RunOptions:
        """From load_model's **options; an unknown option is an InputError naming the known ones."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(options) - known)
        if unknown:
            raise InputError(f"unknown model option {unknown[0]!r}; diffusers families take {', '.join(sorted(known))}")
        return cls(**{k: v for k, v in options.items() if v is not None})

    def apply(self, pipe, device: str) -> list[str]:
        """Put `pipe` on `device` with these options; returns the options in effect, for info()."""
        import torch

        used = []
        gpu = str(device).startswith("cuda")
        if self.offload is not Offload.NONE and not gpu:
            raise InputError(f"offload={self.offload} moves weights between the CPU and a GPU; it needs "
                             f"--device cuda (on a CPU everything is already in CPU memory)")
        if self.offload is Offload.MODEL:
            pipe.enable_model_cpu_offload(device=device)
        elif self.offload is Offload.SEQUENTIAL:
            pipe.enable_sequential_cpu_offload(device=device)
        elif self.offload is Offload.GROUP:
            pipe.enable_group_offload(onload_device=torch.device(device), offload_device=torch.device("cpu"),
                                      offload_type="block_level", num_blocks_per_group=1, use_stream=True)
        else:
            pipe.to(device)
        if self.offload is not Offload.NONE:
            used.append(f"offload {self.offload}")
        vae = getattr(pipe, "vae", None)
        if self.vae_tiling:
            vae.enable_tiling()
            used.append("vae tiling")
        if self.vae_slicing:
            vae.enable_slicing()
            used.append("vae slicing")
        for denoiser in transformers_of(pipe):
            if self.attention is not None:
                try:
                    denoiser.set_attention_backend(self.attention)
                except (ImportError, RuntimeError, ValueError) as e:
                    raise InputError(f"attention backend {self.attention!r} is not available here "
                                     f"({str(e).splitlines()[0]}); the default (SDPA) needs nothing") from None
            if self.first_block_cache is not None:
                from diffusers.hooks import FirstBlockCacheConfig

                if len(denoiser.blocks if hasattr(denoiser, "blocks") else denoiser.transformer_blocks) < 2:
                    raise InputError("First Block Cache needs a transformer of at least 2 blocks")
                denoiser.enable_cache(FirstBlockCacheConfig(threshold=self.first_block_cache))
            if self.compile:
                denoiser.compile_repeated_blocks(fullgraph=True)
        if self.attention is not None:
            used.append(f"attention {self.attention}")
        if self.first_block_cache is not None:
            used.append(f"first block cache {self.first_block_cache:g}")
        if self.compile:
            used.append("compiled blocks")
        return used


def transformers_of(pipe) -> list:
    """The pipeline's denoisers (Wan 2.2 A14B has two)."""
    return [m for m in (getattr(pipe, "transformer", None), getattr(pipe, "transformer_2", None)) if m is not None]


def config_folder(path: str | os.PathLike, config: str | os.PathLike | None) -> tuple[Path, Path | None]:
    """(the diffusers folder, the single transformer file or None)."""
    p = Path(path)
    if p.is_file():
        if config is None:
            raise ModelError(f"{p}: a single-file checkpoint needs its diffusers config folder (--model-config DIR)")
        return Path(config), p
    return p, None


def load_components(path: str | os.PathLike, config: str | os.PathLike | None, torch_dtype):
    """The diffusers pipeline of a folder, every component read from disk (`local_files_only`).

    With a single file, the transformer comes from it (`from_single_file`, with the folder's
    `transformer/` config; diffusers converts the original key names) and the rest from the folder.
    """
    import diffusers

    folder, single = config_folder(path, config)
    index = json.loads((folder / "model_index.json").read_text())
    with quiet():  # importing a pipeline's module may log (Wan I2V's CLIPImageProcessor: a torchvision warning)
        cls = getattr(diffusers, str(index["_class_name"]), None)
    if cls is None:
        raise ModelError(f"{folder}: model_index.json names {index['_class_name']}, which diffusers "
                         f"{diffusers.__version__} does not have")
    extra = {}
    if single is not None:
        tcls = getattr(diffusers, str(index["transformer"][1]))
        try:
            with quiet():
                extra["transformer"] = tcls.from_single_file(str(single), config=str(folder), subfolder="transformer",
                                                             torch_dtype=torch_dtype, local_files_only=True)
        except (OSError, ValueError, KeyError, RuntimeError) as e:
            raise ModelError(f"{single}: not a {tcls.__name__} checkpoint for {folder} "
                             f"({str(e).splitlines()[0][:200]})") from None
    try:
        with quiet():
            pipe = cls.from_pretrained(str(folder), dtype=torch_dtype, local_files_only=True, **extra)
    except (OSError, ValueError, KeyError) as e:
        raise ModelError(f"{folder}: cannot load as {cls.__name__} ({str(e).splitlines()[0][:200]})") from None
    pipe.set_progress_bar_config(disable=True)  # kino draws its own progress from the step callback
    return pipe


@contextmanager
def quiet():
    """diffusers' and transformers' info and warning lines off while kino loads or samples (restored after)."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    before = dlog.get_verbosity(), tlog.get_verbosity()
    bars = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.set_verbosity_error()
    tlog.set_verbosity_error()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        dlog.set_verbosity(before[0])
        tlog.set_verbosity(before[1])
        if bars[0]:
            dlog.enable_progress_bar()
        if bars[1]:
            tlog.enable_progress_bar()


def short_count(n: int) -> str:
    """1_300_000_000 -> '1.3B', 52_584 -> '53K'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2g}{unit}"
    return str(n)


def parameter_counts(pipe) -> dict[str, int]:
    """Component name -> parameter count (0 for a tokenizer, scheduler or processor)."""
    counts = {}
    for name, comp in pipe.components.items():
        if comp is None or isinstance(comp, (bool, int, float, str)):
            continue
        params = getattr(comp, "parameters", None)
        counts[name] = int(sum(p.numel() for p in params())) if callable(params) else 0
    return counts


def estimate_memory_gb(counts: dict[str, int], bytes_per_param: int, tokens: int, hidden: int, layers: int,
                       offload: Offload) -> float:
    """A rough peak (GB): the weights resident at once plus the transformer's activations.

    Resident weights: all of them without offload; with model offload the largest component; with
    group/sequential offload a few blocks. Activations: about 12 hidden-size vectors per token for one
    block's forward (attention with SDPA keeps no T x T matrix), in the compute dtype.
    """
    weights = sum(counts.values()) * bytes_per_param
    if offload is Offload.MODEL:
        weights = max(counts.values(), default=0) * bytes_per_param
    elif offload in (Offload.GROUP, Offload.SEQUENTIAL):
        weights = max(counts.values(), default=0) * bytes_per_param / max(layers, 1) * 2
    activations = 12 * tokens * hidden * bytes_per_param * 2  # x2: the conditional and unconditional passes
    return round((weights + activations) / 1e9 + 0.5, 1)  # + 0.5 GB for the CUDA context and workspace


def progress(callback: Callable[[int, int], None] | None):
    """diffusers' callback_on_step_end that reports (step, total) to kino's callback."""
    if callback is None:
        return None

    def on_step_end(pipe, i, t, kwargs):
        callback(i + 1, int(getattr(pipe, "num_timesteps", 0) or i + 1))
        return kwargs

    return on_step_end


def sample(pipe, kwargs: dict, callback: Callable[[int, int], None] | None = None) -> np.ndarray:
    """One pipeline call: (T, H, W, 3) float32 frames in [0, 1]."""
    import torch

    with quiet(), torch.inference_mode():
        out = pipe(**kwargs, output_type="np", callback_on_step_end=progress(callback), return_dict=True)
    frames = out.frames[0]  # (T, H, W, 3)
    return np.asarray(frames, dtype=np.float32)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    return (np.clip(frames, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def to_pil(frames: np.ndarray) -> list:
    """(T, H, W, 3) uint8 -> PIL images, as diffusers' pipelines take videos."""
    from PIL import Image

    return [Image.fromarray(f) for f in frames]


def round_frames(n: int, multiple: int, notes: list[str], what: str = "frames") -> int:
    """n rounded up to 1 + k * multiple (the frame counts the VAE encodes), noted when changed."""
    k = max(0, -(-(n - 1) // multiple))
    m = 1 + k * multiple
    if m != n:
        notes.append(f"{n} {what} rounded up to {m} (1 + a multiple of {multiple})")
    return m


def check_size(width: int, height: int, multiple: int, family: str) -> None:
    if width % multiple or height % multiple or width <= 0 or height <= 0:
        fix = (max(multiple, round(width / multiple) * multiple), max(multiple, round(height / multiple) * multiple))
        raise InputError(f"size {width}x{height} is not a multiple of {multiple} for {family}; "
                         f"try {fix[0]}x{fix[1]}")
