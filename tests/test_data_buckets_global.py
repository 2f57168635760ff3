"""Global batches: the samples of each step are the same on 1, 2 or 4 processes, and so after a resume."""

from __future__ import annotations

import pytest
from train_helpers import LATENT_SHAPES, IdClips

from kino.data.buckets_global import GlobalBatches, micro_slices
from kino.errors import InputError
from kino.train.distributed import DistInfo, Parallel
from kino.train.lora import LoRATrainConfig
from kino.train.lora_loop import micro_batches


def _sequence(world: int, accum: int, steps: int, start: int = 0) -> list[list[int]]:
    """The ids each step trains on over all ranks, in global micro-batch order (rank-major, then k)."""
    data = IdClips()
    cfg = LoRATrainConfig(batch_size=4, grad_accum=accum, seed=3)
    ranks = [micro_batches(data, cfg, DistInfo(r, world, 0, Parallel.DDP if world > 1 else Parallel.NONE),
                           start, 0) for r in range(world)]
    out = []
    for _ in range(steps):
        out.append([item["id"] for it in ranks for _ in range(accum) for item in next(it)])
    return out


def test_global_order_is_independent_of_the_world_size():
    one = _sequence(1, 1, 20)  # 20 steps: past the first epoch boundary
    assert _sequence(2, 1, 20) == one
    assert _sequence(2, 2, 20) == one
    assert _sequence(4, 1, 20) == one
    assert _sequence(1, 4, 20) == one
    # a run that stops at step 7 on 2 processes and resumes on 1 (or 4) continues the same sequence
    assert _sequence(2, 1, 7) + _sequence(1, 1, 13, start=7) == one
    assert _sequence(4, 1, 13, start=7) == one[7:]
    assert len({tuple(s) for s in one}) > 5  # the sequence is shuffled, not a constant (the checks can fail)


def test_epochs_cover_every_sample_in_whole_batches():
    data = IdClips()
    g = GlobalBatches(data.shapes, batch_size=4, seed=3)
    for epoch in range(3):
        batches = g.epoch_batches(epoch)
        assert set().union(*batches) == set(range(len(data)))  # every sample at least once
        for b in batches:
            assert len(b) % 4 == 0 and len({data.shapes[i] for i in b}) == 1  # whole steps, one shape
            assert sum(int(g.tokens[i]) for i in b) <= max(g.budget, 4 * int(g.tokens[b[0]]))
        assert sum(len(b) for b in batches) - len(data) < 4 * len(LATENT_SHAPES)  # top-ups: < one step per shape
    assert g.epoch_batches(0) != g.epoch_batches(1)
    assert g.position(len(g.epoch_batches(0))) == (1, 0)


def test_uneven_split_is_refused():
    assert micro_slices(list(range(8)), 2, 2, 1) == [[4, 5], [6, 7]]
    with pytest.raises(InputError, match="multiple of 6"):
        micro_slices(list(range(8)), 3, 2, 0)
    with pytest.raises(InputError, match="multiple of processes x grad_accum"):
        micro_batches(IdClips(), LoRATrainConfig(batch_size=4), DistInfo(0, 3, 0, Parallel.DDP), 0, 0)
