"""Pixels to detections for the world's analyzer: background model, object blobs, speck points.

Everything here is per frame and vectorized over the whole clip; `kino.world.analyze` links the
detections into tracks and names what they do. Letters: T frames, H, W canvas, K palette colors,
N foreground pixels, D detections, P speck points.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kino.world.spec import BACKGROUND_STOPS, PALETTE, Background, Color

COLORS: tuple[Color, ...] = tuple(PALETTE)
_HARMONICS = (2, 3, 4, 5, 6)


@dataclass
class Detections:
    """Every object blob of every frame, as flat arrays of length D (one row per blob)."""

    t: np.ndarray  # (D,) frame index
    color: np.ndarray  # (D,) index into COLORS
    area: np.ndarray  # (D,) sub-pixel area (sum of coverage)
    x: np.ndarray  # (D,) centroid, pixels (pixel (i, j) has its centre at (j + 0.5, i + 0.5))
    y: np.ndarray  # (D,)
    elong: np.ndarray  # (D,) sqrt(minor / major variance): 1 for regular shapes, 0.65 for the rhombus
    inertia: np.ndarray  # (D,) 2 pi (var_x + var_y) / area: 1 for a disc, larger when spread out
    harm: np.ndarray  # (D, len(_HARMONICS)) complex angular harmonics of the mass about the centroid
    box: np.ndarray  # (D, 4) x0, y0, x1, y1 of the pixels with coverage > 0.3
    edge: np.ndarray  # (D,) bool: the blob touches the frame's border
    touch: np.ndarray  # (D,) bool: the blob's box meets another blob's box (one may hide part of the other)

    def __len__(self) -> int:
        return len(self.t)


def frame_profiles(f: np.ndarray, near: np.ndarray) -> np.ndarray:
    """Background color per frame and row (T, H, 3): the median of the row's non-palette pixels.

    The world's backgrounds vary only along y, so a row median ignores objects, specks and stars;
    pixels near a palette color are left out first (objects), unless too few pixels remain (a
    background that itself is close to a palette color, like white).
    """
    T, H, W, _ = f.shape
    keep = ~near  # (T, H, W)
    n = keep.sum(2)  # (T, H)
    vals = np.where(keep[..., None], f, np.inf)  # (T, H, W, 3)
    srt = np.sort(vals, axis=2)  # (T, H, W, 3), non-palette pixels first
    idx = np.clip((n - 1) // 2, 0, W - 1)  # (T, H)
    excl = np.take_along_axis(srt, idx[:, :, None, None].repeat(3, -1), axis=2)[:, :, 0]  # (T, H, 3)
    full = np.median(f, axis=2)  # (T, H, 3)

    # keep the candidate that more of the row's pixels agree with (a row crossing an object's
    # anti-aliased edge has many non-palette pixels that are not background either)
    def support(c: np.ndarray) -> np.ndarray:
        return (((f - c[:, :, None]) ** 2).sum(-1) < 25.0**2).sum(2)  # (T, H)

    sup_e, sup_f = support(excl), support(full)
    use_excl = (n >= 4) & (sup_e > sup_f)
    prof = np.where(use_excl[..., None], excl, full)  # (T, H, 3)
    # No background of the world is a palette color (white is the exception the sampler keeps
    # white objects off), so a row whose estimate is one is a row an object covers: fill it in
    # from the rows above and below.
    pal = np.array([PALETTE[c] for c in COLORS if c != Color.WHITE], np.float32)  # (K-1, 3)
    on_pal = (((prof[:, :, None] - pal) ** 2).sum(-1) < 30.0**2).any(-1)  # (T, H)
    bad = on_pal | (np.where(use_excl, sup_e, sup_f) < max(3, W // 10))
    ys = np.arange(H)
    for t in np.nonzero(bad.any(1) & ~bad.all(1))[0]:
        good = ~bad[t]
        for c in range(3):
            prof[t, ~good, c] = np.interp(ys[~good], ys[good], prof[t, good, c])
    return prof


def background_profiles(height: int) -> dict[Background, np.ndarray]:
    """The world's backgrounds as row profiles (H, 3) at zoom 1, from BACKGROUND_STOPS."""
    ys = (np.arange(height) + 0.5) / height  # (H,)
    out = {}
    for bg, stops in BACKGROUND_STOPS.items():
        pos = np.array([s[0] for s in stops])
        rgb = np.array([s[1] for s in stops], np.float32)  # (S, 3)
        prof = np.stack([np.interp(ys, pos, rgb[:, c]) for c in range(3)], -1)  # (H, 3)
        if len(pos) > 1 and np.any(np.diff(pos) == 0):  # a hard step (GRASS's horizon): right side wins
            step = pos[np.argmax(np.diff(pos) == 0)]
            below = ys >= step
            i = int(np.argmax(np.diff(pos) == 0)) + 1
            prof[below] = np.stack([np.interp(ys[below], pos[i:], rgb[i:, c]) for c in range(3)], -1)
        out[bg] = prof.astype(np.float32)
    return out


