"""The ceiling a VAE puts on prompt adherence: the world analyzer on VAE round trips of ground truth.

    .venv/bin/python benchmarks/vae_ceiling.py [--vae DIR ...] [--n 24] [--suite world-train]
    .venv/bin/python benchmarks/vae_ceiling.py --block-means 4   # plain 4x4x4 block means, no network
    .venv/bin/python benchmarks/vae_ceiling.py --block-code 4x4:24   # a PCA block code alone, 24 channels

Each prompt's ground-truth scene (kino.eval.suites) is rendered, encoded and decoded by the VAE, and
the analyzer scores the round trip against what the prompt asks, as `kino eval` scores a generated
video (kino.train.vae_eval.ceiling). No DiT trained on this latent can do better on average. This is
the VAE's main figure (issue 18); PSNR/SSIM of the same round trips, of frame 0 coded alone (an image)
and of held-out world clips stand beside it. Prints one
markdown table: per attribute, per asked size class for the object attributes, then PSNR and SSIM.
`--vae` takes model folders, checkpoint folders or run folders (their latest checkpoint), several
at once for a side-by-side table.
"""

from __future__ import annotations

import argparse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vae", action="append", default=None, help="VAE folder (default: the built-in model's)")
    ap.add_argument("--block-means", action="append", default=[], metavar="F[xT]",
                    help="also score an untrained shortcut VAE: plain FxF-pixel, T-frame (default 4) block means")
    ap.add_argument("--block-code", action="append", default=[], metavar="FxT:Z",
                    help="also score an untrained block-code VAE: the PCA of F x F x T world blocks, Z channels "
                         "(world-tiny v2's shortcut alone, fitted on --fit-clips training clips)")
    ap.add_argument("--fit-clips", type=int, default=256)
    ap.add_argument("--n", type=int, default=24, help="prompts of the suite")
    ap.add_argument("--suite", default="world-train")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--heldout", type=int, default=16, help="held-out world clips for PSNR/SSIM (0: skip)")
    a = ap.parse_args()
    import torch

    from kino.models.vae import CausalVAE, VAEConfig
    from kino.pipeline import builtin_model_dir
    from kino.train.vae_eval import ceiling, evaluate, heldout_clips, load_vae

    torch.set_num_threads(a.threads)
    models = {}
    for path in a.vae or ([] if a.block_means or a.block_code else [str(builtin_model_dir() / "vae")]):
        models[path] = load_vae(path).float()
    for text in a.block_means:
        f, _, t = text.partition("x")
        f, t = int(f), int(t or 4)
        levels = max(t.bit_length() - 1, (f // min(4, f)).bit_length() - 1)  # time downs; space past the patch
        models[f"block means {f}x{f}x{t}"] = CausalVAE(VAEConfig(
            spatial_factor=f, temporal_factor=t, patch_size=min(4, f), shortcut=True, widths=(8,) * (levels + 1),
            chunk_frames=16))
    for text in a.block_code:
        from kino.train.vae import WORLD, VAETrainConfig, make_dataset

        shape, _, z = text.partition(":")
        f, _, t = shape.partition("x")
        f, t, z = int(f), int(t or 4), int(z or 24)
        levels = max(t.bit_length() - 1, (f // min(4, f)).bit_length() - 1)
        model = CausalVAE(VAEConfig(spatial_factor=f, temporal_factor=t, patch_size=min(4, f), latent_channels=z,
                                    shortcut=True, block_code=True, widths=(8,) * (levels + 1), chunk_frames=16))
        rec = VAETrainConfig()
        clips = make_dataset(WORLD, rec, rec.seed + 2_000_003, group=1)  # the VAE trainer's fitting stream
        model.init_block_code(item["video"] for _, item in zip(range(a.fit_clips), clips, strict=False))
        models[f"block code {f}x{f}x{t}, {z} ch"] = model
    results = {name: ceiling(m, a.suite, a.n) for name, m in models.items()}
    held = {name: evaluate(m, heldout_clips(a.heldout)) if a.heldout else None for name, m in models.items()}
    first = next(iter(results.values()))
    rows = ([(k, lambda n, k=k: results[n].attributes.get(k)) for k in first.attributes]
            + [(k, lambda n, k=k: results[n].by_size.get(k)) for k in first.by_size]
            + [("total", lambda n: results[n].total),
               ("render (analyzer on the ground truth)", lambda n: results[n].render),
               ("round-trip PSNR dB (these renders)", lambda n: results[n].psnr),
               ("round-trip SSIM", lambda n: results[n].ssim),
               ("image round-trip PSNR dB (frame 0 alone)", lambda n: results[n].image_psnr),
               (f"held-out PSNR dB ({a.heldout} clips, 64x64x17)", lambda n: held[n] and held[n].psnr),
               ("held-out SSIM", lambda n: held[n] and held[n].ssim)])
    print(f"{a.suite}, {a.n} prompts, 64x64, 17 frames, VAE round trips of the ground truth\n")
    print("| attribute | " + " | ".join(results) + " |\n|---|" + "---|" * len(results))
    for label, get in rows:
        cells = [get(n) for n in results]
        print(f"| {label} | " + " | ".join("-" if v is None else f"{v:.3f}" if v < 2 else f"{v:.2f}"
                                            for v in cells) + " |")

if __name__ == "__main__":
    main()
