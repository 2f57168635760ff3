"""The world data stream: shapes, determinism, groups, resume position, workers, folders."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from kino.data.world import WorldClips, frames_to_tensor, tensor_to_frames
from kino.errors import InputError


def take(ds, n):
    return list(itertools.islice(iter(ds), n))


def test_samples_have_the_contract_shape():
    ds = WorldClips(seed=1, sizes=((64, 64), (96, 64)), num_frames=(5, 9), image_prob=0.3, group=2,
                    caption_levels=("short", "detailed"))
    items = take(ds, 8)
    for a, b in zip(items[::2], items[1::2], strict=True):
        assert a["video"].shape == b["video"].shape  # a group shares one shape
    for it in items:
        c, t, h, w = it["video"].shape
        assert c == 3 and (t - 1) % 4 == 0 and (w, h) in ((64, 64), (96, 64))
        assert it["video"].dtype == torch.float32 and -1 <= it["video"].min() and it["video"].max() <= 1
        assert isinstance(it["caption"], str) and it["caption"]
        from kino.world.spec import SceneSpec

        assert SceneSpec.from_json(it["spec"]).num_frames == t
    assert [it["index"] for it in items] == list(range(8))
    assert {it["video"].shape[1] for it in take(WorldClips(seed=2, image_prob=1.0, caption_levels=()), 3)} == {1}


def test_sample_is_a_pure_function_of_seed_and_index():
    a, b = WorldClips(seed=3, num_frames=(5,)), WorldClips(seed=3, num_frames=(5,))
    assert torch.equal(a.sample(7)["video"], b.sample(7)["video"])
    assert a.sample(7)["caption"] == b.sample(7)["caption"]
    assert not torch.equal(a.sample(7)["video"], WorldClips(seed=4, num_frames=(5,)).sample(7)["video"])
    # resuming at a data position continues the same stream
    full = take(WorldClips(seed=3, num_frames=(5,), group=2), 6)
    rest = take(WorldClips(seed=3, num_frames=(5,), group=2, start=4), 2)
    assert [x["index"] for x in rest] == [4, 5]
    assert all(torch.equal(x["video"], y["video"]) for x, y in zip(full[4:], rest, strict=True))


def test_workers_shard_the_same_stream():
    from torch.utils.data import DataLoader

    ds = WorldClips(seed=5, num_frames=(1,), sizes=((32, 32),), caption_levels=(), group=2)
    one = [b["index"].tolist() for b in itertools.islice(DataLoader(ds, batch_size=2), 4)]
    two = [b["index"].tolist() for b in itertools.islice(DataLoader(ds, batch_size=2, num_workers=2), 4)]
    assert one == two == [[0, 1], [2, 3], [4, 5], [6, 7]]


def test_bad_settings():
    with pytest.raises(InputError, match="1 \\+ 4k"):
        WorldClips(num_frames=(16,))
    with pytest.raises(InputError, match="multiples of 8"):
        WorldClips(sizes=((70, 64),))
    with pytest.raises(InputError, match="multiple of group"):
        WorldClips(group=4, start=6)


def test_frames_tensor_round_trip():
    frames = np.random.default_rng(0).integers(0, 256, (3, 8, 16, 3), dtype=np.uint8)
    x = frames_to_tensor(frames)
    assert x.shape == (3, 3, 8, 16)
    assert np.array_equal(tensor_to_frames(x), frames)


def test_folder_clips(tmp_path):
    from kino.data.folder import FolderClips
    from kino.io import write_video

    rng = np.random.default_rng(0)
    write_video(tmp_path / "a.mp4", rng.integers(0, 256, (12, 48, 80, 3), dtype=np.uint8), fps=8)
    ds = FolderClips(tmp_path, sizes=((32, 32),), num_frames=(9,), group=1)
    a, b = take(ds, 2)
    assert a["video"].shape == (3, 9, 32, 32)
    assert torch.equal(ds.sample(1)["video"], b["video"])
    with pytest.raises(InputError, match="is not a folder"):
        FolderClips(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no videos"):
        FolderClips(tmp_path / "empty")
