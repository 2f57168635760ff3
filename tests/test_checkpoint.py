"""Training checkpoints: atomic save, keep-last-N, latest, load, and exact resume of a VAE run."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kino.errors import ModelError
from kino.train.checkpoint import latest_checkpoint, list_checkpoints, load_checkpoint, save_checkpoint


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Linear(8, 2))


def test_save_load_round_trip(tmp_path):
    m = _model()
    opt = torch.optim.AdamW(m.parameters(), lr=1e-2)
    m(torch.randn(3, 4)).sum().backward()
    opt.step()
    torch.manual_seed(123)
    np.random.seed(7)
    p = save_checkpoint(tmp_path, 10, m, {"width": 8}, opt, ema=m, data_position=40, extra={"note": "x"})
    expected = torch.rand(3), np.random.rand(2)
    assert p.name == "step-00000010" and sorted(f.name for f in p.iterdir()) == [
        "config.json", "model.safetensors", "state.pt"]
    m2 = _model()
    for q in m2.parameters():
        q.data.zero_()
    opt2 = torch.optim.AdamW(m2.parameters(), lr=1e-2)
    ck = load_checkpoint(p, m2, opt2)
    assert (ck.step, ck.data_position, ck.config, ck.extra) == (10, 40, {"width": 8}, {"note": "x"})
    for a, b in zip(m.state_dict().values(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert opt2.state_dict()["state"][0]["exp_avg"].equal(opt.state_dict()["state"][0]["exp_avg"])
    # the RNGs continue exactly where they were when the checkpoint was written
    assert torch.equal(torch.rand(3), expected[0]) and np.array_equal(np.random.rand(2), expected[1])


def test_keep_last_n_and_latest(tmp_path):
    m = _model()
    assert latest_checkpoint(tmp_path) is None
    for step in (1, 2, 3, 4):
        save_checkpoint(tmp_path, step, m, {}, keep=2)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-00000003", "step-00000004"]
    assert latest_checkpoint(tmp_path).name == "step-00000004"
    # a leftover temporary folder (a crash mid-write) is never taken for a checkpoint
    (tmp_path / ".step-00000009.abc").mkdir()
    (tmp_path / "step-00000010").mkdir()  # incomplete: no state.pt
    assert latest_checkpoint(tmp_path).name == "step-00000004"


def test_failed_save_leaves_nothing(tmp_path, monkeypatch):
    import kino.train.checkpoint as ck

    def boom(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(ck.torch, "save", boom)
    with pytest.raises(OSError):
        save_checkpoint(tmp_path, 5, _model(), {})
    assert list(tmp_path.iterdir()) == []


def test_load_errors(tmp_path):
    with pytest.raises(ModelError, match="not a complete checkpoint"):
        load_checkpoint(tmp_path)


def test_vae_training_resumes_exactly(tmp_path):
    from kino.models.vae import CausalVAE
    from kino.train.vae import VAETrainConfig, train_vae

    torch.set_num_threads(1)
    cfg = dict(sizes=((32, 32),), num_frames=(5,), image_prob=0.5, batch_size=1, stats_clips=1, warmup=2,
               log_every=100)
    straight = train_vae(VAETrainConfig(steps=4, checkpoint_every=4, **cfg), tmp_path / "a", progress=False)
    train_vae(VAETrainConfig(steps=2, checkpoint_every=2, **cfg), tmp_path / "b", progress=False)
    resumed = train_vae(VAETrainConfig(steps=4, checkpoint_every=2, **cfg), tmp_path / "b", resume=True,
                        progress=False)
    assert straight.name == resumed.name == "step-00000004"
    a, b = CausalVAE.from_pretrained(straight), CausalVAE.from_pretrained(resumed)
    for (k, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), k
    assert a.latent_std.ne(1).any()  # statistics were measured and stored with the weights


def test_vae_decoder_finetune_keeps_the_latent_space(tmp_path):
    from kino.models.vae import CausalVAE
    from kino.train.vae import VAETrainConfig, train_vae

    torch.set_num_threads(1)
    cfg = dict(sizes=((32, 32),), num_frames=(5,), image_prob=0.5, batch_size=1, stats_clips=1, warmup=2,
               log_every=100)
    first = train_vae(VAETrainConfig(steps=2, checkpoint_every=2, **cfg), tmp_path / "a", progress=False)
    tuned = train_vae(VAETrainConfig(steps=3, checkpoint_every=3, train_encoder=False, **cfg), tmp_path / "b",
                      progress=False, init_from=first)
    a, b = CausalVAE.from_pretrained(first), CausalVAE.from_pretrained(tuned)
    sa, sb = a.state_dict(), b.state_dict()
    enc = [k for k in sa if k.startswith("encoder.")] + ["latent_mean", "latent_std"]
    dec = [k for k in sa if k.startswith("decoder.")]
    assert all(torch.equal(sa[k], sb[k]) for k in enc)  # the encoder and its statistics are kept
    assert any(not torch.equal(sa[k], sb[k]) for k in dec)  # the decoder trained
