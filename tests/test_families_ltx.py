"""LTX-Video through kino on a tiny random-weight folder: kino == diffusers, every mode, loading paths."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_families import tiny_models  # noqa: F401  (the session fixture)

from kino.errors import InputError, ModelError
from kino.families.base import Family
from kino.families.loading import detect_family, load_model
from kino.generation import GenerationRequest
from kino.io import write_image, write_video

SIZE = dict(width=32, height=32, fps=8.0, steps=2, seed=3)  # LTX sizes are multiples of 32
PROMPT = "a red circle moves left"


@pytest.fixture(scope="module")
def ltx(tiny_models):  # noqa: F811
    return load_model(tiny_models["ltx"])


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    rng = np.random.default_rng(0)
    d = tmp_path_factory.mktemp("ltx-media")
    frames = {n: rng.integers(0, 256, (12, 32, 32, 3), dtype=np.uint8) for n in ("a", "b")}
    for n, f in frames.items():
        write_video(d / f"{n}.mp4", f, 8)
    images = {n: rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for n in ("i", "j")}
    for n, img in images.items():
        write_image(d / f"{n}.png", img)
    return d


def direct(folder, **kw) -> np.ndarray:
    """diffusers' own LTXConditionPipeline on the same folder: (T, H, W, 3) float in [0, 1]."""
    from diffusers import LTXConditionPipeline

    pipe = LTXConditionPipeline.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompt=PROMPT, negative_prompt=None, width=32, height=32, num_inference_steps=2, guidance_scale=3.0,
               frame_rate=8.0, generator=torch.Generator("cpu").manual_seed(3), output_type="np", **kw)
    return out.frames[0]


