"""Shared pieces of the training tests: a tiny saved VAE, a tiny DiT config, a tiny world recipe, runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import torch

from kino.models.dit import DiTConfig
from kino.models.vae import CausalVAE, VAEConfig
from kino.train.dit import DiTTrainConfig

DIT = DiTConfig(in_channels=4, out_channels=4, dim=32, depth=2, num_heads=2, ffn_dim=64, text_dim=384)
WORLD = {"sizes": ((32, 32),), "num_frames": (5,)}  # the smallest world clips: 8 DiT tokens each


def tiny_vae() -> CausalVAE:
    torch.manual_seed(0)
    return CausalVAE(VAEConfig(latent_channels=4, patch_size=4, widths=(8, 8, 8)))


def save_parts(folder: Path) -> tuple[Path, Path]:
    """A saved tiny VAE and a DiT config file for `kino train dit --vae ... --dit-config ...`."""
    vae = tiny_vae().save_pretrained(folder / "vae")
    dit = folder / "dit.json"
    dit.write_text(json.dumps(DIT.to_dict()))
    return Path(vae), dit


def train_cfg(**kw) -> DiTTrainConfig:
    return DiTTrainConfig(**{"steps": 4, "batch_size": 4, "lr": 1e-3, "warmup": 1, "checkpoint_every": 2,
                             **WORLD, **kw})


def cli_args(vae: Path, dit: Path, out: Path, cfg: DiTTrainConfig) -> list[str]:
    """`kino train dit` arguments that reproduce train_cfg(...) with the tiny parts."""
    args = ["train", "dit", "--vae", str(vae), "--dit-config", str(dit), "--out", str(out), "--threads", "1",
            "--steps", str(cfg.steps), "--batch-size", str(cfg.batch_size), "--lr", str(cfg.lr),
            "--warmup", str(cfg.warmup), "--checkpoint-every", str(cfg.checkpoint_every),
            "--grad-accum", str(cfg.grad_accum), "--log-every", "1", "--no-tensorboard"]
    for w, h in cfg.sizes:
        args += ["--size", f"{w}x{h}"]
    for t in cfg.num_frames:
        args += ["--frames", str(t)]
    return args


def env() -> dict[str, str]:
    """The child's environment: this checkout first on the path, one thread per process."""
    root = str(Path(__file__).resolve().parents[1])
    return {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", ""),
            "OMP_NUM_THREADS": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun(nproc: int, args: list[str], timeout: float = 300) -> subprocess.CompletedProcess:
    """`torchrun --nproc-per-node nproc -m kino ARGS` on loopback, gloo, a free port."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(nproc), "--master-addr",
           "127.0.0.1", "--master-port", str(free_port()), "-m", "kino", *args]
    return subprocess.run(cmd, env=env(), capture_output=True, text=True, timeout=timeout)


def losses(run: Path) -> dict[int, float]:
    """Step -> loss from RUN/metrics.jsonl (the last line of a step wins: a resumed run redoes steps)."""
    out = {}
    for line in (run / "metrics.jsonl").read_text().splitlines():
        rec = json.loads(line)
        if "loss" in rec:
            out[rec["step"]] = rec["loss"]
    return out


LATENT_SHAPES = [(1, 8, 8), (3, 8, 8), (3, 6, 10), (5, 8, 8)]  # (t, h, w)


class IdClips:
    """A map-style data set of 23 clips of mixed latent shapes (`shapes`) whose items are their ids."""

    def __init__(self, n: int = 23) -> None:
        import numpy as np

        rng = np.random.default_rng(1)
        self.shapes = [LATENT_SHAPES[i] for i in rng.integers(len(LATENT_SHAPES), size=n)]

    def __len__(self) -> int:
        return len(self.shapes)

    def __getitem__(self, i: int) -> dict:
        return {"id": i}
