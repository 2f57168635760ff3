"""Shared fixtures: tiny models that run on a CPU in seconds, a saved model folder, the CLI in-process,
a free loopback port, and a clean provenance/safety environment.

    def test_x(tiny_pipeline, run, model_dir):
        pipe = tiny_pipeline(scheduler=SchedulerConfig(num_inference_steps=2))
        code, out, err = run(["generate", "a red ball", "--model", str(model_dir), "-o", "x.mp4"])
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from kino.models.dit import DiT, DiTConfig
from kino.models.text import TextEncoder, TextEncoderConfig
from kino.models.vae import CausalVAE, VAEConfig
from kino.pipeline import KinoPipeline, SchedulerConfig


def _tiny_vae(seed: int | None = None, **overrides) -> CausalVAE:
    """A narrow causal VAE: 4 latent channels, 8 channels wide, the default 4x time and 8x space."""
    if seed is not None:
        torch.manual_seed(seed)
    return CausalVAE(VAEConfig(**{"latent_channels": 4, "patch_size": 4, "widths": (8, 8, 8), **overrides}))


def _tiny_dit_config(**overrides) -> DiTConfig:
    """A one-block DiT over the tiny VAE's 4 latent channels and MiniLM's 384-wide text."""
    return DiTConfig(**{"in_channels": 4, "out_channels": 4, "dim": 32, "depth": 1, "num_heads": 2, "ffn_dim": 64,
                        "text_dim": 384, **overrides})


def _tiny_pipeline(seed: int = 0, scheduler: SchedulerConfig | None = None, random_dit: bool = False,
                   max_length: int | None = None, **dit) -> KinoPipeline:
    """Tiny VAE + tiny DiT + the packaged MiniLM. `random_dit`: weights drawn from N(0, 0.05) instead of
    the zero-initialised output layers, so the velocity is not zero and sampling really moves."""
    torch.manual_seed(seed)
    vae = _tiny_vae()
    model = DiT(_tiny_dit_config(**dit))
    if random_dit:
        with torch.no_grad():
            for p in model.parameters():
                p.normal_(0, 0.05)
    text = TextEncoder(TextEncoderConfig(max_length=max_length)) if max_length else TextEncoder()
    return KinoPipeline(model, vae, text, scheduler or SchedulerConfig(num_inference_steps=2))


@pytest.fixture(scope="session")
def tiny_vae() -> Callable[..., CausalVAE]:
    """tiny_vae(seed=None, **VAEConfig fields) -> a fresh tiny CausalVAE."""
    return _tiny_vae


@pytest.fixture(scope="session")
def tiny_dit_config() -> Callable[..., DiTConfig]:
    """tiny_dit_config(**DiTConfig fields) -> the tiny DiT's config."""
    return _tiny_dit_config


@pytest.fixture(scope="session")
def tiny_pipeline() -> Callable[..., KinoPipeline]:
    """tiny_pipeline(seed=0, scheduler=None, random_dit=False, max_length=None, **DiTConfig fields)."""
    return _tiny_pipeline


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    """A saved tiny pipeline folder (2 steps, 1 s by default) for the CLI and the server."""
    pipe = _tiny_pipeline(scheduler=SchedulerConfig(num_inference_steps=2, seconds=1.0), random_dit=True)
    return pipe.save_pretrained(tmp_path_factory.mktemp("models") / "tiny")


@pytest.fixture
def run(capsys) -> Callable[[list[str]], tuple[int, str, str]]:
    """run(argv) -> (exit code, stdout, stderr) of the `kino` command line, in this process."""
    from kino.cli import main

    def invoke(argv: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        try:
            main([str(a) for a in argv])
            code = 0
        except SystemExit as e:
            code = int(e.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return invoke


@pytest.fixture
def free_port() -> int:
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def config_dir(tmp_path, monkeypatch) -> Path:
    """A private KINO_CONFIG_DIR (local C2PA keys) and no safety, C2PA or enhancer settings from outside."""
    d = tmp_path / "cfg"
    monkeypatch.setenv("KINO_CONFIG_DIR", str(d))
    for name in ("KINO_C2PA_CERT", "KINO_C2PA_KEY", "KINO_SAFETY_POLICY", "KINO_ENHANCE_BACKEND"):
        monkeypatch.delenv(name, raising=False)
    return d
