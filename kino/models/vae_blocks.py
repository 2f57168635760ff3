"""Building blocks of the causal video VAE: causal 3D convolution with a streaming cache, norms,
residual blocks, down/up sampling, and the encoder and decoder they make.

Letters: B batch, C channels, T frames, H height, W width.

Causal in time: a frame's features depend on itself and earlier frames only. The convolution
pads on the left by replicating the first frame (the causal padding of the Wan, CogVideoX and
Open-Sora VAEs), so frame 0 is encoded from itself alone and an image is a 1-frame video.

Streaming: every block takes `cache`, a dict shared by all blocks of one stream (None: the clip
is whole). A causal conv keeps in it the input frames its next window still needs (the last
kernel - stride frames), so a clip cut into chunks gives exactly the result of the whole clip,
with no seams (Wan's feature cache does the same). Norms are per voxel over channels (an RMS
norm, as in Wan's VAE), never over time or space, so neither chunks nor tiles change them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

Cache = dict[nn.Module, torch.Tensor] | None


class CausalConv3d(nn.Module):
    """Conv3d, causal in time (left replicate padding or the stream's cache), 'same' in space."""

    def __init__(self, cin: int, cout: int, kernel: int = 3, stride: tuple[int, int] = (1, 1),
                 time_kernel: int | None = None) -> None:
        super().__init__()
        kt = kernel if time_kernel is None else time_kernel
        self.kt, self.st = kt, stride[0]
        self.conv = nn.Conv3d(cin, cout, (kt, kernel, kernel), stride=(stride[0], stride[1], stride[1]),
                              padding=(0, kernel // 2, kernel // 2))

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        # x: (B, C, T, H, W)
        if cache is not None and self in cache:
            past = cache[self]  # (B, C, t, H, W): input frames the next window still needs
        else:
            past = x[:, :, :1].expand(-1, -1, self.kt - 1, -1, -1)  # (B, C, kt-1, H, W)
        xp = torch.cat([past, x], dim=2) if self.kt > 1 else x  # (B, C, kt-1+T, H, W)
        out = self.conv(xp)  # (B, C', T', H', W')
        if cache is not None:
            cache[self] = xp[:, :, out.shape[2] * self.st:].detach().clone()
        return out


class RMSNorm(nn.Module):
    """RMS norm over channels at each voxel (no statistics across time or space)."""

    def __init__(self, channels: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C, T, H, W)
        rms = x.pow(2).mean(dim=1, keepdim=True).add(self.eps).rsqrt()  # (B, 1, T, H, W)
        return x * rms * self.scale.view(1, -1, 1, 1, 1)


class ResBlock(nn.Module):
    """norm, SiLU, causal conv, twice, plus a (1x1x1 when the width changes) skip."""

    def __init__(self, cin: int, cout: int, time_kernel: int = 3) -> None:
        super().__init__()
        self.norm1, self.conv1 = RMSNorm(cin), CausalConv3d(cin, cout, time_kernel=time_kernel)
        self.norm2, self.conv2 = RMSNorm(cout), CausalConv3d(cout, cout, time_kernel=time_kernel)
        self.skip = nn.Conv3d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), cache)
        h = self.conv2(F.silu(self.norm2(h)), cache)
        return self.skip(x) + h


class Downsample(nn.Module):
    """Strided causal conv: 2x in space and/or time. In time, 1 + 2k frames become 1 + k, and the
    first output frame sees only the first input frame (kept separate, as in CogVideoX's VAE)."""

    def __init__(self, cin: int, cout: int, time: bool, space: bool) -> None:
        super().__init__()
        self.conv = CausalConv3d(cin, cout, stride=(2 if time else 1, 2 if space else 1))

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        return self.conv(x, cache)  # (B, C', T', H', W') with T' = 1 + (T - 1) / 2 in time


class Upsample(nn.Module):
    """Causal conv to pt*ps*ps times the channels, then depth to time/space (a pixel shuffle).
    In time, the first latent frame gives one frame (its first copy is dropped): 1 + k -> 1 + 2k."""

    def __init__(self, cin: int, cout: int, time: bool, space: bool) -> None:
        super().__init__()
        self.pt, self.ps = (2 if time else 1), (2 if space else 1)
        self.conv = CausalConv3d(cin, cout * self.pt * self.ps * self.ps)

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        first = cache is None or self not in cache
        h = self.conv(x, cache)  # (B, C*pt*ps*ps, T, H, W)
        h = rearrange(h, "b (c pt ph pw) t h w -> b c (t pt) (h ph) (w pw)",
                      pt=self.pt, ph=self.ps, pw=self.ps)  # (B, C, T*pt, H*ps, W*ps)
        if cache is not None:
            cache[self] = torch.empty(0)  # marks "the first frame has passed"
        if first and self.pt > 1:
            h = h[:, :, self.pt - 1:]  # (B, C, 1 + (T-1)*pt, H', W')
        return h


def _levels(spatial_downs: int, temporal_downs: int) -> list[tuple[bool, bool]]:
    """(time, space) of each down step: space first at every step, time at the deepest steps."""
    n = max(spatial_downs, temporal_downs)
    return [(i >= n - temporal_downs, i < spatial_downs) for i in range(n)]


class Encoder(nn.Module):
    """Patched pixels (B, C*p*p, T, H/p, W/p) -> posterior moments (B, 2*Z, T', H/f, W/f)."""

    def __init__(self, cin: int, widths: tuple[int, ...], blocks: int, zc: int,
                 levels: list[tuple[bool, bool]], first_time_kernel: int) -> None:
        super().__init__()
        self.conv_in = CausalConv3d(cin, widths[0], time_kernel=first_time_kernel)
        self.stages = nn.ModuleList()
        for i, (time, space) in enumerate(levels):
            tk = first_time_kernel if i == 0 else 3
            mods = [ResBlock(widths[i], widths[i], tk) for _ in range(blocks)]
            mods.append(Downsample(widths[i], widths[i + 1], time, space))
            self.stages.append(nn.ModuleList(mods))
        self.mid = ResBlock(widths[-1], widths[-1])
        self.norm_out = RMSNorm(widths[-1])
        self.conv_out = CausalConv3d(widths[-1], 2 * zc)

    def forward(self, x: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        h = self.conv_in(x, cache)
        for stage in self.stages:
            for m in stage:
                h = m(h, cache)
        h = self.mid(h, cache)
        return self.conv_out(F.silu(self.norm_out(h)), cache)  # (B, 2*Z, T', H', W')


class Decoder(nn.Module):
    """Latent (B, Z, T', H/f, W/f) -> patched pixels (B, C*p*p, T, H/p, W/p)."""

    def __init__(self, cout: int, widths: tuple[int, ...], blocks: int, zc: int,
                 levels: list[tuple[bool, bool]], first_time_kernel: int) -> None:
        super().__init__()
        self.conv_in = CausalConv3d(zc, widths[-1])
        self.mid = ResBlock(widths[-1], widths[-1])
        self.stages = nn.ModuleList()
        for i in reversed(range(len(levels))):
            time, space = levels[i]
            tk = first_time_kernel if i == 0 else 3
            mods: list[nn.Module] = [Upsample(widths[i + 1], widths[i], time, space)]
            mods += [ResBlock(widths[i], widths[i], tk) for _ in range(blocks)]
            self.stages.append(nn.ModuleList(mods))
        self.norm_out = RMSNorm(widths[0])
        self.conv_out = CausalConv3d(widths[0], cout, time_kernel=first_time_kernel)

    def forward(self, z: torch.Tensor, cache: Cache = None) -> torch.Tensor:
        h = self.mid(self.conv_in(z, cache), cache)
        for stage in self.stages:
            for m in stage:
                h = m(h, cache)
        return self.conv_out(F.silu(self.norm_out(h)), cache)  # (B, C*p*p, T, H/p, W/p)
