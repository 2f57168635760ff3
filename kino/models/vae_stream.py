"""Encode and decode clips of any length and size in bounded memory.

Letters: B batch, C channels, Z latent channels, T frames, H height, W width.

Time: a clip is cut into its first frame, then chunks of `chunk_frames`; each causal conv keeps
in a per-stream cache the frames its next window needs (see vae_blocks), so the chunked result
equals the whole-clip result to float error. Space: frames larger than `tile_size` are cut into
overlapping tiles, each with its own causal cache; tile outputs are blended with linear ramps
over the overlap (the tiling of the diffusers/CogVideoX VAEs). Time is the outer loop and tiles
the inner one, so a stream holds one chunk of one tile's activations plus the causal caches
(a few frames of features per layer), whatever the clip's length.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import torch

from kino.errors import InputError

if TYPE_CHECKING:  # vae.py imports this module; the model is only a parameter here
    from kino.models.vae import CausalVAE


def iter_chunks(x: torch.Tensor, first: int, size: int) -> Iterable[torch.Tensor]:
    """Cut (B, C, T, ...) along T into the first `first` frames, then pieces of `size`."""
    if x.shape[2] > 0:
        yield x[:, :, :first]
    for s in range(first, x.shape[2], size):
        yield x[:, :, s:s + size]


def _chain(first: torch.Tensor, rest: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
    yield first
    yield from rest


def _rechunk(source: torch.Tensor | Iterable[torch.Tensor], first: int, size: int) -> Iterator[torch.Tensor]:
    """Pieces (B, C, t, H, W) of any lengths -> the first `first` frames, then `size` at a time."""
    if isinstance(source, torch.Tensor):
        yield from iter_chunks(source, first, size)
        return
    buf: list[torch.Tensor] = []
    have, need = 0, first
    for piece in source:
        buf.append(piece)
        have += piece.shape[2]
        while have >= need:
            cat = torch.cat(buf, dim=2)  # (B, C, have, H, W)
            yield cat[:, :, :need]
            buf, have, need = [cat[:, :, need:]], have - need, size
    if have:
        yield torch.cat(buf, dim=2)


def chunk_frames_for(config, height: int, width: int) -> int:
    """Pixel frames per chunk for frames of this size: `chunk_frames` for frames up to a tile, fewer
    (down to `temporal_factor`) for larger frames, so a chunk holds about as many pixels as
    `chunk_frames` tiles whatever the frame size."""
    tf = config.temporal_factor
    fit = config.chunk_frames * config.tile_size**2 // (height * width) // tf * tf
    return max(tf, min(config.chunk_frames, fit))


def tile_starts(n: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of side `tile` (overlapping by `overlap`) that cover [0, n)."""
    if n <= tile:
        return [0]
    starts = list(range(0, n - tile, tile - overlap))
    return starts + [n - tile]


def _ramp(n: int, overlap: int, device: torch.device) -> torch.Tensor:
    """Weights (n,) rising linearly over `overlap` at both ends, 1 in the middle."""
    i = torch.arange(n, device=device, dtype=torch.float32)
    if overlap <= 0:
        return torch.ones(n, device=device)
    return torch.minimum(torch.minimum((i + 1) / (overlap + 1), (n - i) / (overlap + 1)), torch.ones(()))


class _Tiler:
    """Run `fn(tile, cache)` on overlapping tiles of each chunk and blend the outputs."""

    def __init__(self, height: int, width: int, tile: int, overlap: int, scale_num: int, scale_den: int):
        self.ys, self.xs = tile_starts(height, tile, overlap), tile_starts(width, tile, overlap)
        self.tile, self.overlap = tile, overlap
        self.num, self.den = scale_num, scale_den  # output pixels per input pixel = num / den
        self.caches: dict[tuple[int, int], dict] = {}

    def __call__(self, fn, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if len(self.ys) == 1 and len(self.xs) == 1:
            return fn(x, self.caches.setdefault((0, 0), {}))
        s = lambda v: v * self.num // self.den  # noqa: E731  input to output coordinates
        out = wsum = None
        ov = s(self.overlap)
        for y in self.ys:
            for x0 in self.xs:
                th, tw = min(self.tile, h - y), min(self.tile, w - x0)
                cache = self.caches.setdefault((y, x0), {})
                part = fn(x[..., y:y + th, x0:x0 + tw], cache)  # (B, C', t', h', w')
                if out is None:
                    out = part.new_zeros(*part.shape[:3], s(h), s(w))  # (B, C', t', H', W')
                    wsum = part.new_zeros(1, 1, 1, s(h), s(w))
                wt = _ramp(part.shape[-2], ov, part.device)[:, None] * _ramp(part.shape[-1], ov, part.device)
                oy, ox = s(y), s(x0)
                out[..., oy:oy + part.shape[-2], ox:ox + part.shape[-1]] += part * wt
                wsum[..., oy:oy + part.shape[-2], ox:ox + part.shape[-1]] += wt
        return out / wsum


@torch.no_grad()
def encode_stream(
    model: CausalVAE, source: torch.Tensor | Iterable[torch.Tensor]
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Yield the raw posterior (mean, logvar), each (B, Z, t', H/s, W/s), chunk by chunk.

    `source` is a clip (B, C, T, H, W) or an iterable of pieces of one (any lengths, T = 1 + t*k in all).
    """
    c = model.config
    tiler = None
    total = 0
    size = source.shape[-2:] if isinstance(source, torch.Tensor) else None
    if size is None:  # peek at the first piece for the frame size
        it = iter(source)
        first = next(it, None)
        if first is None:
            raise InputError("the clip has no frames; a clip needs 1 + 4k frames")
        size = first.shape[-2:]
        source = _chain(first, it)
    for chunk in _rechunk(source, 1, chunk_frames_for(c, *size)):
        total += chunk.shape[2]
        if chunk.shape[2] % c.temporal_factor and total > 1:
            raise InputError(f"{total} frames is not 1 + {c.temporal_factor}k; trim the clip to "
                             f"{total - chunk.shape[2] % c.temporal_factor} frames")
        if tiler is None:
            model.check_input(chunk)
            tiler = _Tiler(*chunk.shape[-2:], c.tile_size, c.tile_overlap, 1, c.spatial_factor)
        both = tiler(lambda x, cache: torch.cat(model.moments(x, cache), dim=1), chunk)  # (B, 2Z, t', h, w)
        yield tuple(both.chunk(2, dim=1))
    if tiler is None:
        raise InputError("the clip has no frames; a clip needs 1 + 4k frames")


@torch.no_grad()
def decode_stream(model: CausalVAE, latents: torch.Tensor | Iterable[torch.Tensor]) -> Iterator[torch.Tensor]:
    """Yield pixels (B, C, t, H, W), chunk by chunk, of a normalized latent or pieces of one."""
    c = model.config
    f = c.spatial_factor
    tiler = None
    size = latents.shape[-2:] if isinstance(latents, torch.Tensor) else None
    if size is None:
        it = iter(latents)
        first = next(it, None)
        if first is None:
            raise InputError("the latent has no frames")
        size = first.shape[-2:]
        latents = _chain(first, it)
    for z in _rechunk(latents, 1, chunk_frames_for(c, size[0] * f, size[1] * f) // c.temporal_factor):
        if tiler is None:
            tiler = _Tiler(*z.shape[-2:], c.tile_size // f, c.tile_overlap // f, f, 1)
        yield tiler(lambda v, cache: model.decode_raw(v, cache), model.denormalize(z))
    if tiler is None:
        raise InputError("the latent has no frames")
