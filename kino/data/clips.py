"""Datasets over prepared data: `ManifestClips` decodes clips of a manifest (the cache's reader,
`CachedClips`, lives beside its writer in kino.data.cache).

Letters: T frames, H/W pixels, C channels; latents (C, t, h, w); text (L, D).

`ManifestClips` gives each clip at its bucket: the aspect-ratio bucket of about `area` pixels
(resized to cover it, then centre-cropped) and the largest 1 + 4k frame count up to
`max_frames`, as a float tensor (3, T, H, W) in [-1, 1] (what the VAE encodes).
It exposes `shapes` (latent shapes) for BucketBatchSampler, as `CachedClips` does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from einops import rearrange
from torch.utils.data import Dataset

from kino.data.buckets import TokenFactors, aspect_buckets, nearest_bucket, snap_frames
from kino.data.manifest import ClipRecord, read_manifest
from kino.data.prepare import read_clip
from kino.errors import InputError

# ----------------------------------------------------------------------------- shaping


def fit_frames(frames: np.ndarray, width: int, height: int) -> np.ndarray:
    """Resize (T, H, W, 3) uint8 to cover width x height, then centre-crop to it."""
    from PIL import Image

    h0, w0 = frames.shape[1:3]
    scale = max(width / w0, height / h0)
    rw, rh = max(width, round(w0 * scale)), max(height, round(h0 * scale))
    left, top = (rw - width) // 2, (rh - height) // 2
    out = np.empty((len(frames), height, width, 3), dtype=np.uint8)  # (T, H, W, 3)
    for i, f in enumerate(frames):
        im = Image.fromarray(f).resize((rw, rh), Image.BICUBIC)
        out[i] = np.asarray(im.crop((left, top, left + width, top + height)))
    return out


def to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> float (3, T, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames)).float() / 127.5 - 1.0
    return rearrange(x, "t h w c -> c t h w")  # (3, T, H, W)


# ----------------------------------------------------------------------------- datasets


@dataclass(frozen=True)
class ClipShaping:
    """How a manifest clip becomes a training tensor: bucket area, frame cap, token factors."""

    area: int = 64 * 64  # pixels per frame of the buckets (the tiny model trains at 64x64)
    max_frames: int = 17  # at most this many frames, snapped to 1 + 4k
    factors: TokenFactors = TokenFactors()

    def __post_init__(self) -> None:
        if self.max_frames < 1:
            raise InputError(f"max_frames {self.max_frames} must be at least 1")
        aspect_buckets(self.area, self.factors.pixel_multiple)  # validates the area

    def target(self, record: ClipRecord) -> tuple[int, int, int]:
        """(T, H, W) in pixels that this clip is shaped to."""
        w, h = nearest_bucket(record.width, record.height, aspect_buckets(self.area, self.factors.pixel_multiple))
        return snap_frames(record.num_frames, self.factors.temporal, self.max_frames), h, w


class ManifestClips(Dataset):
    """item -> {"video": (3, T, H, W) float in [-1, 1], "caption": {level: text}, "id": str}."""

    def __init__(self, manifest: str | os.PathLike, shaping: ClipShaping | None = None) -> None:
        self.path = Path(manifest)
        self.records = read_manifest(self.path)
        self.shaping = shaping or ClipShaping()

    def __len__(self) -> int:
        return len(self.records)

    @property
    def shapes(self) -> list[tuple[int, int, int]]:
        """Latent shape (t, h, w) of every clip, for the batch sampler."""
        return [self.shaping.factors.latent_shape(*self.shaping.target(r)) for r in self.records]

    def __getitem__(self, i: int) -> dict[str, Any]:
        rec = self.records[i]
        t, h, w = self.shaping.target(rec)
        frames = read_clip(rec, self.path.parent, max_frames=t)[:t]  # (T, H0, W0, 3)
        return {"video": to_tensor(fit_frames(frames, w, h)), "caption": dict(rec.captions), "id": rec.id}


# ----------------------------------------------------------------------------- collation


def pad_text(items: list[dict[str, Any]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Stack text (L_i, D) into (B, L, D) zero-padded, with a (B, L) mask."""
    n = max(it["text"].shape[0] for it in items)
    d = items[0]["text"].shape[1]
    text = torch.zeros(len(items), n, d, dtype=items[0]["text"].dtype)  # (B, L, D)
    mask = torch.zeros(len(items), n, dtype=torch.bool)  # (B, L)
    for i, it in enumerate(items):
        k = it["text"].shape[0]
        text[i, :k] = it["text"]
        mask[i, :k] = it["text_mask"]
    return text, mask


def collate_bucket(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Same-shape latents -> {"latent": (B, C, t, h, w), "text": (B, L, D), "text_mask": (B, L), "ids"}."""
    text, mask = pad_text(items)
    return {"latent": torch.stack([it["latent"] for it in items]), "text": text, "text_mask": mask,
            "ids": [it["id"] for it in items]}


def collate_packed(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Any-shape latents -> {"latent": list of (C, t_i, h_i, w_i), "text": (B, L, D), ...} for packed DiT."""
    text, mask = pad_text(items)
    return {"latent": [it["latent"] for it in items], "text": text, "text_mask": mask,
            "ids": [it["id"] for it in items]}