def detect(frames: np.ndarray, foreground: float, palette_near: float, min_area: float):
    """Background profiles (T, H, 3), object detections and the foreground mask (T, H, W) of a clip."""
    from scipy import ndimage

    f = frames.astype(np.float32)  # (T, H, W, 3)
    T, H, W, _ = f.shape
    pal = np.array([PALETTE[c] for c in COLORS], np.float32)  # (K, 3)
    # squared distance to each palette color as |f|^2 - 2 f.p + |p|^2: one matmul, no (T, H, W, K, 3)
    d2 = np.maximum((f * f).sum(-1, keepdims=True) - 2 * f @ pal.T + (pal * pal).sum(-1), 0)  # (T, H, W, K)
    dmin = d2.min(-1)  # (T, H, W)
    near = dmin < palette_near**2
    prof = frame_profiles(f, near)  # (T, H, 3)
    bg = prof[:, :, None, :]  # (T, H, 1, 3)
    diff = np.sqrt(((f - bg) ** 2).sum(-1))  # (T, H, W)
    fg = diff > foreground
    # one label per blob per frame: the structure links pixels within a frame, never across frames
    struct = np.zeros((3, 3, 3), bool)
    struct[1] = True
    lab, n = ndimage.label(fg, structure=struct)  # (T, H, W)
    ti, yi, xi = np.nonzero(fg)  # (N,)
    comp = lab[ti, yi, xi] - 1  # (N,)
    pix = f[ti, yi, xi]  # (N, 3)
    pbg = prof[ti, yi]  # (N, 3)
    pd2 = d2[ti, yi, xi]  # (N, K)
    # coverage of each palette color at each pixel: projection on the segment background -> color.
    # A color is a candidate only where it stands out from the background and the pixel lies near
    # that segment (a dark speck on white is not "more white than white").
    # with u = pixel - background and s = color - background: proj = u.s / |s|^2, perp^2 = |u|^2 - proj^2 |s|^2
    u = pix - pbg  # (N, 3)
    us = u @ pal.T - (u * pbg).sum(-1, keepdims=True)  # (N, K)
    seg2 = np.maximum(
        (pal * pal).sum(-1) - 2 * pbg @ pal.T + (pbg * pbg).sum(-1, keepdims=True), 1.0
    )  # (N, K)
    proj = us / seg2  # (N, K)
    perp2 = np.maximum((u * u).sum(-1, keepdims=True) - proj * us, 0)  # (N, K)
    cand = (seg2 > 40.0**2) & (proj > 0.15) & (proj < 1.35) & (perp2 < (0.5 * palette_near) ** 2)
    alpha_k = np.clip(proj, 0, 1) * cand  # (N, K)
    # a color is significant in a blob when enough of its pixels are close to that color
    votes = np.zeros((n, len(COLORS)), np.float32)  # (n, K)
    close = cand & (pd2 < palette_near**2)  # (N, K)
    ci, ck = np.nonzero(close)
    np.add.at(votes, (comp[ci], ck), alpha_k[ci, ck])
    sig = votes >= np.maximum(2.0, 0.15 * votes.sum(1, keepdims=True))  # (n, K)
    pd2 = np.where(cand, pd2, np.inf)
    masked = np.where(sig[comp], pd2, np.inf)  # (N, K)
    color = masked.argmin(1)  # (N,)
    ok = np.isfinite(masked.min(1))
    alpha = alpha_k[np.arange(len(color)), color] * ok  # (N,)
    # H.264 keeps luma at full resolution and chroma at half: where the color and the background
    # differ enough in luma, coverage from luma alone is sharper (BT.601 weights)
    luma = np.array([0.299, 0.587, 0.114], np.float32)
    dy = pal[color] @ luma - pbg @ luma  # (N,)
    alpha_y = np.clip((pix @ luma - pbg @ luma) / np.where(np.abs(dy) > 1e-6, dy, 1.0), 0, 1)
    alpha = np.where(np.abs(dy) >= 50.0, alpha_y, alpha) * ok
    key = comp * len(COLORS) + color
    uniq, det = np.unique(key[ok], return_inverse=True)  # (D,), (N_ok,)
    ti, yi, xi, alpha = ti[ok], yi[ok], xi[ok], alpha[ok]
    D = len(uniq)
    px, py = xi + 0.5, yi + 0.5
    area = np.bincount(det, alpha, D)  # (D,)
    a_safe = np.maximum(area, 1e-6)
    cx = np.bincount(det, alpha * px, D) / a_safe  # (D,)
    cy = np.bincount(det, alpha * py, D) / a_safe
    dx, dy = px - cx[det], py - cy[det]  # (N,)
    sxx = np.bincount(det, alpha * dx * dx, D) / a_safe + 1 / 12  # + pixel's own variance
    syy = np.bincount(det, alpha * dy * dy, D) / a_safe + 1 / 12
    sxy = np.bincount(det, alpha * dx * dy, D) / a_safe
    tr, dt = sxx + syy, np.sqrt((sxx - syy) ** 2 + 4 * sxy**2)
    lmax, lmin = (tr + dt) / 2, np.maximum((tr - dt) / 2, 1e-9)
    r2 = dx * dx + dy * dy
    theta = np.arctan2(dy, dx)
    w = alpha * r2
    wsum = np.maximum(np.bincount(det, w, D), 1e-9)
    harm = np.stack(
        [(np.bincount(det, w * np.cos(k * theta), D) + 1j * np.bincount(det, w * np.sin(k * theta), D)) / wsum
         for k in _HARMONICS], 1)  # fmt: skip  # (D, len(_HARMONICS))
    solid = alpha > 0.3
    big = np.full(D, 1e9)
    x0 = _reduce_min(det[solid], xi[solid], D, big)
    y0 = _reduce_min(det[solid], yi[solid], D, big)
    x1 = -_reduce_min(det[solid], -xi[solid], D, big)
    y1 = -_reduce_min(det[solid], -yi[solid], D, big)
    dt_ = np.zeros(D, np.int64)
    dt_[det] = ti
    keep = area >= min_area
    dets = Detections(
        t=dt_, color=(uniq % len(COLORS)).astype(np.int64), area=area, x=cx, y=cy,
        elong=np.sqrt(lmin / np.maximum(lmax, 1e-9)), inertia=2 * math.pi * tr / a_safe,
        harm=harm, box=np.stack([x0, y0, x1 + 1, y1 + 1], 1),
        edge=(x0 <= 1) | (y0 <= 1) | (x1 >= W - 2) | (y1 >= H - 2), touch=np.zeros(D, bool),
    )  # fmt: skip
    dets = _select(dets, keep)
    dets = _select(dets, np.lexsort((dets.x, dets.t)))
    same = dets.t[:, None] == dets.t[None, :]  # (D, D); D is a few per frame
    b = dets.box
    meet = (b[:, None, 0] <= b[None, :, 2] + 2) & (b[None, :, 0] <= b[:, None, 2] + 2) & (
        b[:, None, 1] <= b[None, :, 3] + 2) & (b[None, :, 1] <= b[:, None, 3] + 2)  # fmt: skip
    dets.touch = (same & meet & ~np.eye(len(dets), dtype=bool)).any(1)
    return prof, dets, fg, diff


