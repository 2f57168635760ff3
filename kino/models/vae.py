"""The video compression network: a causal 3D convolutional VAE (KL-regularized).

Letters: B batch, C pixel channels, Z latent channels, T frames, H height, W width.

A clip (B, 3, 1 + 4k, H, W) in [-1, 1] becomes a latent (B, Z, 1 + k, H/8, W/8) and back (the
factors are per preset). The network is causal in time (see vae_blocks), so an image is a
1-frame video and frame 0 is coded on its own: this lets one model train on images and videos
together, and condition on a still image later. Pixels are first folded 2x2 into channels
(LTX-Video's patchified VAE input), so the full-resolution work is cheap.

`encode` returns NORMALIZED latents, `(mu - latent_mean) / latent_std`, with per-channel
statistics measured on the training data and stored as buffers beside the weights; `decode`
takes them. Long and large clips go through `encode_stream`/`decode_stream` in temporal chunks
that carry the causal state and in spatial tiles blended over their overlap, so memory does not
grow with a clip's length, and grows with its size only through one frame's worth of state.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from einops import rearrange
from torch import nn

from kino.errors import InputError
from kino.models.files import load_weights, read_config, save_model
from kino.models.presets import VAEPreset  # noqa: F401 (re-exported: the CLI choices)
from kino.models.vae_blocks import Decoder, Encoder, _levels
from kino.models.vae_code import BlockCode
from kino.models.vae_stream import decode_stream, encode_stream, iter_chunks  # noqa: F401 (iter_chunks re-exported)


def _pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


@dataclass(frozen=True)
class VAEConfig:
    """Shape of the causal VAE. Defaults give the tiny CPU model (`world-tiny`)."""

    in_channels: int = 3
    latent_channels: int = 16
    temporal_factor: int = 4
    spatial_factor: int = 8
    patch_size: int = 4  # pixels folded into channels before the first conv
    widths: tuple[int, ...] = (32, 64, 128)  # one per level: patched input, then after each down step
    encoder_blocks: int = 1  # residual blocks per level
    decoder_blocks: int = 1
    first_time_kernel: int = 3  # temporal kernel at the finest level (1: spatial-only there)
    chunk_frames: int = 16  # pixel frames per streaming chunk (a multiple of temporal_factor)
    tile_size: int = 256  # spatial tile side in pixels for large frames (a multiple of spatial_factor)
    tile_overlap: int = 64  # pixels shared by neighbouring tiles, blended linearly
    # Non-parametric shortcuts around the whole network (the space-to-channel shortcuts of DC-AE,
    # Chen et al. 2024): the encoder adds the clip's causal block means to the latent, the decoder adds
    # the latent's block means back, upsampled, to its output. The networks then learn the residual,
    # and training starts at the block-mean reconstruction (~21 dB on the world) instead of ~12 dB.
    shortcut: bool = False
    # How many latent channels carry the block means (a multiple of in_channels; 0: all of them, the v1
    # layout). v1 copied the colour means into all 16 channels and 99.9% of its latent's variance was
    # that copy (issue 18); with 3 the other channels hold only what the network learns (shape, motion).
    shortcut_channels: int = 0
    # The encoder's mean head starts at zero (v1). False: only the shortcut channels' rows start at zero
    # (exact block means at step 0); the free channels start at the default init, so the decoder sees a
    # learned signal from the first step instead of growing one from nothing.
    zero_encoder_head: bool = True
    # The shortcut is a linear causal block code (kino.models.vae_code.BlockCode) in all channels instead
    # of block means: PCA-initialized from training blocks (`init_block_code`), trainable. world-tiny v2.
    block_code: bool = False
    # How `encode` scales the raw latent: "channel" (each channel to unit std, v1) or "global" (one std for
    # all channels, each channel centred). A PCA code's channels fall from std 7.5 to 0.14 (world-tiny v2):
    # per-channel scaling gives the 24th direction the weight of the first in the DiT's loss and spreads a
    # 1x4x4 token's variance over its 384 values (the top 192 directions then hold 89% of it, against 99.7%
    # with one scale), which a dim-192 x-prediction cannot reach (issue 18, MODEL.md).
    latent_scale: str = "channel"

    def __post_init__(self) -> None:
        if self.latent_scale not in ("channel", "global"):
            raise InputError(f"VAEConfig.latent_scale must be channel or global, got {self.latent_scale!r}")
        object.__setattr__(self, "widths", tuple(int(w) for w in self.widths))
        for name in ("temporal_factor", "spatial_factor", "patch_size"):
            if not _pow2(getattr(self, name)):
                raise InputError(f"VAEConfig.{name}={getattr(self, name)} must be a power of two")
        if self.spatial_factor % self.patch_size:
            raise InputError(f"patch_size {self.patch_size} must divide spatial_factor {self.spatial_factor}")
        if len(self.widths) != self.num_levels + 1 or min(self.widths) < 1:
            raise InputError(f"widths needs {self.num_levels + 1} positive entries for these factors, "
                             f"got {self.widths}")
        if min(self.in_channels, self.latent_channels, self.encoder_blocks + 1, self.decoder_blocks + 1) < 1:
            raise InputError("in_channels, latent_channels must be >= 1 and block counts >= 0")
        if self.first_time_kernel not in (1, 3):
            raise InputError(f"first_time_kernel must be 1 or 3, got {self.first_time_kernel}")
        if self.chunk_frames < self.temporal_factor or self.chunk_frames % self.temporal_factor:
            raise InputError(f"chunk_frames {self.chunk_frames} must be a positive multiple of "
                             f"temporal_factor {self.temporal_factor}")
        sc = self.shortcut_channels
        if sc < 0 or sc > self.latent_channels or sc % self.in_channels:
            raise InputError(f"shortcut_channels {sc} must be a multiple of in_channels {self.in_channels} "
                             f"between 0 and latent_channels {self.latent_channels}")
        if self.block_code and (not self.shortcut or sc):
            raise InputError("block_code replaces the block-mean shortcut: it needs shortcut=True and "
                             "shortcut_channels=0")
        if self.block_code and self.latent_channels > self.in_channels * self.spatial_factor**2:
            raise InputError(f"a block code of {self.latent_channels} channels needs at most "
                             f"{self.in_channels * self.spatial_factor**2} (the values of one image block)")
        f = self.spatial_factor
        if self.tile_size % f or self.tile_overlap % f or not 0 <= self.tile_overlap < self.tile_size:
            raise InputError(f"tile_size {self.tile_size} and tile_overlap {self.tile_overlap} must be "
                             f"multiples of {f} with overlap < size")

    @property
    def block_channels(self) -> int:
        """Latent channels that carry the block-mean shortcut (0 without shortcuts)."""
        if not self.shortcut:
            return 0
        return self.shortcut_channels or self.latent_channels

    @property
    def spatial_downs(self) -> int:
        return int(math.log2(self.spatial_factor // self.patch_size))

    @property
    def temporal_downs(self) -> int:
        return int(math.log2(self.temporal_factor))

    @property
    def num_levels(self) -> int:
        return max(self.spatial_downs, self.temporal_downs)

    def latent_frames(self, num_frames: int) -> int:
        """Latent frames of a clip of `num_frames` = 1 + temporal_factor * k pixel frames."""
        return 1 + (num_frames - 1) // self.temporal_factor

    def pixel_frames(self, latent_frames: int) -> int:
        """Pixel frames decoded from `latent_frames` latent frames."""
        return 1 + (latent_frames - 1) * self.temporal_factor

    @property
    def compression(self) -> float:
        """Pixel values per latent value (for a long clip): 3 * t * s * s / Z."""
        return self.in_channels * self.temporal_factor * self.spatial_factor**2 / self.latent_channels


# ----------------------------------------------------------------------------- presets


def vae_world_tiny(**kw) -> VAEConfig:
    """The CPU model for kino's world: 4x8x8, 16 channels, 4x4 pixel patches, widths 48-128, shortcuts."""
    return VAEConfig(**{"widths": (48, 96, 128), "shortcut": True, **kw})


