"""Ingestion: a folder of real videos and images -> a manifest of clean, cut, resampled clips.

Per file, one streaming pass over the decoded frames keeps only small per-frame statistics
(an HSV histogram and a 24x24 grayscale thumbnail, about 0.7 KB a frame), never the frames:
  1. scene cuts: the L1 distance between consecutive frames' HSV histograms; a cut is a frame
     whose distance is above an absolute floor AND several times the mean distance of its
     neighbours (an adaptive threshold, the idea of PySceneDetect's AdaptiveDetector, written
     here so kino needs no extra dependency; see docs/data.md);
  2. each scene is split into pieces of at most `max_seconds`, resampled to `fps` by
     nearest-earlier-frame (constant frame rate assumed), and scored for motion: the mean absolute
     difference of consecutive resampled thumbnails (0..255), a cheap, optical-flow-free proxy;
  3. pieces shorter than `min_seconds` or with motion below `min_motion` are dropped.
Images become 1-frame clips. A file that cannot be read (corrupt, truncated, not media, no
frames) is listed as skipped with its reason; it never stops the run.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from kino.data.manifest import (
    CaptionLevel,
    ClipKind,
    ClipRecord,
    Skipped,
    relative_path,
    sidecar_path,
    write_manifest,
    write_sidecar,
)
from kino.errors import InputError, KinoError, MediaError

THUMB = 24  # side of the grayscale thumbnail used for motion (pixels)
HIST_SIDE = 48  # frames are reduced to HIST_SIDE x HIST_SIDE before the histograms
HIST_BINS = (16, 8, 8)  # bins of hue, saturation, value


@dataclass(frozen=True)
class PrepareConfig:
    """Settings of `kino data prepare`; validated when built."""

    fps: float | None = 8.0  # target frame rate; None keeps each file's own
    min_seconds: float = 1.0  # shorter pieces are dropped
    max_seconds: float | None = 10.0  # longer scenes are split into pieces of at most this; None: no split
    min_motion: float = 0.5  # pieces whose motion score (0..255) is below this are near-static
    cut_floor: float = 0.3  # a cut needs a histogram distance (0..2) of at least this ...
    cut_ratio: float = 3.0  # ... and this many times the mean distance of its neighbours
    cut_window: int = 4  # neighbours on each side for that mean (source frames)
    min_scene_seconds: float = 0.3  # two cuts closer than this are one cut
    workers: int = 1  # processes; 1 runs in this process

    def __post_init__(self) -> None:
        if self.fps is not None and not (0 < self.fps <= 240):
            raise InputError(f"fps {self.fps:g} is out of range; use a value in (0, 240]")
        if self.min_seconds < 0:
            raise InputError(f"min_seconds {self.min_seconds:g} is negative; use 0 or more")
        if self.max_seconds is not None and self.max_seconds <= 0:
            raise InputError(f"max_seconds {self.max_seconds:g} must be positive (or unset for no split)")
        if self.max_seconds is not None and self.max_seconds < self.min_seconds:
            raise InputError(
                f"max_seconds {self.max_seconds:g} is below min_seconds {self.min_seconds:g}; "
                "every piece would be dropped"
            )
        if self.min_motion < 0 or self.cut_floor < 0 or self.cut_ratio < 1 or self.cut_window < 1:
            raise InputError("min_motion and cut_floor must be >= 0, cut_ratio >= 1 and cut_window >= 1")
        if self.workers < 1:
            raise InputError(f"workers {self.workers} must be at least 1")


@dataclass
class FileResult:
    """What one file gave: its clips, or why it was skipped, and how many pieces were dropped."""

    path: str
    records: list[ClipRecord] = field(default_factory=list)
    skipped: Skipped | None = None
    dropped_short: int = 0
    dropped_static: int = 0


@dataclass
class PrepareResult:
    records: list[ClipRecord]
    skipped: list[Skipped]
    dropped_short: int
    dropped_static: int


# ----------------------------------------------------------------------------- per-frame statistics


def frame_stats(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One frame (H, W, 3) uint8 -> (HSV histogram (sum(HIST_BINS),) float32, thumbnail (24, 24) uint8)."""
    from PIL import Image

    im = Image.fromarray(frame).resize((HIST_SIDE, HIST_SIDE), Image.BOX)
    hsv = np.asarray(im.convert("HSV"))  # (48, 48, 3)
    hists = []
    for c, bins in enumerate(HIST_BINS):
        h = np.bincount(((hsv[..., c].astype(np.int32) * bins) >> 8).ravel(), minlength=bins)  # (bins,)
        hists.append(h / h.sum())
    gray = np.asarray(im.convert("L").resize((THUMB, THUMB), Image.BOX))  # (24, 24)
    return np.concatenate(hists).astype(np.float32), gray


