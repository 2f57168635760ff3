"""Forward latency of kino's DiT against diffusers' WanTransformer3DModel at identical dimensions.

Both models get the same layers, width, heads, FFN, patch, text width, token count and inputs (batch 2, as
with classifier-free guidance). Prints the median of several runs after warm-up, and the ratio
kino / diffusers, on CPU in float32 and on CUDA in bf16 when a GPU is there.

    .venv/bin/pip install diffusers      # benchmark-only dependency
    .venv/bin/python benchmarks/dit_vs_diffusers.py [--preset world-tiny] [--runs 7]

Runs alternate between the two models so that load from other jobs on the machine hits both alike; the
last column compares the fastest runs, which other jobs disturb least.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from kino.models.dit import DIT_PRESETS, DiT, DiTPreset

# latent grids (T, H, W): 2 s at 64x64, 2 s at 128x128, 2 s at 256x256 with the 4x8x8 VAE
GRIDS = ((5, 8, 8), (5, 16, 16), (5, 32, 32))


def build_wan(cfg):
    try:
        from diffusers import WanTransformer3DModel
    except ImportError:
        raise SystemExit("this benchmark needs diffusers: .venv/bin/pip install diffusers") from None
    return WanTransformer3DModel(
        patch_size=cfg.patch_size, num_attention_heads=cfg.num_heads, attention_head_dim=cfg.head_dim,
        in_channels=cfg.in_channels, out_channels=cfg.out_channels, text_dim=cfg.text_dim, freq_dim=cfg.freq_dim,
        ffn_dim=cfg.ffn_dim, num_layers=cfg.depth, cross_attn_norm=True, qk_norm="rms_norm_across_heads",
        eps=cfg.eps,
    )


def timed(fn, sync) -> float:
    sync()
    t0 = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=DiTPreset.WORLD_TINY, choices=list(DiTPreset))
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--text-tokens", type=int, default=32)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    import diffusers

    device = torch.device(args.device)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    cfg = DIT_PRESETS[DiTPreset(args.preset)]()
    torch.manual_seed(0)
    kino = DiT(cfg).to(device, dtype).eval()
    wan = build_wan(cfg).to(device, dtype).eval()  # (diffusers warns that some Wan modules prefer float32)
    print(f"kino DiT {args.preset}: {kino.num_params() / 1e6:.2f}M params; diffusers {diffusers.__version__} "
          f"WanTransformer3DModel: {sum(p.numel() for p in wan.parameters()) / 1e6:.2f}M params")
    print(f"device {device} ({dtype}), torch {torch.__version__}, threads {torch.get_num_threads()}, batch 2, "
          f"{args.text_tokens} text tokens, median of {args.runs} runs after {args.warmup} warm-up")
    print(f"{'latent TxHxW':>13} {'tokens':>7} {'kino ms':>9} {'diffusers ms':>13} {'ratio':>6} {'min ratio':>10}")
    for grid in GRIDS:
        b = 2
        x = torch.randn(b, cfg.in_channels, *grid, device=device, dtype=dtype)
        t = torch.rand(b, device=device)
        text = torch.randn(b, args.text_tokens, cfg.text_dim, device=device, dtype=dtype)
        tokens = grid[0] * grid[1] * grid[2] // cfg.patch_volume

        def run_kino(x=x, t=t, text=text):
            return kino(x, t, text=text)

        def run_wan(x=x, t=t, text=text):
            return wan(hidden_states=x, timestep=t * 1000, encoder_hidden_states=text, return_dict=False)[0]

        with torch.inference_mode():
            assert run_kino().shape == run_wan().shape == x.shape
            for _ in range(args.warmup):
                run_kino()
                run_wan()
            tk, tw = [], []
            for _ in range(args.runs):  # alternate, so background load is shared fairly
                tk.append(timed(run_kino, sync))
                tw.append(timed(run_wan, sync))
        mk, mw = statistics.median(tk) * 1e3, statistics.median(tw) * 1e3
        low = min(tk) / min(tw)  # fastest runs: less sensitive to other jobs on a shared machine
        print(f"{'x'.join(map(str, grid)):>13} {tokens:>7} {mk:>9.1f} {mw:>13.1f} {mk / mw:>6.2f} {low:>10.2f}")


if __name__ == "__main__":
    main()
