"""Bucketing and a token-budget batch sampler: deterministic, resumable, sharded across ranks.

Clips of any resolution, aspect ratio and duration train together (Sora's "native size"
training). Each sample is snapped to an aspect-ratio bucket of about a target area and a frame
count of the causal VAE's shape (1 + 4k); its cost is its number of DiT tokens,
    tokens = T_lat/pt x (H/8)/ph x (W/8)/pw,  T_lat = 1 + (T - 1)//4,  patch (pt, ph, pw) = (1, 2, 2).
Batches are filled up to a token budget rather than a sample count, so a batch of images and a
batch of long clips cost the same compute.

Two modes (`BatchMode`):
  - bucket: samples of one latent shape per batch, as many as fit the budget (a plain stacked batch);
  - packed: any shapes, greedily packed up to the budget (a list of latents for the DiT's packed
    block-diagonal attention, NaViT's "patch n' pack"); the default on GPU, where it wastes no padding.
The epoch's order is a pure function of (seed, epoch). Ranks take batches round-robin, and the
batch count is made divisible by the world size by splitting the largest batches, so every
sample appears exactly once per epoch across ranks and all ranks run the same number of steps.
The sampler's state is (epoch, position): the batches this rank has consumed in the epoch.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from enum import StrEnum

import numpy as np

from kino.errors import InputError

Shape3 = tuple[int, int, int]  # (T, H, W): frames and pixels, or latent frames and latent pixels


class BatchMode(StrEnum):
    BUCKET = "bucket"
    PACKED = "packed"


def default_batch_mode(device: str) -> BatchMode:
    """Packed on GPU (no padding, block-diagonal attention), bucketed stacks on CPU."""
    return BatchMode.PACKED if str(device).startswith("cuda") else BatchMode.BUCKET


@dataclass(frozen=True)
class TokenFactors:
    """How pixels become DiT tokens: the VAE's compression, then the DiT's patch."""

    temporal: int = 4  # VAE temporal factor: T frames -> 1 + (T - 1)//4 latent frames
    spatial: int = 8  # VAE spatial factor
    patch: Shape3 = (1, 2, 2)  # DiT patch (pt, ph, pw) in latent units

    def __post_init__(self) -> None:
        object.__setattr__(self, "patch", tuple(int(p) for p in self.patch))
        if self.temporal < 1 or self.spatial < 1 or len(self.patch) != 3 or min(self.patch) < 1:
            raise InputError("token factors must be positive: temporal, spatial and a 3-int patch")

    @property
    def pixel_multiple(self) -> int:
        """Sides must be multiples of this (VAE factor x patch) for whole tokens."""
        return self.spatial * max(self.patch[1], self.patch[2])

    def latent_shape(self, frames: int, height: int, width: int) -> Shape3:
        """(T, H, W) pixels -> (T_lat, H_lat, W_lat)."""
        return 1 + (frames - 1) // self.temporal, height // self.spatial, width // self.spatial

    def latent_tokens(self, shape: Shape3) -> int:
        """Tokens of a latent (T_lat, H_lat, W_lat)."""
        pt, ph, pw = self.patch
        return math.ceil(shape[0] / pt) * (shape[1] // ph) * (shape[2] // pw)

    def tokens(self, frames: int, height: int, width: int) -> int:
        """Tokens of a clip of (T, H, W) pixels."""
        return self.latent_tokens(self.latent_shape(frames, height, width))


# ----------------------------------------------------------------------------- sizes and durations

# Aspect ratios (width / height) of the buckets: square, the common photo and film shapes, portrait.
ASPECTS = (1.0, 4 / 3, 3 / 4, 16 / 9, 9 / 16, 2.0, 1 / 2)


def aspect_buckets(area: int, multiple: int = 16, aspects: Sequence[float] = ASPECTS) -> list[tuple[int, int]]:
    """(width, height) of about `area` pixels for each aspect ratio, sides multiples of `multiple`."""
    if area < multiple * multiple:
        raise InputError(f"bucket area {area} is below one {multiple}x{multiple} block")
    out = []
    for a in aspects:
        w = max(multiple, round(math.sqrt(area * a) / multiple) * multiple)
        h = max(multiple, round(math.sqrt(area / a) / multiple) * multiple)
        if (w, h) not in out:
            out.append((w, h))
    return out


def nearest_bucket(width: int, height: int, buckets: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """The bucket whose aspect ratio is closest to width/height (in log space)."""
    r = math.log(width / height)
    return min(buckets, key=lambda b: abs(math.log(b[0] / b[1]) - r))


def snap_frames(num_frames: int, temporal: int = 4, max_frames: int | None = None) -> int:
    """The largest 1 + k*temporal <= num_frames (and <= max_frames): the causal VAE's frame counts."""
    n = num_frames if max_frames is None else min(num_frames, max_frames)
    if n < 1:
        raise InputError(f"a clip needs at least 1 frame, got {num_frames}")
    return 1 + (n - 1) // temporal * temporal


