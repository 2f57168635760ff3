"""VAE benchmark: encode/decode throughput, peak memory against clip length and size, compression.

    .venv/bin/python benchmarks/vae_bench.py [--model DIR] [--threads N]

Each memory row runs in a fresh subprocess that streams a synthetic clip (moving shapes, made
piece by piece so the clip itself is never held) through `encode_stream` then `decode_stream`,
and reports the peak resident memory (ru_maxrss, which sees torch's allocations) and its rise
above the process's memory after loading the model (and one warm-up frame).
Run with `--probe W H SECONDS FPS` it measures one clip and prints JSON (the tests use this).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def synthetic_pieces(width: int, height: int, frames: int, piece: int = 4):
    """Yield (1, 3, t, H, W) float pieces of a clip of moving squares on a gradient, in [-1, 1]."""
    import torch

    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([xx / width, yy / height, 0.5 * np.ones_like(xx)], axis=0)  # (3, H, W)
    n = 0
    while n < frames:
        t = 1 if n == 0 else min(piece, frames - n)
        out = np.repeat(base[:, None], t, axis=1).copy()  # (3, t, H, W)
        for k in range(t):
            c = (n + k) * 2
            s = max(4, width // 8)
            x0, y0 = c % max(1, width - s), (c // 2) % max(1, height - s)
            out[:, k, y0:y0 + s, x0:x0 + s] = np.array([0.9, 0.2, 0.1], np.float32)[:, None, None]
        yield torch.from_numpy(out * 2 - 1)[None]  # (1, 3, t, H, W)
        n += t


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def probe(width: int, height: int, seconds: float, fps: float, model_dir: str | None, narrow: bool = False) -> dict:
    """Stream one clip through the VAE in this process; peak memory in MiB and timings.

    `narrow`: world-tiny at 1/4 of its widths, 8-frame chunks, 128-pixel tiles (the tests' fast stand-in).
    """
    import torch

    from kino.models.vae import CausalVAE, vae_world_tiny
    from kino.models.vae_stream import decode_stream, encode_stream

    torch.manual_seed(0)
    narrow_cfg = vae_world_tiny(widths=(8, 16, 32), chunk_frames=8, tile_size=128, tile_overlap=32)
    cfg = narrow_cfg if narrow else vae_world_tiny()
    vae = CausalVAE.from_pretrained(model_dir) if model_dir else CausalVAE(cfg).eval()
    frames = 1 + int(round(seconds * fps)) // 4 * 4
    with torch.no_grad():  # warm-up: one frame, so one-time allocations count in the baseline
        list(decode_stream(vae, [mean for mean, _ in encode_stream(vae, torch.zeros(1, 3, 1, 64, 64))]))
    base = _maxrss_mb()
    t0 = time.perf_counter()
    latents = [vae.normalize(m) for m, _ in encode_stream(vae, synthetic_pieces(width, height, frames))]
    t1 = time.perf_counter()
    n = sum(chunk.shape[2] for chunk in decode_stream(vae, latents))
    t2 = time.perf_counter()
    assert n == frames, (n, frames)
    peak = _maxrss_mb()
    return {"width": width, "height": height, "seconds": seconds, "fps": fps, "frames": frames,
            "peak_mb": peak, "rise_mb": peak - base, "encode_fps": frames / (t1 - t0),
            "decode_fps": frames / (t2 - t1)}


def probe_subprocess(width: int, height: int, seconds: float, fps: float, model_dir: str | None = None,
                     threads: int = 1, narrow: bool = False, env: dict | None = None) -> dict:
    """`probe` in a fresh python process (so each peak is its own)."""
    cmd = [sys.executable, __file__, "--probe", str(width), str(height), str(seconds), str(fps),
           "--threads", str(threads)] + (["--model", model_dir] if model_dir else []) + (["--narrow"] if narrow else [])
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a VAE folder (default: an untrained world-tiny)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--narrow", action="store_true", help="a narrow stand-in model (fast; for tests)")
    ap.add_argument("--probe", nargs=4, metavar=("W", "H", "SECONDS", "FPS"), default=None)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.probe:
        w, h, s, f = args.probe
        print(json.dumps(probe(int(w), int(h), float(s), float(f), args.model, args.narrow)))
        return
    from kino.models.vae import CausalVAE, vae_world_tiny

    cfg = CausalVAE.from_pretrained(args.model).config if args.model else vae_world_tiny()
    print(f"VAE: {'trained ' + args.model if args.model else 'world-tiny (untrained)'}, "
          f"{args.threads} thread(s), compression {cfg.compression:.0f}x "
          f"({cfg.temporal_factor}x{cfg.spatial_factor}x{cfg.spatial_factor}, {cfg.latent_channels} channels)")
    print(f"{'clip':>22} {'frames':>7} {'encode f/s':>11} {'decode f/s':>11} {'peak MiB':>9} {'rise MiB':>9}")
    for w, h, s, f in ((64, 64, 2, 8), (64, 64, 10, 8), (64, 64, 60, 8), (256, 256, 2, 8),
                       (512, 512, 2, 4), (512, 512, 10, 4)):
        r = probe_subprocess(w, h, s, f, args.model, args.threads)
        label = f"{w}x{h} {s}s @{f:g}fps"
        print(f"{label:>22} {r['frames']:>7} {r['encode_fps']:>11.1f} {r['decode_fps']:>11.1f} "
              f"{r['peak_mb']:>9.0f} {r['rise_mb']:>9.0f}")


if __name__ == "__main__":
    main()
