"""DiT training clips/s on the world: `kino train dit --data world` against `--data CACHE` (issue 18).

Runs the real training loop (kino.train.loop.train_dit, as `kino train dit` does) for the same recipe three
ways and reads each step's wall time from the run's metrics.jsonl (the first step, which loads the text
encoder and starts the loop, is left out):

  - world: every step renders its clips, VAE-encodes them and text-encodes their captions, then the DiT;
  - cache: a world latent cache built first (kino.data.world_cache, as `kino data cache --world` does;
    its build time is reported too), then the DiT alone;
  - cache, images first: the same cache with --image-steps covering the run (every clip's first frame).

The cache's build is timed twice: with the VAE encoding a shard's clips of one shape in eights (the
default) and one clip at a time (a quarter as many clips), what `--encode-batch` chooses between.

Random weights time the same as trained ones: the v2 VAE preset (world-tiny-v2) and the v2 DiT preset.
The cache's batches fill a token budget (the micro-batch x the largest clip), so a step of smaller clips
holds more of them; clips/s and tokens/s are both given.

    OMP_NUM_THREADS=1 python benchmarks/dit_throughput.py --steps 25 --clips 96
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch


def run_rate(run: Path) -> dict:
    """s/step, clips/s and tokens/s of a finished run, its first step left out."""
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    rows = [r for r in rows if "loss" in r][1:]
    seconds = sum(r["seconds"] for r in rows)
    return {"steps": len(rows), "step_s": seconds / len(rows), "clips_s": sum(r["samples"] for r in rows) / seconds,
            "tokens_s": sum(r["tokens"] for r in rows) / seconds,
            "clips_step": sum(r["samples"] for r in rows) / len(rows)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=25, help="optimizer steps per way (the first is left out)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--clips", type=int, default=96, help="clips in the cache")
    p.add_argument("--vae", default="world-tiny-v2", help="VAE preset (random weights)")
    p.add_argument("--preset", default="world-tiny-v2", help="DiT preset")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from kino.data.cache import CacheConfig
    from kino.data.world_cache import build_world_cache
    from kino.models.text import TextEncoder
    from kino.models.vae import CausalVAE, vae_preset
    from kino.train.dit import DiTTrainConfig
    from kino.train.loop import train_dit

    torch.manual_seed(0)
    vae = CausalVAE(vae_preset(args.vae)).eval()
    recipe = DiTTrainConfig(preset=args.preset)  # the recipe's world: 64x64, 96x64, 64x96; 9 and 17 frames; 10% images
    world = {"seed": 0, "sizes": recipe.sizes, "num_frames": recipe.num_frames, "image_prob": recipe.image_prob}
    cfg = DiTTrainConfig(preset=args.preset, steps=args.steps, batch_size=args.batch, checkpoint_every=10**6,
                         warmup=1)
    rows = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t = time.perf_counter()
        build_world_cache(args.clips, vae, TextEncoder(), tmp / "cache", CacheConfig(shard_size=64), **world)
        build = (time.perf_counter() - t) / args.clips
        t = time.perf_counter()
        build_world_cache(args.clips // 4, vae, TextEncoder(), tmp / "cache-1", CacheConfig(shard_size=64),
                          encode_batch=1, **world)
        build_one = (time.perf_counter() - t) / (args.clips // 4)
        for name, source, image_steps in (("world (render + VAE + text + DiT)", "world", 0),
                                          ("world latent cache (DiT only)", str(tmp / "cache"), 0),
                                          ("cache, images first (every step)", str(tmp / "cache"), args.steps)):
            run = tmp / f"run-{len(rows)}"
            train_dit(replace(cfg, image_steps=image_steps), vae, run, source=source, tensorboard=False)
            rows[name] = run_rate(run)
            print(f"{name}: {rows[name]}", flush=True)

    tokens = rows["world (render + VAE + text + DiT)"]["tokens_s"] / rows["world (render + VAE + text + DiT)"]["clips_s"]
    print(f"\n{platform.machine()} CPU, {torch.get_num_threads()} thread(s), torch {torch.__version__}; "
          f"VAE {args.vae} and DiT {args.preset} (random weights), batch {args.batch}, the recipe's world mix "
          f"(~{tokens:.0f} tokens a clip), {args.steps - 1} timed steps each\n")
    print("| data | s/step | clips/step | DiT clips/s | tokens/s |\n|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        print(f"| {name} | {r['step_s']:.2f} | {r['clips_step']:.1f} | {r['clips_s']:.2f} | {r['tokens_s']:.0f} |")
    print(f"| building the cache, once ({args.clips} clips, VAE in batches of 8) | {build:.3f} s/clip | | "
          f"{1 / build:.2f} | |")
    print(f"| building the cache, once ({args.clips // 4} clips, VAE one clip at a time) | {build_one:.3f} s/clip | | "
          f"{1 / build_one:.2f} | |")


if __name__ == "__main__":
    main()