def vae_world_small(**kw) -> VAEConfig:
    """A wider world model for a GPU: 4x8x8, 16 channels."""
    return VAEConfig(**{"patch_size": 2, "widths": (64, 128, 256), "encoder_blocks": 2,
                        "decoder_blocks": 3, "shortcut": True, **kw})


def vae_real_base(**kw) -> VAEConfig:
    """Real-footage size, comparable to the open 4x8x8 causal VAEs (Wan 2.1, CogVideoX, Open-Sora)."""
    return VAEConfig(**{"patch_size": 1, "widths": (128, 256, 512, 512), "encoder_blocks": 2,
                        "decoder_blocks": 3, "shortcut": True, **kw})


def vae_world_tiny_v2(**kw) -> VAEConfig:
    """world-tiny v2 (issue 18): 4x4x4 (a 16x16 latent at 64x64), 24 channels, a linear block code
    (PCA-initialized, trainable) as the shortcut in every channel and narrow networks (32-96) adding a
    residual. The code alone measured a 0.980 analyzer ceiling, 30.5 dB held out, 38.3 dB on images
    (docs/vae.md); 8x compression."""
    return VAEConfig(**{"spatial_factor": 4, "latent_channels": 24, "widths": (32, 64, 96), "shortcut": True,
                        "block_code": True, "latent_scale": "global", **kw})


