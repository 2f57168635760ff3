"""The world latent cache (`kino data cache --world`) and the world-tiny v2 DiT preset on the v2 VAE.

A tiny cache of world clips builds (latents, every caption level, the scene spec), is refused with
another setting, resumes after a removed shard, grows with a larger count, and `kino train dit --data
CACHE` trains on it; the v2 DiT + v2 VAE pipeline saves, loads and generates at sizes that are
multiples of 16.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file

from kino.data.cache import CacheConfig, CachedClips, read_index
from kino.data.world import WorldClips
from kino.data.world_cache import WorldSource, build_world_cache
from kino.models.dit import DiT, dit_world_tiny_v2, patchify
from kino.models.text import TextEncoder
from kino.models.vae import CausalVAE, vae_preset
from kino.pipeline import KinoPipeline, SchedulerConfig

WORLD = ["--size", "32x32", "--size", "48x32", "--frames", "5", "--image-prob", "0.4", "--seed", "2"]
TINY_DIT = {"dim": 32, "depth": 1, "num_heads": 2, "ffn_dim": 64}


def v2_vae(seed: int = 0) -> CausalVAE:
    """world-tiny-v2's design (4x4x4, 24 channels, block code) at tiny widths, weights off their init."""
    torch.manual_seed(seed)
    vae = CausalVAE(vae_preset("world-tiny-v2", widths=(8, 8, 8))).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(torch.randn_like(p) * 0.02)  # the residual heads start at zero: make them count
    return vae


@pytest.fixture(scope="module")
def parts(tmp_path_factory):
    d = tmp_path_factory.mktemp("world-cache")
    vae = v2_vae().save_pretrained(d / "vae")
    (d / "dit.json").write_text(json.dumps(dit_world_tiny_v2(**TINY_DIT).to_dict()))
    return d, vae


def cache_args(d, vae, count: int, *extra) -> list[str]:
    return ["data", "cache", "--world", count, *WORLD, "--shard-size", 2, "--threads", 1, "--vae", vae, "--out", d / "cache",
            *extra]


