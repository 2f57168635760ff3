"""What each rank trains on at each step: its micro-batches, from any data source, resumable by step.

A step's global batch is split into micro-batches: rank r of W, accumulating A, takes the global
micro-batches r*A .. r*A + A - 1 of the step (kino.train.dit.DiTTrainer.micro_generator seeds each by
that global index). So the ranks hold disjoint shares, and W ranks compute what one process
accumulating W*A micro-batches computes. Every source restarts at any step (exact resume).

Sources:
  - the world (default): WorldClips rendered on the fly, `micro` clips per micro-batch, one shape each;
  - a stream function data(cfg, start) -> items (tests, custom data): a global stream, each rank
    keeping its share;
  - a latent cache (`kino data cache` output): CachedClips, bucketed (one shape per batch) or packed;
    bucketed, each step's global batch comes from kino.data.buckets_global.GlobalBatches (a pure function
    of (seed, epoch): the same sample order on any world size) and each rank takes its slices of it;
    packed, from the token-budget BucketBatchSampler, dealt to the ranks round-robin (that order depends
    on the world size);
  - a manifest (`kino data prepare` output): ManifestClips decoded and VAE-encoded during training.

Images first (cfg.image_steps, issue 18): the first image_steps optimizer steps take 1-frame samples only.
The world renders those steps' clips as images (the same sizes, scenes drawn for one frame). A cache or a
manifest gives every clip's first frame: a causal VAE's first latent frame is the latent of frame 0 coded
alone (exactly: tests/test_dit_curriculum.py), so latent[:, :1] of a cached clip IS its first image's
latent, and every clip serves as an image (a world caption describes the scene as a video either way,
as for the world's own 1-frame samples). Those batches fill the same token budget, so an image step
takes ~5x the samples of a 17-frame step. The mixed phase then starts at the sampler's epoch 0, so a
resume at any step, in either phase, continues exactly.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from torch.utils.data import DataLoader, Dataset

from kino.data.world import WorldClips
from kino.errors import InputError

MicroBatches = Iterator[list[dict]]  # this rank's micro-batches in order: step s, micro 0 .. A-1, step s+1, ...


@dataclass(frozen=True)
class Layout:
    """How a global batch is shared: world_size ranks x accum micro-batches x micro clips."""

    rank: int = 0
    world_size: int = 1
    accum: int = 1

    def micro_size(self, batch_size: int) -> int:
        """Clips per micro-batch for a global batch of batch_size clips."""
        share = self.world_size * self.accum
        if batch_size % share:
            raise InputError(f"batch size {batch_size} must be a multiple of processes x grad_accum "
                             f"= {self.world_size} x {self.accum} = {share}")
        return batch_size // share

    @property
    def first_micro(self) -> int:
        """The global index of this rank's first micro-batch in a step."""
        return self.rank * self.accum

    def global_micro(self, step: int, k: int) -> int:
        """The index, counted over the whole run, of this rank's k-th micro-batch of `step`."""
        return (step * self.world_size + self.rank) * self.accum + k


# ----------------------------------------------------------------------------- the world


class RankWorldClips(WorldClips):
    """World clips of one rank's micro-batches from `start_step`; DataLoader workers take micro-batches in turn.

    The clips of steps before `image_steps` are images (1 frame); the rest follow the world's mix.
    """

    def __init__(self, layout: Layout, micro: int, start_step: int, image_steps: int = 0, **world: Any) -> None:
        super().__init__(group=micro, **world)  # a micro-batch is one WorldClips group: one shape
        self.layout, self.micro, self.start_step, self.image_steps = layout, micro, start_step, image_steps

    def recipe(self, i: int):
        """WorldClips' recipe of sample i, 1 frame when its step (i // global batch) is before image_steps."""
        rec = super().recipe(i)
        step = i // (self.micro * self.layout.world_size * self.layout.accum)
        return replace(rec, num_frames=1) if step < self.image_steps else rec

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from torch.utils.data import get_worker_info

        info = get_worker_info()
        worker, workers = (info.id, info.num_workers) if info is not None else (0, 1)
        j = worker  # this rank's j-th micro-batch from start_step
        while True:
            step, k = divmod(j, self.layout.accum)
            m = self.layout.global_micro(self.start_step + step, k)
            for i in range(m * self.micro, (m + 1) * self.micro):
                yield self.sample(i)
            j += workers


def world_micro_batches(cfg, layout: Layout, start_step: int, workers: int = 0) -> MicroBatches:
    """The world stream of WorldClips (cfg's sizes, frame counts, captions) as this rank's micro-batches.

    With one rank, no accumulation and no image_steps this is exactly kino.train.dit.world_stream's stream.
    """
    micro = layout.micro_size(cfg.batch_size)
    data = RankWorldClips(layout, micro, start_step, cfg.image_steps, seed=cfg.seed, sizes=cfg.sizes, num_frames=cfg.num_frames,
                          fps=cfg.fps, caption_levels=cfg.caption_levels, image_prob=cfg.image_prob)
    loader = DataLoader(data, batch_size=micro, num_workers=workers, collate_fn=list,
                        persistent_workers=workers > 0, prefetch_factor=4 if workers else None)
    return iter(loader)


