"""The ceiling a VAE puts on prompt adherence: the world analyzer on VAE round trips of ground truth.

    .venv/bin/python benchmarks/vae_ceiling.py [--vae DIR] [--n 24] [--suite world-train]

Each prompt's ground-truth scene (kino.eval.suites) is rendered, encoded and decoded by the VAE, and
the analyzer scores the round trip against what the prompt asks, as `kino eval` scores a generated
video. No DiT trained on this latent can do better on average. Prints a markdown table per attribute.
"""

from __future__ import annotations

import argparse
from collections import defaultdict


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vae", default=None, help="VAE folder (default: the built-in model's)")
    ap.add_argument("--n", type=int, default=24, help="prompts of the suite")
    ap.add_argument("--suite", default="world-train")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    import torch

    from kino.data.world import frames_to_tensor, tensor_to_frames
    from kino.eval.suites import reference_scene, suite_prompts
    from kino.models.vae import CausalVAE
    from kino.pipeline import builtin_model_dir
    from kino.world.analyze import analyze
    from kino.world.render import render
    from kino.world.score import score

    torch.set_num_threads(a.threads)
    vae = CausalVAE.from_pretrained(a.vae or builtin_model_dir() / "vae", dtype=torch.float32)
    met: dict[str, list[float]] = defaultdict(list)
    for item in suite_prompts(a.suite, 64, 64, 8.0, 17)[: a.n]:
        truth = render(reference_scene(item, 64, 64, 8.0, 17), 0)  # (T, H, W, 3) uint8
        with torch.no_grad():
            rec = tensor_to_frames(vae.decode(vae.encode(frames_to_tensor(truth)[None]))[0])
        for label, frames in (("render", truth), ("vae", rec)):
            result = score(analyze(frames, 8.0), item.expect).to_dict()
            met[f"{label}:total"].append(result["fraction"])
            for check in result["checks"]:
                met[f"{label}:{check['attribute']}"].append(float(check["met"]))
    attrs = sorted({k.split(":")[1] for k in met} - {"total"}) + ["total"]
    print(f"{a.suite}, {a.n} prompts, 64x64, 17 frames\n\n| attribute | render | VAE round trip |\n|---|---|---|")
    for k in attrs:
        r, v = met[f"render:{k}"], met[f"vae:{k}"]
        print(f"| {k} | {sum(r) / len(r):.3f} | {sum(v) / len(v):.3f} |")


if __name__ == "__main__":
    main()
