"""Enhancement of conditioned requests, with and without reading their inputs (issue 16 #2).

    .venv/bin/python benchmarks/conditioned_enhance.py [--n 24] [--level short] [--threads 1]

The conditioning suite (kino.eval.suites) gives image-to-video, forward extension and interpolation
parts of a rendered scene. `kino eval --suite conditioning` prompts each with the scene's full caption,
which leaves nothing open, so the enhancer cannot contradict the inputs there. A user types less: here
each item is prompted with its caption at `--level` (short by default: "a red ball" for a red ball on a
night sky), enhanced twice with the same seed, once without the inputs (what every conditioned mode did
before) and once with them read by the world analyzer (kino.enhance.Inputs, as kino.generation does
now), and the video is scored against the whole scene (PromptSpec.of_scene), as the suite scores it.
Prints one markdown table: adherence per attribute and in all, the conditioned frames' PSNR and the
extension seam's color jump, per variant.
"""

from __future__ import annotations

import argparse
import dataclasses


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=24, help="items of the conditioning suite (modes in turn)")
    ap.add_argument("--level", default="short", choices=("short", "medium"))
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch

    from kino.eval import conditioning
    from kino.eval.runner import EvalConfig, evaluate
    from kino.eval.suites import Suite, suite_prompts
    from kino.pipeline import KinoPipeline, builtin_model_dir
    from kino.world.caption import CaptionLevel, caption

    torch.set_num_threads(a.threads)
    pipe = KinoPipeline.from_pretrained(builtin_model_dir())
    s = pipe.scheduler
    items = suite_prompts(Suite.CONDITIONING, s.width, s.height, s.fps, round(s.seconds * s.fps))[: a.n]
    items = [dataclasses.replace(it, prompt=caption(it.scene, CaptionLevel(a.level), seed=i))
             for i, it in enumerate(items)]
    config = EvalConfig(seeds=1, enhance=True)
    reads = conditioning.given_inputs
    rows = {}
    for name, given in (("enhanced without the inputs (before)", lambda *args: None),
                        ("enhanced from the inputs (after)", reads)):
        conditioning.given_inputs = given  # the runner looks it up at each video
        rows[name] = evaluate(items, config, pipe, source=f"conditioning, {a.level} prompts").summary.to_dict()
    conditioning.given_inputs = reads
    keys = sorted({k for r in rows.values() for k in r["adherence"]})
    print(f"| variant | {' | '.join(keys)} | total | i2v PSNR | interp PSNR | seam color ratio |")
    print("|---" * (len(keys) + 5) + "|")
    for name, r in rows.items():
        c = r.get("conditioning") or {}
        cells = [f"{r['adherence'][k]['fraction']:.3f}" for k in keys]
        fmt = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"| {name} | {' | '.join(cells)} | {r['adherence_total']:.3f} | "
              f"{fmt(c.get('image_to_video_psnr'))} | {fmt(c.get('interpolate_psnr'))} | "
              f"{fmt(c.get('extend_seam_color'))} |")
    print(f"\n{len(items)} videos per variant ({a.level} prompts), built-in model, seed 0 each")


if __name__ == "__main__":
    main()
