"""The one way kino writes an output: review frames, watermark them, write the file, sign it.

    report = publish(frames, "out.mp4", fps=8, info=GenerationInfo(model="kino-tiny", mode="text-to-video"))

In order: (1) the configured frame classifier reviews sampled frames and a flagged frame raises
PolicyError (nothing is written); (2) every frame gets the invisible watermark under this install's
key, with an id derived from the generation record (the same request and seed give the same frames
in every run; kino/safety/watermark.py); (3) kino.io writes
the MP4 or PNG (atomically); (4) a C2PA manifest is signed into it (temp file, then rename). The
file appears under its name only when all of that succeeded. With no frame classifier configured
the manifest says "frame_review": "not configured": kino never claims a review it did not do.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kino.errors import InputError
from kino.io import Format
from kino.safety.policy import SafetyConfig, load_policy_file


def _kino_version() -> str:
    import kino

    return kino.__version__


@dataclass(frozen=True)
class GenerationInfo:
    """How an output was made: recorded in its C2PA manifest (the prompts only on opt-in)."""

    model: str = "kino"
    mode: str = "text-to-video"
    settings: dict[str, Any] = field(default_factory=dict)  # size, seconds, fps, steps, guidance, seed...
    prompt: str | None = None
    enhanced_prompt: str | None = None
    version: str = field(default_factory=lambda: _kino_version())


@dataclass(frozen=True)
class PublishReport:
    """What publish did for one output."""

    path: Path
    frame_review: str  # "passed", "not configured"
    frames_reviewed: int
    watermark_id: str | None  # None when the watermark is off
    c2pa_signed: bool
    manifest_label: str | None
    signer: str | None  # "config", "env" or "local"


def json_safe(value: Any) -> Any:
    """`value` as plain JSON types: tuples (and numpy arrays) as lists, numpy scalars as numbers, bytes refused.

    The one place generation settings are serialised for the manifest, whichever front end built them
    (generation, storyboards, modes, the server, `kino vae reconstruct`)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (bytes, bytearray)):
        raise InputError("generation settings hold bytes; record them as a list or text")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)  # enums, paths


def _generation_assertion(
    info: GenerationInfo, config: SafetyConfig, review: dict | str, wid: str | None
) -> dict:
    from kino.safety.watermark import SCHEME

    data: dict[str, Any] = {
        "model": info.model,
        "kino_version": info.version,
        "mode": info.mode,
        "settings": json_safe(info.settings),
        "frame_review": review,
        "watermark": {"scheme": SCHEME, "id": wid} if wid else "none",
    }
    if config.include_prompt:  # the user opted in; otherwise the prompt stays private
        data["prompt"] = info.prompt
        if info.enhanced_prompt is not None:
            data["enhanced_prompt"] = info.enhanced_prompt
    return data


def publish(
    frames: np.ndarray,
    path: str | os.PathLike,
    fps: float,
    info: GenerationInfo,
    config: SafetyConfig | None = None,
) -> PublishReport:
    """Review, watermark, write (MP4 or PNG by suffix) and sign one output; see the module docstring."""
    from kino.io import write_video
    from kino.safety.frames import build_classifier, enforce_frames
    from kino.safety.watermark import derived_watermark_id, embed, load_key

    config = config or load_policy_file()
    path = Path(path)
    fmt = Format.of(path)
    if config.c2pa and fmt not in (Format.MP4, Format.PNG):
        raise InputError(f"cannot sign {path.name}: content credentials need .mp4 or .png (or turn C2PA off)")
    frames = np.asarray(frames)
    if frames.ndim == 3:
        frames = frames[None]  # (1, H, W, 3)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) == 0:
        raise InputError(
            f"frames must be uint8 (T, H, W, 3) with T >= 1, got {frames.dtype} {tuple(frames.shape)}"
        )
    if fmt is Format.PNG and len(frames) != 1:
        raise InputError(f"{path.name} is a PNG and holds one frame, but {len(frames)} were given; use .mp4")
    if not path.parent.exists():
        raise InputError(f"cannot write {path}: folder {path.parent} does not exist")

    # 1. frame review, before anything is written
    classifier = build_classifier(config.frames)
    if classifier is None:
        review_record: dict | str = "not configured"
        review_state, n_reviewed = "not configured", 0
    else:
        review = enforce_frames(frames, classifier)
        review_record = {"classifier": classifier.name, **review.summary()}
        review_state, n_reviewed = "passed", len(review.indices)

    # 2. watermark: this install's key; the id from the record, so the same request gives the same frames
    wid = None
    if config.watermark:
        key = load_key(config.config_dir)
        record = {"model": info.model, "mode": info.mode, "settings": json_safe(info.settings),
                  "prompt": info.prompt, "enhanced_prompt": info.enhanced_prompt, "version": info.version,
                  "frames": hashlib.sha256(np.ascontiguousarray(frames).data).hexdigest()}
        wid = derived_watermark_id(key, record)
        frames = embed(frames, wid, key)

    # 3. write; 4. sign. Unsigned output is written straight to its place (kino.io is atomic).
    if not config.c2pa:
        write_video(path, frames, fps=fps)
        return PublishReport(path, review_state, n_reviewed, wid, False, None, None)

    from kino.safety.provenance import build_manifest, load_credentials, sign_file

    creds = load_credentials(config.cert, config.key, config.config_dir)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.unsigned.", suffix=path.suffix)
    os.close(fd)
    try:
        write_video(tmp, frames, fps=fps)
        generator = {"name": "kino", "version": info.version, "model": info.model}
        manifest = build_manifest(
            path.name, generator, _generation_assertion(info, config, review_record, wid)
        )
        label = sign_file(Path(tmp), path, manifest, creds)
    finally:
        Path(tmp).unlink(missing_ok=True)
    return PublishReport(path, review_state, n_reviewed, wid, True, label, creds.source)


