"""Measuring a VAE: PSNR, SSIM, compression factor and encode/decode throughput.

Letters: C channels, Z latent channels, T frames, H height, W width.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from kino.errors import InputError, ModelError
from kino.models.vae import CausalVAE
from kino.train.checkpoint import latest_checkpoint
from kino.train.losses import psnr, ssim

HELDOUT = "heldout"
EVAL_SEED = 20_240_215  # held-out clips come from their own seed, never the training stream's


@dataclass(frozen=True)
class VAEEval:
    """What `evaluate` measured (means over clips)."""

    psnr: float  # dB
    ssim: float
    compression: float  # pixel values per latent value, for these clips
    encode_fps: float  # frames per second
    decode_fps: float
    clips: int
    frames: int


def load_vae(path: str | os.PathLike, device: str | torch.device = "cpu") -> CausalVAE:
    """A VAE from a model folder, a checkpoint folder, or a run folder (its latest checkpoint)."""
    p = Path(path)
    if (p / "model.safetensors").is_file():
        return CausalVAE.from_pretrained(p, device=device)
    last = latest_checkpoint(p)
    if last is None:
        raise ModelError(f"no VAE in {p}: train one with `kino train vae --out {p}` or pass --model DIR")
    return CausalVAE.from_pretrained(last, device=device)


def heldout_clips(count: int = 32, size: tuple[int, int] = (64, 64), num_frames: int = 17) -> Iterator[torch.Tensor]:
    """`count` held-out world clips (3, T, H, W) in [-1, 1] (the world sampler's held-out split)."""
    from kino.data.world import WorldClips

    ds = WorldClips(seed=EVAL_SEED, split=HELDOUT, sizes=(size,), num_frames=(num_frames,), caption_levels=())
    for i in range(count):
        yield ds.sample(i)["video"]


def folder_clips(folder: str | os.PathLike, count: int = 32, num_frames: int = 33,
                 factor: int = 8) -> Iterator[torch.Tensor]:
    """The first 1 + 4k (up to `num_frames`) frames of each video in `folder`, cropped to multiples of `factor`."""
    from kino.data.folder import media_files
    from kino.data.world import frames_to_tensor
    from kino.io import iter_frames

    for path in media_files(folder)[:count]:
        frames = np.stack(list(iter_frames(path, max_frames=num_frames)))  # (T, H, W, 3)
        t = 1 + (len(frames) - 1) // 4 * 4
        h, w = frames.shape[1] // factor * factor, frames.shape[2] // factor * factor
        if h == 0 or w == 0:
            raise InputError(f"{path}: frames of {frames.shape[2]}x{frames.shape[1]} are smaller than {factor}")
        yield frames_to_tensor(frames[:t, :h, :w])


@torch.no_grad()
def evaluate(model: CausalVAE, clips: Iterable[torch.Tensor], device: str | torch.device = "cpu") -> VAEEval:
    """Reconstruct each clip (3, T, H, W) and average PSNR and SSIM; time encode and decode."""
    model.eval()
    ps, ss = [], []
    enc_t = dec_t = 0.0
    frames = pixels = latents = 0
    for clip in clips:
        x = clip[None].to(device)  # (1, C, T, H, W)
        t0 = time.perf_counter()
        z = model.encode(x)  # (1, Z, T', H', W')
        t1 = time.perf_counter()
        y = model.decode(z).clamp(-1, 1)  # (1, C, T, H, W)
        t2 = time.perf_counter()
        y = ((y + 1) * 127.5).round() / 127.5 - 1  # measured on the uint8 pixels a video file holds
        enc_t, dec_t = enc_t + t1 - t0, dec_t + t2 - t1
        ps.append(psnr(y, x).item())
        ss.append(ssim(y, x).item())
        frames += x.shape[2]
        pixels, latents = pixels + x.numel(), latents + z.numel()
    if not ps:
        raise InputError("no clips to evaluate")
    return VAEEval(float(np.mean(ps)), float(np.mean(ss)), pixels / latents, frames / enc_t, frames / dec_t,
                   len(ps), frames)