def histogram_distances(hists: np.ndarray) -> np.ndarray:
    """(T, K) histograms -> (T,) mean per-channel L1 distance to the previous frame (0..2); d[0] = 0."""
    d = np.zeros(len(hists), dtype=np.float32)
    if len(hists) > 1:
        d[1:] = np.abs(np.diff(hists, axis=0)).sum(axis=1) / len(HIST_BINS)
    return d


def detect_cuts(d: np.ndarray, floor: float, ratio: float, window: int, min_gap: int) -> list[int]:
    """Frames that start a new scene: d[i] >= floor and d[i] >= ratio x mean of its neighbours' d."""
    cuts: list[int] = []
    n = len(d)
    for i in range(1, n):
        if d[i] < floor:
            continue
        lo, hi = max(1, i - window), min(n, i + window + 1)
        neighbours = np.concatenate([d[lo:i], d[i + 1 : hi]])
        base = float(neighbours.mean()) if len(neighbours) else 0.0
        if d[i] < ratio * base:
            continue
        if cuts and i - cuts[-1] < min_gap:
            if d[i] > d[cuts[-1]]:
                cuts[-1] = i  # keep the stronger of two close spikes
            continue
        cuts.append(i)
    return cuts


def resample_indices(start: int, stop: int, source_fps: float, fps: float) -> np.ndarray:
    """Source frame indices in [start, stop) sampled at `fps` (nearest earlier frame)."""
    seconds = (stop - start) / source_fps
    n = max(1, math.floor(seconds * fps + 1e-6))
    idx = start + np.floor(np.arange(n) * source_fps / fps + 1e-6).astype(np.int64)
    return np.minimum(idx, stop - 1)


def motion_score(thumbs: np.ndarray) -> float:
    """Mean absolute difference of consecutive thumbnails (T, h, w) uint8, in 0..255; 0 for T < 2."""
    if len(thumbs) < 2:
        return 0.0
    return float(np.abs(np.diff(thumbs.astype(np.int16), axis=0)).mean())


def split_range(start: int, stop: int, piece: int | None) -> Iterator[tuple[int, int]]:
    """Cut [start, stop) into consecutive pieces of `piece` frames (the last may be shorter)."""
    if piece is None or stop - start <= piece:
        yield start, stop
        return
    for a in range(start, stop, piece):
        yield a, min(stop, a + piece)


# ----------------------------------------------------------------------------- one file


def prepare_file(path: str | os.PathLike, config: PrepareConfig, manifest_dir: str | os.PathLike,
                 name: str | None = None, keep_static: bool = False) -> FileResult:
    """Cut, resample and score one file; a file that cannot be read gives `skipped`, never an exception.
    `keep_static`: no near-static filter (a clip of kino's world, static when its scene is)."""
    p = Path(path)
    name = name or p.name
    result = FileResult(path=str(p))
    try:
        _prepare(p, config, manifest_dir, name, result, keep_static)
    except (MediaError, InputError) as e:
        result.records, result.skipped = [], Skipped(str(p), _reason(e))
    except KinoError:
        raise  # a missing dependency or a broken model is the run's problem, not the file's
    except Exception as e:  # a decoder's surprise on one file must not stop the run
        result.records, result.skipped = [], Skipped(str(p), f"unexpected {type(e).__name__}: {_reason(e)}")
    return result


