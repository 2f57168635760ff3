"""Continuity measures of generated videos: PSNR, jumps at seams against ordinary frame steps, and
whether the main object keeps its identity (kino.eval.conditioning, benchmarks/continuity.py, tests).

Frames are uint8 arrays (T, H, W, 3); a seam is the index of the first frame after a boundary (where
generated frames meet given ones, or a new window or shot begins).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from kino.errors import InputError


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio (dB) of two uint8 arrays of one shape; inf when equal."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * float(np.log10(255.0**2 / mse))


@dataclass(frozen=True)
class SeamReport:
    """Jumps at seams against the jumps between ordinary consecutive frames (ratio 1: a seam is invisible).

    position: mean centroid displacement of the analyzer's tracked objects, fraction of min(H, W);
    color: mean absolute RGB change of the frame (0-255)."""

    position_seam: float | None
    position_ordinary: float | None
    color_seam: float
    color_ordinary: float

    @property
    def position_ratio(self) -> float | None:
        if self.position_seam is None or not self.position_ordinary:
            return None
        return self.position_seam / self.position_ordinary

    @property
    def color_ratio(self) -> float:
        return self.color_seam / max(self.color_ordinary, 1e-6)


def frame_jumps(frames: np.ndarray, fps: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """Per frame step t-1 -> t (T - 1 values): object position jump (NaN where no object is seen in both
    frames) and mean absolute color change."""
    from kino.world.analyze import analyze

    a = analyze(frames, fps)
    side = float(min(frames.shape[1:3]))
    color = np.abs(np.diff(frames.astype(np.float32), axis=0)).mean(axis=(1, 2, 3))  # (T-1,)
    pos = np.full(len(frames) - 1, np.nan)
    for t in range(1, len(frames)):
        d = [np.hypot(o.track[t][0] - o.track[t - 1][0], o.track[t][1] - o.track[t - 1][1]) / side
             for o in a.objects if o.track[t] is not None and o.track[t - 1] is not None]
        if d:
            pos[t - 1] = float(np.mean(d))
    return pos, color


def seam_report(frames: np.ndarray, seams: Sequence[int], fps: float = 8.0) -> SeamReport:
    """Compare the step into each seam frame (seam - 1 -> seam) with all other steps. A seam equal to
    len(frames) is the loop's closure: the step from the last frame back to the first."""
    if any(s == len(frames) for s in seams):
        frames = np.concatenate([frames, frames[:1]])
    pos, color = frame_jumps(frames, fps)
    at = np.zeros(len(frames) - 1, dtype=bool)
    for s in seams:
        if 1 <= s < len(frames):
            at[s - 1] = True
    if not at.any() or at.all():
        raise InputError("a seam report needs at least one seam and one ordinary frame step")

    def mean(x: np.ndarray) -> float | None:
        x = x[~np.isnan(x)]
        return float(x.mean()) if len(x) else None

    return SeamReport(mean(pos[at]), mean(pos[~at]), float(color[at].mean()), float(color[~at].mean()))


def identity_consistency(frames: np.ndarray, fps: float = 8.0) -> float | None:
    """Share of whole seconds in which the main object (the one seen longest) has the color, shape and size
    it has most often over the whole video (labels the analyzer could not read in a second, e.g. the shape
    of a clipped view, are skipped); None when no object is seen."""
    from kino.world.analyze import analyze

    a = analyze(frames, fps)
    if not a.objects:
        return None
    o = max(a.objects, key=lambda ob: ob.seen)
    per = max(1, round(fps))
    side = float(min(frames.shape[1:3]))
    sizes = [None if ar is None else round(float(np.sqrt(ar)) / side * 8) for ar in o.area]  # coarse size bins

    def mode(values):
        vals = [v for v in values if v is not None]
        return max(set(vals), key=vals.count) if vals else None

    want = (mode(o.colors), mode(o.shapes), mode(sizes))
    ok = []
    for s in range(0, len(frames) - per + 1, per):
        got = (mode(o.colors[s:s + per]), mode(o.shapes[s:s + per]), mode(sizes[s:s + per]))
        seen = [(g, w) for g, w in zip(got, want, strict=True) if g is not None]
        if seen:  # a second in which the object is hidden or clipped says nothing about its identity
            ok.append(all(g == w for g, w in seen))
    return sum(ok) / len(ok) if ok else None
