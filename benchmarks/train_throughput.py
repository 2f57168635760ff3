"""DiT training throughput: samples/s, tokens/s and MFU per preset, on the CPU or a GPU.

Times DiTTrainer.train_step (forward, backward, gradient clipping, AdamW, EMA) on synthetic latent
batches, as training from a latent cache (`kino data cache`) runs: no VAE, no rendering. FLOPs per
step are counted by torch.utils.flop_counter.FlopCounterMode on one step (matmuls and attention,
forward and backward); MFU = counted FLOPs/s / the device's peak, where the peak is measured here
with a large torch.matmul (bf16 on a GPU, where training runs under bf16 autocast; float32 on the CPU).

    nice -n 10 python benchmarks/train_throughput.py                       # CPU: world-tiny and small
    python benchmarks/train_throughput.py --world --vae world-tiny-v2 --threads 1  # world clips: on the fly vs cached
    python benchmarks/train_throughput.py --device cuda --presets world-tiny small base \\
        --size 256x256 --frames 33 --batch 8 --compile
"""

from __future__ import annotations

import argparse
import platform
import time

import torch


def matmul_peak(device: torch.device, dtype: torch.dtype, n: int, reps: int) -> float:
    """FLOP/s of an n x n x n matmul, best of reps (2 n^3 FLOPs each)."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    best = float("inf")
    for _ in range(reps + 1):
        sync(device)
        t = time.perf_counter()
        a @ b
        sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def batch(trainer, n: int, size: tuple[int, int], frames: int, text_len: int) -> list[dict]:
    """n cached-latent items of one shape: latents (C, t, h, w), text states (L, D)."""
    vc = trainer.vae.config
    g = torch.Generator().manual_seed(0)
    w, h = size
    shape = (vc.latent_channels, vc.latent_frames(frames), h // vc.spatial_factor, w // vc.spatial_factor)
    return [{"latent": torch.randn(shape, generator=g),
             "text": torch.randn(text_len, trainer.text_encoder.dim, generator=g),
             "text_mask": torch.ones(text_len, dtype=torch.bool)} for _ in range(n)]


def world_items(n: int, frames: int, seed: int = 0) -> list[dict]:
    """n world clips {"video", "caption"} of one shape (64x64, `frames` frames), as `kino train dit` draws them."""
    from kino.data.world import WorldClips

    ds = WorldClips(seed=seed, sizes=((64, 64),), num_frames=(frames,), image_prob=0.0, group=n)
    return [ds.sample(i) for i in range(n)]


def measure_world(args, device: torch.device, text_encoder) -> dict:
    """DiT clips/s on world clips: rendered, VAE-encoded and text-encoded in every step (on the fly), against
    the same clips' latents and text states computed once (a world latent cache): the DiT's share of a step."""
    from kino.models.vae import CausalVAE, vae_preset
    from kino.train.dit import DiTTrainConfig, DiTTrainer

    cfg = DiTTrainConfig(preset=args.presets[0], batch_size=args.batch, lr=1e-4, warmup=1)
    vae = CausalVAE(vae_preset(args.vae)) if not args.vae_dir else CausalVAE.from_pretrained(args.vae_dir)
    trainer = DiTTrainer(cfg, vae, text_encoder, device)
    out = {}
    t = time.perf_counter()
    for k in range(args.steps):  # on the fly: render + VAE + text + DiT
        trainer.train_step([world_items(args.batch, args.frames, seed=1000 + k)])
    out["on_the_fly_s"] = (time.perf_counter() - t) / args.steps
    t = time.perf_counter()
    cached = []
    for k in range(args.steps):  # building the cache once: render + VAE + text
        items = world_items(args.batch, args.frames, seed=1000 + k)
        with torch.no_grad():
            lat = vae.encode(torch.stack([it["video"] for it in items]))  # (B, C, t, h, w)
        enc = text_encoder.encode([it["caption"] for it in items])
        cached.append([{"latent": z, "text": h[m.bool()], "text_mask": torch.ones(int(m.sum()), dtype=torch.bool)}
                       for z, h, m in zip(lat, enc.hidden, enc.mask, strict=True)])
    out["cache_build_s"] = (time.perf_counter() - t) / args.steps
    t = time.perf_counter()
    for batch_items in cached:  # from the cache: the DiT alone
        trainer.train_step([batch_items])
    out["cached_s"] = (time.perf_counter() - t) / args.steps
    out["tokens"] = sum(trainer.item_tokens(b) for b in cached[0])
    return out


def measure(preset: str, args, device: torch.device, text_encoder) -> dict:
    from torch.utils.flop_counter import FlopCounterMode

    from kino.models.vae import VAE_PRESETS, CausalVAE
    from kino.train.dit import DiTTrainConfig, DiTTrainer

    cfg = DiTTrainConfig(preset=preset, batch_size=args.batch, lr=1e-4, warmup=1, compile=args.compile,
                         gradient_checkpointing=args.checkpointing, packed=args.packed)
    vae = CausalVAE(VAE_PRESETS["world-tiny"]())
    trainer = DiTTrainer(cfg, vae, text_encoder, device)
    items = batch(trainer, args.batch, args.size, args.frames, args.text_len)
    tokens = sum(trainer.item_tokens(b) for b in items)
    with FlopCounterMode(display=False) as fc:
        trainer.train_step([items])
    flops = fc.get_total_flops()
    for _ in range(args.warmup):
        trainer.train_step([items])
    sync(device)
    t = time.perf_counter()
    for _ in range(args.steps):
        trainer.train_step([items])
    sync(device)
    dt = (time.perf_counter() - t) / args.steps
    return {"preset": preset, "params_m": trainer.model.num_params() / 1e6, "tokens": tokens, "step_s": dt,
            "samples_s": args.batch / dt, "tokens_s": tokens / dt, "tflops_step": flops / 1e12,
            "achieved_tflops": flops / dt / 1e12}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--presets", nargs="+", default=["world-tiny", "small"])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--size", default="64x64", help="WIDTHxHEIGHT of the clips (pixels)")
    p.add_argument("--frames", type=int, default=17)
    p.add_argument("--text-len", type=int, default=32)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--compile", action="store_true")
    p.add_argument("--checkpointing", action="store_true")
    p.add_argument("--packed", action="store_true")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--peak-n", type=int, default=0, help="matmul side for the peak (default 8192 GPU, 2048 CPU)")
    p.add_argument("--world", action="store_true", help="world clips on the fly against a latent cache")
    p.add_argument("--vae", default="world-tiny", help="--world: the VAE preset (untrained weights time the same)")
    p.add_argument("--vae-dir", default=None, help="--world: a VAE folder instead of a preset")
    args = p.parse_args()
    args.size = tuple(int(v) for v in args.size.split("x"))
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    from kino.models.text import TextEncoder

    text_encoder = TextEncoder()
    if args.world:
        r = measure_world(args, device, text_encoder)
        print(f"world clips 64x64x{args.frames}, batch {args.batch}, DiT {args.presets[0]}, VAE {args.vae_dir or args.vae}, "
              f"{r['tokens'] // args.batch} tokens/clip, {torch.get_num_threads()} threads, {args.steps} steps each\n")
        print("| path | s/step | DiT clips/s |\n|---|---:|---:|")
        print(f"| on the fly (render + VAE + text + DiT) | {r['on_the_fly_s']:.2f} | {args.batch / r['on_the_fly_s']:.2f} |")
        print(f"| world latent cache (DiT only) | {r['cached_s']:.2f} | {args.batch / r['cached_s']:.2f} |")
        print(f"| building the cache (render + VAE + text), once | {r['cache_build_s']:.2f} | - |")
        return
    gpu = device.type == "cuda"
    dtype = torch.bfloat16 if gpu else torch.float32
    peak = matmul_peak(device, dtype, args.peak_n or (8192 if gpu else 2048), reps=10 if gpu else 3)
    name = torch.cuda.get_device_name(device) if gpu else f"{platform.processor() or platform.machine()} CPU, " \
                                                              f"{torch.get_num_threads()} threads"
    print(f"device: {name}; torch {torch.__version__}; measured {dtype} matmul peak {peak / 1e12:.2f} TFLOP/s")
    print(f"clips {args.size[0]}x{args.size[1]}x{args.frames}, batch {args.batch}, text {args.text_len} tokens, "
          f"compile={args.compile}, checkpointing={args.checkpointing}, {'bf16 autocast' if gpu else 'float32'}")
    print()
    print("| preset | params (M) | tokens/step | step (s) | samples/s | tokens/s | TFLOP/step | TFLOP/s | MFU |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for preset in args.presets:
        r = measure(preset, args, device, text_encoder)
        mfu = r["achieved_tflops"] * 1e12 / peak
        print(f"| {r['preset']} | {r['params_m']:.1f} | {r['tokens']} | {r['step_s']:.3f} | {r['samples_s']:.2f} | "
              f"{r['tokens_s']:.0f} | {r['tflops_step']:.4f} | {r['achieved_tflops']:.3f} | {mfu:.1%} |", flush=True)


if __name__ == "__main__":
    main()
