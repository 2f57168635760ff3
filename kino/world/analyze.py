"""The world's analyzer: what is in a clip, read from its frames alone (no spec, no learned model).

`analyze(frames, fps)` recovers the background, the objects (color, shape, size class, per-frame
track, motion class), the camera motion and the events of a clip of kino's procedural world. It
is the referee of text-to-video: `kino.world.score` compares an `Analysis` with what a prompt asked.

How (numpy/scipy only, vectorized over frames; letters: T frames, H, W canvas, K palette colors):
1. Background: per frame and row, the median color of the pixels that are not near a palette
   color (the world's backgrounds vary only vertically: flat, gradients, a horizon line); the
   first frame's profile is matched to BACKGROUND_STOPS, and darkening toward the NIGHT look over
   the clip is the day_to_night event.
2. Objects: pixels far from the background are foreground; connected components per frame are
   split by palette color (objects are flat PALETTE colors), with a soft coverage alpha from the
   projection of each pixel on its (background -> palette color) segment, so that areas and
   centroids are sub-pixel. Tiny components are the world's specks and stars.
3. Shape from rotation-invariant moments: elongation (a diamond is a 0.65 rhombus), and the
   angular harmonics |M_k| of the mass around the centroid (k=3 triangle, 4 square, 5 star;
   circles have none). Size class from the area at the first frame where the object is whole.
4. Tracks: detections are linked frame to frame by an optimal assignment on position and color;
   a lost track waits (occlusion, leaving the frame) and is picked up by a detection of its color.
5. Camera: the specks and stars are anchored in the world, so their frame-to-frame displacements
   fit a global pan and zoom (d = b + a * (p - centre)); object tracks are compensated for it
   before their motion is classified (so an object still in a pan is "still").
6. Events: color change of a track (collide), a track that leaves through an edge and comes back
   (leave_return), a track that vanishes inside another object's box and re-emerges (occlude).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from kino.errors import InputError
from kino.world import segment
from kino.world.segment import COLORS, Detections
from kino.world.spec import (
    SIZE_FRACTION,
    Background,
    Camera,
    Color,
    EventKind,
    Motion,
    Shape,
    Size,
)

# Area of each shape in units of r^2, r its half-extent (the renderer's HALF_WIDTH/CIRCUM geometry):
# circle pi, square 2x2, triangle base 2 x height 2 / 2, star 5 * R * 0.45R * sin 36deg, rhombus 2 * 0.65.
SHAPE_AREA = {Shape.CIRCLE: math.pi, Shape.SQUARE: 4.0, Shape.TRIANGLE: 2.0, Shape.STAR: 1.3225,
              Shape.DIAMOND: 1.3}  # fmt: skip


@dataclass(frozen=True)
class AnalyzerConfig:
    """Thresholds of the analyzer, in 0-255 RGB units and fractions of min(W, H)."""

    foreground: float = 45.0  # RGB distance from the background model that makes a pixel foreground
    palette_near: float = 60.0  # RGB distance to a palette color that counts as that color
    min_area: float = 0.5  # smallest object, fraction of the area of a small star shrunk x0.6
    link: float = 0.25  # largest jump of a track between frames it is seen in, fraction of min(W, H)

    def __post_init__(self) -> None:
        for name in ("foreground", "palette_near", "min_area", "link"):
            if getattr(self, name) <= 0:
                raise InputError(f"analyzer {name} must be positive, got {getattr(self, name)}")


# ----------------------------------------------------------------------------- results


@dataclass
class SeenObject:
    """One tracked object. Per-frame lists hold None where the object is not seen."""

    color: Color
    shape: Shape
    size: Size
    motion: Motion
    track: list[tuple[float, float] | None]  # centroid (x, y) in pixels, per frame
    area: list[float | None]  # pixels (sub-pixel coverage), per frame
    colors: list[Color | None]  # color label, per frame
    shapes: list[Shape | None]  # shape label, per frame (None where clipped by an edge or occluded)

    @property
    def seen(self) -> int:
        return sum(p is not None for p in self.track)


@dataclass
class SeenEvent:
    kind: EventKind
    subject: int
    other: int | None = None
    frame: int = 0


@dataclass
class Analysis:
    """What the analyzer sees in a clip; `to_dict` gives plain JSON types."""

    width: int
    height: int
    fps: float
    num_frames: int
    background: Background
    count: int
    objects: list[SeenObject]
    camera: Camera
    events: list[SeenEvent]
    pan: list[float] = field(default_factory=list)  # per frame: how far the scene slid right, pixels
    zoom: list[float] = field(default_factory=list)  # per frame: magnification about the centre

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def summary(self) -> str:
        """One line: background, camera, each object and the events."""
        objs = "; ".join(f"{o.size} {o.color} {o.shape} {o.motion}" for o in self.objects) or "no objects"
        ev = ", ".join(e.kind.value for e in self.events) or "no events"
        return f"{self.count} object(s): {objs}; background {self.background}; camera {self.camera}; {ev}"


def _plain(x):
    if isinstance(x, str):
        return str(x)
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x


# ----------------------------------------------------------------------------- analysis


def analyze(frames: np.ndarray, fps: float, config: AnalyzerConfig | None = None) -> Analysis:
    """Read a clip of the world from its frames (T, H, W, 3) uint8 alone."""
    cfg = config or AnalyzerConfig()
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]  # (1, H, W, 3): one image
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise InputError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
    if not fps > 0:
        raise InputError(f"fps must be positive, got {fps}")
    T, H, W, _ = frames.shape
    m = min(H, W)
    smallest = SHAPE_AREA[Shape.STAR] * (SIZE_FRACTION[Size.SMALL] * 0.6 * m) ** 2
    prof, dets, fg, diff = segment.detect(frames, cfg.foreground, cfg.palette_near, cfg.min_area * smallest)
    background, darkening = _background(prof)
    pan, zoom = _camera_track(segment.speck_points(diff, fg, dets), T, W, H)
    camera = _camera_class(pan, zoom, W)
    merged: set[int] = set()  # detections that hold two objects of one color
    tracks = _link(dets, T, m, cfg.link, merged)
    objects = [_describe(dets, tr, H, W, fps, pan, zoom, camera, merged) for tr in tracks]
    events = _events(dets, tracks, objects, darkening, background, H, W, merged)
    return Analysis(
        width=W, height=H, fps=float(fps), num_frames=T, background=background, count=len(objects),
        objects=objects, camera=camera, events=events, pan=[float(p) for p in pan], zoom=[float(z) for z in zoom],
    )  # fmt: skip


# ----------------------------------------------------------------------------- background


def _background(prof: np.ndarray) -> tuple[Background, float]:
    """The background kind of the first frame and how far the clip darkens toward NIGHT (0..1)."""
    T, H, _ = prof.shape
    refs = segment.background_profiles(H)
    first = prof[0]  # (H, 3)
    dist = {bg: float(np.median(np.linalg.norm(first - ref, axis=-1))) for bg, ref in refs.items()}
    background = min(dist, key=dist.get)
    if T < 3 or background == Background.NIGHT:
        return background, 0.0
    # day_to_night blends the day look toward the NIGHT look: solve last = (1 - s) first + s night
    night = refs[Background.NIGHT]
    last = np.median(prof[-max(1, T // 8) :], axis=0)  # (H, 3)
    d = (night - first).ravel()
    s = float(np.dot((last - first).ravel(), d) / max(np.dot(d, d), 1e-6))
    return background, s


# ----------------------------------------------------------------------------- camera


def _camera_track(points: np.ndarray, T: int, W: int, H: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame pan (pixels the scene slid right) and zoom (magnification) from speck displacements.

    Between consecutive frames each speck moves by d = b + a (p - c): b a pan, a a zoom rate about
    the frame centre c. Nearest-neighbour pairs give d; a trimmed least-squares fit gives (b_x, a).
    """
    from scipy.spatial import cKDTree

    c = np.array([W / 2, H / 2])
    step_b, step_a = np.zeros(T), np.zeros(T)
    by_t = [points[points[:, 0] == t, 1:] for t in range(T)]
    reach = 0.12 * min(W, H)
    for t in range(1, T):
        p0, p1 = by_t[t - 1], by_t[t]
        if len(p0) < 2 or len(p1) < 2:
            continue
        dist, j = cKDTree(p0).query(p1, distance_upper_bound=reach)
        ok = np.isfinite(dist)
        if ok.sum() < 2:
            continue
        q, d = p1[ok] - c, p1[ok] - p0[j[ok]]  # (n, 2), (n, 2)
        keep = np.ones(len(q), bool)
        for _ in range(3):  # fit d = (bx, by) + a q, drop the worst matches, refit
            A = np.zeros((2 * keep.sum(), 3))
            A[0::2, 0], A[1::2, 1] = 1, 1
            A[0::2, 2], A[1::2, 2] = q[keep, 0], q[keep, 1]
            sol, *_ = np.linalg.lstsq(A, d[keep].ravel(), rcond=None)
            err = np.linalg.norm(d - (sol[:2] + sol[2] * q), axis=1)
            thr = max(0.6, 2.5 * float(np.median(err[keep])))
            new = err <= thr
            if new.sum() < 2 or (new == keep).all():
                break
            keep = new
        step_b[t], step_a[t] = sol[0], sol[2]
    pan = np.cumsum(step_b)  # (T,)
    zoom = np.cumprod(1 + step_a)  # (T,)
    return pan, zoom


