"""Video files: MP4 (H.264, yuv420p) through PyAV, GIF through Pillow, PNG frame folders.

Frames are uint8 arrays of shape (T, H, W, 3) (one frame: (H, W, 3)) and every reader returns
the frame rate with them. Readers stream (`iter_frames`), and writers take frames one at a time
(`VideoWriter`), so memory does not grow with a video's length. Writers write to a temporary
name beside the target and rename it into place only when the file is complete: a failure
never leaves a half-written file that looks finished.

Bad files raise `MediaError` with one line that says what was wrong.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from fractions import Fraction
from pathlib import Path

import numpy as np

from kino.errors import InputError, MediaError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp")
VIDEO_SUFFIXES = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".gif")


class Format(StrEnum):
    """What a path is written as, from its name: `x.mp4`, `x.gif`, `x.png` or a folder `x/`."""

    MP4 = "mp4"
    GIF = "gif"
    PNG = "png"  # one image
    FRAMES = "frames"  # a folder of PNG frames plus meta.json

    @classmethod
    def of(cls, path: str | os.PathLike) -> Format:
        p = Path(path)
        suffix = p.suffix.lower()
        if suffix in (".mp4", ".m4v"):
            return cls.MP4
        if suffix == ".gif":
            return cls.GIF
        if suffix == ".png":
            return cls.PNG
        if suffix == "" or str(path).endswith(os.sep):
            return cls.FRAMES
        raise InputError(
            f"cannot write {p.name}: unknown format {suffix!r}; use .mp4, .gif, .png or a folder name"
        )


@dataclass(frozen=True)
class VideoInfo:
    """What a probe of a file finds without decoding all of it."""

    width: int
    height: int
    fps: float
    num_frames: int  # exact when the container says so, otherwise estimated from the duration
    duration: float  # seconds
    codec: str


@dataclass
class Video:
    """Decoded frames (T, H, W, 3) uint8 and their frame rate."""

    frames: np.ndarray
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size(self) -> tuple[int, int]:
        """(width, height)."""
        return int(self.frames.shape[2]), int(self.frames.shape[1])


# ----------------------------------------------------------------------------- checks


def as_frame(frame: np.ndarray) -> np.ndarray:
    """Check one frame: (H, W, 3) uint8, contiguous."""
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3:
        raise InputError(f"a frame must have shape (H, W, 3), got {tuple(frame.shape)}")
    if frame.dtype != np.uint8:
        raise InputError(f"frames must be uint8, got {frame.dtype}")
    return np.ascontiguousarray(frame)


def _check_fps(fps: float) -> float:
    fps = float(fps)
    if not (0 < fps <= 240):
        raise InputError(f"fps {fps:g} is out of range; use a value in (0, 240]")
    return fps


def _media_path(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise MediaError(f"{p}: no such file")
    if p.is_file() and p.stat().st_size == 0:
        raise MediaError(f"{p}: the file is empty")
    return p


# ----------------------------------------------------------------------------- reading


def probe(path: str | os.PathLike) -> VideoInfo:
    """Size, frame rate, frame count and codec of a video, image or frame folder."""
    p = _media_path(path)
    if p.is_dir():
        meta = _frames_meta(p)
        files = _frame_files(p)
        with _open_image(files[0]) as im:
            w, h = im.size
        return VideoInfo(w, h, meta, len(files), len(files) / meta, "png")
    if p.suffix.lower() in IMAGE_SUFFIXES:
        with _open_image(p) as im:
            w, h = im.size
        return VideoInfo(w, h, 1.0, 1, 1.0, (im.format or "image").lower())
    if p.suffix.lower() == ".gif":
        from PIL import Image

        with _open_image(p) as im:
            n = getattr(im, "n_frames", 1)
            ms = im.info.get("duration", 100) or 100
            return VideoInfo(im.size[0], im.size[1], 1000.0 / ms, n, n * ms / 1000.0, "gif")
        del Image
    av = _av()
    try:
        with av.open(str(p)) as c:
            if not c.streams.video:
                raise MediaError(f"{p}: no video stream in this file")
            s = c.streams.video[0]
            fps = float(s.average_rate or s.guessed_rate or 0) or 25.0
            if s.duration is not None and s.time_base is not None:
                duration = float(s.duration * s.time_base)
            elif c.duration is not None:
                duration = c.duration / 1_000_000
            else:
                duration = 0.0
            n = int(s.frames) if s.frames else round(duration * fps)
            return VideoInfo(
                s.codec_context.width, s.codec_context.height, fps, n, duration, s.codec_context.name
            )
    except MediaError:
        raise
    except Exception as e:  # PyAV raises many types (InvalidDataError, OSError, ...)
        raise MediaError(f"{p}: not a readable video ({_short(e)})") from None


def iter_frames(path: str | os.PathLike, max_frames: int | None = None) -> Iterator[np.ndarray]:
    """Yield the frames (H, W, 3) uint8 of a video, GIF, image or frame folder, one at a time."""
    p = _media_path(path)
    count = 0
    for frame in _iter_any(p):
        yield frame
        count += 1
        if max_frames is not None and count >= max_frames:
            return
    if count == 0:
        raise MediaError(f"{p}: the video has no frames")


def scan_video(path: str | os.PathLike, max_frames: int) -> VideoInfo:
    """Size, rate and frame count of a video from its header and its packets, decoding one frame only.

    Packets are counted without decoding them (a demux costs little even for thousands of frames) and
    counting stops past `max_frames`, so the count is exact up to max_frames and max_frames + 1 means
    "more". Used to bound uploads before any expensive work (kino serve)."""
    p = _media_path(path)
    av = _av()
    try:
        with av.open(str(p)) as c:
            if not c.streams.video:
                raise MediaError(f"{p}: no video stream in this file")
            s = c.streams.video[0]
            width, height, codec = s.codec_context.width, s.codec_context.height, s.codec_context.name
            fps = float(s.average_rate or s.guessed_rate or 0) or 25.0
            declared = int(s.frames or 0)
            duration = float(s.duration * s.time_base) if s.duration is not None and s.time_base else 0.0
            if declared > max_frames or duration * fps > max_frames + 1 or width * height <= 0:
                return VideoInfo(width, height, fps, max(declared, max_frames + 1), duration, codec)
            count = 0
            for packet in c.demux(s):
                if packet.size:
                    count += 1
                    if count > max_frames:
                        break
        with av.open(str(p)) as c:  # one frame decodes: the file is a video, not only a header
            s = c.streams.video[0]
            s.thread_type = "SLICE"
            first = next(c.decode(s), None)
            if first is None:
                raise MediaError(f"{p}: the video has no frames")
            width, height = first.width, first.height
    except MediaError:
        raise
    except Exception as e:  # PyAV raises many types (InvalidDataError, OSError, ...)
        raise MediaError(f"{p}: not a readable video ({_short(e)})") from None
    return VideoInfo(width, height, fps, count, duration or count / fps, codec)


def read_video(path: str | os.PathLike, max_frames: int | None = None) -> Video:
    """Read a whole video (or its first `max_frames`) into memory."""
    p = _media_path(path)
    fps = probe(p).fps
    frames = list(iter_frames(p, max_frames=max_frames))
    return Video(np.stack(frames), fps)  # (T, H, W, 3)


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one image (H, W, 3) uint8; a video gives its first frame."""
    return next(iter_frames(path, max_frames=1))


