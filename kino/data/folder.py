"""Random crops of a folder of videos, for training the VAE on one's own footage.

Sample `i` is a pure function of `(seed, i)` like the world's stream: it picks a file, a start
frame and a crop window from `numpy.random.default_rng([seed, i])`, reading through kino.io.
Clips shorter than asked are padded by repeating their last frame.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import IterableDataset

from kino.data.world import _check_clip_shape, frames_to_tensor, worker_indices
from kino.errors import InputError
from kino.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES, iter_frames, probe


def media_files(folder: str | os.PathLike) -> list[Path]:
    """Videos and images under `folder`, sorted (so a seed always means the same files)."""
    root = Path(folder)
    if not root.is_dir():
        raise InputError(f"{root} is not a folder; --data takes 'world' or a folder of videos")
    suffixes = VIDEO_SUFFIXES + IMAGE_SUFFIXES
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in suffixes)
    if not files:
        raise InputError(f"{root} holds no videos or images ({', '.join(suffixes)})")
    return files


class FolderClips(IterableDataset):
    """Infinite stream of random crops {"video": (3, T, H, W) in [-1, 1], "caption": "", "index": i}."""

    def __init__(self, folder: str | os.PathLike, seed: int = 0, sizes: tuple[tuple[int, int], ...] = ((64, 64),),
                 num_frames: tuple[int, ...] = (17,), image_prob: float = 0.0, group: int = 1, start: int = 0):
        super().__init__()
        self.files = media_files(folder)
        self.sizes, self.num_frames = tuple(sizes), tuple(num_frames)
        _check_clip_shape(self.sizes, self.num_frames)
        self.seed, self.image_prob, self.group, self.start = int(seed), float(image_prob), int(group), int(start)
        self._info: dict[Path, Any] = {}

    def sample(self, i: int) -> dict[str, Any]:
        """Sample `i`: a crop of (width, height, frames) from the group's recipe."""
        g = np.random.default_rng([self.seed, 1, i // self.group])
        w, h = self.sizes[int(g.integers(len(self.sizes)))]
        t = 1 if g.random() < self.image_prob else self.num_frames[int(g.integers(len(self.num_frames)))]
        r = np.random.default_rng([self.seed, 3, i])
        path = self.files[int(r.integers(len(self.files)))]
        info = self._info.get(path) or self._info.setdefault(path, probe(path))
        first = int(r.integers(max(info.num_frames - t, 0) + 1))
        frames = list(iter_frames(path, max_frames=first + t))[first:] or [np.zeros((h, w, 3), np.uint8)]
        clip = np.stack(frames + [frames[-1]] * (t - len(frames)))  # (t, H0, W0, 3)
        if clip.shape[1] < h or clip.shape[2] < w:  # upscale small footage to fit the crop
            from PIL import Image

            s = max(h / clip.shape[1], w / clip.shape[2])
            size = (max(w, round(clip.shape[2] * s)), max(h, round(clip.shape[1] * s)))
            clip = np.stack([np.asarray(Image.fromarray(f).resize(size, Image.BILINEAR)) for f in clip])
        y = int(r.integers(clip.shape[1] - h + 1))
        x = int(r.integers(clip.shape[2] - w + 1))
        return {"video": frames_to_tensor(clip[:, y:y + h, x:x + w]), "caption": "", "index": i}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in worker_indices(self.start, self.group):
            yield self.sample(i)
