"""The DiT trainer: a step lowers the loss on a fixed batch, packed batches, exact resume, the output dir."""

from __future__ import annotations

import torch

from kino.models.dit import DiTConfig
from kino.models.text import TextEncoder
from kino.models.vae import CausalVAE, VAEConfig
from kino.pipeline import KinoPipeline
from kino.train.dit import DiTTrainConfig, DiTTrainer, train_dit, update_ema

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
