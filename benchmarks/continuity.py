"""Measured continuity of the conditioned modes, with the world analyzer. Prints a markdown table.

    .venv/bin/python benchmarks/continuity.py [--model DIR] [--n 4] [--long-seconds 60] [--steps 20]

On world clips of the training split (64x64, 8 fps; the clip's detailed caption is the prompt):
1. image-to-video: PSNR of generated frame 0 against the input frame (bar: >= 30 dB), and against the
   input's VAE round trip (the most the mechanism can give);
2. extension seams and 3. window seams: at each seam, the jump in object position (analyzer tracks)
   and in color (mean |RGB| change) divided by the same jump between ordinary consecutive frames
   (bar: <= 2x on average);
4. loop closure: the same ratio for the step from the last frame back to the first (bar: <= 2x);
   a second table gives the absolute jumps behind each ratio (a steadier model's smaller ordinary step
   raises the ratio at an unchanged seam);
5. interpolation: PSNR of the generated frames where the keyframes land against the keyframes;
6. identity over a long video (--long-seconds): share of seconds in which the main object keeps its
   color, shape and size (bar: >= 90%).
--model defaults to the built-in model (kino.pipeline.builtin_model_dir()); any pipeline directory works.
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=None, help="pipeline directory (default: the built-in model)")
    ap.add_argument("--n", type=int, default=4, help="world clips per measure")
    ap.add_argument("--long-seconds", type=float, default=60.0)
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    import torch

    from kino import modes
    from kino.data.world import WorldClips
    from kino.eval import continuity
    from kino.pipeline import KinoPipeline, builtin_model_dir

    if args.threads:
        torch.set_num_threads(args.threads)
    model = args.model or builtin_model_dir()
    pipe = KinoPipeline.from_pretrained(model, device=args.device)
    fps = 8.0
    kw = {"width": 64, "height": 64, "fps": fps, "num_inference_steps": args.steps}
    clips = iter(WorldClips(seed=args.seed, split="train", sizes=((64, 64),), num_frames=(17,), fps=fps))
    rows: dict[str, list[float]] = defaultdict(list)
    t0 = time.perf_counter()
    for i in range(args.n):
        item = next(clips)
        video = ((item["video"].permute(1, 2, 3, 0).numpy() + 1) * 127.5).round().clip(0, 255).astype(np.uint8)
        prompt, seed = item["caption"], args.seed + i
        out = modes.image_to_video(pipe, prompt, video[0], 17, seed=seed, **kw)
        rows["i2v"].append(continuity.psnr(out.frames[0], video[0]))
        rows["i2v_rt"].append(continuity.psnr(out.frames[0], pipe.decode_latents(pipe.encode_frames(video[:1]))[0]))
        ext = modes.extend(pipe, prompt, video[:9], 24, seed=seed, **kw)
        _add(rows, "ext", continuity.seam_report(ext.frames, ext.seams, fps))
        lp = modes.loop(pipe, prompt, 32, seed=seed, **kw)
        _add(rows, "loop", continuity.seam_report(lp.frames, lp.seams[-1:], fps))
        it = modes.interpolate(pipe, prompt, [video[0], video[16]], num_frames=17, seed=seed, **kw)
        rows["key"].append(float(np.mean([continuity.psnr(it.frames[f], k)
                                          for f, k in zip(it.key_frames, [video[0], video[16]], strict=True)])))
    n_long = max(1, round(args.long_seconds * fps))
    for i in range(max(1, args.n // 2)):
        item = next(clips)
        out = pipe(item["caption"], num_frames=n_long, seed=args.seed + 100 + i,
                   **{k: v for k, v in kw.items() if v is not None})
        _add(rows, "win", continuity.seam_report(out.frames, out.seams, fps))
        ident = continuity.identity_consistency(out.frames, fps)
        if ident is not None:
            rows["identity"].append(ident)

    def m(k: str, digits: int = 2) -> str:
        v = [x for x in rows[k] if x is not None]
        return f"{np.mean(v):.{digits}f}" if v else "n/a"  # inf: identical to the reference

    print(f"continuity of {model} ({args.n} world clips, 64x64 at 8 fps, {time.perf_counter() - t0:.0f} s)\n")
    print("| measure | value | bar |")
    print("|---|---|---|")
    print(f"| image-to-video frame-0 PSNR vs input (dB) | {m('i2v')} | >= 30 |")
    print(f"| image-to-video frame-0 PSNR vs VAE round trip (dB) | {m('i2v_rt')} | |")
    for key, name in (("ext", "extension seam"), ("win", f"window seam ({args.long_seconds:g} s)"),
                      ("loop", "loop closure")):
        for attr, unit in (("pos", "position"), ("col", "color")):
            print(f"| {name} / ordinary step: {unit} | {m(f'{key}_{attr}')} | <= 2 |")
    print(f"| interpolation keyframe PSNR (dB) | {m('key')} | |")
    print(f"| identity kept over {args.long_seconds:g} s (share of seconds) | {m('identity')} | >= 0.90 |")
    # a ratio rises when the ordinary step shrinks (a steadier model): the absolute jumps beside it
    print("\n| jump (position: share of the frame side; color: mean abs RGB 0-255) | at the seam | ordinary step |")
    print("|---|---|---|")
    for key, name in (("ext", "extension"), ("win", "window"), ("loop", "loop closure")):
        for attr, unit in (("pos", "position"), ("col", "color")):
            digits = 3 if attr == "pos" else 2
            print(f"| {name}: {unit} | {m(f'{key}_{attr}_seam', digits)} | {m(f'{key}_{attr}_step', digits)} |")


def _add(rows: dict, prefix: str, report) -> None:
    rows[f"{prefix}_pos"].append(report.position_ratio)
    rows[f"{prefix}_col"].append(report.color_ratio)
    rows[f"{prefix}_pos_seam"].append(report.position_seam)
    rows[f"{prefix}_pos_step"].append(report.position_ordinary)
    rows[f"{prefix}_col_seam"].append(report.color_seam)
    rows[f"{prefix}_col_step"].append(report.color_ordinary)


if __name__ == "__main__":
    main()
