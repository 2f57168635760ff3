"""A streaming, seeded, infinite data set of world clips: video, caption and scene spec.

Sample `i` is a pure function of `(seed, i)`: its canvas size, frame count, scene, render seed
and caption all come from `numpy.random.default_rng([seed, i])` (size and frame count from
the sample's group, see below). So training resumes at a data position by starting at `start`,
and a `DataLoader` with several workers yields exactly the same stream as one with none.

Clips have T = 1 + 4k frames (the causal VAE's shape); an image is a 1-frame clip. Samples
come in groups of `group` consecutive indices that share one canvas size and frame count, so a
`DataLoader(batch_size=group)` stacks them without a custom collate; workers take whole groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info

from kino.errors import InputError
from kino.world.spec import MIN_SIDE, SIDE_STEP

# The world's vocabulary lives in kino.world.*; its modules are imported where used, so that
# importing kino.data.world costs nothing and works before the renderer is built.


@dataclass(frozen=True)
class WorldSample:
    """One sample's recipe, decided from (seed, i) alone."""

    index: int
    width: int
    height: int
    num_frames: int
    caption_level: str


def frames_to_tensor(frames: np.ndarray) -> torch.Tensor:
    """uint8 frames (T, H, W, 3) -> float tensor (3, T, H, W) in [-1, 1]."""
    x = torch.from_numpy(np.ascontiguousarray(frames))  # (T, H, W, 3)
    x = x.permute(3, 0, 1, 2).float()  # (3, T, H, W)
    return x / 127.5 - 1.0


def tensor_to_frames(x: torch.Tensor) -> np.ndarray:
    """Float tensor (3, T, H, W) in [-1, 1] -> uint8 frames (T, H, W, 3), rounded and clipped."""
    x = ((x.detach().float().cpu().clamp(-1, 1) + 1.0) * 127.5).round()
    return x.permute(1, 2, 3, 0).to(torch.uint8).numpy()  # (T, H, W, 3)


def _check_clip_shape(sizes: tuple[tuple[int, int], ...], num_frames: tuple[int, ...]) -> None:
    if not sizes or not num_frames:
        raise InputError("WorldClips needs at least one size and one frame count")
    for w, h in sizes:
        if w < MIN_SIDE or h < MIN_SIDE or w % SIDE_STEP or h % SIDE_STEP:
            raise InputError(
                f"size {w}x{h} is not valid; use sides >= {MIN_SIDE} that are multiples of {SIDE_STEP}"
            )
    for t in num_frames:
        if t < 1 or (t - 1) % 4:
            raise InputError(f"clip length {t} frames is not 1 + 4k; try 1, 17 or 33")


class WorldClips(IterableDataset):
    """Infinite stream of rendered world clips as dicts {"video", "caption", "spec", "index"}.

    "video" is a float tensor (3, T, H, W) in [-1, 1]; "caption" a str at one of `caption_levels`;
    "spec" the SceneSpec as JSON; "index" the sample's position in the stream.
    """

    def __init__(
        self,
        seed: int = 0,
        split: Any = "train",
        sizes: tuple[tuple[int, int], ...] = ((64, 64),),
        num_frames: tuple[int, ...] = (17,),
        fps: float = 8.0,
        caption_levels: tuple[Any, ...] = ("detailed",),
        image_prob: float = 0.0,
        group: int = 1,
        start: int = 0,
        max_objects: int = 3,
    ) -> None:
        super().__init__()
        from kino.world.sampler import Split

        self.seed = int(seed)
        self.split = Split(split)
        self.sizes = tuple((int(w), int(h)) for w, h in sizes)  # (width, height)
        self.num_frames = tuple(int(t) for t in num_frames)
        _check_clip_shape(self.sizes, self.num_frames)
        self.fps = float(fps)
        if caption_levels:  # () means no captions (the VAE needs none): "caption" is ""
            from kino.world.caption import CaptionLevel

            caption_levels = tuple(CaptionLevel(c) for c in caption_levels)
        self.caption_levels = tuple(caption_levels)
        if not 0.0 <= image_prob <= 1.0:
            raise InputError(f"image_prob {image_prob} is out of range; use a value in [0, 1]")
        self.image_prob = float(image_prob)
        if group < 1 or start < 0 or start % group:
            raise InputError(f"start {start} must be >= 0 and a multiple of group {group} (group >= 1)")
        self.group = int(group)
        self.start = int(start)
        self.max_objects = int(max_objects)

    def recipe(self, i: int) -> WorldSample:
        """Canvas size, frame count and caption level of sample `i` (shared by its group)."""
        g = np.random.default_rng([self.seed, 1, i // self.group])
        w, h = self.sizes[int(g.integers(len(self.sizes)))]
        t = 1 if g.random() < self.image_prob else self.num_frames[int(g.integers(len(self.num_frames)))]
        r = np.random.default_rng([self.seed, 2, i])
        level = self.caption_levels[int(r.integers(len(self.caption_levels)))] if self.caption_levels else ""
        return WorldSample(i, w, h, t, str(level))

    def scene(self, i: int) -> tuple[WorldSample, Any, int, int]:
        """Sample `i`'s recipe, SceneSpec, render seed and caption seed (no rendering); a pure function of (seed, i)."""
        from kino.world.sampler import sample_spec

        rec = self.recipe(i)
        rng = np.random.default_rng([self.seed, 3, i])
        spec = sample_spec(
            rng, self.split, width=rec.width, height=rec.height, fps=self.fps,
            num_frames=rec.num_frames, max_objects=self.max_objects,
        )  # fmt: skip
        render_seed, caption_seed = (int(s) for s in rng.integers(0, 2**31 - 1, size=2))
        return rec, spec, render_seed, caption_seed

    def sample(self, i: int) -> dict[str, Any]:
        """Sample `i` of the stream; a pure function of (seed, i)."""
        from kino.world.render import render

        rec, spec, render_seed, caption_seed = self.scene(i)
        frames = render(spec, seed=render_seed)  # (T, H, W, 3) uint8
        return {
            "video": frames_to_tensor(frames),  # (3, T, H, W)
            "caption": self._caption(spec, rec.caption_level, caption_seed),
            "spec": spec.to_json(),
            "index": i,
        }

    @staticmethod
    def _caption(spec: Any, level: str, seed: int) -> str:
        if not level:
            return ""
        from kino.world.caption import caption

        return caption(spec, level=level, seed=seed)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for i in worker_indices(self.start, self.group):
            yield self.sample(i)


def worker_indices(start: int, group: int) -> Iterator[int]:
    """The endless sample indices of this DataLoader worker, from `start` (a multiple of `group`).

    Workers take whole groups round robin, so each DataLoader batch of `group` samples has one shape.
    """
    info = get_worker_info()
    worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
    g = start // group + worker
    while True:
        yield from range(g * group, (g + 1) * group)
        g += workers
