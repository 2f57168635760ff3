"""What `kino eval` measures on one video, and how videos add up to a suite's numbers.

Per video (from the world analyzer's `Analysis` and the scorer's `Score`):
- adherence per attribute: of the attributes the prompt asked, how many the analyzer saw met
  (kino.world.score), counted per kind (background, count, color, shape, size, motion, camera, event);
- temporal consistency: per seen object, the share of frames whose color / shape / size label equals
  the object's most common label; averaged over objects. Changes the video itself explains are not
  counted against it: color for the subject of a seen collide (it is meant to change color), size for
  an object seen growing or shrinking. Size labels per frame come from the area of whole views only
  (the analyzer leaves the shape label empty where a view is clipped or occluded);
- motion smoothness: 1 - mean |second difference| of the centroid tracks over runs of consecutive
  whole views, in units of JERK_SCALE * min(H, W) per frame^2, clipped to [0, 1]. Constant-velocity
  motion scores 1; a centroid that jumps around (flicker, an object that teleports) scores near 0.
  (Like VBench's motion smoothness it rewards physically plausible, continuous motion; VBench uses a
  frame-interpolation model, this uses the analyzer's tracks.)
- dynamic degree: the video is dynamic when an object's centroid strays DYNAMIC_THRESHOLD * min(H, W)
  from where it was first seen, the camera moves, or an object is seen spinning, growing or shrinking
  (VBench's dynamic degree counts videos with optical flow above a threshold; this is the world's analog).
- conditioning (the conditioning suite only, kino/eval/conditioning.py): PSNR in dB of the output at the
  conditioned frames against the inputs given there (image-to-video: frame 0; interpolation: the
  keyframes; identical frames count as PSNR_CAP), and for an extension the step into the seam against
  the ordinary steps (kino.eval.continuity.seam_report: object position and mean |RGB| change).

Suite totals: adherence is pooled (sum met / sum asked per kind, then over all kinds); consistency and
smoothness are means over the videos that have a value; dynamic degree is the share of dynamic videos.
Conditioning: PSNR is the mean per mode; the seam ratio is pooled (mean seam jump / mean ordinary step
over the extensions), since one still video's near-zero ordinary step would swamp a mean of ratios.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kino.world.analyze import SHAPE_AREA, Analysis, SeenObject
from kino.world.score import Attribute, Score
from kino.world.spec import SIZE_FRACTION, Camera, EventKind, Motion, Shape, Size

JERK_SCALE = 0.25  # mean |second difference| (short sides per frame^2) that scores 0: random jumps
DYNAMIC_THRESHOLD = 0.05  # centroid displacement, fraction of the short side, that counts as motion
CONSISTENCY_KEYS = ("color", "shape", "size")
PSNR_CAP = 100.0  # dB for identical frames (PSNR is infinite); one value off by 1 in a 64x64 frame: 89 dB


@dataclass(frozen=True)
class ConditionMetrics:
    """How a conditioned video keeps what it was given; None where the mode has no such measure."""

    mode: str  # kino.modes.Mode value: image-to-video, extend, interpolate
    psnr: float | None = None  # dB, mean over the conditioned frames (frame 0, the keyframes)
    seam_position: float | None = None  # extension: centroid jump into the seam, fraction of min(H, W)
    ordinary_position: float | None = None  # ... and the mean of the other steps
    seam_color: float | None = None  # extension: mean |RGB| change into the seam (0-255)
    ordinary_color: float | None = None

    def to_dict(self) -> dict:
        r = lambda v: None if v is None else round(v, 4)  # noqa: E731
        ratio = lambda a, b: None if a is None or not b else round(a / b, 4)  # noqa: E731
        return {"mode": self.mode, "psnr": r(self.psnr), "seam_position": r(self.seam_position),
                "ordinary_position": r(self.ordinary_position), "seam_color": r(self.seam_color),
                "ordinary_color": r(self.ordinary_color),
                "seam_position_ratio": ratio(self.seam_position, self.ordinary_position),
                "seam_color_ratio": ratio(self.seam_color, self.ordinary_color)}


@dataclass(frozen=True)
class VideoMetrics:
    """The numbers of one video; None where there was nothing to measure (e.g. no object seen)."""

    adherence: dict[str, tuple[int, int]]  # attribute -> (met, asked), only attributes that were asked
    consistency: dict[str, float | None]  # color / shape / size -> share of frames on the object's label
    smoothness: float | None
    motion: float  # largest centroid displacement, fraction of the short side
    dynamic: bool
    conditioning: ConditionMetrics | None = None  # the conditioning suite's videos only
    flicker: float | None = None  # mean |frame-to-frame change| of the video, 0-255 (kino.eval.chance)
    render_flicker: float | None = None  # ... of the ground-truth render of its prompt and seed
    # (boundary, inside): mean |change| at latent-frame boundary steps and inside latent frames (chance.boundary_change)
    boundary: tuple[float, float] | None = None

    @property
    def met(self) -> int:
        return sum(m for m, _ in self.adherence.values())

    @property
    def asked(self) -> int:
        return sum(a for _, a in self.adherence.values())

    def to_dict(self) -> dict:
        return {
            "adherence": {k: {"met": m, "asked": a} for k, (m, a) in self.adherence.items()},
            "adherence_total": round(self.met / self.asked, 4) if self.asked else None,
            "consistency": {k: None if v is None else round(v, 4) for k, v in self.consistency.items()},
            "smoothness": None if self.smoothness is None else round(self.smoothness, 4),
            "motion": round(self.motion, 4),
            "dynamic": self.dynamic,
            "conditioning": None if self.conditioning is None else self.conditioning.to_dict(),
            "flicker": None if self.flicker is None else round(self.flicker, 4),
            "render_flicker": None if self.render_flicker is None else round(self.render_flicker, 4),
            "boundary_change": None if self.boundary is None else round(self.boundary[0], 4),
            "inside_change": None if self.boundary is None else round(self.boundary[1], 4),
        }


def measure(analysis: Analysis, result: Score, conditioning: ConditionMetrics | None = None,
            frames: np.ndarray | None = None, truth: np.ndarray | None = None,
            temporal_factor: int | None = None) -> VideoMetrics:
    """All per-video metrics from what the analyzer saw and how it scored against the prompt; with the
    video's `frames` and its ground-truth render `truth` (T, H, W, 3), their flicker too, and with the
    model's VAE temporal_factor the change at latent-frame boundaries against inside them."""
    from kino.eval.chance import boundary_change, flicker

    return VideoMetrics(
        adherence=adherence_counts(result),
        consistency=temporal_consistency(analysis),
        smoothness=motion_smoothness(analysis),
        motion=displacement(analysis),
        dynamic=is_dynamic(analysis),
        conditioning=conditioning,
        flicker=None if frames is None else flicker(frames),
        render_flicker=None if truth is None else flicker(truth),
        boundary=None if frames is None or not temporal_factor else boundary_change(frames, temporal_factor),
    )