def _iter_any(p: Path) -> Iterator[np.ndarray]:
    if p.is_dir():
        for f in _frame_files(p):
            yield _image_array(f)
        return
    suffix = p.suffix.lower()
    if suffix in IMAGE_SUFFIXES:
        yield _image_array(p)
        return
    if suffix == ".gif":
        from PIL import ImageSequence

        with _open_image(p) as im:
            for fr in ImageSequence.Iterator(im):
                yield np.asarray(fr.convert("RGB"), dtype=np.uint8)
        return
    yield from _iter_av(p)


def _iter_av(p: Path) -> Iterator[np.ndarray]:
    av = _av()
    try:
        container = av.open(str(p))
    except Exception as e:
        raise MediaError(f"{p}: not a readable video ({_short(e)})") from None
    with container:
        if not container.streams.video:
            raise MediaError(f"{p}: no video stream in this file")
        stream = container.streams.video[0]
        # Slice threading only: with frame threading ("AUTO") FFmpeg can deadlock in
        # avcodec_free_context when a reader stops early (max_frames) while frames are in flight
        # (seen in CI: read_video(..., max_frames=10) hung for minutes). kino's clips are small.
        stream.thread_type = "SLICE"
        try:
            for frame in container.decode(stream):
                yield frame.to_ndarray(format="rgb24")  # (H, W, 3)
        except av.error.FFmpegError as e:
            raise MediaError(f"{p}: the video is corrupt or truncated ({_short(e)})") from None


def _open_image(p: Path):
    from PIL import Image, UnidentifiedImageError

    try:
        return Image.open(p)
    except (UnidentifiedImageError, OSError) as e:
        raise MediaError(f"{p}: not a readable image ({_short(e)})") from None