VAE_PRESETS = {"world-tiny": vae_world_tiny, "world-tiny-v2": vae_world_tiny_v2, "world-small": vae_world_small, "real-base": vae_real_base}


def vae_preset(name: str, **kw) -> VAEConfig:
    """The config of a preset by name (for the command line)."""
    if name not in VAE_PRESETS:
        raise InputError(f"unknown VAE preset {name!r}; choose one of {', '.join(VAE_PRESETS)}")
    return VAE_PRESETS[name](**kw)


def latent_frames(num_frames: int, config: VAEConfig | None = None) -> int:
    """Latent frames of a `num_frames` clip (default factors: 4x)."""
    return (config or VAEConfig()).latent_frames(num_frames)


def pixel_frames(num_latent: int, config: VAEConfig | None = None) -> int:
    """Pixel frames decoded from `num_latent` latent frames (default factors: 4x)."""
    return (config or VAEConfig()).pixel_frames(num_latent)


# ----------------------------------------------------------------------------- model


@dataclass
class VAEOutput:
    """What `CausalVAE.forward` returns for training: reconstruction and raw posterior moments."""

    recon: torch.Tensor  # (B, C, T, H, W)
    mean: torch.Tensor  # (B, Z, T', H', W'), not normalized
    logvar: torch.Tensor  # (B, Z, T', H', W')


