"""The latent + text cache: sharded, resumable, refuses other settings; datasets and collation over it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kino.data.buckets import BatchMode, BucketBatchSampler
from kino.data.cache import CacheConfig, CachedClips, build_cache, read_index
from kino.data.clips import ClipShaping, ManifestClips, collate_bucket, collate_packed
from kino.data.manifest import ClipKind, ClipRecord, write_manifest
from kino.data.prepare import read_clip
from kino.errors import InputError
from kino.io import iter_frames, write_image, write_video


class FakeText:
    """A deterministic text encoder: one 6-wide state per word."""

    def encode(self, prompts):
        from types import SimpleNamespace

        words = prompts[0].split()
        hidden = torch.tensor([[float(len(w)), float(i)] * 3 for i, w in enumerate(words)])[None]  # (1, L, 6)
        mask = torch.ones(1, len(words) + 2, dtype=torch.bool)
        mask[0, len(words):] = False
        return SimpleNamespace(hidden=torch.cat([hidden, torch.zeros(1, 2, 6)], 1), mask=mask)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("cache")
    t = np.arange(40)[:, None, None, None]
    frames = ((t * 9 + np.arange(48)[None, None, :, None] * 3) % 255 * np.ones((1, 32, 1, 3))).astype(np.uint8)
    write_video(d / "a.mp4", frames, fps=10)  # 4 s, 48x32
    write_image(d / "b.png", frames[0])
    recs = [
        ClipRecord(id=f"a#{i}", path="a.mp4", kind=ClipKind.VIDEO, start=i * 1.0, end=i * 1.0 + 2.0, width=48,
                   height=32, fps=5.0, num_frames=10, source_fps=10.0, captions={"short": f"clip {i}"})
        for i in range(3)
    ] + [
        ClipRecord(id="b#0", path="b.png", kind=ClipKind.IMAGE, start=0, end=0, width=48, height=32, fps=5.0,
                   num_frames=1, captions={"short": "an image", "detailed": "a striped image of grays"}),
        ClipRecord(id="gone#0", path="gone.mp4", kind=ClipKind.VIDEO, start=0, end=1, width=48, height=32,
                   fps=5.0, num_frames=5, source_fps=10.0),
    ]
    write_manifest(d / "m.jsonl", recs)
    return d, frames


def _vae():
    from kino.models.vae import CausalVAE, VAEConfig

    torch.manual_seed(0)
    return CausalVAE(VAEConfig(latent_channels=4, widths=(8, 16, 16), decoder_blocks=0)).eval()


def test_read_clip_matches_the_source_frames(data):
    d, frames = data
    rec = ClipRecord(id="x", path="a.mp4", kind=ClipKind.VIDEO, start=2.2, end=3.4, width=48, height=32, fps=5.0,
                     num_frames=6, source_fps=10.0)
    got = read_clip(rec, d)  # starts past 1 s: the seeking path
    decoded = np.stack(list(iter_frames(d / "a.mp4")))
    assert got.shape == (6, 32, 48, 3)
    assert np.array_equal(got, decoded[[22, 24, 26, 28, 30, 32]])


def test_manifest_clips_shape_to_buckets(data):
    d, _ = data
    ds = ManifestClips(d / "m.jsonl", ClipShaping(area=32 * 32, max_frames=9))
    item = ds[0]
    assert item["video"].shape == (3, 9, 32, 48)  # 48x32 is its own 3:2 bucket of about 32x32 pixels
    assert item["video"].abs().max() <= 1.0
    assert ds.shapes[3][0] == 1  # the image is one latent frame


def test_cache_build_resume_and_read(data, tmp_path):
    d, _ = data
    out = tmp_path / "cache"
    cfg = CacheConfig(shard_size=2, dtype="float32", shaping=ClipShaping(area=32 * 32, max_frames=9))
    vae = _vae()
    report = build_cache(d / "m.jsonl", vae, FakeText(), out, cfg, identity={"vae": "tiny"})
    assert report.built == [0, 1, 2] and report.clips == 4
    assert [f["id"] for f in report.failed] == ["gone#0"]
    index = read_index(out)
    assert index["text_dim"] == 6 and index["clips"][3]["levels"] == ["detailed", "short"]

    ds = CachedClips(out, level="short")
    item = ds[1]
    video = ManifestClips(d / "m.jsonl", cfg.shaping)[1]["video"]
    assert torch.allclose(item["latent"], vae.encode(video[None])[0], atol=1e-5)
    assert item["text"].shape == (2, 6) and item["text_mask"].all()  # "clip 1": two words, no padding

    # Resume: remove the last shard's marker; only that shard is rebuilt.
    (out / "shard_00002.json").unlink()
    again = build_cache(d / "m.jsonl", vae, FakeText(), out, cfg, identity={"vae": "tiny"})
    assert again.built == [2] and again.skipped == [0, 1]
    with pytest.raises(InputError, match="other settings"):
        build_cache(d / "m.jsonl", vae, FakeText(), out, cfg, identity={"vae": "another"})

    sampler = BucketBatchSampler(ds.shapes, 10_000, mode=BatchMode.BUCKET, shuffle=False)
    for batch in sampler:
        b = collate_bucket([ds[i] for i in batch])
        assert b["latent"].dim() == 5 and b["text"].shape[:2] == b["text_mask"].shape
    packed = collate_packed([CachedClips(out)[i] for i in range(4)])
    assert len(packed["latent"]) == 4 and packed["latent"][3].shape[1] == 1
    assert packed["text_mask"].sum(1).tolist()[3] in (2, 5)  # the image's short or detailed caption


def test_uncaptioned_data_is_refused_or_warned(data, tmp_path, capsys):
    """Issue 16 #23: clips without captions train unconditionally: none captioned is refused, some warned."""
    from kino.train.data import Layout, prepared_micro_batches
    from kino.train.dit import DiTTrainConfig

    d, _ = data
    cfg = DiTTrainConfig(batch_size=1)
    recs = [ClipRecord(id=f"a#{i}", path=str(d / "a.mp4"), kind=ClipKind.VIDEO, start=i * 1.0, end=i * 1.0 + 2.0,
                       width=48, height=32, fps=5.0, num_frames=10, source_fps=10.0,
                       captions={"short": "a clip"} if i == 0 else {}) for i in range(3)]
    write_manifest(tmp_path / "none.jsonl", recs[1:])
    with pytest.raises(InputError, match="none of its 2 clips has a caption.*--allow-uncaptioned"):
        prepared_micro_batches(tmp_path / "none.jsonl", cfg, Layout(0, 1, 1), 0)
    assert prepared_micro_batches(tmp_path / "none.jsonl", cfg, Layout(0, 1, 1), 0, allow_uncaptioned=True) is not None
    write_manifest(tmp_path / "some.jsonl", recs)
    capsys.readouterr()
    prepared_micro_batches(tmp_path / "some.jsonl", cfg, Layout(0, 1, 1), 0)
    err = capsys.readouterr().err
    assert err.count("kino: warning:") == 1 and "2 of 3 clips have no caption" in err


