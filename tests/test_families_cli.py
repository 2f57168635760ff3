"""A tiny Wan / LTX-Video folder through the command line, exactly as a user would run it."""

from __future__ import annotations

import json

import numpy as np
import pytest
from tiny_families import tiny_models  # noqa: F401  (the session fixture)

from kino.io import probe, write_video

SMALL = ["--size", "16x16", "--seconds", "0.5", "--steps", "2", "--fps", "8", "--seed", "1"]


def test_generate_with_a_wan_folder(run, tiny_models, tmp_path, config_dir):  # noqa: F811
    from kino.safety.provenance import read_manifest

    folder, out = tiny_models["wan"], tmp_path / "out.mp4"
    code, stdout, err = run(["generate", "a dog runs on the beach at sunset", "--model", folder, "-o", out, *SMALL])
    assert code == 0, err
    assert probe(out).num_frames == 5 and (probe(out).width, probe(out).height) == (16, 16)
    # offline enhancement leaves a real-world prompt as written, and says so once
    assert "enhanced prompt: a dog runs on the beach at sunset\n" in stdout
    assert stdout.count("given as written") == 1
    m = read_manifest(out)
    assert m.valid
    gen = m.assertion("org.kino.generation")
    assert gen["settings"]["family"] == "wan" and gen["settings"]["checkpoint"] == str(folder)
    assert gen["settings"]["variant"].startswith("Wan 2.1 T2V") and gen["watermark"]["id"]
    assert gen["mode"] == "text-to-video"


def test_a_mode_the_model_cannot_do_is_one_line(run, tiny_models, tmp_path, config_dir):  # noqa: F811
    clip = write_video(tmp_path / "clip.mp4", np.zeros((5, 16, 16, 3), np.uint8), 8)
    out = tmp_path / "ext.mp4"
    code, stdout, err = run(["extend", clip, "a red circle", "--model", tiny_models["wan"], "-o", out, *SMALL])
    assert code == 2
    line = err.strip()
    assert line.startswith("kino: error:") and "\n" not in line
    assert "cannot do extend" in line and "it can do: edit, text" in line and "Wan VACE" in line
    assert not out.exists()


def test_policy_refuses_before_a_family_model_runs(run, tiny_models, tmp_path, config_dir):  # noqa: F811
    out = tmp_path / "x.mp4"
    code, _, err = run(["generate", "mickey mouse dancing", "--model", tiny_models["wan"], "-o", out, *SMALL])
    assert code == 5 and "kino: error:" in err and not out.exists()


def test_model_info(run, tiny_models):  # noqa: F811
    code, stdout, err = run(["model", "info", tiny_models["wan-vace"]])
    assert code == 0, err
    assert "family      wan" in stdout and "Wan 2.1 VACE" in stdout
    assert "modes       connect, extend, image-to-video, interpolate, loop, storyboard, text" in stdout
    assert "defaults    832x480, 81 frames" in stdout and "memory      about" in stdout
    code, stdout, _ = run(["model", "info", tiny_models["wan-a14b"], "--json"])
    got = json.loads(stdout)
    assert got["family"] == "wan" and got["components"]["transformer_2"] > 0 and got["modes"] == ["text"]
    code, _, err = run(["model", "info", tiny_models["wan"].parent / "nothing-here"])
    assert code == 4 and "does not exist" in err


def test_single_file_and_model_options_from_the_environment(run, tiny_models, tmp_path, config_dir,  # noqa: F811
                                                             monkeypatch):
    from safetensors.torch import load_file, save_file

    from kino.safety.provenance import read_manifest

    folder = tiny_models["wan"]
    weights = load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors")
    save_file(weights, tmp_path / "wan-tiny.safetensors")
    monkeypatch.setenv("KINO_MODEL_OPTIONS", f"config={folder},vae_tiling,first_block_cache=0.1")
    out = tmp_path / "single.mp4"
    code, stdout, err = run(["generate", "a red circle", "--model", tmp_path / "wan-tiny.safetensors", "-o", out,
                             "--no-enhance", *SMALL])
    assert code == 0, err
    settings = read_manifest(out).assertion("org.kino.generation")["settings"]
    assert settings["checkpoint"] == str(tmp_path / "wan-tiny.safetensors")
    assert settings["options"] == ["vae tiling", "first block cache 0.1"]
    monkeypatch.setenv("KINO_MODEL_OPTIONS", "attention=nope")
    code, _, err = run(["generate", "a red circle", "--model", folder, "-o", tmp_path / "x.mp4", *SMALL])
    assert code == 2 and "attention backend 'nope' is not one of" in err


