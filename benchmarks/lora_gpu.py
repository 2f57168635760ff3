"""LoRA training throughput and peak memory of the open families at their real sizes, random weights.

    python benchmarks/lora_gpu.py [--device cuda] [--steps 6] [--budget 420] [--only wan-1.3b]
    python benchmarks/lora_gpu.py --tiny --device cpu        # the CPU smoke run (a test runs it)

Builds the real-size transformers of benchmarks/open_models_gpu.py (Wan 2.1 T2V 1.3B, LTX-Video 2B) in
bf16 on the device with random weights, adds kino's default LoRA (rank 16 on the attention and FFN
projections, kino.families.lora), and times kino's training step of that family
(kino.train.lora_objectives: the flow path, the family's transformer call, backward, AdamW on the
adapters) on one clip of cached-latent shape at 480p: Wan 832x480 x 81 frames (latent 16 x 21 x 60 x 104),
LTX-Video 704x480 x 121 frames (latent 128 x 16 x 15 x 22), text states of 512 / 256 tokens.

Printed per setting (gradient checkpointing on; with and without fp8 storage of the base): clips/s
(median step after the first two), seconds per step and peak memory (torch.cuda.max_memory_allocated).
The VAE and text encoder are not run: `kino train lora` reads their outputs from the cache. Random
weights give honest speed and memory (the shapes and kernels of the released checkpoints), not a
trained LoRA. Runs stop when `--budget` seconds have passed, so one command fits a lent device.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

# name -> (latent (C, F, H, W), text (L, D)) of one 480p clip; tiny: what the tiny configs take
SHAPES = {"wan-1.3b": ((16, 21, 60, 104), (512, 4096)), "ltx-2b": ((128, 16, 15, 22), (256, 4096))}
TINY_SHAPES = {"wan-1.3b": ((16, 3, 4, 4), (512, 32)), "ltx-2b": ((8, 3, 4, 4), (16, 32))}


def build(name: str, tiny: bool, device, dtype, fp8: bool):
    import torch
    from diffusers import LTXVideoTransformer3DModel, WanTransformer3DModel
    from open_models_gpu import PRESETS, TINY

    from kino.families.lora import LoRASpec, add_lora, default_targets

    family, cfg = (TINY if tiny else PRESETS)[name][:2]
    cls = WanTransformer3DModel if family == "wan" else LTXVideoTransformer3DModel
    with torch.device(device):
        model = cls(**cfg)
    keep = set(getattr(cls, "_keep_in_fp32_modules", None) or ())  # as from_pretrained(torch_dtype=...) keeps them
    for n, m in model.named_children():
        m.to(torch.float32 if n in keep else dtype)
    for n, p in model.named_parameters(recurse=False):
        p.data = p.data.to(torch.float32 if n in keep else dtype)
    for n, m in model.named_modules():
        if n and n.split(".")[-1] in keep:
            m.to(torch.float32)
    model.requires_grad_(False)
    if fp8:
        model.enable_layerwise_casting(storage_dtype=torch.float8_e4m3fn, compute_dtype=dtype)
        model._kino_compute_dtype = dtype
    add_lora(model, LoRASpec(16, 16.0, default_targets(family)))
    for p in model.parameters():
        if p.requires_grad:
            p.data = p.data.float()
    model.enable_gradient_checkpointing()
    return family, model.train()


def step_fn(family: str, model, latent_shape, text_shape, device, dtype):
    import torch

    from kino.train.lora_objectives import ltx_loss, noised, wan_loss

    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    x0 = torch.randn(1, *latent_shape, device=device)
    text = torch.randn(1, *text_shape, device=device, dtype=dtype)
    mask = torch.ones(1, text_shape[0], dtype=torch.bool, device=device)
    clean = torch.zeros(1, latent_shape[1], dtype=torch.bool)
    autocast = torch.autocast(device.type, dtype=dtype) if device.type == "cuda" else torch.autocast("cpu",
                                                                                                     enabled=False)

    def step() -> float:
        path = noised(x0, torch.randn_like(x0), torch.rand(1), clean)
        opt.zero_grad(set_to_none=True)
        with autocast:
            if family == "wan":
                loss = wan_loss(model, path, text, (1, 2, 2))
            else:
                loss = ltx_loss(model, path, text, mask, torch.tensor([25.0]), (1, 1, 1), 8, 32)
        loss.backward()
        opt.step()
        return float(loss.detach())

    return step


def main(argv: list[str] | None = None) -> list[dict]:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--budget", type=float, default=420.0)
    ap.add_argument("--only", default="wan-1.3b,ltx-2b")
    ap.add_argument("--tiny", action="store_true", help="tiny configs (the CPU smoke run)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shapes = TINY_SHAPES if args.tiny else SHAPES
    t_start, rows = time.perf_counter(), []
    print("| model | setting | clips/s | s/step | peak GB |\n|---|---|---|---|---|", flush=True)
    for name in args.only.split(","):
        for fp8 in (False, True):
            base = "bf16 base" if device.type == "cuda" else "fp32 base"
            setting = f"{base}, fp8 storage" if fp8 else base
            if time.perf_counter() - t_start > args.budget:
                print(f"| {name} | {setting} | skipped (budget) | | |", flush=True)
                continue
            if device.type == "cuda":
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats(device)
            family, model = build(name, args.tiny, device, dtype, fp8)
            step = step_fn(family, model, *shapes[name], device, dtype)
            times = []
            for _ in range(max(args.steps, 3)):
                t0 = time.perf_counter()
                step()
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                times.append(time.perf_counter() - t0)
            sec = statistics.median(times[2:])
            peak = torch.cuda.max_memory_allocated(device) / 1e9 if device.type == "cuda" else float("nan")
            rows.append({"model": name, "setting": setting, "clips_per_s": 1.0 / sec, "seconds": sec, "peak_gb": peak})
            print(f"| {name} | {setting} | {1.0 / sec:.3f} | {sec:.2f} | {peak:.1f} |", flush=True)
            del model, step
    return rows


if __name__ == "__main__":
    main()