def _prepare(p: Path, config: PrepareConfig, manifest_dir, name: str, result: FileResult,
             keep_static: bool = False) -> None:
    from kino.io import IMAGE_SUFFIXES, iter_frames, probe

    info = probe(p)
    rel = relative_path(p, manifest_dir)
    if p.suffix.lower() in IMAGE_SUFFIXES:
        frame = next(iter_frames(p, max_frames=1))  # decodes it: a truncated image fails here
        h, w = frame.shape[:2]
        result.records.append(ClipRecord(
            id=f"{name}#0", path=rel, kind=ClipKind.IMAGE, start=0.0, end=0.0, width=w, height=h,
            fps=config.fps or 1.0, num_frames=1, source_fps=0.0, motion=0.0,
        ))
        return

    hists, thumbs = [], []
    width = height = 0
    for frame in iter_frames(p):  # streaming: only the statistics stay in memory
        height, width = frame.shape[:2]
        h, t = frame_stats(frame)
        hists.append(h)
        thumbs.append(t)
    hist_arr, thumb_arr = np.stack(hists), np.stack(thumbs)  # (T, K), (T, 24, 24)
    src_fps = info.fps
    fps = config.fps or src_fps
    n = len(thumb_arr)

    d = histogram_distances(hist_arr)
    min_gap = max(1, round(config.min_scene_seconds * src_fps))
    bounds = [0, *detect_cuts(d, config.cut_floor, config.cut_ratio, config.cut_window, min_gap), n]
    piece = None if config.max_seconds is None else max(1, round(config.max_seconds * src_fps))
    k = 0
    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        for s, e in split_range(a, b, piece):
            seconds = (e - s) / src_fps
            if seconds + 1e-9 < config.min_seconds or seconds * fps < 1:
                result.dropped_short += 1
                continue
            idx = resample_indices(s, e, src_fps, fps)
            motion = motion_score(thumb_arr[idx])
            if motion < config.min_motion and not keep_static:
                result.dropped_static += 1
                continue
            result.records.append(ClipRecord(
                id=f"{name}#{k}", path=rel, kind=ClipKind.VIDEO, start=round(s / src_fps, 6),
                end=round(e / src_fps, 6), width=width, height=height, fps=fps, num_frames=len(idx),
                source_fps=src_fps, motion=round(motion, 4),
            ))
            k += 1
    if not result.records:
        result.skipped = Skipped(
            str(p), f"no clip passed the filters ({result.dropped_short} too short, "
            f"{result.dropped_static} near-static, {n} frames at {src_fps:g} fps)"
        )


def _reason(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:200]


def _prepare_star(args) -> FileResult:
    return prepare_file(*args)


# ----------------------------------------------------------------------------- reading a clip back


def read_clip(record: ClipRecord, manifest_dir: str | os.PathLike, max_frames: int | None = None) -> np.ndarray:
    """The clip's frames (T, H, W, 3) uint8 at its fps; seeks near `start` instead of decoding from 0.

    Frame i of the source is the one shown at i / source_fps (constant frame rate), as in prepare.py.
    """
    from kino.io import VIDEO_SUFFIXES, iter_frames

    src = record.source(manifest_dir)
    if record.kind is ClipKind.IMAGE:
        return next(iter_frames(src, max_frames=1))[None]  # (1, H, W, 3)
    src_fps = record.source_fps or record.fps
    n = record.num_frames if max_frames is None else min(record.num_frames, max_frames)
    first = round(record.start * src_fps)
    wanted = first + np.floor(np.arange(n) * src_fps / record.fps + 1e-6).astype(np.int64)  # (T,)
    last_frame = max(first, round(record.end * src_fps) - 1)
    wanted = np.minimum(wanted, last_frame)
    if src.suffix.lower() in VIDEO_SUFFIXES and src.suffix.lower() != ".gif":
        frames = _read_av(src, wanted, src_fps)
    else:
        frames = _read_counting(iter_frames(src), wanted)
    if len(frames) < n:
        raise MediaError(f"{src}: the clip {record.id} ends early ({len(frames)} of {n} frames)")
    return np.stack(frames)  # (T, H, W, 3)


