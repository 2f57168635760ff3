"""Frames per second of the world renderer on one core: 64x64, 128x128, 256x256 with 1, 2 and 3 objects.

    .venv/bin/python benchmarks/world_render.py [--frames 512] [--repeats 3]

Prints one table of frames/s (wall clock, and by the process's CPU time, which is closer to a free
core when other jobs share the machine); the target is 2,000 frames/s at 64x64 on one core. Each scene mixes shapes and
motions (bouncing circle, spinning star, growing square); "static" keeps the camera still (the
background is drawn once per clip), "pan" redraws the moving background and its specks every frame.
"""

from __future__ import annotations

import os

for _var in (
    "OMP_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "MKL_NUM_THREADS",
):  # one core, set before numpy loads
    os.environ[_var] = "1"

import argparse  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402


def main() -> None:
    import torch

    from kino.world.render import iter_render
    from kino.world.spec import ObjectSpec, SceneSpec

    torch.set_num_threads(1)
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    objects = (
        ObjectSpec("circle", "red", "medium", "bouncing"),
        ObjectSpec("star", "yellow", "large", "spinning"),
        ObjectSpec("square", "cyan", "small", "growing"),
    )
    print(f"world renderer, {args.frames} frames per clip, best of {args.repeats}, 1 thread, "
          f"{platform.processor() or platform.machine()}")  # fmt: skip
    # wall-clock fps, and fps by this process's CPU time (closer to one free core on a shared machine)
    print(
        f"{'size':>9} {'objects':>7} "
        + " ".join(f"{h:>10}" for h in ("static", "static cpu", "pan", "pan cpu"))
    )
    for side in (64, 128, 256):
        for n in (1, 2, 3):
            row = []
            for camera in ("static", "pan_left"):
                spec = SceneSpec(objects=objects[:n], background="sky", camera=camera, width=side, height=side,
                                 num_frames=args.frames)  # fmt: skip
                wall = cpu = float("inf")
                for _ in range(args.repeats):
                    t0, c0 = time.perf_counter(), time.process_time()
                    for _chunk in iter_render(spec, seed=0, chunk=64):
                        pass
                    wall = min(wall, time.perf_counter() - t0)
                    cpu = min(cpu, time.process_time() - c0)
                row += [args.frames / wall, args.frames / cpu]
            print(f"{side:>4}x{side:<4} {n:>7} " + " ".join(f"{v:>10.0f}" for v in row))


if __name__ == "__main__":
    main()
