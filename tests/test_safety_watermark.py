"""The invisible watermark: payload coding, round trips through H.264, resize and crop, no false alarms."""

from __future__ import annotations

import numpy as np
import pytest

from kino.errors import InputError
from kino.safety import watermark as wm


def scene(t: int = 8, size: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth moving frames with hard-edged shapes (like kino's world), (T, H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size]
    c1, c2 = rng.integers(40, 220, 3), rng.integers(0, 255, 3)
    out = np.zeros((t, size, size, 3), np.uint8)
    for i in range(t):
        f = xx[..., None] / size * c1 + yy[..., None] / size * (255 - c1) * 0.6  # (H, W, 3)
        f[(xx - 10 - 2 * i) ** 2 + (yy - 24) ** 2 < 90] = c2
        out[i] = np.clip(f, 0, 255)
    return out


def test_payload_round_trip_and_bad_ids():
    bits = wm.payload_bits("0a1b2c3d")
    assert bits.shape == (48,) and wm.bits_to_id(bits) == "0a1b2c3d"
    assert int("".join(map(str, bits[:16])), 2) == wm.MAGIC
    for bad in ("xyz", "123", "0a1b2c3d4"):
        with pytest.raises(InputError, match="8 hex digits"):
            wm.payload_bits(bad)


def test_embed_is_invisible_and_detected_exactly():
    frames = scene()
    marked = wm.embed(frames, "deadbeef")
    assert marked.shape == frames.shape and marked.dtype == np.uint8
    assert wm.psnr(frames, marked) > 34.0
    r = wm.detect(marked)
    assert r.present and r.watermark_id == "deadbeef" and wm.bit_accuracy(r, "deadbeef") == 1.0
    assert r.z >= wm.Z_THRESHOLD


def test_unmarked_frames_are_not_detected():
    for seed in range(3):
        r = wm.detect(scene(seed=seed))
        assert not r.present and r.watermark_id is None and r.z < wm.Z_THRESHOLD
    flat = np.full((4, 64, 64, 3), 128, np.uint8)
    assert not wm.detect(flat).present


def test_survives_h264_resize_and_crop(tmp_path):
    from PIL import Image

    from kino.io import read_video, write_video

    marked = wm.embed(scene(t=8, seed=1), "c0ffee42")
    write_video(tmp_path / "m.mp4", marked, fps=8)  # crf 18, kino's default
    h264 = read_video(tmp_path / "m.mp4").frames
    r = wm.detect(h264)
    assert r.present and r.watermark_id == "c0ffee42"
    half = np.stack([np.asarray(Image.fromarray(f).resize((32, 32), Image.BILINEAR)) for f in h264])
    r = wm.detect(half)
    assert r.present and wm.bit_accuracy(r, "c0ffee42") >= 0.95
    cropped = h264[:, 2:60, 4:62]  # 10% of each side gone
    r = wm.detect(cropped)
    assert r.present and wm.bit_accuracy(r, "c0ffee42") >= 0.95
    assert r.crop[2] < 1.0 and r.crop[3] < 1.0  # the search found a cropped window


def test_a_different_id_decodes_differently():
    a = wm.detect(wm.embed(scene(), "00000000"))
    b = wm.detect(wm.embed(scene(), "ffffffff"))
    assert a.watermark_id == "00000000" and b.watermark_id == "ffffffff"


def test_bad_frames_raise():
    with pytest.raises(InputError, match="uint8"):
        wm.embed(np.zeros((2, 64, 64, 3), np.float32), "00000000")
    with pytest.raises(InputError, match="too small"):
        wm.detect(np.zeros((2, 8, 8, 3), np.uint8))