def _read_counting(frames, wanted: np.ndarray) -> list[np.ndarray]:
    out, j = [], 0
    for i, frame in enumerate(frames):
        while j < len(wanted) and wanted[j] == i:
            out.append(frame)
            j += 1
        if j >= len(wanted):
            break
    return out


def _read_av(src: Path, wanted: np.ndarray, src_fps: float) -> list[np.ndarray]:
    from kino.io import _av  # one place that imports PyAV and quiets its logging

    av = _av()
    out: list[np.ndarray] = []
    try:
        with av.open(str(src)) as container:
            stream = container.streams.video[0]
            start = stream.start_time or 0
            tb = float(stream.time_base) if stream.time_base else 0.0
            seek_seconds = wanted[0] / src_fps - 1.0  # a second early: the keyframe before is found anyway
            seeked = seek_seconds > 0 and tb > 0
            if seeked:
                container.seek(start + int(seek_seconds / tb), stream=stream, backward=True)
            j, count = 0, 0
            for frame in container.decode(stream):
                # After a seek, frame positions come from timestamps; from the start, by counting.
                i = round((frame.pts - start) * tb * src_fps) if seeked and frame.pts is not None else count
                count += 1
                if i < wanted[j]:
                    continue
                rgb = frame.to_ndarray(format="rgb24")  # (H, W, 3)
                while j < len(wanted) and wanted[j] <= i:
                    out.append(rgb)
                    j += 1
                if j >= len(wanted):
                    break
    except av.error.FFmpegError as e:
        raise MediaError(f"{src}: the video is corrupt or truncated ({str(e).splitlines()[0][:120]})") from None
    return out


# ----------------------------------------------------------------------------- a folder


def scan_folder(root: str | os.PathLike, exclude: tuple[Path, ...] = (), media: bool = True) -> list[Path]:
    """Every non-hidden video and image under `root` (by suffix), sorted; `exclude` (resolved paths) left
    out. Other files (a specs.jsonl, a manifest of an earlier run, notes) are not read: with `media`
    False they are what is returned, to count them."""
    from kino.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    r = Path(root)
    if not r.is_dir():
        raise InputError(f"{r}: not a folder; give the folder that holds the videos and images")
    ex = {p.resolve() for p in exclude}
    suffixes = VIDEO_SUFFIXES + IMAGE_SUFFIXES
    files = []
    for dirpath, dirnames, filenames in os.walk(r):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            p = Path(dirpath) / f
            if not f.startswith(".") and p.resolve() not in ex and (p.suffix.lower() in suffixes) == media:
                files.append(p)
    return files


def read_specs(path: Path) -> dict[str, tuple[dict, int]]:
    """A `kino world sample` specs.jsonl -> {resolved clip path: (scene spec dict, seed)}."""
    from kino.io import IMAGE_SUFFIXES, VIDEO_SUFFIXES

    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    media = sorted(p for p in path.parent.iterdir() if p.suffix.lower() in VIDEO_SUFFIXES + IMAGE_SUFFIXES)
    out = {}
    for i, row in enumerate(rows):
        spec = row.get("spec", row)
        name = row.get("file") or row.get("path") or row.get("video")
        if name is None and i < len(media):
            name = media[i].name
        if name is not None:
            out[str((path.parent / name).resolve())] = (spec, int(row.get("seed", 0)))
    return out


def world_clips(files: list[Path]) -> set[Path]:
    """The files `kino world sample` wrote (named in a specs.jsonl beside them): the world's scenes are
    static on purpose when their spec says so, so the near-static filter does not apply to them."""
    found: set[Path] = set()
    for folder in sorted({f.parent for f in files}):
        if (folder / "specs.jsonl").is_file():
            try:
                found |= {Path(k) for k in read_specs(folder / "specs.jsonl")}
            except (ValueError, OSError):  # not the world's specs.jsonl: an ordinary folder
                continue
    return found