class CausalVAE(nn.Module):
    """Causal 3D convolutional VAE; see the module docstring."""

    def __init__(self, config: VAEConfig | None = None) -> None:
        super().__init__()
        self.config = c = config or VAEConfig()
        levels = _levels(c.spatial_downs, c.temporal_downs)
        pc = c.in_channels * c.patch_size**2
        self.encoder = Encoder(pc, c.widths, c.encoder_blocks, c.latent_channels, levels, c.first_time_kernel)
        self.decoder = Decoder(pc, c.widths, c.decoder_blocks, c.latent_channels, levels, c.first_time_kernel)
        if c.shortcut:  # residual branches start at zero: step 0 reconstructs the block means exactly
            zc = c.latent_channels
            zero = zc if c.zero_encoder_head else c.block_channels  # encoder mean rows that start at zero
            with torch.no_grad():
                dec, enc = self.decoder.conv_out.conv, self.encoder.conv_out.conv
                dec.weight.zero_()
                dec.bias.zero_()
                enc.weight[:zero].zero_()
                enc.bias[:zero].zero_()
                enc.bias[zc:].fill_(-8.0)  # posterior std e^-4 at the start
        self.code = (BlockCode(c.in_channels, c.spatial_factor, c.temporal_factor, c.latent_channels)
                     if c.block_code else None)
        self.register_buffer("latent_mean", torch.zeros(c.latent_channels))
        self.register_buffer("latent_std", torch.ones(c.latent_channels))

    # -- shapes
    def check_input(self, x: torch.Tensor) -> None:
        """Raise InputError unless x is (B, C, 1 + t*k, H, W) with H, W multiples of the spatial factor."""
        c = self.config
        if x.ndim != 5 or x.shape[1] != c.in_channels:
            raise InputError(f"a video batch must be (B, {c.in_channels}, T, H, W), got {tuple(x.shape)}")
        t, h, w = x.shape[2:]
        if t < 1 or (t - 1) % c.temporal_factor:
            lo = 1 + max(t - 1, 0) // c.temporal_factor * c.temporal_factor
            k = c.temporal_factor
            raise InputError(f"{t} frames is not 1 + {k}k; try {lo} or {lo + k}")
        f = c.spatial_factor
        if h % f or w % f or h == 0 or w == 0:
            sw, sh = max(f, w // f * f), max(f, h // f * f)
            raise InputError(f"size {w}x{h} is not a multiple of {f}; try {sw}x{sh} or {sw + f}x{sh + f}")

    def _patch(self, x: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        return rearrange(x, "b c t (h ph) (w pw) -> b (c ph pw) t h w", ph=p, pw=p)  # (B, C*p*p, T, H/p, W/p)

    def _unpatch(self, x: torch.Tensor) -> torch.Tensor:
        p = self.config.patch_size
        return rearrange(x, "b (c ph pw) t h w -> b c t (h ph) (w pw)", ph=p, pw=p)  # (B, C, T, H, W)

    def _first(self, cache: dict | None, key: str) -> bool:
        """True when this call holds the clip's first frame (no cache, or the stream's first chunk)."""
        if cache is None:
            return True
        first = (self, key) not in cache
        cache[(self, key)] = torch.empty(0)
        return first

    def _block_means(self, x: torch.Tensor, first: bool) -> torch.Tensor:
        """Causal block means (B, Z, T', H', W') of pixels (B, C, T, H, W): frame 0 alone (when
        `first`), then groups of temporal_factor frames, spatial_factor-square blocks, the C colour
        means in the first `block_channels` channels (channel j carries colour j % C), zeros in the rest."""
        c = self.config
        b, ch, t, h, w = x.shape
        f, tf = c.spatial_factor, c.temporal_factor
        p = x.reshape(b, ch, t, h // f, f, w // f, f).mean(dim=(4, 6))  # (B, C, T, H', W')
        head, rest = (p[:, :, :1], p[:, :, 1:]) if first else (p[:, :, :0], p)
        rest = rest.reshape(b, ch, rest.shape[2] // tf, tf, h // f, w // f).mean(3)  # (B, C, k, H', W')
        p = torch.cat([head, rest], dim=2)  # (B, C, T', H', W')
        k = c.block_channels
        p = p[:, torch.arange(k, device=x.device) % ch]  # (B, k, T', H', W')
        return torch.cat([p, p.new_zeros(b, c.latent_channels - k, *p.shape[2:])], dim=1)  # (B, Z, T', H', W')

    def _unblock(self, z: torch.Tensor, first: bool) -> torch.Tensor:
        """The inverse of `_block_means` for the decoder: colour means of latent (B, Z, T', H', W')
        upsampled by repetition to pixels (B, C, T, H, W)."""
        c = self.config
        ch, zc, k = c.in_channels, c.latent_channels, c.block_channels
        sel = torch.zeros(ch, zc, device=z.device, dtype=z.dtype)
        sel[torch.arange(k) % ch, torch.arange(k)] = 1.0
        sel = sel / sel.sum(1, keepdim=True)  # (C, Z): average of the copies of each colour
        p = torch.einsum("cz,bzthw->bcthw", sel, z)  # (B, C, T', H', W')
        f, tf = c.spatial_factor, c.temporal_factor
        p = p.repeat_interleave(f, dim=3).repeat_interleave(f, dim=4)  # (B, C, T', H, W)
        if first:
            return torch.cat([p[:, :, :1], p[:, :, 1:].repeat_interleave(tf, dim=2)], dim=2)
        return p.repeat_interleave(tf, dim=2)  # (B, C, T, H, W)

    def moments(self, x: torch.Tensor, cache: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Raw posterior mean and log-variance (B, Z, T', H', W') of pixels x (B, C, T, H, W)."""
        first = self._first(cache, "enc")
        mean, logvar = self.encoder(self._patch(x), cache).chunk(2, dim=1)  # 2 x (B, Z, T', H', W')
        if self.code is not None:
            mean = mean + self.code.encode(x, first)
        elif self.config.shortcut:
            mean = mean + self._block_means(x, first)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode_raw(self, z: torch.Tensor, cache: dict | None = None) -> torch.Tensor:
        """Pixels (B, C, T, H, W) of a raw (not normalized) latent."""
        first = self._first(cache, "dec")
        out = self._unpatch(self.decoder(z, cache))
        if self.code is not None:
            out = out + self.code.decode(z, first)
        elif self.config.shortcut:
            out = out + self._unblock(z, first)
        return out

    def init_block_code(self, clips) -> tuple[float, float]:
        """PCA-initialize the block code from training clips (see BlockCode.fit); the shares of variance kept."""
        if self.code is None:
            raise InputError("this VAE has no block code (VAEConfig.block_code)")
        return self.code.fit(clips)

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None) -> VAEOutput:
        """Training pass: sample the posterior and decode it."""
        mean, logvar = self.moments(x)
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + (0.5 * logvar).exp() * eps
        return VAEOutput(self.decode_raw(z), mean, logvar)

    # -- normalized latents
    def normalize(self, z: torch.Tensor) -> torch.Tensor:
        return (z - self.latent_mean.view(1, -1, 1, 1, 1)) / self.latent_std.view(1, -1, 1, 1, 1)

    def denormalize(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.latent_std.view(1, -1, 1, 1, 1) + self.latent_mean.view(1, -1, 1, 1, 1)

    @torch.no_grad()
    def set_latent_stats(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store per-channel statistics (Z,) of raw latents measured on the training data; with
        latent_scale "global" the scale is their root mean square, the same for every channel."""
        std = std.float()
        if self.config.latent_scale == "global":
            std = std.pow(2).mean().sqrt().expand_as(std)
        self.latent_mean.copy_(mean.to(self.latent_mean))
        self.latent_std.copy_(std.clamp_min(1e-4).to(self.latent_std))

    @torch.no_grad()
    def encode(self, x: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None,
               chunked: bool = True) -> torch.Tensor:
        """Pixels (B, C, 1 + t*k, H, W) in [-1, 1] -> normalized latent (B, Z, 1 + k, H/s, W/s).

        The posterior mean, or a sample of it when `sample`. With `chunked`, runs through the
        streaming path (temporal chunks, spatial tiles); the result is the same to float error.
        """
        self.check_input(x)
        if chunked:
            mean, logvar = (torch.cat(parts, dim=2) for parts in zip(*encode_stream(self, x), strict=True))
        else:
            mean, logvar = self.moments(x)
        if sample:
            eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
            mean = mean + (0.5 * logvar).exp() * eps
        return self.normalize(mean)

    @torch.no_grad()
    def decode(self, z: torch.Tensor, chunked: bool = True) -> torch.Tensor:
        """Normalized latent (B, Z, 1 + k, h, w) -> pixels (B, C, 1 + t*k, h*s, w*s), about [-1, 1]."""
        if z.ndim != 5 or z.shape[1] != self.config.latent_channels or z.shape[2] < 1:
            raise InputError(f"a latent must be (B, {self.config.latent_channels}, T, H, W) with T >= 1, "
                             f"got {tuple(z.shape)}")
        if chunked:
            return torch.cat(list(decode_stream(self, [z])), dim=2)
        return self.decode_raw(self.denormalize(z))

    # -- files
    def save_pretrained(self, directory: str | os.PathLike) -> Path:
        """Write `directory/config.json` and `directory/model.safetensors` (latent stats included), atomically."""
        return save_model(self, self.config, "CausalVAE", directory)

    @classmethod
    def from_pretrained(cls, directory: str | os.PathLike, device: str | torch.device = "cpu",
                        dtype: torch.dtype | None = None) -> CausalVAE:
        """Load a VAE written by `save_pretrained` (or a training checkpoint folder), in eval mode.

        Unknown config fields are refused (kino.models.files); v1 folders' `"kind": "vae"` is read.
        """
        config = read_config(directory, VAEConfig, "CausalVAE", "VAE", legacy={"kind": "vae"})
        return load_weights(cls(config), directory, "VAE", device, dtype)


__all__ = ["CausalVAE", "VAEConfig", "VAEOutput", "VAE_PRESETS", "VAEPreset", "vae_preset", "latent_frames",
           "pixel_frames", "vae_world_tiny", "vae_world_tiny_v2", "vae_world_small", "vae_real_base", "iter_chunks"]
