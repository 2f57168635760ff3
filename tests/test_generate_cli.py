"""`kino model init` and `kino generate`, end to end through the CLI's entry point."""

from __future__ import annotations

import pytest

from kino.io import probe, read_video, write_video
from kino.models.dit import dit_world_tiny
from kino.pipeline import KinoPipeline


def test_model_init_writes_a_loadable_pipeline_dir(run, tmp_path):
    d = tmp_path / "init"
    code, stdout, err = run(["model", "init", str(d), "--preset", "world-tiny"])
    assert code == 0, err
    assert "world-tiny" in stdout and (d / "model_index.json").is_file()
    pipe = KinoPipeline.from_pretrained(d)
    assert pipe.transformer.config == dit_world_tiny(text_dim=384)
    code, _, err = run(["model", "init", str(d)])
    assert code == 2 and "already exists; pass --overwrite" in err
    code, _, err = run(["model", "init", str(tmp_path / "x"), "--preset", "huge"])
    assert code == 2 and "world-tiny" in err  # the choices come from the preset Enum


def test_generate_writes_the_asked_video(run, model_dir, tmp_path, config_dir):
    out = tmp_path / "out.mp4"
    code, stdout, err = run(["generate", "a red circle moves left", "-o", str(out), "--seconds", "2", "--fps",
                             "8", "--size", "64x48", "--steps", "2", "--seed", "1", "--model", str(model_dir)])
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
        (["generate", "x", "--size", "0x0"], 2, "width must be a whole number > 0"),
        (["generate", "x", "--fps", "0"], 2, "--fps must be > 0"),
        (["generate", "x", "--steps", "0"], 2, "--steps must be a whole number >= 1"),
        (["generate", "x", "--guidance", "-1"], 2, "--guidance must be >= 0"),
        (["generate", "x", "--seconds", "nan"], 2, "--seconds must be a finite number"),
        (["generate", "x", "--seconds", "inf"], 2, "--seconds must be a finite number"),
        (["generate", "x", "--image-only", "--from-image", "a.png"], 2, "does not combine with mode image-to-video"),
    ],
)
def test_errors_are_one_line(run, model_dir, tmp_path, args, code, message):
    out = tmp_path / "bad.mp4"
    got, _, err = run([*args, "--model", str(model_dir), "-o", str(out)])
    assert got == code and message in err
    assert err.count("\n") == 1 and err.startswith("kino: error: ")
    assert not out.exists()


def test_missing_model_dirs(run, tmp_path, monkeypatch):
    code, _, err = run(["generate", "x", "--model", str(tmp_path / "nope")])
    assert code == 4 and "does not exist; make one with `kino model init" in err
    monkeypatch.setattr("kino.pipeline.builtin_model_dir", lambda: tmp_path / "weights" / "world-tiny")
    code, _, err = run(["generate", "x"])
    assert code == 4 and "built-in model" in err and "kino model init DIR" in err


@pytest.mark.parametrize(("args", "code", "message"), [
    (["generate", "x", "-o", "/proc/x.mp4"], 2, "is not writable"),
    (["generate", "x", "-o", "{tmp}"], 2, "is a folder"),
    (["generate", "x", "-o", "{tmp}/x.gif"], 2, "content credentials need .mp4 or .png"),
    (["generate", "x", "-o", "{tmp}/x.png", "--seconds", "2", "--fps", "8"], 2, "holds one frame"),
    (["generate", "x", "--from-image", "{tmp}/missing.png", "-o", "{tmp}/o.mp4"], 3, "does not exist"),
    (["extend", "{tmp}/missing.mp4", "more", "-o", "{tmp}/o.mp4"], 3, "does not exist"),
    (["storyboard", "{tmp}/s.yaml", "-o", "{tmp}/o.mp4"], 2, "storyboard"),
    (["generate", "x", "-o", "{tmp}/o.mp4", "--device", "cuda"], 2, "--device cuda: this torch"),
])
def test_bad_requests_fail_before_the_model_loads(run, tmp_path, args, code, message):
    """The model folder does not exist: if the model were loaded first, its error would be the one reported."""
    import torch

    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("a CUDA build with a GPU takes --device cuda")
    (tmp_path / "s.yaml").write_text("shots: []\n")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    got, _, err = run([*argv, "--model", str(tmp_path / "no-model")])
    assert (got, err.count("\n")) == (code, 1) and message in err, err
    assert "no-model" not in err


def test_a_video_keeps_its_size_and_progress_is_plain_off_a_terminal(run, model_dir, tmp_path, config_dir):
    import numpy as np

    write_video(tmp_path / "wide.mp4", np.zeros((5, 64, 112, 3), np.uint8), fps=8)
    out = tmp_path / "o.mp4"
    code, stdout, err = run(["extend", str(tmp_path / "wide.mp4"), "more", "--seconds", "0.5", "--no-enhance",
                             "--model", str(model_dir), "-o", str(out)])
    assert code == 0, err
    assert (probe(out).width, probe(out).height) == (112, 64)  # not centre-cropped to the model's 64x64
    assert "denoising: step 2/2" in stdout  # captured output is not a terminal: plain progress lines


def test_a_large_size_is_warned_about(run, model_dir, tmp_path, config_dir):
    code, _, err = run(["generate", "x", "--size", "512x256", "--image-only", "--steps", "1", "--no-enhance",
                        "--model", str(model_dir), "-o", str(tmp_path / "o.png"), "--no-c2pa"])
    assert code == 0, err
    assert "warning: 512x256 is far from the sizes this model was trained at (64x64)" in err  # its default size


def test_the_size_is_checked_before_the_weights_load(run, model_dir, tmp_path):
    """16 #12: the size multiple comes from the folder's config files; broken weights are never reached."""
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / "transformer" / "model.safetensors").write_bytes(b"\0" * 10)
    code, _, err = run(["generate", "x", "--size", "70x64", "--model", str(broken), "-o", str(tmp_path / "o.mp4")])
    assert code == 2 and "size 70x64 is not a multiple of 16" in err, err
    code, _, err = run(["generate", "x", "--model", str(broken), "-o", str(tmp_path / "o.mp4"), "--no-enhance"])
    assert code == 4 and "cannot load the DiT" in err  # a good request reaches the weights, which are broken


def test_storyboard_command_runs_the_one_path(run, model_dir, tmp_path, config_dir):
    from kino.safety.verify import GENERATION_LABEL, verify_file

    (tmp_path / "s.yaml").write_text("seed: 2\nshots:\n  - {prompt: a red ball rolls, seconds: 0.5}\n"
                                     "  - {prompt: a blue box falls, seconds: 0.5, transition: cut}\n")
    out = tmp_path / "story.mp4"
    code, stdout, err = run(["storyboard", str(tmp_path / "s.yaml"), "--no-enhance", "--model", str(model_dir),
                             "-o", str(out)])
    assert code == 0, err
    assert "(storyboard, 2 shots, 64x64, 8 frames at 8 fps, seed 2" in stdout
    assert verify_file(out).manifest.assertion(GENERATION_LABEL)["mode"] == "storyboard"
    (tmp_path / "bad.yaml").write_text("shots:\n  - {prompt: mickey, seconds: 1}\n  - {prompt: mouse, seconds: 1}\n")
    code, _, err = run(["storyboard", str(tmp_path / "bad.yaml"), "--no-enhance", "--model", str(model_dir),
                        "-o", str(tmp_path / "bad.mp4")])
    assert code == 5 and not (tmp_path / "bad.mp4").exists()  # the joined text is refused (15 #10)