def load_captions(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Captions by file name from JSONL or CSV -> {name: {level: text}}.

    JSONL lines: {"file": NAME, "caption": TEXT} or {"file": NAME, "short": ..., "detailed": ...}
    (or "captions": {level: text}). CSV: a header with `file` and `caption` or level columns.
    A bare `caption` is stored as the detailed level. NAME is a path relative to DIR or a file name.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such captions file; give a .jsonl or .csv file")
    rows: list[dict] = []
    if p.suffix.lower() == ".csv":
        with p.open(encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f))
    elif p.suffix.lower() in (".jsonl", ".json"):
        for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise InputError(f"{p}:{n}: not a JSON line ({e.msg})") from None
    else:
        raise InputError(f"{p}: captions must be a .jsonl or .csv file, got {p.suffix or 'no suffix'}")
    levels = [lv.value for lv in CaptionLevel]
    out: dict[str, dict[str, str]] = {}
    for n, row in enumerate(rows, 1):
        key = row.get("file") or row.get("path") or row.get("name") if isinstance(row, dict) else None
        if not key:
            raise InputError(f"{p}: row {n} has no 'file' field; each row needs file and caption")
        caps = dict(row.get("captions") or {})
        caps.update({lv: row[lv] for lv in levels if row.get(lv)})
        if row.get("caption"):
            caps.setdefault(CaptionLevel.DETAILED.value, row["caption"])
        bad = set(caps) - set(levels)
        if bad:
            raise InputError(f"{p}: row {n} has unknown caption level {sorted(bad)[0]!r}; valid: {', '.join(levels)}")
        out[str(key)] = {k: str(v) for k, v in caps.items()}
    return out


def prepare_folder(
    root: str | os.PathLike,
    out: str | os.PathLike,
    config: PrepareConfig | None = None,
    captions: str | os.PathLike | None = None,
    on_file: Callable[[FileResult], None] | None = None,
) -> PrepareResult:
    """Probe, cut, resample and filter every file under `root`; write the manifest and its sidecar."""
    config = config or PrepareConfig()
    out = Path(out)
    caps = load_captions(captions) if captions else {}
    exclude = (out, sidecar_path(out), *((Path(captions),) if captions else ()))
    files = scan_folder(root, exclude)
    if not files:
        raise InputError(f"{root}: the folder holds no videos or images; put some in it")
    names = [f.relative_to(root).as_posix() for f in files]
    out.parent.mkdir(parents=True, exist_ok=True)  # `--out data/clips.jsonl` makes data/, as `world sample` does
    world = world_clips(files)
    jobs = [(f, config, out.parent, nm, f.resolve() in world) for f, nm in zip(files, names, strict=True)]

    results: list[FileResult] = []
    if config.workers == 1 or len(jobs) == 1:
        iterator = map(_prepare_star, jobs)
        for r in iterator:
            results.append(r)
            if on_file:
                on_file(r)
    else:
        # spawn, not fork: the parent may hold threads (torch, rich) that fork would copy mid-state.
        with ProcessPoolExecutor(config.workers, mp_context=get_context("spawn")) as pool:
            for r in pool.map(_prepare_star, jobs, chunksize=1):  # in order: the manifest is deterministic
                results.append(r)
                if on_file:
                    on_file(r)

    records, skipped = [], []
    for r, nm in zip(results, names, strict=True):
        if r.skipped:
            skipped.append(r.skipped)
        found = caps.get(nm) or caps.get(Path(nm).name)
        records.extend(rec.with_captions(found) if found else rec for rec in r.records)
    result = PrepareResult(
        records, skipped, sum(r.dropped_short for r in results), sum(r.dropped_static for r in results)
    )
    write_manifest(out, records)
    write_sidecar(out, {
        "root": str(Path(root).resolve()),
        "config": asdict(config),
        "num_files": len(files),
        "ignored_files": len(scan_folder(root, exclude, media=False)),  # not videos or images: not read
        "num_clips": len(records),
        "dropped_short": result.dropped_short,
        "dropped_static": result.dropped_static,
    }, skipped)
    return result