class PublishWriter:
    """`publish` for frames that come one at a time (memory independent of length):

        with PublishWriter("out.mp4", fps, info, config, expected_frames=n) as w:
            for frame in frames:
                w.write(frame)

    Each frame is watermarked as it comes (the id from the generation record: put what identifies the
    output, e.g. a source file's hash, into `info.settings`); the frames the review would sample
    (`expected_frames` tells where they fall) are kept; at the end they are reviewed, and the file is
    signed into place. Nothing appears under `path` unless all of it succeeded.
    """

    def __init__(self, path: str | os.PathLike, fps: float, info: GenerationInfo,
                 config: SafetyConfig | None = None, expected_frames: int | None = None) -> None:
        from kino.safety.frames import build_classifier, sample_indices
        from kino.safety.watermark import derived_watermark_id, load_key

        self.config = config or load_policy_file()
        self.path, self.fps, self.info = Path(path), fps, info
        fmt = Format.of(self.path)
        if self.config.c2pa and fmt not in (Format.MP4, Format.PNG):
            raise InputError(f"cannot sign {self.path.name}: content credentials need .mp4 or .png (or turn C2PA off)")
        if not self.path.parent.exists():
            raise InputError(f"cannot write {self.path}: folder {self.path.parent} does not exist")
        self.classifier = build_classifier(self.config.frames)
        n = self.config.frames.sample_frames if self.config.frames else 0
        self.sample = set(sample_indices(expected_frames, n)) if expected_frames and n else set(range(n))
        self.kept: list[np.ndarray] = []
        self.key = self.wid = None
        if self.config.watermark:
            self.key = load_key(self.config.config_dir)
            record = {"model": info.model, "mode": info.mode, "settings": json_safe(info.settings),
                      "prompt": info.prompt, "enhanced_prompt": info.enhanced_prompt, "version": info.version}
            self.wid = derived_watermark_id(self.key, record)
        self.count = 0
        self.report: PublishReport | None = None
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.stem}.unsigned.", suffix=self.path.suffix)
        os.close(fd)
        self._tmp = Path(tmp)
        from kino.io import VideoWriter

        self._writer = VideoWriter(self._tmp, fps=fps)

    def write(self, frame: np.ndarray) -> None:
        """Watermark and write one uint8 (H, W, 3) frame."""
        from kino.safety.watermark import embed

        if self.key is not None:
            frame = embed(frame[None], self.wid, self.key)[0]
        if self.count in self.sample:
            self.kept.append(frame)
        self._writer.write(frame)
        self.count += 1

    def __enter__(self) -> PublishWriter:
        self._writer.__enter__()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            self._writer.__exit__(exc_type, exc, tb)
            if exc_type is None:
                self.report = self._finish()
        finally:
            self._tmp.unlink(missing_ok=True)

    def _finish(self) -> PublishReport:
        from kino.safety.frames import enforce_frames

        review_record: dict | str = "not configured"
        state, reviewed = "not configured", 0
        if self.classifier is not None:
            review = enforce_frames(np.stack(self.kept), self.classifier)
            review_record = {"classifier": self.classifier.name, **review.summary()}
            state, reviewed = "passed", len(review.indices)
        if not self.config.c2pa:
            os.replace(self._tmp, self.path)
            return PublishReport(self.path, state, reviewed, self.wid, False, None, None)
        from kino.safety.provenance import build_manifest, load_credentials, sign_file

        creds = load_credentials(self.config.cert, self.config.key, self.config.config_dir)
        generator = {"name": "kino", "version": self.info.version, "model": self.info.model}
        manifest = build_manifest(self.path.name, generator,
                                  _generation_assertion(self.info, self.config, review_record, self.wid))
        label = sign_file(self._tmp, self.path, manifest, creds)
        return PublishReport(self.path, state, reviewed, self.wid, True, label, creds.source)