def test_world_cache_builds_refuses_resumes_grows_and_trains(parts, run):
    d, vae = parts
    code, out, err = run(cache_args(d, vae, 5))
    assert code == 0, err
    assert "5 clips; shards built 3, already complete 0" in out
    index = read_index(d / "cache")
    assert index["settings"]["world"]["seed"] == 2 and index["text_dim"] == 384
    assert [c["id"] for c in index["clips"]] == [f"world-2-{j}" for j in range(5)]

    # each entry is WorldClips' clip j: its spec, its latent (the VAE's normalized mean), every caption level
    world = WorldClips(seed=2, sizes=((32, 32), (48, 32)), num_frames=(5,), image_prob=0.4,
                       caption_levels=("detailed",))
    model, text = CausalVAE.from_pretrained(vae), TextEncoder()
    frames = set()
    for j, entry in enumerate(index["clips"]):
        sample = world.sample(j)
        assert entry["spec"] == json.loads(sample["spec"]) and entry["levels"] == ["detailed", "medium", "short"]
        item = CachedClips(d / "cache", level="detailed")[j]
        with torch.no_grad():
            want = model.encode(sample["video"][None])[0]  # (C, t, h, w)
        assert item["latent"].shape == want.shape and torch.allclose(item["latent"], want, atol=2e-2, rtol=1e-2)
        hidden = text.encode([sample["caption"]]).hidden[0]  # (L, D): the detailed caption
        assert torch.allclose(item["text"], hidden, atol=1e-2)
        frames.add(sample["video"].shape[1])
    assert frames == {1, 5}  # images and clips

    # another setting is refused (one line, exit 2), before anything is written
    before = sorted(p.name for p in (d / "cache").iterdir())
    code, _, err = run(cache_args(d, vae, 5)[:-2] + ["--seed", "4", "--out", d / "cache"])
    assert code == 2 and "other settings (world)" in err and "Traceback" not in err
    other = v2_vae(seed=1).save_pretrained(d / "other-vae")
    code, _, err = run(cache_args(d, other, 5))
    assert code == 2 and "other settings (vae)" in err
    assert sorted(p.name for p in (d / "cache").iterdir()) == before

    # resume: a removed shard is rebuilt, identically; the others are kept
    first = load_file(d / "cache" / "shard_00001.safetensors")
    (d / "cache" / "shard_00001.json").unlink()
    code, out, err = run(cache_args(d, vae, 5))
    assert code == 0 and "shards built 1, already complete 2" in out, err
    again = load_file(d / "cache" / "shard_00001.safetensors")
    assert first.keys() == again.keys() and all(torch.equal(first[k], again[k]) for k in first)

    # a larger count keeps the full shards and rebuilds the short last one
    code, out, err = run(cache_args(d, vae, 7))
    assert code == 0 and "7 clips; shards built 2, already complete 2" in out, err

    # kino data inspect counts the v2 DiT's tokens: (1, 8, 12) latent cells in 1x4x4 patches are 1 x 2 x 3
    code, out, err = run(["data", "inspect", d / "cache", "--patch", "1x4x4"])
    assert code == 0 and re.search(r"1x8x12\D+\d+\D+6\b", out) and "7 clips" in out, out + err

    # kino train dit trains on it with no other change (the v2 preset's structure, tiny widths)
    code, out, err = run(["train", "dit", "--vae", vae, "--dit-config", d / "dit.json", "--data", d / "cache",
                          "--steps", 2, "--batch-size", 2, "--out", d / "run", "--threads", 1, "--no-tensorboard"])
    assert code == 0, err
    steps = [json.loads(line) for line in (d / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [s["step"] for s in steps if "loss" in s] == [1, 2]
    assert KinoPipeline.from_pretrained(d / "run" / "pipeline").transformer.config.patch_size == (1, 4, 4)


def test_batched_encoding_equals_one_clip_at_a_time(tmp_path):
    """The VAE encodes a shard's clips of one shape together; each latent is the one it gets alone."""
    vae, text = v2_vae(), TextEncoder()
    world = {"seed": 1, "sizes": ((32, 32),), "num_frames": (5,), "image_prob": 0.3}
    cfg = CacheConfig(shard_size=8, dtype="float32")
    build_world_cache(6, vae, text, tmp_path / "one", cfg, encode_batch=1, **world)
    build_world_cache(6, vae, text, tmp_path / "many", cfg, encode_batch=4, **world)
    a, b = (load_file(tmp_path / name / "shard_00000.safetensors") for name in ("one", "many"))
    assert a.keys() == b.keys()
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)
    assert WorldSource(6, **world).clip(2).captions.keys() == {"short", "medium", "detailed"}


def test_v2_dit_preset_on_the_v2_vae_saves_loads_and_generates(tmp_path):
    cfg = dit_world_tiny_v2()
    assert (cfg.in_channels, cfg.out_channels, cfg.patch_size) == (24, 24, (1, 4, 4))
    assert (cfg.dim, cfg.depth, cfg.num_heads, cfg.ffn_dim) == (192, 8, 4, 768)  # v1's world-tiny transformer
    vae = v2_vae()
    torch.manual_seed(0)
    dit = DiT(dit_world_tiny_v2(**TINY_DIT))
    with torch.no_grad():
        for p in dit.parameters():
            p.normal_(0, 0.05)  # not the zero-initialized output: sampling really moves
    pipe = KinoPipeline(dit, vae, TextEncoder(), SchedulerConfig(num_inference_steps=2))
    assert pipe.size_multiple == 16  # spatial factor 4 x patch 4
    for (w, h), tokens in (((64, 64), 80), ((96, 64), 120)):  # 64x64x17: 5 x 4 x 4 tokens, v1's 80
        shape = pipe.latent_shape(17, w, h)  # (1, 24, 5, h / 4, w / 4)
        assert shape == (1, 24, 5, h // 4, w // 4)
        assert patchify(torch.zeros(shape), cfg.patch_size).tokens.shape[1] == tokens
    pipe.save_pretrained(tmp_path / "pipe")
    back = KinoPipeline.from_pretrained(tmp_path / "pipe")
    assert back.vae.config.block_code and back.vae.config.latent_channels == 24
    assert back.transformer.config == dit.config
    assert all(torch.equal(v, back.vae.state_dict()[k]) for k, v in vae.state_dict().items())
    for w, h in ((64, 64), (96, 64), (64, 96)):
        a = pipe("a red circle moves left", width=w, height=h, num_frames=9, seed=0).frames
        b = back("a red circle moves left", width=w, height=h, num_frames=9, seed=0).frames
        assert a.shape == (9, h, w, 3) and (a == b).all()
    from kino.errors import InputError

    with pytest.raises(InputError, match="not a multiple of 16; try 64x64 or 80x64"):
        pipe("a red circle", width=72, height=64, num_frames=1)
