"""Images first (`kino train dit --image-steps N`): the first N steps train on 1-frame samples, then the mix.

The world renders those steps as images; a cache gives every clip's first latent frame, which for a causal
VAE is the latent of the clip's frame 0 coded alone. Either source then continues with the configured mix,
and a run resumed at any step, in either phase, follows the uninterrupted one.
"""

from __future__ import annotations

import pytest
import torch

from kino.data.world import WorldClips
from kino.data.world_cache import build_world_cache
from kino.errors import InputError
from kino.models.dit import DiTConfig
from kino.models.text import TextEncoder
from kino.models.vae import CausalVAE, VAEConfig, vae_preset
from kino.pipeline import KinoPipeline
from kino.train.checkpoint import load_checkpoint
from kino.train.data import Layout, prepared_micro_batches, stream_micro_batches, world_micro_batches
from kino.train.dit import DiTTrainConfig
from kino.train.loop import train_dit

DIT = DiTConfig(in_channels=4, out_channels=4, dim=32, depth=1, num_heads=2, ffn_dim=64, text_dim=384)


def tiny_vae() -> CausalVAE:
    torch.manual_seed(0)
    return CausalVAE(VAEConfig(latent_channels=4, patch_size=4, widths=(8, 8, 8))).eval()


def cfg(**kw) -> DiTTrainConfig:
    return DiTTrainConfig(**{"steps": 4, "batch_size": 2, "lr": 1e-3, "warmup": 1, "checkpoint_every": 1,
                             "ema_decay": 0.5, "sizes": ((32, 32),), "num_frames": (5,), "image_prob": 0.0,
                             **kw})


def take(batches, n: int) -> list[list[dict]]:
    return [next(batches) for _ in range(n)]


@pytest.mark.parametrize("preset", ["world-tiny", "world-tiny-v2"])
def test_a_clips_first_latent_frame_is_its_first_image(preset):
    """What lets a cached clip serve as an image: the causal VAE codes frame 0 alone."""
    torch.manual_seed(0)
    vae = CausalVAE(vae_preset(preset, widths=(8, 8, 8))).eval()
    with torch.no_grad():
        for p in vae.parameters():
            p.add_(torch.randn_like(p) * 0.05)  # zero-initialized heads would hide a leak from later frames
        clip = WorldClips(seed=0, num_frames=(9,)).sample(0)["video"][None]  # (1, 3, 9, 64, 64)
        z = vae.encode(clip)  # (1, C, 3, h, w)
        image = vae.encode(clip[:, :, :1])  # (1, C, 1, h, w)
        later = vae.encode(torch.cat([clip[:, :, :1], -clip[:, :, 1:]], 2))  # other later frames
    assert torch.allclose(z[:, :, :1], image, atol=1e-5)
    assert torch.allclose(later[:, :, :1], image, atol=1e-5) and not torch.allclose(later, z, atol=1e-3)


def test_world_images_first_then_the_mix():
    c, plain = cfg(image_steps=2), cfg()
    layout = Layout(0, 1, 2)  # two micro-batches of one clip per step
    got = take(world_micro_batches(c, layout, 0), 8)
    want = take(world_micro_batches(plain, layout, 0), 8)
    assert [mb[0]["video"].shape[1] for mb in got] == [1, 1, 1, 1, 5, 5, 5, 5]  # steps 0, 1 are images
    assert all(torch.equal(a[0]["video"], b[0]["video"]) for a, b in zip(got[4:], want[4:], strict=True))
    assert got[0][0]["video"].shape[2:] == (32, 32)  # the same sizes, as images
    resumed = take(world_micro_batches(c, layout, 1), 4)  # from step 1: one image step, then the mix
    assert all(torch.equal(a[0]["video"], b[0]["video"]) for a, b in zip(resumed, got[2:6], strict=True))
    with pytest.raises(InputError, match="image_steps needs world, cache or manifest data"):
        next(stream_micro_batches(lambda cfg, start: iter(()), c, Layout(), 0))


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    out = tmp_path_factory.mktemp("curriculum") / "cache"
    build_world_cache(6, tiny_vae(), TextEncoder(), out, seed=0, sizes=((32, 32),), num_frames=(5, 9))
    return out


def test_cache_images_first_are_first_latent_frames_then_the_mix(cache):
    c, plain = cfg(image_steps=2, seed=1), cfg(seed=1)
    ids = lambda mbs: [[b["id"] for b in mb] for mb in mbs]  # noqa: E731
    got = take(prepared_micro_batches(cache, c, Layout(), 0), 5)
    mixed = take(prepared_micro_batches(cache, plain, Layout(), 0), 3)
    full = {b["id"]: b for mb in take(prepared_micro_batches(cache, plain, Layout(), 0), 6) for b in mb}
    for mb in got[:2]:
        for b in mb:
            assert b["latent"].shape[1] == 1  # an image: the clip's first latent frame
            assert torch.equal(b["latent"], full[b["id"]]["latent"][:, :1])
            assert torch.equal(b["text"], full[b["id"]]["text"])  # its own caption
    # the token budget (2 x the largest clip's 3 x 2 x 2 tokens) holds 6 images: ~3x the clips of a mixed step
    assert max(len(mb) for mb in got[:2]) == 6 and max(len(mb) for mb in mixed) <= 4
    assert ids(got[2:]) == ids(mixed)  # then the mix, from the sampler's epoch 0
    assert ids(take(prepared_micro_batches(cache, c, Layout(), 1), 2)) == ids(got[1:3])  # resumed mid-phase
    assert ids(take(prepared_micro_batches(cache, c, Layout(), 3), 2)) == ids(got[3:5])  # resumed after it


def test_image_steps_are_saved_and_resume_exactly(cache, tmp_path):
    """Across the phase boundary, on the world and on a cache: resumed equals uninterrupted."""
    for source in ("world", str(cache)):
        c = cfg(image_steps=3, steps=5)
        full = train_dit(c, tiny_vae(), tmp_path / source[-5:] / "full", model_config=DIT, source=source,
                         tensorboard=False)
        half = tmp_path / source[-5:] / "half"
        train_dit(cfg(image_steps=3, steps=2), tiny_vae(), half, model_config=DIT, source=source, tensorboard=False)
        resumed = train_dit(c, tiny_vae(), half, resume=True, model_config=DIT, source=source, tensorboard=False)
        a = KinoPipeline.from_pretrained(full).transformer.state_dict()
        b = KinoPipeline.from_pretrained(resumed).transformer.state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), source
        saved = load_checkpoint(half / "checkpoints" / "step-00000005", restore_rng=False)
        assert saved.extra["train"]["image_steps"] == 3


def test_training_on_a_cache_with_another_vae_is_refused(cache, tmp_path):
    """The cache's latents are one VAE's space: `kino train dit --data CACHE --vae OTHER` stops before step 1."""
    other = tiny_vae()
    with torch.no_grad():
        for p in other.encoder.parameters():
            p.mul_(1.5)
    with pytest.raises(InputError, match="encoded by another VAE than --vae"):
        train_dit(cfg(steps=1), other, tmp_path / "run", model_config=DIT, source=str(cache), tensorboard=False)
    assert not list((tmp_path / "run").glob("checkpoints/step-*"))
