"""Losses and quality measures of the VAE: L1, SSIM, KL, PSNR and an optional adversarial loss.

Letters: B batch, C channels, T frames, H height, W width. Pixel tensors are in [-1, 1].
SSIM follows Wang et al. 2004 (11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03), per frame.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn


def _frames(x: torch.Tensor) -> torch.Tensor:
    """(B, C, T, H, W) in [-1, 1] -> (B*T, C, H, W) in [0, 1]; 4-D input is taken as frames already."""
    if x.ndim == 5:
        x = rearrange(x, "b c t h w -> (b t) c h w")  # (B*T, C, H, W)
    return (x.float() + 1.0) * 0.5


def _gauss(size: int, sigma: float, device: torch.device) -> torch.Tensor:
    g = torch.exp(-((torch.arange(size, device=device, dtype=torch.float32) - size // 2) ** 2) / (2 * sigma**2))
    return g / g.sum()  # (size,)


def ssim_map(a: torch.Tensor, b: torch.Tensor, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-pixel SSIM (N, C, H', W') of two batches of frames; windows stay inside the frame."""
    a, b = _frames(a), _frames(b)
    n, c, h, w = a.shape
    win = min(window, h, w) | 1  # small frames get a smaller odd window
    g = _gauss(win, sigma, a.device)
    kx = g.view(1, 1, 1, win).expand(c, 1, 1, win)
    ky = g.view(1, 1, win, 1).expand(c, 1, win, 1)

    def blur(v: torch.Tensor) -> torch.Tensor:  # separable Gaussian, valid region only
        return F.conv2d(F.conv2d(v, kx, groups=c), ky, groups=c)

    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    c1, c2 = 0.01**2, 0.03**2
    return ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))


def ssim(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean SSIM of two clips or frame batches in [-1, 1] (1 = identical)."""
    return ssim_map(a, b).mean()


def psnr(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """PSNR in dB of two tensors in [-1, 1], on the [0, 1] scale (clipped first, as pixels are)."""
    mse = ((a.float().clamp(-1, 1) - b.float().clamp(-1, 1)) * 0.5).pow(2).mean()
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


def kl_divergence(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)), averaged over latent elements."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()


class PatchDiscriminator(nn.Module):
    """A small per-frame PatchGAN (pix2pix) for the optional adversarial loss."""

    def __init__(self, channels: int = 3, width: int = 32, layers: int = 3) -> None:
        super().__init__()
        mods: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2)]
        c = width
        for _ in range(layers - 1):
            mods += [nn.Conv2d(c, c * 2, 4, 2, 1), nn.GroupNorm(8, c * 2), nn.LeakyReLU(0.2)]
            c *= 2
        mods.append(nn.Conv2d(c, 1, 3, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B*T, 1, h, w) for clips (B, C, T, H, W) in [-1, 1]."""
        return self.net(rearrange(x, "b c t h w -> (b t) c h w"))  # (B*T, 1, h, w)


def hinge_d_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator hinge loss."""
    return F.relu(1.0 - real_logits).mean() + F.relu(1.0 + fake_logits).mean()


def generator_adv_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator side of the hinge GAN loss."""
    return -fake_logits.mean()