def adherence_counts(result: Score) -> dict[str, tuple[int, int]]:
    """(met, asked) per attribute kind, in Attribute order, for the kinds that were asked."""
    out = {}
    for a in Attribute:
        checks = [c for c in result.checks if c.attribute == a]
        if checks:
            out[a.value] = (sum(c.met for c in checks), len(checks))
    return out


def temporal_consistency(analysis: Analysis) -> dict[str, float | None]:
    """Per label kind, the mean over objects of the share of labelled frames equal to the object's mode."""
    m = min(analysis.width, analysis.height)
    changes_color = {e.subject for e in analysis.events if e.kind == EventKind.COLLIDE}
    per: dict[str, list[float]] = {k: [] for k in CONSISTENCY_KEYS}
    for i, o in enumerate(analysis.objects):
        labels = {"shape": o.shapes, "size": _sizes(o, analysis.zoom, m)}
        if i not in changes_color:
            labels["color"] = o.colors
        if o.motion in (Motion.GROWING, Motion.SHRINKING):
            labels.pop("size")
        for k, seq in labels.items():
            share = _mode_share(seq)
            if share is not None:
                per[k].append(share)
    return {k: (float(np.mean(v)) if v else None) for k, v in per.items()}


def motion_smoothness(analysis: Analysis) -> float | None:
    """1 - normalized mean |second difference| of centroids over consecutive whole views (None: too few)."""
    m = min(analysis.width, analysis.height)
    jerks: list[float] = []
    for o in analysis.objects:
        for run in _runs(o):
            p = np.asarray(run, dtype=np.float64)  # (n, 2) centroids of consecutive whole views
            jerks.extend(np.linalg.norm(np.diff(p, n=2, axis=0), axis=1).tolist())  # (n - 2,)
    if not jerks:
        return None
    return float(np.clip(1.0 - np.mean(jerks) / (JERK_SCALE * m), 0.0, 1.0))


