"""world-tiny v2's VAE options (issue 18) and the one save/load convention of the DiT and the VAE (issue 17)."""

from __future__ import annotations

import json

import pytest
import torch

from kino.errors import InputError, ModelError
from kino.models.dit import DiT, DiTConfig
from kino.models.vae import CausalVAE, VAEConfig, vae_preset


def v2(**kw) -> VAEConfig:
    """A very small 4x4x4 config with the block means in the first 3 channels."""
    return VAEConfig(**{"spatial_factor": 4, "patch_size": 4, "widths": (8, 8, 8), "latent_channels": 8,
                        "shortcut": True, "shortcut_channels": 3, "zero_encoder_head": False, **kw})


def clip(t: int = 5, h: int = 16, w: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.rand(1, 3, t, h, w, generator=g) * 2 - 1  # (1, 3, T, H, W)


def block_means(x: torch.Tensor, f: int) -> torch.Tensor:
    """Frame 0 alone, then groups of 4 frames, f x f blocks: (B, 3, T', H/f, W/f), written out plainly."""
    b, c, t, h, w = x.shape
    groups = [x[:, :, :1]] + [x[:, :, s:s + 4] for s in range(1, t, 4)]
    return torch.stack([g.reshape(b, c, g.shape[2], h // f, f, w // f, f).mean(dim=(2, 4, 6)) for g in groups],
                       dim=2)


def test_block_means_only_in_the_shortcut_channels():
    torch.manual_seed(0)
    x = clip()
    model = CausalVAE(v2(zero_encoder_head=True))  # a zero head: the latent is the shortcut alone
    mean, _ = model.moments(x)  # (1, 8, 2, 4, 4)
    assert mean.shape == (1, 8, 2, 4, 4)
    assert torch.allclose(mean[:, :3], block_means(x, 4), atol=1e-6)
    assert torch.equal(mean[:, 3:], torch.zeros_like(mean[:, 3:]))
    # the decoder adds the first 3 channels' means back: step 0 is the block-mean reconstruction,
    # whatever the free channels hold
    z = mean.clone()
    z[:, 3:] = torch.randn_like(z[:, 3:])
    want = block_means(x, 4).repeat_interleave(4, 3).repeat_interleave(4, 4)  # (1, 3, 2, 16, 16)
    want = torch.cat([want[:, :, :1], want[:, :, 1:].repeat_interleave(4, 2)], dim=2)  # (1, 3, 5, 16, 16)
    assert torch.allclose(model.decode_raw(z), want, atol=1e-6)


def test_free_channels_start_learned_not_at_zero():
    torch.manual_seed(0)
    x = clip()
    mean, logvar = CausalVAE(v2()).moments(x)
    assert torch.allclose(mean[:, :3], block_means(x, 4), atol=1e-6)  # shortcut rows still start at zero
    assert mean[:, 3:].abs().mean() > 1e-2  # the free channels carry the encoder's output from step 0
    assert abs(logvar.mean().item() + 8.0) < 0.5  # posterior std about e^-4 at the start


def test_v1_layout_is_the_default():
    c = vae_preset("world-tiny")
    assert c.block_channels == c.latent_channels == 16 and c.zero_encoder_head
    mean, _ = CausalVAE(vae_preset("world-tiny", widths=(8, 8, 8))).moments(clip(5, 32, 32))
    assert torch.allclose(mean[:, 0], mean[:, 3]) and torch.allclose(mean[:, 2], mean[:, 14])  # copies (j % 3)
    assert VAEConfig(shortcut=False, shortcut_channels=3).block_channels == 0


def test_shortcut_channels_are_validated():
    for bad in (4, -3, 19):
        with pytest.raises(InputError, match="shortcut_channels"):
            VAEConfig(shortcut=True, shortcut_channels=bad)


def test_v2_preset_round_trips_a_clip():
    c = vae_preset("world-tiny-v2")
    assert (c.spatial_factor, c.temporal_factor, c.latent_channels, c.block_code) == (4, 4, 24, True)
    model = CausalVAE(vae_preset("world-tiny-v2", widths=(8, 8, 8))).eval()
    z = model.encode(clip(9, 32, 32))
    assert z.shape == (1, c.latent_channels, 3, 8, 8)
    assert model.decode(z).shape == (1, 3, 9, 32, 32)


def code_vae(**kw) -> CausalVAE:
    """A tiny 4x4x4 VAE whose shortcut is a linear block code of 8 channels."""
    return CausalVAE(VAEConfig(**{"spatial_factor": 4, "widths": (8, 8, 8), "latent_channels": 8,
                                  "shortcut": True, "block_code": True, **kw}))


def smooth_clips(n: int, t: int = 9, size: int = 16) -> list[torch.Tensor]:
    """Clips (3, T, H, W) that live on a few directions per block: moving colour ramps."""
    g = torch.Generator().manual_seed(1)
    out = []
    ys, xs = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    for _ in range(n):
        a, b, c, v = torch.rand(4, generator=g) * 2 - 1
        frames = [torch.stack([a * xs + b * ys + v * k / t, c * xs - a * ys, b * xs + c * ys]) for k in range(t)]
        out.append(torch.stack(frames, dim=1).clamp(-1, 1))  # (3, T, H, W)
    return out


def pca_reconstruction(blocks: torch.Tensor, k: int) -> torch.Tensor:
    """The best rank-k affine reconstruction of rows (N, D), by SVD."""
    m = blocks.mean(0)
    u, s, v = torch.linalg.svd((blocks - m).double(), full_matrices=False)
    return ((blocks - m).double() @ v[:k].T @ v[:k] + m).float()


def test_a_fitted_block_code_is_the_pca_of_the_training_blocks():
    torch.manual_seed(0)
    model = code_vae(zero_encoder_head=True).eval()
    clips = smooth_clips(12)
    kept0, kept1 = model.init_block_code(clips)
    assert 0.9 < kept0 <= 1.0 and 0.5 < kept1 <= 1.0
    x = clips[0][None]  # (1, 3, 9, 16, 16)
    # step 0: the networks add nothing (zero decoder output, zero encoder head), so the round trip is the
    # code's, and the code's is the PCA projection of each causal block
    rec = model.decode_raw(model.moments(x)[0])
    p0, p1 = model.code.blocks(torch.stack(clips), True)
    want0 = pca_reconstruction(p0.reshape(-1, p0.shape[-1]), 8).reshape(p0.shape)[:1]
    want1 = pca_reconstruction(p1.reshape(-1, p1.shape[-1]), 8).reshape(p1.shape)[:1]
    got0, got1 = model.code.blocks(rec, True)
    assert torch.allclose(got0, want0, atol=1e-4) and torch.allclose(got1, want1, atol=1e-4)
    # and it is much better than the random code it replaced
    fresh = code_vae(zero_encoder_head=True).eval()
    err = lambda m: (m.decode_raw(m.moments(x)[0]) - x).pow(2).mean().item()  # noqa: E731
    assert err(model) < 0.2 * err(fresh)


def test_block_code_streams_in_chunks_like_the_whole_clip_and_saves(tmp_path):
    torch.manual_seed(0)
    model = code_vae(chunk_frames=4).eval()
    model.init_block_code(smooth_clips(6, t=13))
    x = smooth_clips(1, t=13)[0][None]
    z = model.encode(x)  # chunked: frame 0, then chunks of 4 frames
    assert torch.allclose(z, model.encode(x, chunked=False), atol=1e-5)
    assert torch.allclose(model.decode(z), model.decode(z, chunked=False), atol=1e-5)
    model.save_pretrained(tmp_path / "vae")
    again = CausalVAE.from_pretrained(tmp_path / "vae")
    assert again.config.block_code and torch.equal(again.encode(x), z)


def test_block_code_is_trained_with_the_networks():
    torch.manual_seed(0)
    model = code_vae().train()
    model.init_block_code(smooth_clips(6))
    before = model.code.dec1.detach().clone()
    x = torch.stack(smooth_clips(2))
    out = model(x)
    (out.recon - x).pow(2).mean().backward()
    assert model.code.dec1.grad is not None and model.code.dec1.grad.abs().sum() > 0
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(model.code.dec1, before)


def test_block_code_settings_are_validated():
    with pytest.raises(InputError, match="block_code replaces"):
        VAEConfig(spatial_factor=4, shortcut=False, block_code=True)
    with pytest.raises(InputError, match="block_code replaces"):
        VAEConfig(spatial_factor=4, shortcut=True, shortcut_channels=3, block_code=True)
    with pytest.raises(InputError, match="at most 48"):
        VAEConfig(spatial_factor=4, shortcut=True, block_code=True, latent_channels=64)
    with pytest.raises(InputError, match="no block code"):
        CausalVAE(VAEConfig(widths=(8, 8, 8))).init_block_code([])


def test_one_save_load_convention(tmp_path):
    torch.manual_seed(0)
    vae = CausalVAE(v2()).train()
    dit = DiT(DiTConfig(in_channels=4, out_channels=4, dim=32, depth=1, num_heads=2, ffn_dim=64, text_dim=8)).train()
    for model, name in ((vae, "CausalVAE"), (dit, "DiT")):
        d = model.save_pretrained(tmp_path / name)
        assert json.loads((d / "config.json").read_text())["_class_name"] == name
        back = type(model).from_pretrained(d)
        assert not back.training and back.config == model.config  # eval mode on load
        assert all(torch.equal(v, back.state_dict()[k]) for k, v in model.state_dict().items())
    # a field the config does not know is refused, in one line, for both
    for name, cls in (("CausalVAE", CausalVAE), ("DiT", DiT)):
        path = tmp_path / name / "config.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "future_field": 1}))
        with pytest.raises(ModelError, match="unknown config field\\(s\\) future_field") as e:
            cls.from_pretrained(tmp_path / name)
        assert "\n" not in str(e.value)
    # one class's folder does not load as the other
    dit.save_pretrained(tmp_path / "d2")
    with pytest.raises(ModelError, match="holds a DiT, not a CausalVAE"):
        CausalVAE.from_pretrained(tmp_path / "d2")


def test_v1_vae_folders_still_load(tmp_path):
    torch.manual_seed(0)
    vae = CausalVAE(v2())
    d = vae.save_pretrained(tmp_path / "v1")
    raw = json.loads((d / "config.json").read_text())
    raw.pop("_class_name")
    (d / "config.json").write_text(json.dumps({"kind": "vae", **raw}))  # what the shipped world-tiny holds
    assert CausalVAE.from_pretrained(d).config == vae.config
    (d / "config.json").write_text(json.dumps({"kind": "dit", **raw}))
    with pytest.raises(ModelError, match="not a CausalVAE"):
        CausalVAE.from_pretrained(d)


def test_ceiling_of_an_identity_vae_is_the_renders():
    from kino.train.vae_eval import ceiling

    # 1x1x1 block means with the residual branches at zero: an exact round trip
    identity = CausalVAE(VAEConfig(temporal_factor=1, spatial_factor=1, patch_size=1, widths=(4,), latent_channels=3,
                                   shortcut=True, chunk_frames=4))
    c = ceiling(identity, count=3)
    assert c.prompts == 3 and c.total == c.render and c.psnr > 45 and c.image_psnr > 45 and c.ssim > 0.999
    assert set(c.attributes) >= {"background", "color", "shape"} and all("/" in k for k in c.by_size)
    blocky = ceiling(CausalVAE(VAEConfig(spatial_factor=8, shortcut=True, widths=(4, 4, 4))), count=3)
    assert blocky.psnr < c.psnr - 15 and blocky.total < c.total  # 8x8x4 block means lose shape and size


def test_models_do_not_import_training_and_the_stream_does_not_import_the_vae():
    import subprocess
    import sys

    code = ("import sys, kino.models.vae_stream; assert 'kino.models.vae' not in sys.modules, 'vae_stream -> vae'; "
            "import kino.models.vae, kino.models.dit, kino.models.files; "
            "bad = sorted(m for m in sys.modules if m.startswith('kino.train')); assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-500:]


def test_a_fresh_v2_run_fits_its_code_and_steps_0_saves_it(tmp_path):
    from kino.train.vae import WORLD, VAETrainConfig, make_dataset, train_vae

    cfg = VAETrainConfig(preset="world-tiny-v2", steps=0, code_fit_clips=12, stats_clips=2)
    path = train_vae(cfg, tmp_path / "run", progress=False)
    saved = CausalVAE.from_pretrained(path)
    fresh = CausalVAE(vae_preset("world-tiny-v2"))
    clips = make_dataset(WORLD, cfg, cfg.seed + 2_000_003, group=1)
    fresh.init_block_code(item["video"] for _, item in zip(range(12), clips, strict=False))
    assert all(torch.equal(a, b) for a, b in zip(saved.code.parameters(), fresh.code.parameters(), strict=True))
    assert not torch.equal(saved.latent_std, torch.ones_like(saved.latent_std))  # statistics measured


def test_a_global_latent_scale_keeps_the_codes_spectrum():
    """latent_scale "global" (world-tiny v2): every channel centred, one scale for all (the root mean square
    of the per-channel stds), so the code's strong directions stay strong in the DiT's loss; "channel" (v1)
    scales each to unit std. Only the statistics differ: the same weights load in either."""
    std = torch.tensor([4.0, 1.0, 0.5, 0.1])
    mean = torch.tensor([0.3, -0.1, 0.0, 0.2])
    per, one = CausalVAE(v2(latent_channels=4)), CausalVAE(v2(latent_channels=4, latent_scale="global"))
    one.load_state_dict(per.state_dict())
    for m in (per, one):
        m.set_latent_stats(mean, std)
    assert torch.equal(per.latent_std, std)
    assert torch.allclose(one.latent_std, std.pow(2).mean().sqrt().expand(4))
    x = clip()
    raw = per.denormalize(per.encode(x))
    assert torch.allclose(one.denormalize(one.encode(x)), raw, atol=1e-5)  # the same raw latent
    assert vae_preset("world-tiny-v2").latent_scale == "global" and vae_preset("world-tiny").latent_scale == "channel"
    with pytest.raises(InputError, match="latent_scale must be channel or global"):
        v2(latent_scale="pixel")
