"""Speed and memory of the open families through kino, at their real sizes, with random weights.

    python benchmarks/open_models_gpu.py [--device cuda] [--steps 4] [--budget 420] [--only wan-1.3b,ltx-2b]
    python benchmarks/open_models_gpu.py --tiny --device cpu        # the CPU smoke run (a test runs it)

Builds the real-size architectures (Wan 2.1 T2V 1.3B with UMT5-XXL, Wan 2.2 TI2V-5B with UMT5-XXL and
its 16x VAE, LTX-Video 2B with T5-XXL) directly on the device in bf16 (the fp32-kept modules of Wan kept
in fp32, as diffusers loads them), wraps each in kino's adapter (kino.families.wan.WanModel /
ltx.LTXModel) and times `VideoModel.generate` of a text-to-video request at the family's 480p size:

    seconds per denoising step (median of the steps after the first), end-to-end seconds of the run
    (text encoding, `--steps` steps, VAE decode), that run extrapolated to the default step count,
    and peak GPU memory (torch.cuda.max_memory_allocated),

for the settings: plain bf16, model CPU offload, First Block Cache (threshold 0.1) and torch.compile
of the repeated blocks. Random weights give honest speed and memory figures (the same shapes and
kernels as the released checkpoints) but meaningless pictures; First Block Cache's skips depend on
how similar successive steps are, which random weights do not reproduce, so its speed-up here is
not the trained model's. Runs stop when `--budget` seconds have passed (the rest are printed as
skipped), so one command stays within a lent device's 8 minutes.

The tokenizer is a small in-memory T5 tokenizer (no hub): the encoders' cost is their real-size
forward over 512 (Wan) / 256 (LTX) tokens, whatever the ids.

On a device with no diffusers / PyAV (the lent H200 has torch and transformers only), carry wheels
(/work/.library/device/README.md): diffusers 0.42.1, accelerate, ftfy, wcwidth, huggingface-hub and
its needs, safetensors, av, einops, then `PYTHONPATH=/tmp/site:. python benchmarks/open_models_gpu.py`.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

UMT5_XXL = dict(vocab_size=256384, d_model=4096, d_kv=64, d_ff=10240, num_layers=24, num_heads=64,
                relative_attention_num_buckets=32, dropout_rate=0.0, feed_forward_proj="gated-gelu")
T5_XXL = dict(UMT5_XXL, vocab_size=32128)
TINY_T5 = dict(vocab_size=81, d_model=32, d_kv=8, d_ff=37, num_layers=2, num_heads=4,
               relative_attention_num_buckets=8, dropout_rate=0.0)

# name -> (family, transformer config, VAE config, text encoder config, (width, height), frames, fps, default steps)
PRESETS = {
    "wan-1.3b": ("wan", dict(patch_size=(1, 2, 2), num_attention_heads=12, attention_head_dim=128, in_channels=16,
                             out_channels=16, text_dim=4096, freq_dim=256, ffn_dim=8960, num_layers=30,
                             cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6),
                 dict(), UMT5_XXL, (832, 480), 81, 16.0, 50),
    "wan-5b": ("wan", dict(patch_size=(1, 2, 2), num_attention_heads=24, attention_head_dim=128, in_channels=48,
                           out_channels=48, text_dim=4096, freq_dim=256, ffn_dim=14336, num_layers=30,
                           cross_attn_norm=True, qk_norm="rms_norm_across_heads", eps=1e-6),
               dict(base_dim=160, decoder_base_dim=256, z_dim=48, in_channels=12, out_channels=12, is_residual=True,
                    patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4, dim_mult=[1, 2, 4, 4],
                    temperal_downsample=[False, True, True], latents_mean=[0.0] * 48, latents_std=[1.0] * 48),
               UMT5_XXL, (832, 480), 121, 24.0, 50),
    "ltx-2b": ("ltx", dict(), dict(), T5_XXL, (704, 480), 121, 25.0, 40),  # diffusers' defaults are the 2B
}
TINY = {
    "wan-1.3b": ("wan", dict(patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=16,
                             out_channels=16, text_dim=32, freq_dim=256, ffn_dim=32, num_layers=2,
                             cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32),
                 dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
                      temperal_downsample=[False, True, True]), TINY_T5, (16, 16), 5, 8.0, 50),
    "ltx-2b": ("ltx", dict(in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
                           attention_head_dim=8, cross_attention_dim=32, num_layers=2, caption_channels=32),
               dict(in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
                    decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
                    decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
                    decoder_spatio_temporal_scaling=(True, True, False, False),
                    decoder_inject_noise=(False, False, False, False, False),
                    upsample_residual=(False, False, False, False), upsample_factor=(1, 1, 1, 1),
                    timestep_conditioning=False, patch_size=1, patch_size_t=1, encoder_causal=True,
                    decoder_causal=False), TINY_T5, (32, 32), 9, 8.0, 40),
}
SETTINGS = {  # name -> kino.families options ("plain": bf16 on a GPU, fp32 on a CPU, no option)
    "plain": {},
    "model offload": {"offload": "model"},
    "first block cache 0.1": {"first_block_cache": 0.1},
    "compile blocks": {"compile": True},
}
PLAN = {"wan-1.3b": list(SETTINGS), "ltx-2b": ["plain", "model offload", "first block cache 0.1"],
        "wan-5b": ["plain", "model offload"]}


def tokenizer():
    """The in-memory T5 tokenizer of the tests (kino's tiny folders), so nothing is downloaded."""
    from transformers import T5Tokenizer

    words = "a red fox runs through snow at sunset camera pans slowly".split()
    pieces = [("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0), ("\u2581", -2.0)]
    pieces += [(f"\u2581{w}", -1.0) for w in words] + [(c, -5.0) for c in "abcdefghijklmnopqrstuvwxyz"]
    return T5Tokenizer(vocab=pieces, extra_ids=0)


def keep_fp32(model, dtype) -> None:
    """Cast to `dtype`, keeping the model's `_keep_in_fp32_modules` in fp32 as diffusers' loader does."""
    import torch

    model.to(dtype)
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    for name, p in model.named_parameters():
        if any(k in name.split(".") for k in keep):
            p.data = p.data.to(torch.float32)


def build(spec, device: str, dtype):
    """A diffusers pipeline of random weights with the preset's real shapes, built on `device`."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
        WanPipeline,
        WanTransformer3DModel,
    )
    from transformers import T5Config, T5EncoderModel, UMT5Config, UMT5EncoderModel

    family, tcfg, vcfg, text, *_ = spec
    torch.manual_seed(0)
    with torch.device(device):
        if family == "wan":
            transformer, vae = WanTransformer3DModel(**tcfg), AutoencoderKLWan(**vcfg)
            encoder = UMT5EncoderModel(UMT5Config(**text))
        else:
            transformer, vae = LTXVideoTransformer3DModel(**tcfg), AutoencoderKLLTXVideo(**vcfg)
            encoder = T5EncoderModel(T5Config(**text))
    keep_fp32(transformer, dtype)
    encoder.to(dtype).eval()
    vae.to(torch.float32 if family == "wan" else dtype)  # Wan's VAE decodes in fp32 (its model card)
    if family == "wan":
        expand = tcfg.get("in_channels") == 48  # TI2V-5B
        return WanPipeline(transformer=transformer, vae=vae, text_encoder=encoder, tokenizer=tokenizer(),
                           scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0), expand_timesteps=expand)
    return LTXConditionPipeline(transformer=transformer, vae=vae, text_encoder=encoder, tokenizer=tokenizer(),
                                scheduler=FlowMatchEulerDiscreteScheduler())


def run_one(name: str, spec, setting: str, device: str, dtype, steps: int) -> dict:
    """Build, wrap in kino's adapter with the setting's options, generate once; the measured figures."""
    import torch

    from kino.families.diffusers_common import RunOptions
    from kino.families.ltx import LTXModel
    from kino.families.wan import WanModel
    from kino.generation import GenerationRequest

    family, *_, (width, height), frames, fps, default_steps = spec
    gpu = device.startswith("cuda")
    options = RunOptions(**SETTINGS[setting])
    from kino.families.diffusers_common import quiet

    with quiet():
        pipe = build(spec, "cpu" if options.offload != "none" else device, dtype)
    cls = WanModel if family == "wan" else LTXModel
    if gpu:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    model = cls(pipe, f"random-{name}", device, dtype, options)
    stamps: list[float] = []

    def tick(step: int, total: int) -> None:
        if gpu:
            torch.cuda.synchronize()
        stamps.append(time.perf_counter())

    request = GenerationRequest(prompt="a red fox runs through snow at sunset", width=width, height=height, fps=fps,
                                seconds=frames / fps, steps=steps, seed=0, enhance=False)
    t0 = time.perf_counter()
    out = model.generate(request, request.prompt, 0, callback=tick)
    if gpu:
        torch.cuda.synchronize()
    e2e = time.perf_counter() - t0
    gaps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    per_step = statistics.median(gaps) if gaps else e2e / max(steps, 1)
    row = {"model": name, "variant": model.variant, "setting": setting, "size": f"{width}x{height}",
           "frames": len(out.frames), "steps": steps, "s_per_step": per_step, "e2e": e2e,
           "e2e_default": e2e + (default_steps - steps) * per_step, "default_steps": default_steps,
           "peak_gb": torch.cuda.max_memory_allocated() / 2**30 if gpu else float("nan")}
    del model, pipe
    if gpu:
        torch.cuda.empty_cache()
    return row


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--steps", type=int, default=4, help="denoising steps per run (s/step is their median)")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds after which remaining runs are skipped")
    ap.add_argument("--only", default="", help="comma-separated presets (default: all)")
    ap.add_argument("--tiny", action="store_true", help="tiny configs (the CPU smoke run)")
    args = ap.parse_args(argv)

    import torch

    presets = TINY if args.tiny else PRESETS
    names = [n for n in (args.only.split(",") if args.only else presets) if n]
    gpu = args.device.startswith("cuda")
    dtype = torch.bfloat16 if gpu else torch.float32
    start, rows = time.perf_counter(), []
    print("| model | setting | size | frames | steps | s/step | end-to-end s | at default steps | peak GPU GB |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in names:
        spec = presets[name]
        for setting in PLAN[name]:
            if not gpu and setting in ("model offload", "compile blocks"):
                continue  # offload moves weights to a GPU; compiling on a CPU only measures the compiler
            if time.perf_counter() - start > args.budget:
                print(f"| {name} | {setting} | skipped (time budget {args.budget:g} s) |||||||")
                continue
            try:
                r = run_one(name, spec, setting, args.device, dtype, args.steps)
            except torch.cuda.OutOfMemoryError:
                print(f"| {name} | {setting} | out of memory |||||||")
                torch.cuda.empty_cache()
                continue
            rows.append(r)
            print(f"| {r['variant']} | {setting} | {r['size']} | {r['frames']} | {r['steps']} | {r['s_per_step']:.3f} "
                  f"| {r['e2e']:.1f} | {r['e2e_default']:.0f} ({r['default_steps']} steps) | {r['peak_gb']:.1f} |",
                  flush=True)
    print(f"\n{'GPU ' + torch.cuda.get_device_name() if gpu else 'CPU'}, torch {torch.__version__}, "
          f"{time.perf_counter() - start:.0f} s in all; random weights (speed and memory only)")
    return rows


if __name__ == "__main__":
    main()