# ----------------------------------------------------------------------------- a stream function


def stream_micro_batches(data: Callable[[Any, int], Iterable[dict]], cfg, layout: Layout,
                         start_step: int) -> MicroBatches:
    """Cut a global item stream data(cfg, start) into this rank's micro-batches (others' items skipped)."""
    if cfg.image_steps:
        raise InputError("image_steps needs world, cache or manifest data (a stream function draws its own clips)")
    micro = layout.micro_size(cfg.batch_size)
    items = iter(data(cfg, start_step * cfg.batch_size))
    mine = range(layout.first_micro * micro, (layout.first_micro + layout.accum) * micro)
    while True:
        step = [next(items) for _ in range(cfg.batch_size)]
        share = [step[i] for i in mine]
        yield from (share[k * micro : (k + 1) * micro] for k in range(layout.accum))


# ----------------------------------------------------------------------------- prepared data


def sampler_micro_batches(dataset: Dataset, shapes: list[tuple[int, int, int]], cfg, layout: Layout,
                          start_step: int, token_budget: int, workers: int = 0,
                          prepare: Callable[[dict, int], dict] | None = None, factors=None) -> MicroBatches:
    """A map-style data set as this rank's micro-batches from step `start_step`, token-budget batches.

    Bucketed (one shape per batch): each step's global batch is kino.data.buckets_global.GlobalBatches'
    (the most multiples of cfg.batch_size clips of one shape within token_budget x world_size x accum
    tokens, at least cfg.batch_size), so the order of the samples is the same on any world size (with
    the default budget, micro-batch x the largest clip, which is batch_size x the largest clip per step;
    a given token_budget is per micro-batch, so keep world_size x accum to keep the order), and each
    rank takes its micro_slices. Packed (cfg.packed: mixed shapes up to token_budget per micro-batch):
    BucketBatchSampler's batches, one per micro-batch, each rank its round-robin share of every epoch
    (the order depends on the world size); the position after `start_step` steps is found by walking
    the epochs. Both orders are pure functions of (seed, epoch), so a resume at any step is exact.
    factors: how latent shapes count as tokens (kino.data.buckets.TokenFactors; default 1x2x2 patch).
    """
    from kino.data.buckets import BatchMode, BucketBatchSampler
    from kino.data.buckets_global import GlobalBatches, RankSlices

    if not cfg.packed:
        share = layout.world_size * layout.accum
        layout.micro_size(cfg.batch_size)  # refuses a batch that does not split over the ranks
        batches = GlobalBatches(shapes, cfg.batch_size, token_budget * share, factors, seed=cfg.seed)
        ranked = RankSlices(batches, layout.rank, layout.world_size, layout.accum, start_step)
        loader = DataLoader(_Indexed(dataset, prepare), batch_sampler=ranked, num_workers=workers,
                            collate_fn=list, persistent_workers=workers > 0)
        return iter(loader)
    sampler = BucketBatchSampler(shapes, token_budget, factors, mode=BatchMode.PACKED,
                                 seed=cfg.seed, rank=layout.rank, world_size=layout.world_size)
    skip, epoch = start_step * layout.accum, 0
    while True:
        n = len(sampler.rank_batches(epoch))
        if n == 0:
            raise InputError(f"the data set has too few samples for {layout.world_size} processes")
        if skip < n:
            break
        skip, epoch = skip - n, epoch + 1
    sampler.load_state_dict({"epoch": epoch, "position": skip})
    endless = _Endless(sampler)
    loader = DataLoader(_Indexed(dataset, prepare), batch_sampler=endless, num_workers=workers,
                        collate_fn=list, persistent_workers=workers > 0)
    return iter(loader)


class _Endless:
    """The sampler's batches, epoch after epoch, from its current (epoch, position)."""

    def __init__(self, sampler) -> None:
        self.sampler = sampler

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            yield from self.sampler


class _Indexed(Dataset):
    """dataset[i], passed with its index through `prepare` (choosing a caption level, for example)."""

    def __init__(self, dataset: Dataset, prepare: Callable[[dict, int], dict] | None) -> None:
        self.dataset, self.prepare = dataset, prepare

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = self.dataset[i]
        return self.prepare(item, i) if self.prepare is not None else item


def default_token_budget(shapes: list[tuple[int, int, int]], micro: int, factors=None) -> int:
    """micro x the largest sample's tokens: a micro-batch of the biggest clips still fits."""
    from kino.data.buckets import TokenFactors

    factors = factors or TokenFactors()
    return micro * max(factors.latent_tokens(s) for s in shapes)