@pytest.fixture(scope="module")
def ltx_media(tmp_path_factory):
    from kino.io import write_image

    rng = np.random.default_rng(2)
    d = tmp_path_factory.mktemp("ltx-cli")
    for n in ("a", "b"):
        write_video(d / f"{n}.mp4", rng.integers(0, 256, (9, 32, 32, 3), dtype=np.uint8), 8)
    for n in ("i", "j"):
        write_image(d / f"{n}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
    return d


@pytest.mark.parametrize("argv, frames", [
    (["generate", "a red circle", "--from-image", "{i}"], 9),
    (["generate", "a red circle", "--from-image", "{i}", "--to-image"], 9),
    (["interpolate", "{i}", "{j}", "--times", "0,1", "--prompt", "a red circle"], 9),
    (["extend", "{a}", "it moves on"], 9 + 8),
    (["extend", "{a}", "it moves on", "--backward"], 8 + 9),
    (["loop", "--video", "{a}"], None),
    (["connect", "{a}", "{b}", "--prompt", "a transition"], None),
    (["edit", "{a}", "a blue square", "--strength", "0.5"], 9),
])
def test_every_ltx_mode_through_the_cli(run, tiny_models, ltx_media, tmp_path, config_dir, argv, frames):  # noqa: F811
    out = tmp_path / "out.mp4"
    argv = [a.format(**{k: ltx_media / f"{k}.{'png' if k in 'ij' else 'mp4'}" for k in "abij"}) for a in argv]
    small = ["--size", "32x32", "--steps", "2", "--fps", "8", "--seed", "1", "--no-c2pa"]
    if argv[0] != "edit":  # an edit is as long as its video
        small += ["--seconds", "1"]
    code, stdout, err = run([*argv, "--model", tiny_models["ltx"], "-o", out, *small])
    assert code == 0, err
    n = probe(out).num_frames
    assert n == frames if frames is not None else n > 9


def test_eval_runs_a_wan_model_on_the_world_suite(run, tiny_models, tmp_path):  # noqa: F811
    out = tmp_path / "eval.json"
    code, stdout, err = run(["eval", "--model", tiny_models["wan"], "--size", "32x32", "--seconds", "0.5", "--fps", "8",
                             "--steps", "2", "--limit", "2", "--seeds", "1", "--json", out])
    assert code == 0, err
    report = json.loads(out.read_text())
    assert len(report["results"]) == 2 and "adherence: total" in stdout
    # offline, a real-world model gets each prompt as written (not the world expander's caption), said once
    assert [r["generated_from"] for r in report["results"]] == [r["prompt"] for r in report["results"]]
    assert stdout.count("given as written") == 1 and report["notes"] and "given as written" in report["notes"][0]
    code, _, err = run(["eval", "--model", tiny_models["wan"], "--suite", "conditioning", "--size", "32x32",
                        "--limit", "1"])
    assert code == 2 and "conditioned suites run on kino's own pipeline" in err


def test_model_flags_single_file_and_options(run, tiny_models, tmp_path, config_dir):  # noqa: F811
    from safetensors.torch import load_file, save_file

    from kino.safety.provenance import read_manifest

    folder = tiny_models["wan"]
    save_file(load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors"), tmp_path / "w.safetensors")
    out = tmp_path / "flags.mp4"
    code, _, err = run(["generate", "a red circle", "--model", tmp_path / "w.safetensors", "--model-config", folder,
                        "--model-option", "vae_slicing", "--model-option", "dtype=float32", "-o", out,
                        "--no-enhance", *SMALL])
    assert code == 0, err
    settings = read_manifest(out).assertion("org.kino.generation")["settings"]
    assert settings["options"] == ["vae slicing"] and settings["dtype"] == "float32"
    code, _, err = run(["generate", "a red circle", "--model", folder, "--model-option", "offload=model", "-o",
                        tmp_path / "x.mp4", *SMALL])
    assert code == 2 and "needs --device cuda" in err and not (tmp_path / "x.mp4").exists()


def test_generate_with_a_wan_folder_prints_no_torchvision_warning(tiny_models, tmp_path):  # noqa: F811
    """A fresh `kino generate` process (transformers warns once per process, so only a new one can show it):
    importing diffusers' Wan I2V module made transformers 5 log that CLIPImageProcessor falls back from
    torchvision to PIL on every Wan load."""
    import os
    import subprocess
    import sys

    out = tmp_path / "w.mp4"
    env = {**os.environ, "KINO_CONFIG_DIR": str(tmp_path / "cfg"), "OMP_NUM_THREADS": "1"}
    env.pop("KINO_MODEL_OPTIONS", None)
    done = subprocess.run([sys.executable, "-m", "kino", "generate", "a dog runs on the beach", "--model",
                           str(tiny_models["wan"]), "-o", str(out), "--threads", "1", *SMALL],
                          capture_output=True, text=True, timeout=300, env=env)
    assert done.returncode == 0, done.stderr
    assert probe(out).num_frames == 5
    assert not [line for line in done.stderr.splitlines() if "torchvision" in line], done.stderr


@pytest.mark.parametrize("kind, argv", [
    ("wan-vace", ["extend", "{a}", "it moves on"]),
    ("wan-vace", ["loop", "--video", "{a}"]),
    ("wan-vace", ["interpolate", "{i}", "{j}"]),
    ("wan-vace", ["connect", "{a}", "{b}"]),
    ("wan-vace", ["storyboard", "{story}"]),
    ("wan", ["generate", "a red circle", "--image-only"]),
    ("wan", ["eval", "--limit", "1"]),
])
def test_every_mode_command_takes_the_model_options(run, tiny_models, ltx_media, tmp_path, config_dir, kind,  # noqa: F811
                                                    argv):
    """--model-option reaches the model from every generating command: offload needs a GPU (one line, no file)."""
    story = tmp_path / "story.yaml"
    story.write_text("shots:\n  - prompt: a red circle\n    seconds: 0.5\n")
    paths = {k: ltx_media / f"{k}.{'png' if k in 'ij' else 'mp4'}" for k in "abij"} | {"story": story}
    argv = [a.format(**paths) for a in argv]
    out = [] if argv[0] == "eval" else ["-o", tmp_path / "out.mp4"]
    code, _, err = run([*argv, "--model", tiny_models[kind], "--model-option", "offload=model", *out])
    assert code == 2 and "offload=model moves weights between the CPU and a GPU" in err, err
    assert not (tmp_path / "out.mp4").exists()


def test_edit_takes_model_config_and_options(run, tiny_models, ltx_media, tmp_path, config_dir):  # noqa: F811
    """A mode command other than generate runs a single-file checkpoint with --model-config and applies
    --model-option (the manifest records them)."""
    from safetensors.torch import load_file, save_file

    from kino.safety.provenance import read_manifest

    folder = tiny_models["wan"]
    save_file(load_file(folder / "transformer" / "diffusion_pytorch_model.safetensors"), tmp_path / "w.safetensors")
    out = tmp_path / "edit.mp4"
    code, _, err = run(["edit", ltx_media / "a.mp4", "a red circle", "--model", tmp_path / "w.safetensors",
                        "--model-config", folder, "--model-option", "vae_slicing", "--model-option", "dtype=float32",
                        "-o", out, "--size", "32x32", "--steps", "2", "--no-enhance"])
    assert code == 0, err
    settings = read_manifest(out).assertion("org.kino.generation")["settings"]
    assert settings["options"] == ["vae slicing"] and settings["dtype"] == "float32"
    assert settings["checkpoint"] == str(tmp_path / "w.safetensors")
