"""Speed of text-to-video with a model (the built-in one by default), and adherence against steps.

Prints three tables:
1. the pipeline call for the default clip once loaded, median of --runs calls, broken down into text
   encoding, denoising, decoding, and writing the file (watermark + MP4 + C2PA, through kino.safety.publish);
2. the whole `kino generate` command from a cold start (a fresh process each time), median of --cold runs:
   wall seconds and the child's user CPU seconds (the figure that counts on a shared, busy machine);
3. with --curve, adherence (kino eval, world-train suite subset) and call time against sampling steps,
   the curve the default step count is chosen from.

    python benchmarks/generate_speed.py [--model DIR] [--threads 2] [--runs 5] [--cold 3] [--curve 4,8,12,20]

--runs 0 skips table 1. --profile FILE profiles the uncounted first cold run with cProfile into FILE.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def loaded_calls(model: str | None, runs: int, steps: int | None) -> dict[str, float]:
    """Median seconds per stage of `runs` default calls on a loaded pipeline."""
    from kino.generation import GenerationRequest, generate_file
    from kino.pipeline import KinoPipeline, builtin_model_dir
    from kino.safety import SafetyConfig

    pipe = KinoPipeline.from_pretrained(model or builtin_model_dir())
    safety = SafetyConfig.load()
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(runs + 1):  # the first call warms caches and is not counted
            req = GenerationRequest(prompt="a red circle moves to the right on a sky background", seed=i,
                                    steps=steps, enhance=False)
            t0 = time.perf_counter()
            res = generate_file(pipe, req, Path(tmp) / f"v{i}.mp4", safety=safety)
            total = time.perf_counter() - t0
            t = dict(res.output.timings)
            call = t.get("total_s", sum(v for k, v in t.items() if k.endswith("_s")))
            row = {"text encoding": t.get("encode_s", float("nan")), "denoising": t.get("denoise_s", float("nan")),
                   "decoding": t.get("decode_s", float("nan")), "pipeline call": call,
                   "policy + writing": total - call, "generate_file total": total}
            if i:
                rows.append(row)
    return {k: statistics.median(r[k] for r in rows) for k in rows[0]}


def cold_runs(model: str | None, runs: int, threads: int, profile: str | None = None) -> list[tuple[float, float]]:
    """(wall seconds, user CPU seconds) of `kino generate` in a fresh process, `runs` times."""
    out = []
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "KINO_CONFIG_DIR": str(Path(tmp) / "cfg")}  # made once, in the first run
        # run 0 makes the local signing chain and watermark key (and is the one profiled); not counted
        for i in range(runs + 1):
            cmd = [sys.executable, *(["-m", "cProfile", "-o", profile] if profile and i == 0 else []),
                   "-m", "kino", "generate", "a blue square falls on grass", "-o",
                   str(Path(tmp) / f"c{i}.mp4"), "--seed", str(i), "--threads", str(threads)]
            if model:
                cmd += ["--model", model]
            before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime
            t0 = time.perf_counter()
            subprocess.run(cmd, check=True, capture_output=True, env=env)
            wall = time.perf_counter() - t0
            if i:
                out.append((wall, resource.getrusage(resource.RUSAGE_CHILDREN).ru_utime - before))
    return out


def curve(model: str | None, steps_list: list[int], prompts: int) -> list[tuple[int, float, float]]:
    """(steps, total adherence, median call seconds) on the first `prompts` world-train prompts, 1 seed."""
    from kino.eval.runner import EvalConfig, evaluate
    from kino.eval.suites import suite_prompts
    from kino.pipeline import KinoPipeline, builtin_model_dir

    pipe = KinoPipeline.from_pretrained(model or builtin_model_dir())
    items = suite_prompts("world-train")[:prompts]
    out = []
    for steps in steps_list:
        t0 = time.perf_counter()
        report = evaluate(items, EvalConfig(seeds=1, steps=steps), pipe, source="world-train")
        per = (time.perf_counter() - t0) / len(items)
        out.append((steps, report.summary.total, per))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="pipeline folder (default: the built-in model)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cold", type=int, default=3)
    ap.add_argument("--steps", type=int, default=None, help="sampling steps for tables 1-2 (default: the model's)")
    ap.add_argument("--curve", default="", help="comma-separated step counts for the adherence curve")
    ap.add_argument("--curve-prompts", type=int, default=12)
    ap.add_argument("--profile", default=None, help="cProfile output file for one cold run")
    a = ap.parse_args()
    import torch

    torch.set_num_threads(a.threads)
    print(f"threads: {a.threads}, torch {torch.__version__}")
    if a.runs:
        stages = loaded_calls(a.model, a.runs, a.steps)
        print(f"\n| stage (default 2 s 64x64 clip, loaded, median of {a.runs}) | seconds |\n|---|---|")
        for k, v in stages.items():
            print(f"| {k} | {v:.3f} |")
    if a.cold:
        runs = cold_runs(a.model, a.cold, a.threads, a.profile)
        wall, user = [r[0] for r in runs], [r[1] for r in runs]
        print(f"\n| cold `kino generate` (median of {len(runs)}) | median | min | max |\n|---|---|---|---|")
        print(f"| wall seconds | {statistics.median(wall):.2f} | {min(wall):.2f} | {max(wall):.2f} |")
        print(f"| user CPU seconds | {statistics.median(user):.2f} | {min(user):.2f} | {max(user):.2f} |")
    if a.curve:
        print("\n| steps | total adherence | seconds per video (incl. analysis) |\n|---|---|---|")
        for steps, total, per in curve(a.model, [int(s) for s in a.curve.split(",")], a.curve_prompts):
            print(f"| {steps} | {total:.3f} | {per:.2f} |")


if __name__ == "__main__":
    main()