class FirstFrames(Dataset):
    """dataset[i] cut to its first frame: a cached latent (C, t, h, w) -> (C, 1, h, w), a clip (3, T, H, W) ->
    (3, 1, H, W). A causal VAE codes frame 0 alone, so both are the item's first image."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> dict:
        item = dict(self.dataset[i])
        for key in ("latent", "video"):
            if key in item:
                item[key] = item[key][:, :1].contiguous()  # (C, 1, h, w) or (3, 1, H, W)
        return item


def images_first(images: Callable[[int], MicroBatches], mixed: Callable[[int], MicroBatches], image_steps: int,
                 start_step: int, accum: int) -> MicroBatches:
    """images(start)'s micro-batches up to step image_steps, then mixed(start)'s from its step 0; from start_step."""
    if start_step < image_steps:
        first = images(start_step)
        for _ in range((image_steps - start_step) * accum):
            yield next(first)
        del first  # ends its DataLoader workers
    yield from mixed(max(0, start_step - image_steps))


class _CaptionLevel:
    """Pick one caption level of a manifest clip, seeded by (seed, index): a picklable `prepare`."""

    def __init__(self, seed: int) -> None:
        self.seed = seed

    def __call__(self, item: dict, i: int) -> dict:
        caps = [c for _, c in sorted(item["caption"].items()) if c]
        pick = caps[int(np.random.default_rng([self.seed, i]).integers(len(caps)))] if caps else ""
        return {"video": item["video"], "caption": pick, "id": item["id"]}


def prepared_micro_batches(source: str | os.PathLike, cfg, layout: Layout, start_step: int,
                           token_budget: int = 0, workers: int = 0, allow_uncaptioned: bool = False,
                           patch: tuple[int, int, int] = (1, 2, 2)) -> MicroBatches:
    """Micro-batches from a latent cache folder (index.json) or a manifest file (`kino data prepare`).

    Caption levels are drawn from cfg.caption_levels (a repeated one more often) among each clip's.
    Clips without a caption train the model unconditionally: data with none is refused unless
    `allow_uncaptioned`; data with some gets one warning line (rank 0). patch: the DiT's, so token
    budgets count its tokens. With cfg.image_steps the first steps take every clip's first frame."""
    from kino.data.buckets import TokenFactors
    from kino.data.cache import CachedClips
    from kino.data.clips import ManifestClips

    path = Path(source)
    if path.is_dir():
        dataset: Dataset = CachedClips(path, seed=cfg.seed, weights=cfg.caption_levels)
        prepare = None
    elif path.is_file():
        dataset = ManifestClips(path)
        prepare = _CaptionLevel(cfg.seed)
    else:
        raise InputError(f"--data {source}: not 'world', a cache folder (kino data cache) or a manifest file")
    shapes = dataset.shapes
    if not shapes:
        raise InputError(f"--data {source} holds no clips")
    check_captions(source, uncaptioned(dataset), len(shapes), allow_uncaptioned, layout.rank == 0)
    factors = TokenFactors(patch=patch)  # only the patch counts here: the shapes are latent shapes
    budget = token_budget or default_token_budget(shapes, layout.micro_size(cfg.batch_size), factors)

    def mixed(start: int) -> MicroBatches:
        return sampler_micro_batches(dataset, shapes, cfg, layout, start, budget, workers, prepare, factors)

    if not cfg.image_steps:
        return mixed(start_step)
    image_shapes = [(1, h, w) for _, h, w in shapes]

    def images(start: int) -> MicroBatches:
        return sampler_micro_batches(FirstFrames(dataset), image_shapes, cfg, layout, start, budget, workers,
                                     prepare, factors)

    return images_first(images, mixed, cfg.image_steps, start_step, layout.accum)


def uncaptioned(dataset: Dataset) -> int:
    """How many clips of a CachedClips or ManifestClips have no caption at any level."""
    if hasattr(dataset, "clips"):  # CachedClips: the levels cached per clip
        return sum(not c["levels"] for c in dataset.clips)
    return sum(not any(text for text in r.captions.values()) for r in dataset.records)


def check_captions(source, missing: int, total: int, allow: bool, main: bool) -> None:
    """InputError when no clip has a caption (unless `allow`); one warning line when some have none."""
    import sys

    if not missing or allow:
        return
    fix = "caption them with `kino data caption` (then `kino data cache` again), or pass --allow-uncaptioned"
    if missing == total:
        raise InputError(f"--data {source}: none of its {total} clips has a caption, so the model would learn to "
                         f"ignore prompts; {fix}")
    if main:
        print(f"kino: warning: --data {source}: {missing} of {total} clips have no caption and train "
              f"unconditionally; {fix}", file=sys.stderr)
