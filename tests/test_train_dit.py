"""The DiT trainer: a step lowers the loss on a fixed batch, packed batches, exact resume, the output dir."""

from __future__ import annotations

import pytest
import torch

from kino.errors import InputError
from kino.models.dit import DiTConfig
from kino.models.text import TextEncoder
from kino.models.vae import CausalVAE, VAEConfig
from kino.pipeline import KinoPipeline
from kino.train.dit import DiTTrainConfig, DiTTrainer, update_ema
from kino.train.loop import train_dit

SIZES = ((16, 16), (32, 16))


def fake_stream(cfg: DiTTrainConfig, start: int):
    """Items that are a pure function of their index, like kino.data.world (shapes vary per batch)."""
    i = start
    while True:
        g = torch.Generator().manual_seed(i)
        w, h = SIZES[(i // (1 if cfg.packed else cfg.batch_size)) % 2]
        yield {"video": torch.rand(3, 5, h, w, generator=g) * 2 - 1, "caption": f"clip {i % 3}"}
        i += 1


def tiny_vae() -> CausalVAE:
    torch.manual_seed(0)
    return CausalVAE(VAEConfig(latent_channels=4, patch_size=4, widths=(8, 8, 8)))


DIT = DiTConfig(in_channels=4, out_channels=4, dim=32, depth=1, num_heads=2, ffn_dim=64, text_dim=384)


def cfg(**kw) -> DiTTrainConfig:
    return DiTTrainConfig(**{"steps": 4, "batch_size": 2, "lr": 1e-3, "warmup": 1, "checkpoint_every": 2,
                             "ema_decay": 0.5, **kw})


def test_steps_reduce_loss_on_a_fixed_batch():
    trainer = DiTTrainer(cfg(), tiny_vae(), TextEncoder(), model_config=DIT)
    batch = [next(iter(fake_stream(cfg(), 0))) for _ in range(2)]
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    videos, caps = [b["video"] for b in batch], [b["caption"] for b in batch]
    with torch.no_grad():
        before = float(trainer.loss(videos, caps, gen()))
    for _ in range(5):
        trainer.step(batch)
    with torch.no_grad():
        after = float(trainer.loss(videos, caps, gen()))
    assert after < before


def test_packed_batch_of_mixed_sizes():
    c = cfg(packed=True, batch_size=3)
    trainer = DiTTrainer(c, tiny_vae(), TextEncoder(), model_config=DIT)
    stream = fake_stream(c, 0)
    batch = [next(stream) for _ in range(3)]
    assert len({b["video"].shape for b in batch}) == 2  # really mixed
    loss = trainer.step(batch)
    assert loss > 0 and trainer.step_count == 1


def test_ema_update():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    w = a.weight.detach().clone()
    update_ema(a, b, 0.75)
    assert torch.allclose(a.weight, 0.75 * w + 0.25 * b.weight)


def test_exact_resume_and_pipeline_dir(tmp_path):
    full = train_dit(cfg(), tiny_vae(), tmp_path / "full", data=fake_stream, model_config=DIT)
    train_dit(cfg(steps=2), tiny_vae(), tmp_path / "half", data=fake_stream, model_config=DIT)
    resumed = train_dit(cfg(), tiny_vae(), tmp_path / "half", resume=True, data=fake_stream, model_config=DIT)
    a = KinoPipeline.from_pretrained(full).transformer.state_dict()
    b = KinoPipeline.from_pretrained(resumed).transformer.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert sorted(p.name for p in (tmp_path / "full" / "checkpoints").iterdir()) == ["step-00000002",
                                                                                     "step-00000004"]


# ----------------------------------------------------------------------------- schedule, data shares, cached latents


def test_lr_schedule_warmup_constant_and_cosine():
    from kino.train.dit import lr_at

    c = cfg(steps=101, warmup=10, lr=1.0)
    assert lr_at(0, c) == pytest.approx(0.1) and lr_at(9, c) == pytest.approx(1.0)
    assert lr_at(50, c) == lr_at(100, c) == 1.0
    k = cfg(steps=101, warmup=10, lr=1.0, schedule="cosine", min_lr_ratio=0.1)
    assert lr_at(10, k) == pytest.approx(1.0) and lr_at(100, k) == pytest.approx(0.1)
    assert lr_at(55, k) == pytest.approx(0.55)  # halfway down the cosine: the mean of peak and floor
    with pytest.raises(InputError):
        cfg(schedule="linear")
    with pytest.raises(InputError):
        cfg(batch_size=4, grad_accum=3)


def test_one_schedule_for_both_trainers():
    """The VAE trainer's rate is the same function (issue 17: two cosines that differed are one)."""
    from kino.train import vae as vae_train
    from kino.train.dit import lr_at
    from kino.train.schedule import lr_at as shared

    assert vae_train.lr_at is shared is lr_at
    v = vae_train.VAETrainConfig(steps=101, warmup=10, lr=1.0, min_lr_ratio=0.1)
    assert lr_at(100, v) == pytest.approx(0.1) and lr_at(55, v) == pytest.approx(0.55)  # cosine, floor at the end


@pytest.mark.parametrize("packed", [False, True])
@pytest.mark.parametrize("dropout", [0.0, 0.5])
def test_videos_and_cached_latents_give_the_same_loss(packed, dropout):
    """Issue 17 #3: the two prepare steps feed one loss: clips and the cache made from them agree."""
    from kino.diffusion.flow import FlowConfig

    c = cfg(batch_size=3, packed=packed, flow=FlowConfig(caption_dropout=dropout))
    trainer = DiTTrainer(c, tiny_vae(), TextEncoder(), model_config=DIT)
    stream = fake_stream(c, 0)
    batch = [next(stream) for _ in range(3)]
    captions = ["a red ball", "two blue squares moving left", "a star"]
    with torch.no_grad():
        enc = trainer.text_encoder.encode(captions)
        cached = [{"latent": trainer.vae.encode(b["video"][None])[0], "text": enc.hidden[i],
                   "text_mask": enc.mask[i].bool()} for i, b in enumerate(batch)]  # what kino data cache stores
        gen = lambda: torch.Generator().manual_seed(7)  # noqa: E731
        from_videos = trainer.batch_loss([{"video": b["video"], "caption": t} for b, t in zip(batch, captions, strict=True)], gen())
        from_cache = trainer.batch_loss(cached, gen())
        other = trainer.batch_loss(cached, torch.Generator().manual_seed(8))
    assert float(from_videos) == pytest.approx(float(from_cache), rel=1e-4)
    assert float(other) != pytest.approx(float(from_cache), rel=1e-4)  # the comparison can tell losses apart


def test_rank_shares_are_disjoint_and_resume_by_step():
    from kino.train.data import Layout, stream_micro_batches

    c = cfg(batch_size=8, grad_accum=2)
    take = lambda layout, start, n: [[int(b["video"][0, 0, 0, 0] * 1e6) for b in mb]  # noqa: E731
                                     for mb, _ in zip(stream_micro_batches(fake_stream, c, layout, start), range(n),
                                                      strict=False)]
    one = take(Layout(0, 1, 4), 0, 8)  # one process accumulating 4 micro-batches of 2
    r0, r1 = take(Layout(0, 2, 2), 0, 4), take(Layout(1, 2, 2), 0, 4)
    assert one[:2] == r0[:2] and one[2:4] == r1[:2] and one[4:6] == r0[2:4]  # step by step, rank by rank
    assert take(Layout(1, 2, 2), 1, 2) == r1[2:4]  # resuming at step 1 gives the same share


class LatentSet(torch.utils.data.Dataset):
    """Cached items of two latent shapes, like kino.data.clips.CachedClips gives."""

    shapes = [(2, 4, 4)] * 6 + [(1, 4, 8)] * 6

    def __len__(self):
        return len(self.shapes)

    def __getitem__(self, i):
        g = torch.Generator().manual_seed(i)
        return {"latent": torch.randn(4, *self.shapes[i], generator=g), "text": torch.randn(3 + i % 2, 384, generator=g),
                "text_mask": torch.ones(3 + i % 2, dtype=torch.bool), "id": f"c{i}"}


@pytest.mark.parametrize("packed", [False, True])
def test_cached_latents_train_with_token_budget_batches(packed):
    from kino.train.data import Layout, sampler_micro_batches

    c = cfg(batch_size=2, packed=packed)
    data = LatentSet()
    shares = [sampler_micro_batches(data, data.shapes, c, Layout(r, 2, 1), 0, token_budget=24) for r in (0, 1)]
    batches = [[[b["id"] for b in next(s)] for _ in range(4)] for s in shares]  # two epochs of 3-clip batches
    epoch = [i for r in (0, 1) for mb in batches[r][:2] for i in mb]
    assert sorted(epoch) == sorted(f"c{i}" for i in range(12))  # one epoch: every clip once, over both ranks
    for mb in batches[0]:
        assert packed or len({data.shapes[int(i[1:])] for i in mb}) == 1  # bucketed: one shape per batch
    later = sampler_micro_batches(data, data.shapes, c, Layout(0, 2, 1), 2, token_budget=24)
    assert [[b["id"] for b in next(later)] for _ in range(2)] == batches[0][2:4]  # resumed at step 2, epochs on
    shares = [sampler_micro_batches(data, data.shapes, c, Layout(r, 2, 1), 0, token_budget=24) for r in (0, 1)]
    trainer = DiTTrainer(c, tiny_vae(), TextEncoder(), model_config=DIT)
    batch = next(shares[0])
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    with torch.no_grad():
        before = float(trainer.latent_loss(batch, g()))
    stats = [trainer.train_step([batch]) for _ in range(5)]
    with torch.no_grad():
        after = float(trainer.latent_loss(batch, g()))
    assert after < before and stats[-1].tokens == sum(trainer.item_tokens(b) for b in batch)


def test_oversubscription_rule():
    """2 threads on 2 cores next to a busy process ran ~10x slower than 1 thread: kino train warns then."""
    from kino.commands.train import oversubscribed

    assert oversubscribed(2, 2, 1.0)
    assert not oversubscribed(1, 2, 1.0)  # one thread never waits on another
    assert not oversubscribed(2, 2, 0.1)  # an idle machine
    assert not oversubscribed(8, 16, 3.0)


def test_a_new_run_into_an_old_one_is_refused(tmp_path):
    """Issue 16 #8: no silent restart at step 0 over a run's checkpoints and metrics.jsonl."""
    run = tmp_path / "run"
    train_dit(cfg(steps=2), tiny_vae(), run, data=fake_stream, model_config=DIT, tensorboard=False)
    with pytest.raises(InputError, match="already holds a run at step-00000002.*--resume.*--out.*--overwrite"):
        train_dit(cfg(steps=2), tiny_vae(), run, data=fake_stream, model_config=DIT, tensorboard=False)
    train_dit(cfg(steps=2), tiny_vae(), run, data=fake_stream, model_config=DIT, tensorboard=False, overwrite=True)
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 2  # each step once, not twice


def test_the_training_time_shift_is_the_pipelines_sampling_shift(tmp_path):
    """`--flow-option base_shift=... reference_tokens=...` (issue 18): the trainer draws t with that shift and
    the saved pipeline samples with it, at the sizes it was trained at."""
    from kino.diffusion.flow import FlowConfig, sample_t

    flow = FlowConfig.from_options(["base_shift=2.5", "reference-tokens=8"])
    assert (flow.base_shift, flow.reference_tokens) == (2.5, 8)
    run = train_dit(cfg(steps=2, flow=flow), tiny_vae(), tmp_path / "run", data=fake_stream, model_config=DIT,
                    tensorboard=False)
    pipe = KinoPipeline.from_pretrained(run)
    s = pipe.scheduler
    assert (s.base_shift, s.reference_tokens, s.max_shift) == (2.5, 8, flow.max_shift)
    assert s.trained_sizes == cfg().sizes
    # a 16x16x5 clip is 2 latent frames of 4x4 with 2x2 patches: 8 tokens, the reference: shift 2.5 both ways
    assert pipe.shift_for((1, 4, 2, 4, 4)) == pytest.approx(2.5) == flow.time_shift(8)
    g = torch.Generator().manual_seed(0)
    shifted, plain = sample_t((20000,), flow, flow.time_shift(8), g), sample_t((20000,), FlowConfig(), 1.0, g)
    assert shifted.median() > plain.median() + 0.15  # more noise: logit-normal mean + ln 2.5


@pytest.mark.parametrize("pair, message", [("base_shif=2", "KEY one of sampling, logit_mean"),
                                           ("base_shift=x", "base_shift takes a float"),
                                           ("sampling=beta", "sampling is one of uniform, logit-normal"),
                                           ("base_shift=0", "0 < base_shift")])
def test_bad_flow_options_are_one_line(pair, message):
    from kino.diffusion.flow import FlowConfig

    with pytest.raises(InputError, match=message):
        FlowConfig.from_options([pair])


def test_default_preset_follows_the_vae():
    """`kino train dit` without --preset trains the design made for its VAE: the built-in (4x spatial) VAE
    gets world-tiny-v2, an 8x VAE (v1) world-tiny; both keep a 64x64x17 clip at 80 tokens."""
    from kino.models.dit import DIT_PRESETS
    from kino.models.presets import DiTPreset
    from kino.pipeline import builtin_model_dir
    from kino.train.dit import preset_for_vae

    builtin = CausalVAE.from_pretrained(builtin_model_dir() / "vae").config
    assert preset_for_vae(builtin) is DiTPreset.WORLD_TINY_V2
    assert preset_for_vae(VAEConfig(spatial_factor=8)) is DiTPreset.WORLD_TINY
    for vae_cfg in (builtin, VAEConfig(spatial_factor=8)):
        dit = DIT_PRESETS[preset_for_vae(vae_cfg)](in_channels=vae_cfg.latent_channels)
        latent = (1 + 16 // vae_cfg.temporal_factor, 64 // vae_cfg.spatial_factor, 64 // vae_cfg.spatial_factor)
        tokens = (latent[0] // dit.patch_size[0]) * (latent[1] // dit.patch_size[1]) * (latent[2] // dit.patch_size[2])
        assert tokens == 80