def png(path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def test_detect_and_info(ltx, tiny_models):  # noqa: F811
    assert detect_family(tiny_models["ltx"]) is Family.LTX
    info = ltx.info()
    assert info.family is Family.LTX and info.dtype == "float32"
    assert info.components["transformer"] == sum(p.numel() for p in ltx.pipe.transformer.parameters()) > 0
    assert set(info.modes) == {"text", "image-to-video", "interpolate", "extend", "connect", "loop", "edit",
                               "storyboard"}
    assert (info.defaults.width, info.defaults.height, info.defaults.frame_multiple) == (704, 512, 8)
    assert info.memory_gb > 0


def test_text_equals_diffusers(ltx, tiny_models):  # noqa: F811
    out, _ = ltx.run(GenerationRequest(prompt=PROMPT, seconds=9 / 8, **SIZE), PROMPT, 3)
    ref = direct(tiny_models["ltx"], num_frames=9)
    assert out.frames.shape == (9, 32, 32, 3)
    assert np.abs(out.frames - ref).max() <= 1e-5


def test_image_to_video_and_keyframes_equal_diffusers(ltx, tiny_models, media):  # noqa: F811
    from diffusers.pipelines.ltx.pipeline_ltx_condition import LTXVideoCondition

    i, j = media / "i.png", media / "j.png"
    out, _ = ltx.run(GenerationRequest(prompt=PROMPT, from_image=str(i), seconds=9 / 8, **SIZE), PROMPT, 3)
    ref = direct(tiny_models["ltx"], num_frames=9, conditions=[LTXVideoCondition(image=png(i), frame_index=0)])
    assert np.abs(out.frames - ref).max() <= 1e-5
    req = GenerationRequest(prompt=PROMPT, mode="interpolate", keyframes=(str(i), str(j)), key_times=(0.0, 2.0),
                            **SIZE)
    out, _ = ltx.run(req, PROMPT, 3)
    ref = direct(tiny_models["ltx"], num_frames=17, conditions=[LTXVideoCondition(image=png(i), frame_index=0),
                                                                LTXVideoCondition(image=png(j), frame_index=16)])
    assert out.frames.shape[0] == 17 and np.abs(out.frames - ref).max() <= 1e-5
    # the condition matters: another first image gives another video
    other, _ = ltx.run(GenerationRequest(prompt=PROMPT, from_image=str(j), seconds=9 / 8, **SIZE), PROMPT, 3)
    assert np.abs(other.frames[0] - ltx.run(GenerationRequest(prompt=PROMPT, from_image=str(i), seconds=9 / 8,
                                                              **SIZE), PROMPT, 3)[0].frames[0]).max() > 1e-3


@pytest.mark.parametrize("mode, extra, frames, seams", [
    ("extend", {"video": "a.mp4"}, 12 + 8, (12,)),
    ("extend", {"video": "a.mp4", "backward": True}, 8 + 12, (8,)),
    ("connect", {"videos": ("a.mp4", "b.mp4")}, None, None),
    ("loop", {"video": "a.mp4"}, None, None),
    ("edit", {"video": "a.mp4", "strength": 0.5}, 12, ()),
    ("image-to-video", {"from_image": "i.png", "to_image": True}, 9, ()),
])
def test_every_mode_runs(ltx, media, mode, extra, frames, seams):
    extra = {k: (tuple(str(media / x) for x in v) if isinstance(v, tuple) else str(media / v) if isinstance(v, str)
                 else v) for k, v in extra.items()}
    got = ltx.generate(GenerationRequest(prompt=PROMPT, mode=mode, seconds=1.0, **SIZE, **extra), PROMPT, 3)
    assert got.frames.dtype == np.uint8 and got.frames.shape[1:] == (32, 32, 3)
    if frames is not None:
        assert len(got.frames) == frames and got.seams == seams
    if mode in ("extend", "connect", "loop") and not extra.get("backward"):
        from kino.io import read_video

        given = read_video(media / "a.mp4").frames
        assert np.array_equal(got.frames[:12], given)  # the given video comes through unchanged
    assert got.settings["family"] == "ltx" and got.settings["checkpoint"] == ltx.path


def test_progress_callback_counts_steps(ltx):
    seen = []
    ltx.generate(GenerationRequest(prompt=PROMPT, seconds=1 / 8, **SIZE), PROMPT, 3, callback=lambda s, n: seen.append((s, n)))
    assert seen == [(1, 2), (2, 2)]


def test_single_file_transformer_with_local_config(ltx, tiny_models, tmp_path):  # noqa: F811
    from safetensors.torch import save_file

    sd = {k: v.clone() * 1.5 if v.ndim == 2 else v.clone() for k, v in ltx.pipe.transformer.state_dict().items()}
    save_file({k: v.contiguous() for k, v in sd.items()}, tmp_path / "ltx-tiny.safetensors")
    single = load_model(tmp_path / "ltx-tiny.safetensors", config=tiny_models["ltx"])
    assert single.checkpoint.endswith("ltx-tiny.safetensors") and single.name == "ltx-tiny"
    for k, v in single.pipe.transformer.state_dict().items():
        assert torch.equal(v, sd[k]), k  # the file's weights, not the folder's
    with pytest.raises(ModelError, match="config folder"):
        load_model(tmp_path / "ltx-tiny.safetensors")


def test_options_and_dtype_errors(tiny_models):  # noqa: F811
    with pytest.raises(InputError, match="needs --device cuda"):
        load_model(tiny_models["ltx"], offload="model")
    with pytest.raises(InputError, match="attention backend 'nope'"):
        load_model(tiny_models["ltx"], attention="nope")
    with pytest.raises(InputError, match="unknown model option 'tiles'"):
        load_model(tiny_models["ltx"], tiles=True)
    with pytest.raises(ModelError, match="dtype 'int8'"):
        load_model(tiny_models["ltx"], dtype="int8")


def test_size_not_a_multiple_of_32(ltx):
    with pytest.raises(InputError, match="not a multiple of 32"):
        ltx.generate(GenerationRequest(prompt=PROMPT, seconds=1.0, width=48, height=32, steps=2), PROMPT, 0)


def test_long_text_and_storyboard_run_in_windows(ltx):
    from dataclasses import replace

    from kino.generation import Shot

    full = ltx.defaults
    try:
        ltx.defaults = replace(full, max_frames=25)  # one pass holds 25 frames: 32 need a second window
        long, _ = ltx.run(GenerationRequest(prompt=PROMPT, seconds=4.0, prompts=("a blue square",), **SIZE), PROMPT, 3)
        assert long.frames.shape[0] == 32 and long.seams == (25,) and long.calls == 2
        one, _ = ltx.run(GenerationRequest(prompt=PROMPT, seconds=25 / 8, **SIZE), PROMPT, 3)
        assert np.abs(long.frames[:25] - one.frames).max() <= 1e-6  # the first window is the plain pass
        shots = (Shot("a red circle", 1.0), Shot("it moves left", 1.0), Shot("a blue square", 1.0, "cut"))
        board = ltx.generate(GenerationRequest(mode="storyboard", shots=shots, **SIZE), "", 3)
        assert len(board.frames) == 24 and board.seams == (8, 16)
    finally:
        ltx.defaults = full


def test_an_ltx_pipeline_folder_runs_through_the_condition_pipeline(ltx, tmp_path):
    from diffusers import LTXPipeline

    parts = {k: ltx.pipe.components[k] for k in ("scheduler", "vae", "text_encoder", "tokenizer", "transformer")}
    LTXPipeline(**parts).save_pretrained(tmp_path / "ltx-plain")
    plain = load_model(tmp_path / "ltx-plain")
    assert detect_family(tmp_path / "ltx-plain") is Family.LTX and "LTXConditionPipeline" in plain.info().notes[0]
    assert plain.modes == ltx.modes
    req = GenerationRequest(prompt=PROMPT, seconds=9 / 8, **SIZE)
    assert np.abs(plain.run(req, PROMPT, 3)[0].frames - ltx.run(req, PROMPT, 3)[0].frames).max() <= 1e-6
