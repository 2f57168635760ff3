"""A world latent cache: kino's world rendered straight to tensors, encoded once, for `kino train dit`.

Training on the world renders, VAE-encodes and text-encodes every clip of every step; on a CPU that is
most of a step (measured on v1, batch 8, 1 thread: render 70 ms, VAE 846 ms, text 443 ms, DiT 980 ms;
issue 18). `build_world_cache` does the first three once: clip j is `WorldClips(seed, sizes, frames,
image_prob).sample(j)` (a pure function of (seed, j); no MP4 round trip), its latent is the VAE's
normalized posterior mean and every caption level (short, medium, detailed) is text-encoded, written in
kino.data.cache's format (shards, index.json, cache.json) with each clip's scene spec in its entry.
`kino train dit --data CACHE` then trains on it as on any latent cache.

The settings in cache.json are the world's recipe (seed, split, sizes, frame counts, image share, fps,
objects), the VAE and the text encoder; a resume with any other is refused. The clip count is not a
setting: a larger count keeps the finished shards and adds clips after them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import Any

import torch

from kino.data.cache import CacheConfig, CacheReport, PromptEncoder, SourceClip, VideoEncoder, write_cache
from kino.data.world import WorldClips, frames_to_tensor
from kino.errors import InputError

LEVELS = ("short", "medium", "detailed")  # every caption level is cached; training draws among them


class WorldSource:
    """`count` world clips as a cache source: pixels, all three caption levels and the scene spec."""

    def __init__(self, count: int, seed: int = 0, sizes: tuple[tuple[int, int], ...] = ((64, 64),),
                 num_frames: tuple[int, ...] = (17,), image_prob: float = 0.0, fps: float = 8.0,
                 split: str = "train", max_objects: int = 3) -> None:
        if count < 1:
            raise InputError(f"--world {count}: the cache needs at least 1 clip")
        self.count = int(count)
        # group=1: every clip draws its own size and length; the batch sampler buckets them at training
        self.world = WorldClips(seed=seed, split=split, sizes=sizes, num_frames=num_frames, fps=fps,
                                caption_levels=LEVELS, image_prob=image_prob, group=1, max_objects=max_objects)
        w = self.world
        self.settings: dict[str, Any] = {"source": "world", "world": {
            "seed": w.seed, "split": str(w.split.value), "sizes": [list(s) for s in w.sizes],
            "num_frames": list(w.num_frames), "image_prob": w.image_prob, "fps": w.fps,
            "max_objects": w.max_objects}}

    def __len__(self) -> int:
        return self.count

    def clip_id(self, j: int) -> str:
        return f"world-{self.world.seed}-{j}"

    def clip(self, j: int) -> SourceClip:
        """World clip j: the frames WorldClips.sample(j) renders, its captions at every level, its spec."""
        from kino.world.caption import caption
        from kino.world.render import render

        _, spec, render_seed, caption_seed = self.world.scene(j)
        video = frames_to_tensor(render(spec, seed=render_seed))  # (3, T, H, W)
        captions = {level: caption(spec, level=level, seed=caption_seed) for level in LEVELS}
        return SourceClip(self.clip_id(j), video, captions, {"spec": json.loads(spec.to_json())})


def build_world_cache(
    count: int,
    vae: VideoEncoder,
    text_encoder: PromptEncoder,
    out: str | os.PathLike,
    config: CacheConfig | None = None,
    identity: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    on_clip: Callable[[int, int], None] | None = None,
    encode_batch: int = 8,
    **world: Any,
) -> CacheReport:
    """Render `count` world clips (world: WorldSource's seed, sizes, num_frames, image_prob, fps, split),
    encode them and write a latent cache to `out` (resumable by shard); returns what was built and skipped.

    identity names the VAE and text encoder (stored in cache.json, so a resume with others is refused);
    encode_batch: clips of one shape the VAE encodes together.
    """
    source = WorldSource(count, **world)
    return write_cache(source, vae, text_encoder, out, config, identity, device, on_clip, encode_batch)