def _camera_class(pan: np.ndarray, zoom: np.ndarray, W: int) -> Camera:
    if len(pan) < 3:
        return Camera.STATIC
    total_pan = float(pan[-1] - pan[0]) / W
    log_zoom = float(np.log(max(zoom[-1], 1e-3) / max(zoom[0], 1e-3)))
    if abs(log_zoom) > 0.12 and abs(log_zoom) * 0.5 > abs(total_pan):
        return Camera.ZOOM_IN if log_zoom > 0 else Camera.ZOOM_OUT
    if abs(total_pan) > 0.08:
        return (
            Camera.PAN_LEFT if total_pan > 0 else Camera.PAN_RIGHT
        )  # the scene slides right: view moves left
    return Camera.STATIC


# ----------------------------------------------------------------------------- tracks


def _link(dets: Detections, T: int, m: int, link: float, merged: set[int]) -> list[np.ndarray]:
    """Detections linked over time: one (T,) array of detection indices (-1: not seen) per object.

    Frame by frame, an optimal assignment (Hungarian) matches tracks to detections on predicted
    position; a color change is allowed only in place (collide), and a track that was lost
    (occluded, out of frame) can be picked up anywhere by a detection of its own color.
    """
    from scipy.optimize import linear_sum_assignment

    starts = np.searchsorted(dets.t, np.arange(T + 1))
    tracks: list[np.ndarray] = []
    last: list[int] = []  # last detection of each track
    prev: list[int] = []  # the one before it, for a velocity
    for t in range(T):
        idx = np.arange(starts[t], starts[t + 1])
        cost = np.full((len(tracks), len(idx)), np.inf)
        for k, j in enumerate(last):
            gap = t - int(dets.t[j])
            px, py = dets.x[j], dets.y[j]
            dist = np.hypot(dets.x[idx] - px, dets.y[idx] - py) / m  # (n,) from where it was
            if gap == 1 and prev[k] >= 0 and dets.t[prev[k]] == t - 2:  # or where its velocity takes it
                px, py = 2 * px - dets.x[prev[k]], 2 * py - dets.y[prev[k]]
                dist = np.minimum(dist, np.hypot(dets.x[idx] - px, dets.y[idx] - py) / m)
            same = dets.color[idx] == dets.color[j]
            size = np.abs(np.log(np.maximum(dets.area[idx], 1) / max(dets.area[j], 1)))
            c = np.where(same & (dist < link * max(1, gap)), dist + 0.05 * size, np.inf)
            if gap > 1:  # lost for a while: its own color anywhere, the nearer the better
                c = np.where(same, np.minimum(c, 0.5 + 0.5 * dist), c)
            c = np.where(~same & (dist < 0.08) & (gap <= 2), 0.3 + dist + 0.1 * size, c)
            cost[k] = c
        matched = set()
        if len(tracks) and len(idx):
            big = 1e6
            rows, cols = linear_sum_assignment(np.where(np.isfinite(cost), cost, big))
            for r, c in zip(rows, cols, strict=True):
                if cost[r, c] < big:
                    if dets.area[idx[c]] > 1.5 * dets.area[last[r]]:  # a sudden jump: not its whole self
                        dets.touch[idx[c]] = True
                    tracks[r][t] = idx[c]
                    prev[r], last[r] = last[r], int(idx[c])
                    matched.add(c)
        # Two objects of one color that overlap make one blob (also a collision that turns the
        # subject into the other's color): a track seen last frame that found nothing shares the
        # blob that covers where it was, if that blob grew by about this track's area (a blob
        # that only hides it, in an occlusion, does not grow).
        owner = {int(tracks[r][t]): r for r in range(len(tracks)) if tracks[r][t] >= 0}
        for k, j in enumerate(last):
            if tracks[k][t] >= 0 or t - int(dets.t[j]) != 1 or not len(idx):
                continue
            for c in matched:
                d = idx[c]
                x0, y0, x1, y1 = dets.box[d]
                before = prev[owner[int(d)]] if int(d) in owner else -1
                grew = before >= 0 and dets.area[d] > dets.area[before] + 0.5 * dets.area[j]
                if grew and x0 - 1 <= dets.x[j] <= x1 + 1 and y0 - 1 <= dets.y[j] <= y1 + 1:
                    tracks[k][t] = d
                    prev[k], last[k] = last[k], int(d)
                    dets.touch[d] = True
                    merged.add(int(d))
                    break
        for c, j in enumerate(idx):
            if c not in matched:
                tr = np.full(T, -1)
                tr[t] = j
                tracks.append(tr)
                last.append(int(j))
                prev.append(-1)
    # a real object is seen in a good share of the clip with a sensible size; the rest is noise
    keep = []
    for tr in tracks:
        seen = tr[tr >= 0]
        if len(seen) >= max(1, min(3, T // 4)) or len(seen) >= 0.25 * T:
            if np.median(dets.area[seen]) >= 3.0:
                keep.append(tr)
    keep.sort(key=lambda tr: int(np.argmax(tr >= 0)))
    return keep


def _shape_of(dets: Detections, j: int) -> Shape:
    """Shape of one whole (unclipped) detection from its rotation-invariant moments.

    On clean renders |M3| is 0.55 for the triangle, |M5| 0.58 for the star, |M4| 0.29 for the
    square; the rhombus has elongation 0.65 and |M2| 0.4; a disc has none of them (below 0.04).
    The 3- and 5-fold harmonics are checked first: blur and H.264 stretch a small triangle or star
    more than they erase its harmonic.
    """
    h2, h3, h4, h5 = np.abs(dets.harm[j][:4])
    if h3 >= 0.3 and h3 > max(h4, h5):
        return Shape.TRIANGLE
    if h5 >= 0.3 and h5 > max(h3, h4):
        return Shape.STAR
    if dets.elong[j] < 0.8 or h2 > 0.25:
        return Shape.DIAMOND
    if max(h3, h4, h5) < 0.1:
        return Shape.CIRCLE
    return (Shape.TRIANGLE, Shape.SQUARE, Shape.STAR)[int(np.argmax([h3, h4, h5]))]


def _size_of(area: float, shape: Shape, zoom: float, m: int) -> Size:
    r = math.sqrt(max(area, 0.0) / SHAPE_AREA[shape]) / max(zoom, 1e-3) / m
    # boundaries at the geometric means of neighbouring SIZE_FRACTIONs
    lo = math.sqrt(SIZE_FRACTION[Size.SMALL] * SIZE_FRACTION[Size.MEDIUM])
    hi = math.sqrt(SIZE_FRACTION[Size.MEDIUM] * SIZE_FRACTION[Size.LARGE])
    return Size.SMALL if r < lo else Size.MEDIUM if r < hi else Size.LARGE


def _mode(values):
    vals = [v for v in values if v is not None]
    if not vals:
        return None
    uniq, counts = np.unique(np.array([str(v) for v in vals]), return_counts=True)
    best = uniq[np.argmax(counts)]
    return next(v for v in vals if str(v) == best)


def _describe(dets, tr, H, W, fps, pan, zoom, camera, merged) -> SeenObject:
    m = min(H, W)
    T = len(tr)
    seen = np.nonzero(tr >= 0)[0]
    j = tr[seen]
    area = dets.area[j]
    # whole views: not clipped by the border and not meeting another object (which may hide part
    # of it); when there are none, the largest views away from the border stand in
    whole = ~dets.edge[j] & ~dets.touch[j]
    if not whole.any():
        inside = ~dets.edge[j] if (~dets.edge[j]).any() else np.ones(len(j), bool)
        whole = inside & (area >= 0.9 * area[inside].max())
    shapes: list[Shape | None] = [None] * T
    for t, jj, w in zip(seen, j, whole, strict=True):
        if w:
            shapes[t] = _shape_of(dets, int(jj))
    colors: list[Color | None] = [None] * T
    track: list[tuple[float, float] | None] = [None] * T
    areas: list[float | None] = [None] * T
    for t, jj in zip(seen, j, strict=True):
        colors[t] = COLORS[int(dets.color[jj])]
        track[t] = (round(float(dets.x[jj]), 2), round(float(dets.y[jj]), 2))
        areas[t] = round(float(dets.area[jj]), 2)
    first_third = seen[: max(1, (len(seen) + 2) // 3)]
    color = _mode(colors[t] for t in first_third)
    shape = _mode(shapes) or Shape.CIRCLE
    w0 = seen[whole][0] if whole.any() else seen[0]
    size = _size_of(float(dets.area[tr[w0]]), shape, float(zoom[w0]), m)
    own = np.array([int(jj) not in merged for jj in j], bool)
    motion = (
        _motion(dets, tr, seen[own], whole[own], fps, m, H, W, pan, zoom, camera, shape)
        if own.any()
        else Motion.STILL
    )
    return SeenObject(color, shape, size, motion, track, areas, colors, shapes)


# ----------------------------------------------------------------------------- motion

_SYMMETRY = {Shape.TRIANGLE: 3, Shape.SQUARE: 4, Shape.STAR: 5, Shape.DIAMOND: 2}


def _motion(dets, tr, seen, whole, fps, m, H, W, pan, zoom, camera, shape) -> Motion:
    """Motion class of one track, after undoing the camera (so a still object in a pan is still)."""
    j = tr[seen]
    x, y, z = dets.x[j].copy(), dets.y[j].copy(), zoom[seen]
    if camera in (Camera.ZOOM_IN, Camera.ZOOM_OUT):
        x, y = W / 2 + (x - W / 2) / z, H / 2 + (y - H / 2) / z
    elif camera in (Camera.PAN_LEFT, Camera.PAN_RIGHT):
        x = x - pan[seen]
    # steps between consecutive frames; a view clipped by the border has a biased centroid, so
    # steps between unclipped views are used when there are enough of them
    consecutive = np.diff(seen) == 1
    unclipped = consecutive & ~dets.edge[j][1:] & ~dets.edge[j][:-1]
    if unclipped.sum() >= 2:
        consecutive = unclipped
    steps = np.stack([np.diff(x), np.diff(y)], 1)  # (n, 2) pixels per frame
    v, v_all = steps[consecutive], steps[np.diff(seen) == 1]
    v = v[np.linalg.norm(v, axis=1) < 0.3 * m]  # a linear mover wraps around the canvas in long clips
    path = float(np.linalg.norm(v, axis=1).sum()) / m if len(v) else 0.0
    reach = float(np.max(np.hypot(x - np.median(x), y - np.median(y)))) / m
    # growing / shrinking (only things that stay in place do): the linear size early vs late, from
    # the largest views clear of the border (the largest, so that a view partly hidden looks no smaller)
    inside = ~dets.edge[j]
    s = np.sqrt(dets.area[j][inside]) / z[inside]
    if reach < 0.12 and len(s) >= 2:
        n = max(1, len(s) // 3)
        g = float(np.max(s[-n:]) / max(np.max(s[:n]), 1e-6))
        if g > 1.2:
            return Motion.GROWING
        if g < 0.83:
            return Motion.SHRINKING
    # spinning: the phase of the shape's own angular harmonic turns steadily
    k = _SYMMETRY.get(shape)
    if k is not None and whole.sum() >= 3 and reach < 0.1:
        jw = tr[seen[whole]]
        phase = np.angle(dets.harm[jw, k - 2]) / k  # (n,)
        step = np.diff(phase)
        step = (step + math.pi / k) % (2 * math.pi / k) - math.pi / k  # wrapped to one symmetry period
        if abs(float(step.sum())) > math.radians(20) and np.mean(np.sign(step) == np.sign(step.sum())) > 0.7:
            return Motion.SPINNING
    if path < 0.06 or reach < 0.04:
        return Motion.STILL
    speed = np.linalg.norm(v, axis=1)
    moving = speed > 0.25 * np.median(speed[speed > 0]) if (speed > 0).any() else speed > 0
    ang = np.arctan2(v[moving, 1], v[moving, 0])
    turn = (np.diff(ang) + math.pi) % (2 * math.pi) - math.pi
    gone = bool(np.any(np.diff(seen) > 1))  # circling and falling things never leave the frame
    if len(turn) >= 3 and not gone:
        same = np.mean(np.sign(turn) == np.sign(turn.sum()))
        if same >= 0.75 and np.median(np.abs(turn)) > math.radians(6) and abs(turn.sum()) > math.radians(80):
            return Motion.CIRCLING
    vx, vy = v[moving, 0], v[moving, 1]
    sx, sy = float(np.abs(vx).sum()), float(np.abs(vy).sum())
    if sx < 0.25 * sy and len(vy) >= 3:
        # gravity: the fall accelerates (a steady positive second difference of y); a linear
        # mover's speed is constant, even when it leaves the frame and comes back reversed
        runs = (np.diff(seen) == 1) & ~dets.edge[j][1:] & ~dets.edge[j][:-1]  # unclipped views only
        ok2 = runs[:-1] & runs[1:]
        acc = np.diff(y, 2)[ok2] * fps**2 / m if ok2.any() else np.zeros(0)  # canvas per s^2
        if len(acc) >= 3 and np.median(acc) > 0.4 and not gone:
            return Motion.FALLING
    if min(sx, sy) < 0.3 * max(sx, sy):
        # the direction it set off in (a leave_return subject comes back the other way)
        major = v_all[:, 0] if sx >= sy else v_all[:, 1]
        major = major[np.abs(major) > 0.2 * np.abs(major).max()] if len(major) else major
        sign = np.sign(major[: max(1, min(3, len(major)))].sum())
        if sx >= sy:
            return Motion.LEFT if sign < 0 else Motion.RIGHT
        return Motion.UP if sign < 0 else Motion.DOWN
    return Motion.BOUNCING


# ----------------------------------------------------------------------------- events


def _events(dets, tracks, objects, darkening, background, H, W, merged) -> list[SeenEvent]:
    events: list[SeenEvent] = []
    for i, (tr, obj) in enumerate(zip(tracks, objects, strict=True)):
        seen = np.nonzero(tr >= 0)[0]
        cols = [obj.colors[t] for t in seen]
        # collide: the color changes once and stays changed
        n = max(2, len(cols) // 4)
        if len(cols) >= 4 and cols[0] == _mode(cols[:n]) and _mode(cols[-n:]) != _mode(cols[:n]):
            t = int(seen[next(ii for ii, c in enumerate(cols) if c != cols[0])])
            other = _nearest(dets, tracks, i, t)
            events.append(SeenEvent(EventKind.COLLIDE, i, other, t))
        # gaps: frames between the first and last sighting where the track is not seen, or seen
        # only as a sliver at the border (mostly out of the frame)
        j = tr[seen]
        full = np.median(dets.area[j][~dets.edge[j]]) if (~dets.edge[j]).any() else np.max(dets.area[j])
        sliver = dets.edge[j] & (dets.area[j] < 0.5 * full)
        seen = seen[~sliver]
        gaps = np.nonzero(np.diff(seen) > 1)[0]
        for g in gaps:
            a, b = tr[seen[g]], tr[seen[g + 1]]
            before, after = tr[seen[g] + 1], tr[seen[g + 1] - 1]  # the slivers, when seen
            at_edge = (dets.edge[a] or before >= 0) and (dets.edge[b] or after >= 0)
            if at_edge:
                events.append(SeenEvent(EventKind.LEAVE_RETURN, i, None, int(seen[g])))
            else:
                other = _covering(dets, tracks, i, int(seen[g]), a)
                if other is None:  # or where it went while unseen (a fast subject may vanish in one step)
                    other = _hidden_by(dets, tracks, i, int(seen[g]), int(seen[g + 1]), a, b)
                if other is not None:
                    events.append(SeenEvent(EventKind.OCCLUDE, i, other, int(seen[g])))
        # partly hidden: away from the border its area dips well below its whole size while it
        # overlaps another object, which itself stays whole (it is in front)
        for t, jj in zip(seen, tr[seen], strict=True):
            if dets.edge[jj] or dets.area[jj] >= 0.55 * full or jj in merged:
                continue
            other = _covering(dets, tracks, i, int(t), jj)
            if other is not None and not dets.edge[tracks[other][t]]:
                front = tracks[other][t]
                if dets.area[front] >= 0.8 * np.max(dets.area[tracks[other][tracks[other] >= 0]]):
                    events.append(SeenEvent(EventKind.OCCLUDE, i, other, int(t)))
                    break
    if darkening > 0.5 and background != Background.NIGHT:
        events.append(SeenEvent(EventKind.DAY_TO_NIGHT, 0, None, 0))
    # one event of each kind per subject
    out, keys = [], set()
    for e in events:
        if (e.kind, e.subject) not in keys:
            keys.add((e.kind, e.subject))
            out.append(e)
    return out


def _nearest(dets, tracks, i, t) -> int | None:
    j = tracks[i][t]
    best, who = math.inf, None
    for k, tr in enumerate(tracks):
        if k != i and tr[t] >= 0:
            d = math.hypot(dets.x[tr[t]] - dets.x[j], dets.y[tr[t]] - dets.y[j])
            if d < best:
                best, who = d, k
    return who


def _box_at(dets, tracks, i, t, x, y, pad) -> int | None:
    """The track other than i whose box at frame t, grown by pad/2, holds the point (x, y), if any."""
    for k, tr in enumerate(tracks):
        if k == i or t >= len(tr) or tr[t] < 0:
            continue
        x0, y0, x1, y1 = dets.box[tr[t]]
        if x0 - pad / 2 <= x <= x1 + pad / 2 and y0 - pad / 2 <= y <= y1 + pad / 2:
            return k
    return None


def _hidden_by(dets, tracks, i, t0, t1, a, b) -> int | None:
    """The track that covers where track i must have been between sightings a (frame t0) and b (t1)."""
    pad = math.sqrt(min(dets.area[a], dets.area[b]))
    for t in range(t0 + 1, t1):
        u = (t - t0) / (t1 - t0)  # straight between the two sightings
        x, y = (1 - u) * dets.x[a] + u * dets.x[b], (1 - u) * dets.y[a] + u * dets.y[b]
        k = _box_at(dets, tracks, i, t, x, y, pad)
        if k is not None:
            return k
    return None


def _covering(dets, tracks, i, t, j) -> int | None:
    """The track whose box (grown a little) holds detection j's centroid at frame t, if any."""
    for k, tr in enumerate(tracks):
        if k == i or tr[t] < 0:
            continue
        x0, y0, x1, y1 = dets.box[tr[t]]
        pad = 0.5 * math.sqrt(dets.area[j])
        if x0 - pad <= dets.x[j] + pad and dets.x[j] - pad <= x1 + pad and y0 - pad <= dets.y[j] <= y1 + pad:
            return k
    return None
