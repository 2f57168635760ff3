"""How right the world's analyzer is: accuracy, confusion tables, robustness, speed. Prints markdown.

    .venv/bin/python benchmarks/world_analyzer.py [--n 300] [--robust-n 60] [--seed 0]

1. Random specs of the training split at 64x64, 17 frames at 8 fps, rendered, written as H.264
   MP4 (kino.io.write_video, crf 18) and read back; the analyzer's output is checked against the
   full spec (kino.world.score.accuracy): share of attributes met by number of objects and by
   attribute, then confusion tables (rows: the spec, columns: what the analyzer saw).
2. Robustness: the same kind of clips, blurred (gaussian sigma in pixels) and with gaussian noise
   (std in 0-255 units), no H.264: share of attributes met for each (sigma, std).
3. Speed: milliseconds per analysis of a 17-frame 64x64 clip (threads as the machine has them).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300, help="specs for the accuracy and confusion tables")
    ap.add_argument("--robust-n", type=int, default=60, help="specs per cell of the robustness table")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    from scipy.ndimage import gaussian_filter

    from kino.io import read_video, write_video
    from kino.world.analyze import analyze
    from kino.world.render import render
    from kino.world.sampler import sample_spec
    from kino.world.score import Attribute, accuracy

    rng = np.random.default_rng(args.seed)
    met, asked = Counter(), Counter()
    by_attr_met, by_attr = Counter(), Counter()
    confusion: dict[Attribute, Counter] = defaultdict(Counter)
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "clip.mp4"
        for i in range(args.n):
            spec = sample_spec(rng, num_frames=17)
            write_video(path, render(spec, seed=i), fps=spec.fps)
            frames = read_video(path).frames
            t0 = time.perf_counter()
            seen = analyze(frames, spec.fps)
            times.append(time.perf_counter() - t0)
            result = accuracy(seen, spec)
            k = len(spec.objects)
            for c in result.checks:
                met[k] += c.met
                asked[k] += 1
                by_attr_met[c.attribute] += c.met
                by_attr[c.attribute] += 1
                confusion[c.attribute][(c.asked, c.seen or "none")] += 1

    print(
        f"## Accuracy after an H.264 round trip ({args.n} random specs, 64x64, 17 frames, seed {args.seed})\n"
    )
    print("| objects in the scene | scenes' attributes | met |")
    print("|---|---|---|")
    for k in sorted(asked):
        print(f"| {k} | {asked[k]} | {met[k] / asked[k]:.3f} |")
    print(f"| all | {sum(asked.values())} | {sum(met.values()) / sum(asked.values()):.3f} |\n")
    print("| attribute | checks | met |")
    print("|---|---|---|")
    for a in Attribute:
        if by_attr[a]:
            print(f"| {a} | {by_attr[a]} | {by_attr_met[a] / by_attr[a]:.3f} |")
    print()
    for a in (Attribute.COLOR, Attribute.SHAPE, Attribute.SIZE, Attribute.MOTION, Attribute.BACKGROUND,
              Attribute.CAMERA, Attribute.COUNT, Attribute.EVENT):  # fmt: skip
        _confusion(a, confusion[a])

    sigmas, stds = (0.0, 0.7, 1.0, 1.5), (0.0, 5.0, 10.0, 20.0)
    print(
        f"## Robustness: share of attributes met on blurred and noisy renders ({args.robust_n} specs per cell)\n"
    )
    print("| blur sigma \\ noise std | " + " | ".join(f"{s:g}" for s in stds) + " |")
    print("|---|" + "---|" * len(stds))
    for sigma in sigmas:
        row = []
        for std in stds:
            r = np.random.default_rng(args.seed + 1)
            m = n = 0
            for i in range(args.robust_n):
                spec = sample_spec(r, num_frames=17)
                f = render(spec, seed=i).astype(np.float32)  # (T, H, W, 3)
                if sigma:
                    f = gaussian_filter(f, sigma=(0, sigma, sigma, 0))
                f = np.clip(np.rint(f + r.normal(0, std, f.shape)), 0, 255).astype(np.uint8)
                res = accuracy(analyze(f, spec.fps), spec)
                m, n = m + res.met, n + len(res.checks)
            row.append(f"{m / n:.3f}")
        print(f"| {sigma:g} | " + " | ".join(row) + " |")
    print()
    ms = 1000 * np.array(times)
    print("## Speed\n")
    print("| clip | analyses | median ms | p90 ms |")
    print("|---|---|---|---|")
    print(f"| 64x64, 17 frames | {len(ms)} | {np.median(ms):.1f} | {np.percentile(ms, 90):.1f} |")


def _confusion(attribute, counts: Counter) -> None:
    rows = sorted({a for a, _ in counts})
    cols = sorted({s for _, s in counts} | set(rows), key=lambda s: (s == "none", s))
    print(f"### {attribute} (rows: spec, columns: analyzer)\n")
    print("| spec \\ seen | " + " | ".join(cols) + " |")
    print("|---|" + "---|" * len(cols))
    for a in rows:
        print(f"| {a} | " + " | ".join(str(counts.get((a, s), 0) or ".") for s in cols) + " |")
    print()


if __name__ == "__main__":
    main()
