"""3D rotary position embedding over (t, h, w) for the DiT's spacetime tokens.

RoPE (Su et al., RoFormer) extended to video as in Wan 2.1: the head width is split over the three axes.
Letters: N tokens, hd head width.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


def grid_coords(grid: tuple[int, int, int], device: torch.device | str = "cpu") -> Tensor:
    """The (t, h, w) index of every token of a patch grid, in token order: (N, 3) long."""
    axes = [torch.arange(n, device=device) for n in grid]
    return torch.stack(torch.meshgrid(*axes, indexing="ij"), dim=-1).reshape(-1, 3)  # (N, 3)


class RotaryEmbedding3D(nn.Module):
    """3D RoPE: the head width is split over (t, h, w) as in Wan (t gets the remainder, h and w 1/3 each).

    Rotations are cached per patch grid and device, so a sampling loop computes them once.
    """

    def __init__(self, head_dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        hw = 2 * (head_dim // 6)
        self.split = (head_dim - 2 * hw, hw, hw)  # widths for t, h, w; each even
        self.theta = theta
        self._cache: dict[tuple, Tensor] = {}

    def _inv_freq(self, width: int, device) -> Tensor:
        return 1.0 / self.theta ** (torch.arange(0, width, 2, device=device, dtype=torch.float64) / width)

    def from_coords(self, coords: Tensor) -> Tensor:
        """Rotations exp(i angle) (N, hd/2), complex64, for tokens at coords (N, 3)."""
        angles = torch.cat(  # (N, hd/2)
            [coords[:, i, None].double() * self._inv_freq(w, coords.device) for i, w in enumerate(self.split)],
            dim=-1,
        )
        return torch.polar(torch.ones_like(angles), angles).to(torch.complex64)

    def for_grid(self, grid: tuple[int, int, int], device) -> Tensor:
        key = (grid, str(device))
        if key not in self._cache:
            if len(self._cache) >= 64:  # bounded: training over many sizes must not grow it forever
                self._cache.clear()
            self._cache[key] = self.from_coords(grid_coords(grid, device))
        return self._cache[key]


def apply_rope(x: Tensor, freqs: Tensor) -> Tensor:
    """Rotate pairs (x_2i, x_2i+1) of x (..., N, hd) by freqs (N, hd/2) complex: one complex multiply."""
    xc = torch.view_as_complex(x.float().unflatten(-1, (-1, 2)))  # (..., N, hd/2)
    return torch.view_as_real(xc * freqs).flatten(-2)  # (..., N, hd)
