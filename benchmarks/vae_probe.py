"""Probe VAE designs briefly: train each for a few hundred steps, then measure its ceiling.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/vae_probe.py NAME KEY=VALUE ... [--steps 200] [--out DIR]

NAME labels the run (DIR/probe-NAME, DIR runs by default; an existing probe of that name is replaced);
KEY=VALUE pairs are VAEConfig fields over the world-tiny preset (e.g. spatial_factor=4
shortcut_channels=3 zero_encoder_head=false widths=48,96,128) or VAETrainConfig fields prefixed with
`train.` (e.g. train.kl_weight=1e-4). Prints the ceiling table (kino.train.vae_eval.ceiling) after training. The issue-18 design search used it, 1 thread each.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import fields


def _value(text: str):
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    if "," in text:
        return tuple(int(v) for v in text.split(",") if v)
    try:
        return int(text)
    except ValueError:
        return float(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name")
    ap.add_argument("overrides", nargs="*")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default="runs", help="folder of the probe runs (DIR/probe-NAME)")
    a = ap.parse_args()
    import torch

    from kino.models import vae as vae_mod
    from kino.train.vae import VAETrainConfig, train_vae
    from kino.train.vae_eval import ceiling, load_vae

    torch.set_num_threads(a.threads)
    model_kw, train_kw = {}, {}
    for pair in a.overrides:
        key, _, text = pair.partition("=")
        (train_kw if key.startswith("train.") else model_kw)[key.removeprefix("train.")] = _value(text)
    known = {f.name for f in fields(vae_mod.VAEConfig)}
    if set(model_kw) - known:
        raise SystemExit(f"unknown VAEConfig fields {sorted(set(model_kw) - known)}")
    vae_mod.VAE_PRESETS["probe"] = lambda **kw: vae_mod.vae_world_tiny(**{**model_kw, **kw})
    cfg = VAETrainConfig(preset="probe", steps=a.steps, batch_size=a.batch_size, checkpoint_every=a.steps,
                         log_every=max(1, a.steps // 4), keep=1, **train_kw)
    t0 = time.perf_counter()
    path = train_vae(cfg, f"{a.out}/probe-{a.name}", progress=False, overwrite=True)
    minutes = (time.perf_counter() - t0) / 60
    c = ceiling(load_vae(path))
    print(json.dumps({"name": a.name, "model": model_kw, "train": train_kw, "steps": a.steps,
                      "minutes": round(minutes, 1), "total": round(c.total, 3), "psnr": round(c.psnr, 2),
                      "ssim": round(c.ssim, 3), **{k: round(v, 3) for k, v in c.attributes.items()},
                      **{k: round(v, 3) for k, v in c.by_size.items()}}))


if __name__ == "__main__":
    main()
