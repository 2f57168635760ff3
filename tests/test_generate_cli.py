"""`kino model init` and `kino generate`, end to end through the CLI's entry point."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from kino.cli import main
from kino.io import probe, read_video
from kino.models.dit import DiT, DiTConfig, dit_world_tiny
from kino.models.text import TextEncoder
from kino.models.vae import CausalVAE, VAEConfig
from kino.pipeline import KinoPipeline, SchedulerConfig


def run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(argv)
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    """A very small pipeline directory (a narrow VAE and a one-block DiT) so the CLI runs in seconds."""
    torch.manual_seed(0)
    vae = CausalVAE(VAEConfig(latent_channels=4, patch_size=4, widths=(8, 8, 8)))
    dit = DiT(DiTConfig(in_channels=4, out_channels=4, dim=32, depth=1, num_heads=2, ffn_dim=64, text_dim=384))
    pipe = KinoPipeline(dit, vae, TextEncoder(), SchedulerConfig(num_inference_steps=2))
    return pipe.save_pretrained(tmp_path_factory.mktemp("models") / "tiny")


def test_model_init_writes_a_loadable_pipeline_dir(tmp_path, capsys):
    d = tmp_path / "init"
    code, stdout, err = run(["model", "init", str(d), "--preset", "world-tiny"], capsys)
    assert code == 0, err
    assert "world-tiny" in stdout and (d / "model_index.json").is_file()
    pipe = KinoPipeline.from_pretrained(d)
    assert pipe.transformer.config == dit_world_tiny(text_dim=384)
    code, _, err = run(["model", "init", str(d)], capsys)
    assert code == 2 and "already exists; pass --force" in err
    code, _, err = run(["model", "init", str(tmp_path / "x"), "--preset", "huge"], capsys)
    assert code == 2 and "world-tiny" in err  # the choices come from the preset Enum


def test_generate_writes_the_asked_video(model_dir, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    code, stdout, err = run(["generate", "a red circle moves left", "-o", str(out), "--seconds", "2", "--fps",
                             "8", "--size", "64x48", "--steps", "2", "--seed", "1", "--model", str(model_dir)],
                            capsys)
    assert code == 0, err
    assert stdout.strip().splitlines()[-1].startswith(f"wrote {out}")
    info = probe(out)
    assert (info.width, info.height, info.fps, info.codec) == (64, 48, 8.0, "h264")
    assert read_video(out).num_frames == 16


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["generate", "  "], 2, "the prompt is empty"),
        (["generate", "x", "--size", "70x64"], 2, "size 70x64 is not a multiple of 16; try 64x64 or 80x64"),
        (["generate", "x", "--size", "big"], 2, "is not WIDTHxHEIGHT"),
        (["generate", "x", "--to-image"], 2, "--to-image needs --from-image"),
    ],
)
def test_errors_are_one_line(model_dir, tmp_path, capsys, args, code, message):
    out = tmp_path / "bad.mp4"
    got, _, err = run([*args, "--model", str(model_dir), "-o", str(out)], capsys)
    assert got == code and message in err
    assert err.count("\n") == 1 and err.startswith("kino: error: ")
    assert not out.exists()


def test_missing_model_dirs(tmp_path, capsys, monkeypatch):
    code, _, err = run(["generate", "x", "--model", str(tmp_path / "nope")], capsys)
    assert code == 4 and "does not exist; make one with `kino model init" in err
    monkeypatch.setattr("kino.pipeline.builtin_model_dir", lambda: tmp_path / "weights" / "world-tiny")
    code, _, err = run(["generate", "x"], capsys)
    assert code == 4 and "built-in model" in err and "kino model init DIR" in err
