"""`kino train dit --init-from`: a new run starts from another DiT's weights where names and shapes fit."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file

from kino.errors import InputError
from kino.models.dit import DiT, DiTConfig
from kino.models.vae import CausalVAE, VAEConfig
from kino.train.dit import DiTTrainConfig
from kino.train.loop import train_dit
from kino.train.warm_start import warm_start

V1 = DiTConfig(in_channels=4, out_channels=4, patch_size=(1, 2, 2), dim=32, depth=1, num_heads=2, ffn_dim=64,
               text_dim=384)
V2 = DiTConfig(in_channels=6, out_channels=6, patch_size=(1, 4, 4), dim=32, depth=1, num_heads=2, ffn_dim=64,
               text_dim=384)


def saved_v1(tmp_path):
    torch.manual_seed(1)
    model = DiT(V1)
    model.save_pretrained(tmp_path / "old" / "transformer")
    return tmp_path / "old", model


def test_matching_tensors_are_copied_and_the_new_latent_s_layers_start_fresh(tmp_path):
    folder, old = saved_v1(tmp_path)
    torch.manual_seed(2)
    new, ema = DiT(V2), DiT(V2)
    fresh_embed = new.patch_embed.weight.clone()
    report = warm_start(new, folder, ema)
    assert torch.equal(new.blocks[0].attn.qk.weight, old.blocks[0].attn.qk.weight)
    assert torch.equal(new.text_embed[0].weight, old.text_embed[0].weight)
    assert torch.equal(new.patch_embed.weight, fresh_embed)  # (32, 96) here against (32, 16) there
    assert {s.split()[0] for s in report.skipped} == {"patch_embed.weight", "final.proj.weight", "final.proj.bias"}
    assert all(torch.equal(a, b) for a, b in zip(ema.state_dict().values(), new.state_dict().values(), strict=True))
    assert "left at their init: patch_embed.weight" in report.summary()


def test_nothing_that_fits_or_no_weights_is_one_clear_error(tmp_path):
    with pytest.raises(InputError, match="holds no DiT weights"):
        warm_start(DiT(V2), tmp_path)
    folder, _ = saved_v1(tmp_path)
    other = DiTConfig(in_channels=6, out_channels=6, dim=16, depth=1, num_heads=2, ffn_dim=32, text_dim=8)
    with pytest.raises(InputError, match="no tensor"):
        warm_start(DiT(other), folder)


def test_a_run_started_from_a_model_and_not_on_resume(tmp_path):
    folder, old = saved_v1(tmp_path)
    torch.manual_seed(0)
    vae = CausalVAE(VAEConfig(spatial_factor=4, latent_channels=6, patch_size=4, widths=(8, 8, 8)))

    def stream(cfg, start):
        i = start
        while True:
            g = torch.Generator().manual_seed(i)
            yield {"video": torch.rand(3, 5, 16, 16, generator=g) * 2 - 1, "caption": "a clip"}
            i += 1

    run = tmp_path / "run"
    cfg = DiTTrainConfig(steps=2, batch_size=1, lr=1e-2, warmup=1, checkpoint_every=1, ema_decay=0.0)
    train_dit(cfg, vae, run, data=stream, model_config=V2, init_from=str(folder), tensorboard=False)
    one = load_file(str(run / "pipeline" / "transformer" / "model.safetensors"))
    theirs = old.state_dict()
    moved = [k for k, v in one.items() if k in theirs and theirs[k].shape == v.shape
             and not torch.allclose(v, theirs[k], atol=1e-4)]
    assert moved and len(moved) < len(one)  # trained from the copy: some tensors moved, none were re-drawn
    # a resumed run keeps its checkpoint's weights, not the init's (lr ~0: step 3 moves nothing)
    cfg2 = DiTTrainConfig(steps=3, batch_size=1, lr=1e-12, warmup=1, checkpoint_every=1, ema_decay=0.0)
    train_dit(cfg2, vae, run, resume=True, data=stream, model_config=V2, init_from=str(folder), tensorboard=False)
    two = load_file(str(run / "pipeline" / "transformer" / "model.safetensors"))
    assert all(torch.allclose(two[k], one[k], atol=1e-6) for k in moved)
