"""A linear causal block code: the shortcut of world-tiny v2's VAE (issue 18).

Letters: B batch, C pixel channels, Z latent channels, T frames, H height, W width, f the spatial
factor, k the temporal factor, D the values of one block.

The clip is cut into the VAE's causal blocks: frame 0 alone (f x f x 1, D0 = C f^2 values), then
groups of k frames (f x f x k, D1 = C f^2 k values). Each block maps linearly to its latent cell's
Z channels and back: `z = (p - mu) @ E`, `p = z @ P + mu`. Initialized by PCA of training blocks
(`fit`), E = P^T are the first Z principal directions, so the code starts at the best linear
reconstruction with Z values a block; both maps stay trainable and the VAE's networks add their
(zero-initialized) residual on top, as DC-AE's space-to-channel shortcuts do (Chen et al. 2024) but
with the channels chosen by the data instead of fixed block means.

Why (docs/vae.md, measured 2026-12-02): on the world's 64x64 clips the PCA code alone at 4x4x4 with
24 channels scores a 0.980 analyzer ceiling, 30.5 dB held out and 38.3 dB on images, against v1's
trained deep VAE at 0.687 / 26.3 / 29.0; plain block means in a few channels left the networks
nothing they could learn from in hundreds of steps (the "stall").
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from einops import rearrange
from torch import nn


class BlockCode(nn.Module):
    """Linear maps between causal pixel blocks and latent cells; see the module docstring."""

    def __init__(self, channels: int, spatial: int, temporal: int, latent: int) -> None:
        super().__init__()
        self.c, self.f, self.k, self.z = channels, spatial, temporal, latent
        d0, d1 = channels * spatial * spatial, channels * spatial * spatial * temporal
        if latent > d0:
            raise ValueError(f"a block code of {latent} channels needs at least {latent} values per image "
                             f"block; {spatial}x{spatial} pixels of {channels} channels have {d0}")
        # the codes of frame 0 (an image block) and of the later k-frame blocks, each mu / E / P
        self.mu0, self.mu1 = nn.Parameter(torch.zeros(d0)), nn.Parameter(torch.zeros(d1))
        self.enc0 = nn.Parameter(torch.linalg.qr(torch.randn(d0, latent))[0])  # (D0, Z), orthonormal columns
        self.enc1 = nn.Parameter(torch.linalg.qr(torch.randn(d1, latent))[0])  # (D1, Z)
        self.dec0 = nn.Parameter(self.enc0.detach().T.clone())  # (Z, D0)
        self.dec1 = nn.Parameter(self.enc1.detach().T.clone())  # (Z, D1)

    # -- blocks
    def blocks(self, x: torch.Tensor, first: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Pixels (B, C, T, H, W) -> frame-0 blocks (B, 1 or 0, H', W', D0) and later blocks
        (B, T'', H', W', D1), or None when there are none."""
        f, k = self.f, self.k
        head, rest = (x[:, :, :1], x[:, :, 1:]) if first else (x[:, :, :0], x)
        p0 = rearrange(head, "b c t (h f1) (w f2) -> b t h w (c f1 f2)", f1=f, f2=f)  # (B, 1|0, H', W', D0)
        p1 = (rearrange(rest, "b c (t k) (h f1) (w f2) -> b t h w (k c f1 f2)", k=k, f1=f, f2=f)
              if rest.shape[2] else None)  # (B, T'', H', W', D1)
        return p0, p1

    def encode(self, x: torch.Tensor, first: bool) -> torch.Tensor:
        """Pixels (B, C, T, H, W) -> latent (B, Z, T', H', W') of their causal blocks."""
        p0, p1 = self.blocks(x, first)
        parts = [(p0 - self.mu0) @ self.enc0] + ([] if p1 is None else [(p1 - self.mu1) @ self.enc1])
        return rearrange(torch.cat(parts, dim=1), "b t h w z -> b z t h w")  # (B, Z, T', H', W')

    def decode(self, z: torch.Tensor, first: bool) -> torch.Tensor:
        """Latent (B, Z, T', H', W') -> pixels (B, C, T, H, W)."""
        f, k, c = self.f, self.k, self.c
        z = rearrange(z, "b z t h w -> b t h w z")  # (B, T', H', W', Z)
        out = []
        if first:
            p0 = z[:, :1] @ self.dec0 + self.mu0  # (B, 1, H', W', D0)
            out.append(rearrange(p0, "b t h w (c f1 f2) -> b c t (h f1) (w f2)", c=c, f1=f, f2=f))
            z = z[:, 1:]
        if z.shape[1]:
            p1 = z @ self.dec1 + self.mu1  # (B, T'', H', W', D1)
            out.append(rearrange(p1, "b t h w (k c f1 f2) -> b c (t k) (h f1) (w f2)", k=k, c=c, f1=f, f2=f))
        return torch.cat(out, dim=2)  # (B, C, T, H, W)

    # -- initialization
    @torch.no_grad()
    def fit(self, clips: Iterable[torch.Tensor], max_blocks: int = 200_000) -> tuple[float, float]:
        """Set both codes to the PCA of the blocks of `clips`, each (C, 1 + k*n, H, W) or with a batch
        dimension (images welcome: they feed the frame-0 code only). Returns the share of each code's
        variance kept (nan for a code no clip fed, which then keeps its init)."""
        parts: tuple[list, list] = ([], [])
        for clip in clips:
            p0, p1 = self.blocks(clip if clip.ndim == 5 else clip[None], True)
            parts[0].append(p0.reshape(-1, p0.shape[-1]))
            if p1 is not None:
                parts[1].append(p1.reshape(-1, p1.shape[-1]))
        kept = []
        for blocks, mu, enc, dec in ((parts[0], self.mu0, self.enc0, self.dec0),
                                     (parts[1], self.mu1, self.enc1, self.dec1)):
            if not blocks:
                kept.append(float("nan"))
                continue
            flat = torch.cat(blocks).double()  # (N, D)
            if flat.shape[0] > max_blocks:
                flat = flat[torch.randperm(flat.shape[0], generator=torch.Generator().manual_seed(0))[:max_blocks]]
            if flat.shape[0] < self.z:
                raise ValueError(f"{flat.shape[0]} blocks cannot fit a {self.z}-channel code; give more clips")
            m = flat.mean(0)
            _, s, v = torch.linalg.svd(flat - m, full_matrices=False)  # v: (min(N, D), D)
            mu.copy_(m.float())
            enc.copy_(v[: self.z].T.float())
            dec.copy_(v[: self.z].float())
            kept.append(float(s[: self.z].pow(2).sum() / s.pow(2).sum().clamp_min(1e-12)))
        return kept[0], kept[1]


__all__ = ["BlockCode"]