def _reduce_min(idx: np.ndarray, val: np.ndarray, n: int, fill: np.ndarray) -> np.ndarray:
    """Per-group minimum of val (groups idx in [0, n)); fill where a group is empty."""
    out = fill.copy()
    if len(idx):
        order = np.argsort(idx, kind="stable")
        idx_s, val_s = idx[order], val[order]
        starts = np.flatnonzero(np.r_[True, idx_s[1:] != idx_s[:-1]])
        out[idx_s[starts]] = np.minimum.reduceat(val_s, starts)
    return out


def _select(d: Detections, sel) -> Detections:
    return Detections(**{k: v[sel] for k, v in d.__dict__.items()})


def speck_points(diff: np.ndarray, fg: np.ndarray, dets: Detections, strength: float = 18.0) -> np.ndarray:
    """Sub-pixel positions (P, 3) as (t, x, y) of the world's specks and stars: small bright residues.

    Objects (their blobs, grown by two pixels) are left out, so only the world-anchored background
    texture remains; the camera's motion is read from how these points move.
    """
    from scipy import ndimage

    T, H, W = diff.shape
    objmask = np.zeros_like(fg)
    for t, (x0, y0, x1, y1) in zip(dets.t, dets.box.astype(int), strict=True):
        objmask[t, max(0, y0 - 3) : y1 + 3, max(0, x0 - 3) : x1 + 3] = True
    res = np.where(objmask, 0.0, diff)  # (T, H, W)
    res = ndimage.gaussian_filter(res, sigma=(0, 0.8, 0.8))
    # a speck must stand out of the clip's noise (generated video is grainy): robust noise level
    bgvals = res[~objmask]
    med = float(np.median(bgvals)) if bgvals.size else 0.0
    mad = float(np.median(np.abs(bgvals - med))) if bgvals.size else 0.0
    peak = (res == ndimage.maximum_filter(res, size=(1, 5, 5))) & (res > max(strength * 0.5, med + 10 * mad))
    peak[:, :1] = peak[:, -1:] = False
    peak[:, :, :1] = peak[:, :, -1:] = False
    t, y, x = np.nonzero(peak)  # (P,)
    # sub-pixel: parabola through the peak and its neighbours on each axis
    c = res[t, y, x]
    ox = _parabola(res[t, y, x - 1], c, res[t, y, x + 1])
    oy = _parabola(res[t, y - 1, x], c, res[t, y + 1, x])
    return np.stack([t, x + 0.5 + ox, y + 0.5 + oy], 1)  # (P, 3)


def _parabola(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    den = a - 2 * b + c
    return np.clip(np.where(np.abs(den) > 1e-6, 0.5 * (a - c) / np.where(den == 0, 1, den), 0.0), -0.5, 0.5)
