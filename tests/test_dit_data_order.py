"""kino train dit on cache or manifest data, bucketed: each step trains on the same samples on 1, 2 or 4
processes (kino.data.buckets_global through kino.train.data.sampler_micro_batches), and so after a resume on
another world size; packed batches keep BucketBatchSampler's round-robin order (docs/training.md)."""

from __future__ import annotations

import pytest
from train_helpers import IdClips, tiny_vae

from kino.models.text import TextEncoder
from kino.train.data import Layout, default_token_budget, prepared_micro_batches, sampler_micro_batches
from kino.train.dit import DiTTrainConfig


def _steps(make, world: int, accum: int, steps: int, start: int = 0) -> list[list]:
    """The ids each step trains on over all ranks, in global micro-batch order (rank-major, then k);
    make(layout, start) gives a rank's micro-batches."""
    ranks = [make(Layout(r, world, accum), start) for r in range(world)]
    return [[item["id"] for it in ranks for _ in range(accum) for item in next(it)] for _ in range(steps)]


def test_bucketed_order_is_independent_of_the_world_size():
    data, cfg = IdClips(), DiTTrainConfig(batch_size=4, seed=3)

    def make(layout, start):  # what prepared_micro_batches passes: the default per-micro-batch budget
        budget = default_token_budget(data.shapes, layout.micro_size(cfg.batch_size))
        return sampler_micro_batches(data, data.shapes, cfg, layout, start, budget)

    one = _steps(make, 1, 1, 20)  # past the first epoch boundary
    for world, accum in ((2, 1), (2, 2), (4, 1), (1, 4)):
        assert _steps(make, world, accum, 20) == one, (world, accum)
    # stopped at step 7 on 2 processes, resumed on 1 (or 4): the same sequence
    assert _steps(make, 2, 1, 7) + _steps(make, 1, 1, 13, start=7) == one
    assert _steps(make, 4, 1, 13, start=7) == one[7:]
    assert len({tuple(s) for s in one}) > 5  # shuffled, not a constant (the checks can fail)
    for ids in one:
        assert len(ids) % 4 == 0 and len({data.shapes[i] for i in ids}) == 1  # whole steps, one shape each


def test_packed_order_still_resumes_by_step():
    data, cfg = IdClips(), DiTTrainConfig(batch_size=4, seed=3, packed=True)
    budget = 4 * 5 * 4 * 4  # four of the largest clips' DiT tokens per micro-batch

    def make(layout, start):
        return sampler_micro_batches(data, data.shapes, cfg, layout, start, budget)

    full = _steps(make, 2, 1, 12)
    assert _steps(make, 2, 1, 7, start=5) == full[5:]
    assert any(len({data.shapes[i] for i in ids}) > 1 for ids in full)  # packed: mixed shapes in a step


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from kino.data.world_cache import build_world_cache

    out = tmp_path_factory.mktemp("order") / "cache"
    build_world_cache(8, tiny_vae(), TextEncoder(), out, seed=0, sizes=((32, 32), (40, 32)), num_frames=(5, 9))
    return out


def test_cache_order_with_images_first_is_the_same_on_two_processes(cache):
    """Through prepared_micro_batches (what `kino train dit --data CACHE` reads), both curriculum phases."""
    cfg = DiTTrainConfig(batch_size=2, seed=1, image_steps=2)

    def make(layout, start):
        return prepared_micro_batches(cache, cfg, layout, start)

    one = _steps(make, 1, 1, 8)
    assert _steps(make, 2, 1, 8) == one
    assert _steps(make, 2, 1, 3) + _steps(make, 1, 1, 5, start=3) == one
    assert len({tuple(s) for s in one[2:]}) > 2
