"""The causal VAE: shapes, causality, chunked = whole, tiling, presets, files and errors."""

from __future__ import annotations

import json

import pytest
import torch

from kino.errors import InputError, ModelError
from kino.models.vae import VAE_PRESETS, CausalVAE, VAEConfig, latent_frames, pixel_frames, vae_world_tiny
from kino.models.vae_stream import decode_stream, encode_stream, tile_starts


def small(**kw) -> VAEConfig:
    """A very small config with the default factors (4x8x8), for speed."""
    return vae_world_tiny(**{"widths": (8, 16, 16), **kw})


@pytest.fixture(scope="module")
def vae() -> CausalVAE:
    torch.manual_seed(0)
    return CausalVAE(small()).eval()


def clip(t: int, h: int = 32, w: int = 32, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, t, h, w, generator=g) * 2 - 1  # (1, 3, T, H, W)


def test_shapes_images_and_videos(vae):
    for t in (1, 5, 17):
        z = vae.encode(clip(t, 32, 48))
        assert z.shape == (1, 16, latent_frames(t), 4, 6)
        assert vae.decode(z).shape == (1, 3, pixel_frames(z.shape[2]), 32, 48)
    assert latent_frames(17) == 5 and pixel_frames(5) == 17 and latent_frames(1) == 1


def test_causal_in_time(vae):
    x = clip(17)
    y = x.clone()
    y[:, :, 9:] = -x[:, :, 9:]  # change frames 9.. only
    a, b = vae.encode(x, chunked=False), vae.encode(y, chunked=False)
    # latent frame j covers pixel frames up to 4j: frames 0..2 (pixels 0..8) must not move
    assert torch.equal(a[:, :, :3], b[:, :, :3])
    assert not torch.allclose(a[:, :, 3:], b[:, :, 3:])
    # the first frame of a video is coded exactly as that frame alone (an image)
    assert torch.allclose(vae.encode(x[:, :, :1], chunked=False), a[:, :, :1], atol=1e-6)
    da, db = vae.decode(a, chunked=False), vae.decode(b, chunked=False)
    assert torch.equal(da[:, :, :9], db[:, :, :9])


def test_chunked_equals_whole(vae):
    x = clip(41, seed=1)
    cfg = small(chunk_frames=8)
    m = CausalVAE(cfg).eval()
    m.load_state_dict(vae.state_dict())
    whole, chunked = m.encode(x, chunked=False), m.encode(x, chunked=True)
    assert (whole - chunked).abs().max() < 1e-4
    dw, dc = m.decode(whole, chunked=False), m.decode(whole, chunked=True)
    assert dw.shape == dc.shape == x.shape
    assert (dw - dc).abs().max() < 1e-4


def test_stream_takes_pieces_of_any_length(vae):
    x = clip(21, seed=2)
    pieces = [x[:, :, :3], x[:, :, 3:4], x[:, :, 4:15], x[:, :, 15:]]
    a = torch.cat([m for m, _ in encode_stream(vae, pieces)], dim=2)
    b = torch.cat([m for m, _ in encode_stream(vae, x)], dim=2)
    assert torch.allclose(a, b, atol=1e-5)
    z = vae.normalize(b)
    d = torch.cat(list(decode_stream(vae, [z[:, :, :2], z[:, :, 2:]])), dim=2)
    assert torch.allclose(d, vae.decode(z), atol=1e-5)


def test_tile_starts_cover():
    for n, tile, ov in ((512, 256, 64), (200, 64, 16), (64, 64, 16), (40, 64, 16)):
        starts = tile_starts(n, tile, ov)
        covered = set()
        for s in starts:
            covered |= set(range(s, min(n, s + tile)))
            assert s % 8 == 0 or n <= tile or s == n - tile
        assert covered == set(range(n))


