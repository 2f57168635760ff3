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
                 factor: int = 8, max_side: int | None = 256) -> Iterator[torch.Tensor]:
    """The first 1 + 4k (up to `num_frames`) frames of each video in `folder`, cropped to multiples of `factor`.

    Frames larger than `max_side` on their long side are scaled down to it first (a 1280x720 clip
    through the VAE on a CPU takes minutes and gigabytes; None keeps the native size)."""
    from kino.data.folder import media_files
    from kino.data.world import frames_to_tensor
    from kino.io import iter_frames

    for path in media_files(folder)[:count]:
        frames = np.stack([_bounded(f, max_side) for f in iter_frames(path, max_frames=num_frames)])  # (T, H, W, 3)
        t = 1 + (len(frames) - 1) // 4 * 4
        h, w = frames.shape[1] // factor * factor, frames.shape[2] // factor * factor
        if h == 0 or w == 0:
            raise InputError(f"{path}: frames of {frames.shape[2]}x{frames.shape[1]} are smaller than {factor}")
        yield frames_to_tensor(frames[:t, :h, :w])


def _bounded(frame: np.ndarray, max_side: int | None) -> np.ndarray:
    """`frame` (H, W, 3) scaled down so that its long side is at most max_side."""
    h, w = frame.shape[:2]
    if max_side is None or max(h, w) <= max_side:
        return frame
    from PIL import Image

    s = max_side / max(h, w)
    return np.asarray(Image.fromarray(frame).resize((max(1, round(w * s)), max(1, round(h * s))), Image.BICUBIC))


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


@dataclass(frozen=True)
class Ceiling:
    """The analyzer on VAE round trips of ground-truth scenes: the share of asked attributes met,
    per attribute (`attributes`), per asked size class for the object attributes (`by_size`, keys
    like "shape/small"), and in all (`total`); `render` is the same on the renders (about 1.0)."""

    attributes: dict[str, float]
    by_size: dict[str, float]
    total: float
    render: float
    psnr: float  # dB, the round trips against their renders (uint8 pixels)
    ssim: float
    image_psnr: float  # dB, frame 0 of each render encoded and decoded alone (an image round trip)
    prompts: int


@torch.no_grad()
def ceiling(model: CausalVAE, suite: str = "world-train", count: int = 24, size: tuple[int, int] = (64, 64),
            num_frames: int = 17, fps: float = 8.0) -> Ceiling:
    """Score round trips of the first `count` ground truths of `suite` against what their prompts ask.

    No generator trained on this latent can score above it on average (issue 18's main VAE figure).
    """
    from collections import defaultdict

    from kino.data.world import frames_to_tensor, tensor_to_frames
    from kino.eval.suites import reference_scene, suite_prompts
    from kino.world.analyze import analyze
    from kino.world.render import render
    from kino.world.score import score

    model.eval()
    w, h = size
    met: dict[str, list[float]] = defaultdict(list)
    totals, renders, ps, ss, im = [], [], [], [], []
    for item in suite_prompts(suite, w, h, fps, num_frames)[:count]:
        truth = render(reference_scene(item, w, h, fps, num_frames), 0)  # (T, H, W, 3) uint8
        x = frames_to_tensor(truth)[None]  # (1, C, T, H, W)
        rec = tensor_to_frames(model.decode(model.encode(x)).clamp(-1, 1)[0])  # (T, H, W, 3) uint8
        y = frames_to_tensor(rec)[None]
        ps.append(psnr(y, x).item())
        ss.append(ssim(y, x).item())
        y0 = frames_to_tensor(tensor_to_frames(model.decode(model.encode(x[:, :, :1])).clamp(-1, 1)[0]))[None]
        im.append(psnr(y0, x[:, :, :1]).item())
        renders.append(score(analyze(truth, fps), item.expect).fraction)
        result = score(analyze(rec, fps), item.expect)
        totals.append(result.fraction)
        for check in result.checks:
            met[str(check.attribute)].append(float(check.met))
            if check.object is not None:
                met[f"{check.attribute}/{item.expect.objects[check.object].size}"].append(float(check.met))
    if not totals:
        raise InputError("no prompts to measure the ceiling on")
    mean = {k: float(np.mean(v)) for k, v in sorted(met.items())}
    return Ceiling({k: v for k, v in mean.items() if "/" not in k}, {k: v for k, v in mean.items() if "/" in k},
                   float(np.mean(totals)), float(np.mean(renders)), float(np.mean(ps)), float(np.mean(ss)),
                   float(np.mean(im)), len(totals))