def displacement(analysis: Analysis) -> float:
    """The largest distance of any object's centroid from where it was first seen, / min(H, W)."""
    m = min(analysis.width, analysis.height)
    best = 0.0
    for o in analysis.objects:
        pts = np.array([p for p in o.track if p is not None], dtype=np.float64)  # (n, 2)
        if len(pts) >= 2:
            best = max(best, float(np.linalg.norm(pts - pts[0], axis=1).max()) / m)
    return best


def is_dynamic(analysis: Analysis) -> bool:
    """Noticeable motion: a centroid moved, the camera moved, or an object spins / grows / shrinks."""
    if displacement(analysis) >= DYNAMIC_THRESHOLD or analysis.camera != Camera.STATIC:
        return True
    return any(o.motion in (Motion.SPINNING, Motion.GROWING, Motion.SHRINKING) for o in analysis.objects)


# ----------------------------------------------------------------------------- aggregation


@dataclass(frozen=True)
class Summary:
    """A suite's numbers: pooled adherence per kind and in total, mean consistency, smoothness, dynamics."""

    videos: int
    adherence: dict[str, tuple[int, int]]  # kind -> (met, asked), summed over videos
    consistency: dict[str, float | None]
    smoothness: float | None
    dynamic_degree: float | None
    per_video_adherence: float | None = None  # mean of each video's met / asked
    conditioning: dict[str, float | None] | None = None  # CONDITIONING_KEYS -> value; None: no such videos
    # kind -> (met, asked) of the same videos scored against the other prompts (kino.eval.chance); None:
    # not measured (fewer than two prompts)
    chance: dict[str, tuple[int, int]] | None = None
    flicker: float | None = None  # mean per-video flicker, 0-255
    render_flicker: float | None = None  # ... of the ground-truth renders
    flicker_ratio: float | None = None  # pooled generated / render flicker
    # pooled mean change at latent-frame boundaries / inside latent frames (~1: no jump at boundaries)
    boundary_ratio: float | None = None

    @property
    def chance_total(self) -> float | None:
        if not self.chance:
            return None
        return sum(m for m, _ in self.chance.values()) / sum(a for _, a in self.chance.values())

    def margins(self) -> dict[str, float]:
        """Own adherence minus chance level per kind and "total" (empty without a chance level)."""
        from kino.eval.chance import margins

        return margins(self.adherence, self.chance) if self.chance else {}

    @property
    def total(self) -> float | None:
        asked = sum(a for _, a in self.adherence.values())
        return sum(m for m, _ in self.adherence.values()) / asked if asked else None

    def to_dict(self) -> dict:
        r = lambda v: None if v is None else round(v, 4)  # noqa: E731
        return {
            "videos": self.videos,
            "adherence": {k: {"met": m, "asked": a, "fraction": r(m / a)} for k, (m, a) in self.adherence.items()},
            "adherence_total": r(self.total),
            "adherence_per_video_mean": r(self.per_video_adherence),
            "consistency": {k: r(v) for k, v in self.consistency.items()},
            "smoothness": r(self.smoothness),
            "dynamic_degree": r(self.dynamic_degree),
            "conditioning": None if self.conditioning is None else {k: r(v) for k, v in self.conditioning.items()},
            "chance": None if self.chance is None else {
                k: {"met": m, "asked": a, "fraction": r(m / a), "margin": r(self.margins().get(k))}
                for k, (m, a) in self.chance.items()},
            "chance_total": r(self.chance_total),
            "margin_total": r(self.margins().get("total")),
            "flicker": r(self.flicker),
            "render_flicker": r(self.render_flicker),
            "flicker_ratio": r(self.flicker_ratio),
            "boundary_ratio": r(self.boundary_ratio),
        }


