"""Global batches: one epoch's sequence of optimizer steps, the same on any number of processes.

kino.data.buckets.BucketBatchSampler deals an epoch's batches to the ranks round-robin, so the samples
a step trains on depend on the world size, and a run resumed on another world size (FSDP2 and DDP
checkpoints allow it) continues with another data order. Here the unit is the global batch of one
optimizer step: the epoch's global batches are a pure function of (seed, epoch, batch size, budget),
and each of the world_size x accum micro-batches of a step is one contiguous slice of that step's
global batch (rank r's k-th micro-batch is slice r * accum + k, the global micro index that
kino.train.lora.LoRATrainer.micro_generator seeds by). So W ranks accumulating A micro-batches train on
exactly the samples one process accumulating W x A micro-batches trains on, step for step, and a resume
at step s on any world size continues at global batch s.

Batches are bucketed (one latent shape each, as kino.data.buckets' bucket mode): a global batch of shape
S holds the most multiples of `batch_size` whose tokens fit the step's budget (at least batch_size), so
it splits evenly over every valid layout (world_size x accum divides batch_size). A shape's last batch
is topped up to a multiple of batch_size with the first members of its shuffled group (wrapping), so
every sample appears at least once per epoch and a few twice.

RankSlices is the DataLoader batch sampler over them: a rank's micro-batches from a step on. kino train
lora (kino.train.lora_loop.micro_batches) and kino train dit's bucketed cache / manifest data
(kino.train.data.sampler_micro_batches) both read their data through it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence

import numpy as np

from kino.data.buckets import Shape3, TokenFactors
from kino.errors import InputError


class GlobalBatches:
    """Each epoch's global batches (sample indices of one optimizer step each), world-size independent.

    shapes: one latent shape (T_lat, H_lat, W_lat) per sample. batch_size: clips per step (at least).
    token_budget: the step's tokens (default: batch_size x the largest sample's tokens).
    """

    def __init__(self, shapes: Sequence[Shape3], batch_size: int, token_budget: int | None = None,
                 factors: TokenFactors | None = None, seed: int = 0, shuffle: bool = True) -> None:
        if not shapes:
            raise InputError("the batch sampler needs at least one sample")
        if batch_size < 1:
            raise InputError(f"batch size {batch_size} must be >= 1")
        self.factors = factors or TokenFactors()
        self.shapes = [tuple(int(v) for v in s) for s in shapes]
        self.tokens = np.array([self.factors.latent_tokens(s) for s in self.shapes], dtype=np.int64)
        self.batch_size, self.seed, self.shuffle = int(batch_size), seed, shuffle
        self.budget = int(token_budget) if token_budget else self.batch_size * int(self.tokens.max())

    def per_batch(self, shape: Shape3) -> int:
        """Samples of one global batch of `shape`: the most multiples of batch_size within the budget."""
        fit = self.budget // self.factors.latent_tokens(shape)
        return max(self.batch_size, fit // self.batch_size * self.batch_size)

    def epoch_batches(self, epoch: int) -> list[list[int]]:
        """Every global batch of `epoch`, in order; a pure function of (seed, epoch, batch_size, budget)."""
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.shapes)) if self.shuffle else np.arange(len(self.shapes))
        groups: dict[Shape3, list[int]] = defaultdict(list)
        for i in order:
            groups[self.shapes[i]].append(int(i))
        batches = []
        for shape in sorted(groups):
            members, size = groups[shape], self.per_batch(shape)
            for j in range(0, len(members), size):
                batch = members[j : j + size]
                short = -len(batch) % self.batch_size  # top up to a multiple of batch_size, wrapping
                batches.append(batch + [members[k % len(members)] for k in range(short)])
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def position(self, step: int) -> tuple[int, int]:
        """(epoch, index in the epoch) of the global batch that step `step` (0-based) trains on."""
        epoch = 0
        while step >= (n := len(self.epoch_batches(epoch))):
            step, epoch = step - n, epoch + 1
        return epoch, step

    def steps_from(self, step: int) -> Iterator[list[int]]:
        """The global batches of steps step, step + 1, ..., epoch after epoch (endless)."""
        epoch, index = self.position(step)
        while True:
            yield from self.epoch_batches(epoch)[index:]
            epoch, index = epoch + 1, 0


def micro_slices(batch: list[int], world_size: int, accum: int, rank: int) -> list[list[int]]:
    """Rank `rank`'s `accum` micro-batches of a global batch: slices rank * accum .. rank * accum + accum - 1."""
    parts = world_size * accum
    if len(batch) % parts:
        raise InputError(f"a global batch of {len(batch)} clips does not split over {world_size} processes x "
                         f"{accum} micro-batches; give a --batch-size that is a multiple of {parts}")
    size = len(batch) // parts
    first = rank * accum
    return [batch[(first + k) * size : (first + k + 1) * size] for k in range(accum)]


class RankSlices:
    """A DataLoader batch sampler: rank `rank`'s `accum` micro-batches of each global batch, from step
    `start_step` on (endless): step s's micro-batch k is micro_slices(batch s, ...)[k]."""

    def __init__(self, batches: GlobalBatches, rank: int, world_size: int, accum: int, start_step: int) -> None:
        self.batches, self.rank, self.world_size, self.accum = batches, rank, world_size, accum
        self.start_step = start_step

    def __iter__(self) -> Iterator[list[int]]:
        for batch in self.batches.steps_from(self.start_step):
            yield from micro_slices(batch, self.world_size, self.accum, self.rank)
