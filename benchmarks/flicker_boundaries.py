"""Where generated videos flicker: frame-to-frame change at latent-frame boundaries against inside them.

    .venv/bin/python benchmarks/flicker_boundaries.py [--model DIR] [--n 8] [--steps N] [--threads 1]

A causal VAE codes pixel frame 0 alone and then groups of `temporal_factor` frames into one latent frame
each; a step from one pixel frame to the next either stays inside a latent frame or crosses a boundary
between two. For world clips of the training split (64x64x17 at 8 fps, the detailed caption as prompt),
prints the mean |frame-to-frame change| (0-255, kino.eval.chance.boundary_change: frame 0's step left
out, it joins two codes) at boundary steps and at inside steps, for the renders, their VAE round trips and the
model's videos of the same captions. A model whose latent frames disagree jumps at every boundary: the
jump, not motion, is then most of `kino eval`'s flicker figure and of a seam's colour ratio
(benchmarks/continuity.py), whose seams sit on boundaries.
"""

from __future__ import annotations

import argparse
import itertools
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="pipeline directory (default: the built-in model)")
    ap.add_argument("--n", type=int, default=8, help="world clips")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps (default: the model's)")
    ap.add_argument("--seed", type=int, default=7, help="seed of the world stream")
    ap.add_argument("--threads", type=int, default=0)
    args = ap.parse_args()

    import torch

    from kino.data.world import WorldClips
    from kino.eval.chance import boundary_change, flicker
    from kino.pipeline import KinoPipeline, builtin_model_dir

    def split(frames: np.ndarray) -> tuple[float, float, float]:
        return (*boundary_change(frames, tf), flicker(frames))

    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model or builtin_model_dir()
    pipe = KinoPipeline.from_pretrained(model)
    tf = pipe.vae.config.temporal_factor
    clips = itertools.islice(iter(WorldClips(seed=args.seed, split="train", sizes=((64, 64),), num_frames=(17,),
                                             fps=8.0)), args.n)
    rows: dict[str, list[tuple[float, float, float]]] = {"renders": [], "VAE round trips": [], "generated": []}
    kw = {"num_frames": 17, "width": 64, "height": 64, "fps": 8.0}
    if args.steps:
        kw["num_inference_steps"] = args.steps
    t0 = time.perf_counter()
    for i, item in enumerate(clips):
        video = ((item["video"].permute(1, 2, 3, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        rows["renders"].append(split(video))
        rows["VAE round trips"].append(split(pipe.decode_latents(pipe.encode_frames(video))))
        rows["generated"].append(split(pipe(item["caption"], seed=i, **kw).frames))
    render_all = float(np.mean([r[2] for r in rows["renders"]]))
    print(f"flicker by step kind, {model} ({args.n} world clips, 64x64x17 at 8 fps, {time.perf_counter() - t0:.0f} s)\n")
    print("| videos | latent-frame boundary | inside a latent frame | boundary / inside | all steps | all / renders |")
    print("|---|---|---|---|---|---|")
    for name, r in rows.items():
        b, w, a = np.mean(r, axis=0)
        print(f"| {name} | {b:.2f} | {w:.2f} | {b / w:.2f} | {a:.2f} | {a / render_all:.2f} |")


if __name__ == "__main__":
    main()