# ----------------------------------------------------------------------------- the sampler


class BucketBatchSampler:
    """Batches of sample indices under a token budget; a `batch_sampler` for torch's DataLoader.

    shapes: one latent shape (T_lat, H_lat, W_lat) per sample. rank/world_size: this process's
    share (DDP). The DataLoader's workers need no extra sharding: it hands them whole batches.
    """

    def __init__(
        self,
        shapes: Sequence[Shape3],
        token_budget: int,
        factors: TokenFactors | None = None,
        mode: BatchMode = BatchMode.BUCKET,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        shuffle: bool = True,
    ) -> None:
        if not shapes:
            raise InputError("the batch sampler needs at least one sample")
        if world_size < 1 or not (0 <= rank < world_size):
            raise InputError(f"rank {rank} is not in 0..{world_size - 1} (world size {world_size})")
        self.factors = factors or TokenFactors()
        self.shapes = [tuple(int(v) for v in s) for s in shapes]
        self.tokens = np.array([self.factors.latent_tokens(s) for s in self.shapes], dtype=np.int64)
        biggest = int(self.tokens.max())
        if token_budget < biggest:
            raise InputError(f"token budget {token_budget} is below the largest sample's {biggest} tokens; "
                             f"use a budget of at least {biggest}")
        self.budget = int(token_budget)
        self.mode = BatchMode(mode)
        self.seed, self.rank, self.world_size, self.shuffle = seed, rank, world_size, shuffle
        self.epoch, self.position = 0, 0

    # -- the epoch's batches, the same on every rank
    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Every batch of `epoch` over all ranks, in order; a pure function of (seed, epoch)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.shapes)) if self.shuffle else np.arange(len(self.shapes))
        batches = self._bucketed(order) if self.mode is BatchMode.BUCKET else self._packed(order)
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return _divisible(batches, self.world_size, self.tokens)

    def _bucketed(self, order: np.ndarray) -> list[list[int]]:
        groups: dict[Shape3, list[int]] = defaultdict(list)
        for i in order:
            groups[self.shapes[i]].append(int(i))
        batches = []
        for shape in sorted(groups):
            size = max(1, self.budget // self.factors.latent_tokens(shape))
            members = groups[shape]
            batches.extend(members[j : j + size] for j in range(0, len(members), size))
        return batches

    def _packed(self, order: np.ndarray) -> list[list[int]]:
        batches, current, used = [], [], 0
        for i in order:
            t = int(self.tokens[i])
            if current and used + t > self.budget:
                batches.append(current)
                current, used = [], 0
            current.append(int(i))
            used += t
        if current:
            batches.append(current)
        return batches

    def rank_batches(self, epoch: int) -> list[list[int]]:
        """This rank's batches of `epoch`: every world_size-th batch, starting at its rank."""
        return self.epoch_batches(epoch)[self.rank :: self.world_size]

    # -- iteration and state
    def __iter__(self) -> Iterator[list[int]]:
        batches = self.rank_batches(self.epoch)
        while self.position < len(batches):
            batch = batches[self.position]
            self.position += 1
            yield batch
        self.epoch, self.position = self.epoch + 1, 0

    def __len__(self) -> int:
        return len(self.rank_batches(self.epoch))

    def set_epoch(self, epoch: int) -> None:
        """Start `epoch` from its beginning (as DistributedSampler.set_epoch)."""
        self.epoch, self.position = int(epoch), 0

    def state_dict(self) -> dict[str, int]:
        """{"epoch", "position"}. With a prefetching DataLoader, save the trainer's own count instead."""
        return {"epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.position = int(state["epoch"]), int(state["position"])


def _divisible(batches: list[list[int]], world_size: int, tokens: np.ndarray) -> list[list[int]]:
    """Split the largest batches in two until their count divides world_size (when there are samples enough)."""
    while len(batches) % world_size:
        sizes = [len(b) for b in batches]
        j = int(np.argmax(sizes))
        if sizes[j] < 2:
            break  # fewer samples than ranks x batches: some ranks get one batch fewer
        b = batches[j]
        # Split by tokens so each half stays within the budget (both halves are smaller).
        cum = np.cumsum(tokens[b])
        cut = int(np.searchsorted(cum, cum[-1] / 2)) + 1
        cut = min(max(cut, 1), len(b) - 1)
        batches[j : j + 1] = [b[:cut], b[cut:]]
    return batches


def batch_tokens(batch: Sequence[int], tokens: np.ndarray) -> int:
    """Total tokens of a batch of sample indices."""
    return int(tokens[list(batch)].sum())
