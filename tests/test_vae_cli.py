"""`kino vae reconstruct`, `kino vae eval` and `kino train vae`: results and one-line errors."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from kino.io import read_video, write_video
from kino.models.vae import CausalVAE, vae_world_tiny


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def kino(run):
    """Run the CLI in this process (conftest's `run`; a subprocess would pay the imports each time)."""
    return lambda *args: Result(*run(list(args)))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    d = tmp_path_factory.mktemp("vae") / "model"
    CausalVAE(vae_world_tiny(widths=(8, 16, 16))).save_pretrained(d)
    return d


def test_reconstruct_writes_a_video(kino, model_dir, tmp_path):
    frames = np.random.default_rng(0).integers(0, 256, (11, 32, 48, 3), dtype=np.uint8)
    write_video(tmp_path / "in.mp4", frames, fps=8)
    r = kino("vae", "reconstruct", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "out.mp4"),
             "--model", str(model_dir))
    assert r.returncode == 0, r.stderr
    out = read_video(tmp_path / "out.mp4")
    assert out.frames.shape == (11, 32, 48, 3)  # padded to 1 + 4k inside, trimmed back: 11 in, 11 out
    assert out.fps == pytest.approx(8)
    assert "(11 frames)" in r.stdout


@pytest.mark.parametrize("n", [1, 2, 16])
def test_reconstruct_keeps_the_frame_count_with_the_builtin_vae(kino, tmp_path, n):
    """Issue 16 #10, #11: no --model is the built-in model's VAE; 16 frames in, 16 out (not 13)."""
    from kino.world.render import render
    from kino.world.sampler import sample_spec

    frames = render(sample_spec(np.random.default_rng(0), width=64, height=64, fps=8.0, num_frames=16))[:n]
    write_video(tmp_path / "in.mp4", frames, fps=8)
    r = kino("vae", "reconstruct", str(tmp_path / "in.mp4"), "-o", str(tmp_path / "out.mp4"))
    assert r.returncode == 0, r.stderr
    out = read_video(tmp_path / "out.mp4").frames
    assert len(out) == n and f"({n} frame{'' if n == 1 else 's'})" in r.stdout
    assert np.abs(out.astype(int) - frames.astype(int)).mean() < 20  # the frames are the input's, in order


def test_vae_folders_people_pass(tmp_path):
    """Issue 16 #9, #10: a run folder (newest checkpoint), a pipeline folder, a VAE folder, nothing."""
    from kino.errors import ModelError
    from kino.pipeline import builtin_model_dir
    from kino.train.checkpoint import save_checkpoint
    from kino.train.vae_folder import resolve_vae

    assert resolve_vae(None) == builtin_model_dir() / "vae"
    assert resolve_vae(builtin_model_dir()) == builtin_model_dir() / "vae"  # a pipeline folder
    torch.manual_seed(0)
    vae = CausalVAE(vae_world_tiny(widths=(8, 16, 16)))
    opt = torch.optim.AdamW(vae.parameters())
    for step in (2, 4):
        save_checkpoint(tmp_path / "run", step, vae, vae.config, opt)
    assert resolve_vae(tmp_path / "run") == tmp_path / "run" / "step-00000004"
    assert isinstance(CausalVAE.from_pretrained(resolve_vae(tmp_path / "run")), CausalVAE)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="no VAE in .*run folder"):
        resolve_vae(tmp_path / "empty")


def test_eval_prints_json(kino, model_dir, tmp_path):
    (tmp_path / "clips").mkdir()
    # a textured clip: a flat one is reconstructed exactly by the block-mean shortcut (PSNR capped at 120)
    frames = np.random.default_rng(1).integers(0, 256, (9, 32, 32, 3), dtype=np.uint8)
    write_video(tmp_path / "clips" / "a.mp4", frames, fps=8)
    r = kino("vae", "eval", "--data", str(tmp_path / "clips"), "--model", str(model_dir), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["clips"] == 1 and res["frames"] == 9
    assert res["compression"] == pytest.approx(3 * 9 * 32 * 32 / (16 * 3 * 4 * 4))
    assert 0 < res["psnr"] < 40 and -1 <= res["ssim"] < 0.9 and res["encode_fps"] > 0
    assert "vae eval: clip 1 of at most 32" in r.stderr and "32x32, 9 frames" in r.stderr  # progress


def test_eval_bounds_large_folder_clips(kino, model_dir, tmp_path):
    """Issue 16 #17: a 1280x720 clip is scaled down before the VAE (minutes and GBs otherwise)."""
    (tmp_path / "clips").mkdir()
    frames = np.random.default_rng(2).integers(0, 256, (5, 96, 512, 3), dtype=np.uint8)
    write_video(tmp_path / "clips" / "wide.mp4", frames, fps=8)
    r = kino("vae", "eval", "--data", str(tmp_path / "clips"), "--model", str(model_dir), "--json",
             "--max-side", "128")
    assert r.returncode == 0, r.stderr
    assert "(128x24, 5 frames" in r.stderr and json.loads(r.stdout)["frames"] == 5


@pytest.mark.parametrize("case", ["not_video", "odd_size", "empty", "no_model"])
def test_bad_input_is_one_line(kino, model_dir, tmp_path, case):
    src = tmp_path / "in.mp4"
    model = str(model_dir)
    if case == "not_video":
        src.write_text("this is not a video")
        code, text = 3, "not a readable video"
    elif case == "odd_size":
        write_video(src, np.zeros((5, 36, 32, 3), np.uint8), fps=8)
        code, text = 2, "not a multiple of 8"
    elif case == "empty":
        src.write_bytes(b"")
        code, text = 3, "empty"
    else:
        write_video(src, np.zeros((5, 32, 32, 3), np.uint8), fps=8)
        model, code, text = str(tmp_path / "nothing"), 4, "no VAE in"
    r = kino("vae", "reconstruct", str(src), "-o", str(tmp_path / "out.mp4"), "--model", model)
    assert r.returncode == code, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("kino: error:") and text in lines[0], r.stderr
    assert not (tmp_path / "out.mp4").exists()


def test_train_vae_rejects_bad_data(kino, tmp_path):
    r = kino("train", "vae", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "run"))
    assert r.returncode == 2 and r.stderr.startswith("kino: error:") and "neither" in r.stderr
