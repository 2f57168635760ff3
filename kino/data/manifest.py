"""The clip manifest: one JSON line per training clip, and a sidecar JSON with what was skipped.

A clip is a time range of a source file at a target frame rate. Images are 1-frame clips, so
images and videos train together. `kino data prepare` writes a manifest, `kino data caption`
fills its captions, `kino data cache` turns it into tensors.

    {"id": "bikes-0001", "path": "videos/bikes.mp4", "kind": "video", "start": 0.0, "end": 2.4,
     "width": 640, "height": 272, "fps": 8.0, "source_fps": 25.0, "num_frames": 19,
     "motion": 6.1, "captions": {"short": "...", "detailed": "..."}}

Paths are stored relative to the manifest's folder when the file lies under it (so a data folder
moves as one piece), otherwise absolute; `ClipRecord.source(manifest_dir)` resolves them.
Every write goes to a temporary name and is renamed into place: a crash never leaves half a manifest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

from kino.errors import InputError
from kino.world.caption import CaptionLevel  # one definition of the levels: the captioner's


class ClipKind(StrEnum):
    VIDEO = "video"
    IMAGE = "image"


@dataclass(frozen=True)
class ClipRecord:
    """One training clip: a time range [start, end) seconds of `path`, sampled at `fps`."""

    id: str
    path: str
    kind: ClipKind
    start: float
    end: float
    width: int
    height: int
    fps: float  # frame rate the clip is sampled at (the target fps)
    num_frames: int  # frames at `fps` in [start, end); 1 for an image
    source_fps: float = 0.0
    motion: float = 0.0  # mean absolute difference of consecutive frames, 0..255 (see prepare.py)
    captions: dict[str, str] = field(default_factory=dict)  # CaptionLevel value -> text
    meta: dict[str, Any] = field(default_factory=dict)  # free-form extras (e.g. a world clip's spec index)

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "kind", ClipKind(self.kind))
        except ValueError:
            raise InputError(f"clip {self.id}: kind {self.kind!r} is not one of video, image") from None
        if self.width < 1 or self.height < 1:
            raise InputError(f"clip {self.id}: size {self.width}x{self.height} is not positive")
        if self.num_frames < 1:
            raise InputError(f"clip {self.id}: num_frames {self.num_frames} must be at least 1")
        if self.end < self.start or self.start < 0:
            raise InputError(f"clip {self.id}: time range [{self.start}, {self.end}) is not valid")
        if not self.fps > 0:
            raise InputError(f"clip {self.id}: fps {self.fps} must be positive")
        unknown = set(self.captions) - {lv.value for lv in CaptionLevel}
        if unknown:
            valid = ", ".join(lv.value for lv in CaptionLevel)
            raise InputError(f"clip {self.id}: unknown caption level {sorted(unknown)[0]!r}; valid: {valid}")

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def source(self, manifest_dir: str | os.PathLike) -> Path:
        """The source file's path, resolving a relative path against the manifest's folder."""
        p = Path(self.path)
        return p if p.is_absolute() else Path(manifest_dir) / p

    def with_captions(self, captions: dict[str, str]) -> ClipRecord:
        """A copy whose captions are these merged over the existing ones."""
        return replace(self, captions={**self.captions, **{str(k): v for k, v in captions.items()}})

    def caption(self, level: str | None = None) -> str:
        """The caption at `level`, or the most detailed one present; '' when there is none."""
        if level is not None:
            return self.captions.get(str(level), "")
        for lv in (CaptionLevel.DETAILED, CaptionLevel.MEDIUM, CaptionLevel.SHORT):
            if self.captions.get(lv.value):
                return self.captions[lv.value]
        return ""

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kind"] = self.kind.value
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ClipRecord:
        try:
            return cls(**d)
        except TypeError as e:
            raise InputError(f"not a clip record: {e}") from None


@dataclass(frozen=True)
class Skipped:
    """A file that `prepare` could not use, and why (one line)."""

    path: str
    reason: str


# ----------------------------------------------------------------------------- files


def sidecar_path(manifest: str | os.PathLike) -> Path:
    """`clips.jsonl` -> `clips.meta.json`: settings, counts and the skipped files."""
    p = Path(manifest)
    return p.with_name(p.stem + ".meta.json")


def relative_path(path: str | os.PathLike, manifest_dir: str | os.PathLike) -> str:
    """`path` relative to the manifest's folder when it lies under it, else absolute."""
    p = Path(path).resolve()
    try:
        return p.relative_to(Path(manifest_dir).resolve()).as_posix()
    except ValueError:
        return str(p)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write text to a temporary file beside `path`, then rename it into place."""
    from kino.io import atomic_write

    p = Path(path)
    with atomic_write(p) as f:
        f.write(text)
    return p


def write_manifest(path: str | os.PathLike, records: Iterable[ClipRecord]) -> Path:
    """Write records as JSON lines, atomically."""
    lines = [json.dumps(r.to_dict(), sort_keys=True, ensure_ascii=False) for r in records]
    return atomic_write_text(path, "".join(line + "\n" for line in lines))


def read_manifest(path: str | os.PathLike) -> list[ClipRecord]:
    """Read a manifest; a bad line is an InputError naming the file and line number."""
    p = Path(path)
    if not p.is_file():
        raise InputError(f"{p}: no such manifest; make one with `kino data prepare DIR --out {p.name}`")
    records = []
    with p.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(ClipRecord.from_dict(json.loads(line)))
            except json.JSONDecodeError as e:
                raise InputError(f"{p}:{n}: not a JSON line ({e.msg})") from None
            except InputError as e:
                raise InputError(f"{p}:{n}: {e}") from None
    ids = [r.id for r in records]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError(f"{p}: clip id {dup!r} appears more than once; ids must be unique")
    return records


def write_sidecar(manifest: str | os.PathLike, info: dict[str, Any], skipped: list[Skipped]) -> Path:
    """Write the sidecar JSON (settings, counts, `skipped`) beside the manifest, atomically."""
    body = {**info, "skipped": [asdict(s) for s in skipped]}
    return atomic_write_text(sidecar_path(manifest), json.dumps(body, indent=2, sort_keys=True) + "\n")


def read_sidecar(manifest: str | os.PathLike) -> dict[str, Any]:
    """The sidecar JSON of a manifest, or {} when there is none."""
    p = sidecar_path(manifest)
    if not p.is_file():
        return {}
    try:
        return json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: not valid JSON ({e.msg})") from None