def _image_array(p: Path) -> np.ndarray:
    with _open_image(p) as im:
        try:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)  # (H, W, 3)
        except OSError as e:
            raise MediaError(f"{p}: the image is corrupt or truncated ({_short(e)})") from None


def _frames_meta(p: Path) -> float:
    meta = p / "meta.json"
    if meta.exists():
        try:
            return _check_fps(json.loads(meta.read_text())["fps"])
        except (ValueError, KeyError, TypeError):
            raise MediaError(f'{meta}: broken meta.json (expected {{"fps": N}})') from None
    return 8.0


def _frame_files(p: Path) -> list[Path]:
    files = sorted(f for f in p.iterdir() if f.suffix.lower() == ".png")
    if not files:
        raise MediaError(f"{p}: the folder holds no PNG frames")
    return files


# ----------------------------------------------------------------------------- writing


class VideoWriter:
    """Write frames one at a time to .mp4, .gif, .png (one frame) or a frame folder.

    Use as a context manager: the file appears under its name only if the block finishes
    without an exception and at least one frame was written.

        with VideoWriter("out.mp4", fps=8) as w:
            for frame in frames:
                w.write(frame)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        fmt: Format | None = None,
        crf: int = 18,
        metadata: dict[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.fps = _check_fps(fps)
        self.fmt = fmt or Format.of(path)
        self.crf = crf
        self.metadata = dict(metadata or {})
        self.count = 0
        self._size: tuple[int, int] | None = None  # (H, W) of the first frame
        self._tmp: Path | None = None
        self._container = None
        self._stream = None
        self._gif_frames: list = []

    # -- context
    def __enter__(self) -> VideoWriter:
        parent = self.path.parent
        if not parent.exists():
            raise InputError(f"cannot write {self.path}: folder {parent} does not exist")
        if self.fmt is Format.FRAMES:
            self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.path.name}.", dir=parent))
        else:
            fd, name = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=self.path.suffix, dir=parent)
            os.close(fd)
            self._tmp = Path(name)
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None and self.count == 0:
            self._abort()
            raise InputError(f"cannot write {self.path}: no frames were given")
        if exc_type is not None:
            self._abort()
            return
        try:
            self._finish()
        except BaseException:
            self._abort()
            raise
        if self.fmt is Format.FRAMES and self.path.exists():
            shutil.rmtree(self.path)
        publish_mode(self._tmp)
        os.replace(self._tmp, self.path)

    # -- frames
    def write(self, frame: np.ndarray) -> None:
        frame = as_frame(frame)
        h, w = frame.shape[:2]
        if self._size is None:
            self._size = (h, w)
            self._open()
        elif self._size != (h, w):
            raise InputError(
                f"frame {self.count} is {w}x{h}, but the video is {self._size[1]}x{self._size[0]}"
            )
        if self.fmt is Format.PNG and self.count >= 1:
            raise InputError(f"{self.path.name} is a PNG and holds one frame; use .mp4, .gif or a folder")
        self._write(frame)
        self.count += 1

    def write_all(self, frames: Iterable[np.ndarray]) -> None:
        for frame in frames:
            self.write(frame)

    # -- per format
    def _open(self) -> None:
        if self.fmt is not Format.MP4:
            return
        av = _av()
        h, w = self._size
        self._container = av.open(str(self._tmp), mode="w", format="mp4")
        for k, v in self.metadata.items():
            self._container.metadata[k] = v
        rate = Fraction(self.fps).limit_denominator(1001)
        stream = self._container.add_stream("libx264", rate=rate)
        # yuv420p needs even sides: odd sizes are padded by one edge row/column.
        stream.width, stream.height = w + w % 2, h + h % 2
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(self.crf), "preset": "medium"}
        self._stream = stream

    def _write(self, frame: np.ndarray) -> None:
        if self.fmt is Format.MP4:
            av = _av()
            h, w = frame.shape[:2]
            if h % 2 or w % 2:
                frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
            vf = av.VideoFrame.from_ndarray(frame, format="rgb24")
            for packet in self._stream.encode(vf):
                self._container.mux(packet)
        elif self.fmt is Format.GIF:
            from PIL import Image

            # GIF needs every frame for one save call; GIFs are for short clips.
            self._gif_frames.append(Image.fromarray(frame))
        elif self.fmt is Format.PNG:
            from PIL import Image

            Image.fromarray(frame).save(self._tmp, format="PNG")
        else:
            from PIL import Image

            Image.fromarray(frame).save(self._tmp / f"frame_{self.count:06d}.png", format="PNG")

    def _finish(self) -> None:
        if self.fmt is Format.MP4:
            for packet in self._stream.encode():
                self._container.mux(packet)
            self._container.close()
            self._container = None
        elif self.fmt is Format.GIF:
            first, rest = self._gif_frames[0], self._gif_frames[1:]
            ms = max(20, round(1000.0 / self.fps))
            first.save(self._tmp, format="GIF", save_all=True, append_images=rest, duration=ms, loop=0)
            self._gif_frames = []
        elif self.fmt is Format.FRAMES:
            (self._tmp / "meta.json").write_text(json.dumps({"fps": self.fps, **self.metadata}))

    def _abort(self) -> None:
        if self._container is not None:
            try:
                self._container.close()
            except Exception:
                pass
            self._container = None
        if self._tmp is not None and self._tmp.exists():
            if self._tmp.is_dir():
                shutil.rmtree(self._tmp, ignore_errors=True)
            else:
                self._tmp.unlink(missing_ok=True)


def write_video(
    path: str | os.PathLike,
    frames: np.ndarray | Iterable[np.ndarray],
    fps: float,
    crf: int = 18,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write frames (T, H, W, 3) uint8 (or any iterable of (H, W, 3) frames); returns the path."""
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        frames = frames[None]  # (1, H, W, 3)
    with VideoWriter(path, fps=fps, crf=crf, metadata=metadata) as w:
        w.write_all(frames)
    return Path(path)