def test_a_cache_knows_its_latent_space(data, tmp_path):
    """vae_probe.json: a resume with another VAE is refused, and so is training a DiT on the cache with
    another --vae (kino.train.loop); the same VAE in float16 passes (the probe is a latent, not a file hash)."""
    import copy

    from kino.data.cache import PROBE_FILE, check_cache_vae

    d, _ = data
    out = tmp_path / "cache"
    cfg = CacheConfig(shard_size=4, dtype="float32", shaping=ClipShaping(area=32 * 32, max_frames=9))
    vae = _vae()
    build_cache(d / "m.jsonl", vae, FakeText(), out, cfg, identity={"vae": "tiny"})
    assert (out / PROBE_FILE).is_file() and check_cache_vae(out, vae)
    half = copy.deepcopy(vae).half().float()  # float16-rounded weights: the same latent space
    assert check_cache_vae(out, half)
    other = copy.deepcopy(vae)
    with torch.no_grad():
        other.encoder.conv_in.conv.weight.mul_(1.5)
    with pytest.raises(InputError, match="encoded by another VAE than --vae"):
        check_cache_vae(out, other)
    (out / "shard_00000.json").unlink()
    with pytest.raises(InputError, match="encoded by another VAE"):
        build_cache(d / "m.jsonl", other, FakeText(), out, cfg, identity={"vae": "tiny"})
    (out / PROBE_FILE).unlink()  # a cache from before the probe: nothing to check
    assert not check_cache_vae(out, other)