def summarize(videos: list[VideoMetrics]) -> Summary:
    """Add up per-video metrics (see the module docstring for how each number pools)."""
    adherence = {}
    for a in Attribute:
        pairs = [v.adherence[a.value] for v in videos if a.value in v.adherence]
        if pairs:
            adherence[a.value] = (sum(m for m, _ in pairs), sum(n for _, n in pairs))
    consistency = {k: _mean([v.consistency[k] for v in videos]) for k in CONSISTENCY_KEYS}
    per_video = _mean([v.met / v.asked if v.asked else None for v in videos])
    dyn = float(np.mean([v.dynamic for v in videos])) if videos else None
    from kino.eval.chance import flicker_ratio

    gen, rend = [v.flicker for v in videos], [v.render_flicker for v in videos]
    split = [v.boundary for v in videos if v.boundary is not None]
    inside = float(np.mean([w for _, w in split])) if split else 0.0
    return Summary(len(videos), adherence, consistency, _mean([v.smoothness for v in videos]), dyn, per_video,
                   summarize_conditioning([v.conditioning for v in videos if v.conditioning is not None]),
                   flicker=_mean(gen), render_flicker=_mean(rend), flicker_ratio=flicker_ratio(gen, rend),
                   boundary_ratio=float(np.mean([b for b, _ in split])) / inside if inside > 0 else None)


CONDITIONING_KEYS = ("image_to_video_psnr", "interpolate_psnr", "extend_seam_position", "extend_seam_color")


def summarize_conditioning(cs: list[ConditionMetrics]) -> dict[str, float | None] | None:
    """Mean PSNR per mode and pooled seam / ordinary step of the extensions (None: no conditioned video)."""
    if not cs:
        return None
    ext = [c for c in cs if c.mode == "extend"]

    def pooled(seam: str, ordinary: str) -> float | None:
        s = _mean([getattr(c, seam) for c in ext if getattr(c, ordinary) is not None])
        o = _mean([getattr(c, ordinary) for c in ext if getattr(c, seam) is not None])
        return None if s is None or not o else s / o

    return dict(zip(CONDITIONING_KEYS, (
        _mean([c.psnr for c in cs if c.mode == "image-to-video"]),
        _mean([c.psnr for c in cs if c.mode == "interpolate"]),
        pooled("seam_position", "ordinary_position"),
        pooled("seam_color", "ordinary_color"),
    ), strict=True))


# ----------------------------------------------------------------------------- helpers


def size_label(area: float, shape: Shape, zoom: float, m: int) -> Size:
    """Size class of one view from its area, undoing the camera zoom (the analyzer's rule for frame one)."""
    r = math.sqrt(max(area, 0.0) / SHAPE_AREA[shape]) / max(zoom, 1e-3) / m
    lo = math.sqrt(SIZE_FRACTION[Size.SMALL] * SIZE_FRACTION[Size.MEDIUM])  # geometric-mean boundaries
    hi = math.sqrt(SIZE_FRACTION[Size.MEDIUM] * SIZE_FRACTION[Size.LARGE])
    return Size.SMALL if r < lo else Size.MEDIUM if r < hi else Size.LARGE


def _sizes(o: SeenObject, zoom: list[float], m: int) -> list[Size | None]:
    """Per-frame size labels of an object, on its whole views only (shape label present)."""
    out: list[Size | None] = []
    for t, (a, s) in enumerate(zip(o.area, o.shapes, strict=True)):
        z = zoom[t] if t < len(zoom) else 1.0
        out.append(size_label(a, o.shape, z, m) if a is not None and s is not None else None)
    return out


def _mode_share(seq) -> float | None:
    vals = [str(v) for v in seq if v is not None]
    if not vals:
        return None
    _, counts = np.unique(vals, return_counts=True)
    return float(counts.max() / len(vals))


def _runs(o: SeenObject) -> list[list[tuple[float, float]]]:
    """Runs of consecutive frames where the object is seen whole, each at least 3 frames long."""
    runs, cur = [], []
    for p, s in zip(o.track, o.shapes, strict=True):
        if p is not None and s is not None:
            cur.append(p)
        else:
            if len(cur) >= 3:
                runs.append(cur)
            cur = []
    if len(cur) >= 3:
        runs.append(cur)
    return runs


def _mean(values) -> float | None:
    vals = [v for v in values if v is not None]
    return float(np.mean(vals)) if vals else None