def write_image(path: str | os.PathLike, frame: np.ndarray) -> Path:
    """Write one frame (H, W, 3) uint8 as a PNG, atomically."""
    with VideoWriter(path, fps=1, fmt=Format.PNG) as w:
        w.write(frame)
    return Path(path)


# ----------------------------------------------------------------------------- helpers


@contextmanager
def atomic_dir(target: str | os.PathLike) -> Iterator[Path]:
    """Build a folder under a temporary name beside `target`; on success it replaces `target`.

    On an exception the temporary folder is removed and `target` is left as it was.
    """
    out = Path(target)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        yield tmp
        publish_mode(tmp)  # mkdtemp makes 0700; a saved folder gets the ordinary mode
        old = None
        if out.exists():
            old = out.with_name(f".{out.name}.old{os.getpid()}")
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextmanager
def atomic_write(target: str | os.PathLike, mode: str | None = "w", encoding: str | None = None,
                 mkdir: bool = False, private: bool = False) -> Iterator:
    """Write a file under a temporary name beside `target`; on success it is renamed into place.

    `mode` "w" (text, UTF-8 unless `encoding`) or "wb" yields the open file; `mode=None` yields the
    temporary path, for writers that take a file name (safetensors, PyAV). The finished file gets the
    mode an ordinarily created one would have (0666 less the umask, not mkstemp's 0600), or 0600 with
    `private` (keys). On an exception
    the temporary file is removed and `target` is left as it was; a missing folder is an InputError
    unless `mkdir`.

        with atomic_write("specs.jsonl") as f:
            f.write(text)
    """
    out = Path(target)
    if mkdir:
        out.parent.mkdir(parents=True, exist_ok=True)
    elif not out.parent.is_dir():
        raise InputError(f"cannot write {out}: folder {out.parent} does not exist")
    if mode is not None and mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w', 'wb' or None, got {mode!r}")
    # hidden, and ending in the target's suffix for tools that read the format from the name
    fd, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=f".tmp{out.suffix}", dir=out.parent)
    tmp = Path(name)
    try:
        if mode is None:
            os.close(fd)
            yield tmp
        else:
            text = {"encoding": encoding or "utf-8"} if mode == "w" else {}
            with os.fdopen(fd, mode, **text) as f:
                yield f
        if private:
            os.chmod(tmp, 0o600)
        else:
            publish_mode(tmp)
        os.replace(tmp, out)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def publish_mode(path: Path) -> None:
    """Give a temporary file (0600) or folder (0700) the mode a normally created one would have."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, (0o777 if path.is_dir() else 0o666) & ~umask)


def _av():
    try:
        import av
    except ImportError:  # pragma: no cover - av is a core dependency
        from kino.errors import DependencyError

        raise DependencyError("PyAV is not installed; run ./run setup or pip install av") from None
    av.logging.set_level(av.logging.PANIC)  # decoder chatter goes to our one error line instead
    return av


def _short(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    text = text[0] if text else type(e).__name__
    return text[:160]
