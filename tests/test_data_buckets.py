"""Buckets and the token-budget batch sampler: exactly once per epoch across ranks, budget, resume."""

from __future__ import annotations

import numpy as np
import pytest

from kino.data.buckets import (
    BatchMode,
    BucketBatchSampler,
    TokenFactors,
    aspect_buckets,
    batch_tokens,
    nearest_bucket,
    snap_frames,
)
from kino.errors import InputError


def _shapes(n=203, seed=0):
    rng = np.random.default_rng(seed)
    options = [(1, 8, 8), (3, 8, 8), (5, 8, 8), (5, 6, 10), (3, 10, 6), (1, 6, 10), (9, 8, 8)]
    return [options[i] for i in rng.integers(len(options), size=n)]


def test_token_arithmetic():
    f = TokenFactors()
    assert f.latent_shape(17, 64, 64) == (5, 8, 8)
    assert f.tokens(17, 64, 64) == 5 * 4 * 4
    assert f.tokens(1, 64, 96) == 1 * 4 * 6
    assert TokenFactors(patch=(2, 2, 2)).latent_tokens((5, 8, 8)) == 3 * 16
    assert snap_frames(20) == 17 and snap_frames(17) == 17 and snap_frames(3) == 1
    assert snap_frames(100, max_frames=33) == 33


def test_aspect_buckets():
    b = aspect_buckets(64 * 64, 16)
    assert (64, 64) in b and all(w % 16 == 0 and h % 16 == 0 for w, h in b)
    assert nearest_bucket(1280, 720, b) == max(b, key=lambda s: (s[0] / s[1] <= 16 / 9 + 1e-9, s[0] / s[1]))
    assert nearest_bucket(720, 1280, b)[0] < nearest_bucket(720, 1280, b)[1]
    assert nearest_bucket(500, 500, b) == (64, 64)


@pytest.mark.parametrize("mode", list(BatchMode))
@pytest.mark.parametrize("world", [1, 3, 4])
def test_each_sample_once_per_epoch_across_ranks(mode, world):
    shapes = _shapes()
    budget = 400
    ranks = [BucketBatchSampler(shapes, budget, mode=mode, seed=7, rank=r, world_size=world) for r in range(world)]
    for epoch in range(2):
        seen = []
        counts = []
        for s in ranks:
            s.set_epoch(epoch)
            batches = list(s)
            counts.append(len(batches))
            for b in batches:
                assert batch_tokens(b, s.tokens) <= budget
                if mode is BatchMode.BUCKET:
                    assert len({shapes[i] for i in b}) == 1
                seen.extend(b)
        assert sorted(seen) == list(range(len(shapes)))
        assert len(set(counts)) == 1  # every rank runs the same number of steps (DDP)
    one = BucketBatchSampler(shapes, budget, mode=mode, seed=7)
    assert one.epoch_batches(0) != one.epoch_batches(1)  # reshuffled per epoch
    assert one.epoch_batches(1) == BucketBatchSampler(shapes, budget, mode=mode, seed=7).epoch_batches(1)


def test_packed_mode_fills_the_budget():
    shapes = _shapes()
    s = BucketBatchSampler(shapes, 400, mode=BatchMode.PACKED, seed=1)
    bucket = BucketBatchSampler(shapes, 400, mode=BatchMode.BUCKET, seed=1)
    assert len(s.epoch_batches(0)) < len(bucket.epoch_batches(0))  # packing wastes less of the budget
    assert any(len({shapes[i] for i in b}) > 1 for b in s.epoch_batches(0))


def test_resume_continues_the_same_sequence():
    shapes = _shapes()
    full = BucketBatchSampler(shapes, 300, mode=BatchMode.PACKED, seed=3, rank=1, world_size=2)
    reference = list(full) + list(full)  # two epochs
    a = BucketBatchSampler(shapes, 300, mode=BatchMode.PACKED, seed=3, rank=1, world_size=2)
    it = iter(a)
    first = [next(it) for _ in range(5)]
    state = a.state_dict()
    assert state == {"epoch": 0, "position": 5}
    b = BucketBatchSampler(shapes, 300, mode=BatchMode.PACKED, seed=3, rank=1, world_size=2)
    b.load_state_dict(state)
    rest = list(b) + list(b)
    assert first + rest == reference
    assert b.state_dict()["epoch"] == 2


def test_bad_arguments():
    with pytest.raises(InputError, match="at least 576"):
        BucketBatchSampler([(9, 16, 16)], 100)
    with pytest.raises(InputError, match="rank 2"):
        BucketBatchSampler([(1, 8, 8)], 100, rank=2, world_size=2)