def test_tiling(vae):
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 96), torch.linspace(-1, 1, 96), indexing="ij")
    x = torch.stack([xx, yy, xx * yy])[None, :, None].expand(1, 3, 5, 96, 96).contiguous()  # (1, 3, 5, H, W)
    one = CausalVAE(small(tile_size=96, tile_overlap=32)).eval()  # one tile: exactly the untiled result
    one.load_state_dict(vae.state_dict())
    a = vae.encode(x, chunked=False)
    assert torch.allclose(one.encode(x), a, atol=1e-5)
    tiled = CausalVAE(small(tile_size=48, tile_overlap=24)).eval()  # 3x3 tiles
    tiled.load_state_dict(vae.state_dict())
    assert tiled.encode(x).shape == a.shape and tiled.decode(a).shape == x.shape


def test_tile_blend_is_a_partition_of_unity():
    from kino.models.vae_stream import _Tiler

    x = torch.randn(1, 2, 3, 40, 56)
    for num, den in ((1, 8), (8, 1)):
        tiler = _Tiler(40, 56, 16, 8, num, den)
        assert len(tiler.ys) > 1 and len(tiler.xs) > 1

        def fn(v, cache, num=num, den=den):  # a pointwise map that rescales like the VAE: blending must be exact
            return torch.nn.functional.interpolate(v, scale_factor=(1, num / den, num / den)) * 2 + 1

        assert torch.allclose(tiler(fn, x), fn(x, None), atol=1e-5)


def test_every_preset_builds():
    for name, make in VAE_PRESETS.items():
        cfg = make()
        assert cfg.temporal_factor == 4 and cfg.spatial_factor == (4 if name == "world-tiny-v2" else 8), name
        assert cfg.compression == (8 if name == "world-tiny-v2" else 48)
    n = sum(p.numel() for p in CausalVAE(vae_world_tiny()).parameters())
    assert n < 10_000_000
    with torch.device("meta"):
        big = sum(p.numel() for p in CausalVAE(VAE_PRESETS["real-base"]()).parameters())
    assert big > 50_000_000


def test_config_is_validated():
    with pytest.raises(InputError, match="power of two"):
        VAEConfig(temporal_factor=3)
    with pytest.raises(InputError, match="widths"):
        VAEConfig(widths=(8, 16))
    with pytest.raises(InputError, match="chunk_frames"):
        VAEConfig(chunk_frames=6)


def test_bad_input_gives_one_line(vae):
    for x, msg in ((clip(17, 36, 32), "not a multiple of 8"), (clip(6), "is not 1 \\+ 4k"),
                   (torch.zeros(1, 3, 0, 32, 32), "is not 1 \\+ 4k"), (torch.zeros(3, 5, 32, 32), "must be")):
        with pytest.raises(InputError, match=msg) as e:
            vae.encode(x)
        assert "\n" not in str(e.value)


def test_save_and_load_round_trip(vae, tmp_path):
    vae.set_latent_stats(torch.linspace(-1, 1, 16), torch.linspace(0.5, 2, 16))
    vae.save_pretrained(tmp_path / "m")
    assert json.loads((tmp_path / "m" / "config.json").read_text())["_class_name"] == "CausalVAE"
    back = CausalVAE.from_pretrained(tmp_path / "m")
    assert back.config == vae.config
    assert torch.equal(back.latent_std, vae.latent_std)
    x = clip(5)
    assert torch.allclose(back.encode(x), vae.encode(x))
    # normalized latents: encode subtracts the stored mean and divides by the std
    raw, _ = vae.moments(x)
    assert torch.allclose(vae.encode(x, chunked=False), (raw - vae.latent_mean.view(1, -1, 1, 1, 1))
                          / vae.latent_std.view(1, -1, 1, 1, 1), atol=1e-6)
    vae.set_latent_stats(torch.zeros(16), torch.ones(16))


def test_from_pretrained_errors(tmp_path):
    with pytest.raises(ModelError, match="not a VAE model folder"):
        CausalVAE.from_pretrained(tmp_path / "missing")
    (tmp_path / "config.json").write_text("{not json")
    (tmp_path / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(ModelError, match="cannot load the VAE"):
        CausalVAE.from_pretrained(tmp_path)


def test_sampling_uses_the_generator(vae):
    x = clip(5)
    a = vae.encode(x, sample=True, generator=torch.Generator().manual_seed(1))
    b = vae.encode(x, sample=True, generator=torch.Generator().manual_seed(1))
    c = vae.encode(x, sample=True, generator=torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c)
