"""KinoPipeline: the directory layout, the call's steps, determinism, limits and errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kino.errors import InputError, ModelError
from kino.models.dit import DiT
from kino.models.text import TextEncoder
from kino.pipeline import KinoPipeline, SchedulerConfig

SCHEDULER = SchedulerConfig(num_inference_steps=3, max_latent_frames=4)


@pytest.fixture(scope="module")
def pipe(tiny_pipeline) -> KinoPipeline:
    return tiny_pipeline(scheduler=SCHEDULER, random_dit=True, max_length=32, freq_dim=32)


def test_call_returns_frames_settings_and_timings(pipe):
    steps = []
    out = pipe("a red circle moves left", seconds=1.5, fps=8, width=32, height=16, seed=3,
               callback=lambda s, n: steps.append((s, n)))
    assert out.frames.dtype == np.uint8 and out.frames.shape == (12, 16, 32, 3)  # round(1.5 * 8) frames
    assert out.settings.num_frames == 12 and out.settings.latent_shape == (1, 4, 4, 2, 4)  # 13 frames decoded
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert {"encode_s", "denoise_s", "decode_s", "total_s"} <= set(out.timings)


def test_same_seed_same_video_and_guidance_matters(pipe):
    a = pipe("a blue square", num_frames=5, width=16, height=16, seed=7).frames
    b = pipe("a blue square", num_frames=5, width=16, height=16, generator=torch.Generator().manual_seed(7)).frames
    c = pipe("a blue square", num_frames=5, width=16, height=16, seed=8).frames
    d = pipe("a blue square", num_frames=5, width=16, height=16, seed=7, guidance_scale=1.0).frames
    e = pipe("a blue square", num_frames=5, width=16, height=16, seed=7, negative_prompt="green").frames
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c) and not np.array_equal(a, d) and not np.array_equal(a, e)


def test_guidance_min_t_is_the_scheduler_s_and_saved(pipe, tmp_path):
    """A scheduler's guidance_min_t: the transformer sees both branches (2 rows) at steps above it and the
    prompt's alone (1 row) at or below it (3 steps start at t = 1, 2/3, 1/3); the setting is reported and saved."""
    from dataclasses import replace

    kw = {"num_frames": 5, "width": 16, "height": 16, "seed": 7}
    rows = []
    hook = pipe.transformer.register_forward_pre_hook(lambda m, args: rows.append(args[0].shape[0]))
    old = pipe.scheduler
    try:
        guided = pipe("a blue square", **kw).frames
        pipe.scheduler = replace(SCHEDULER, guidance_min_t=0.5)
        out = pipe("a blue square", **kw)
        assert rows == [2, 2, 2, 2, 2, 1] and out.settings.guidance_min_t == 0.5
        assert not np.array_equal(out.frames, guided)
        saved = KinoPipeline.from_pretrained(pipe.save_pretrained(tmp_path / "p"))
        assert saved.scheduler.guidance_min_t == 0.5
    finally:
        hook.remove()
        pipe.scheduler = old
    with pytest.raises(InputError, match=r"guidance_min_t must be in \[0, 1\)"):
        SchedulerConfig(guidance_min_t=1.0)


def test_image_is_one_frame(pipe):
    out = pipe("a star", num_frames=1, width=16, height=32, seed=0)
    assert out.frames.shape == (1, 32, 16, 3)


def test_input_errors(pipe):
    with pytest.raises(InputError, match="prompt is empty"):
        pipe("  ")
    with pytest.raises(InputError, match=r"size 40x16 is not a multiple of 16; try 32x16 or 48x16"):
        pipe("x", width=40, height=16)
    with pytest.raises(InputError, match=r"more than one pass holds \(13 frames\) in this mode; use --seconds <= 1\.6"):
        pipe("x", seconds=3, fps=8, width=16, height=16, init_latent=torch.zeros(1, 4, 7, 1, 1))  # SDEdit: one pass


def test_save_load_roundtrip(tmp_path, pipe):
    d = pipe.save_pretrained(tmp_path / "pipe")
    index = json.loads((d / "model_index.json").read_text())
    assert index["_class_name"] == "KinoPipeline"
    assert {"transformer", "vae", "text_encoder", "scheduler"} <= set(index)
    assert [p.name for p in (d / "text_encoder").iterdir()] == ["config.json"]  # weights ship in the package
    back = KinoPipeline.from_pretrained(d)
    assert back.scheduler == pipe.scheduler
    a = pipe("a green star", num_frames=5, width=16, height=16, seed=1).frames
    b = back("a green star", num_frames=5, width=16, height=16, seed=1).frames
    assert np.array_equal(a, b)
    pipe.save_pretrained(d)  # replacing an existing directory works and leaves no temp folders behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe"]


def test_missing_and_broken_dirs(tmp_path, pipe):
    with pytest.raises(ModelError, match="does not exist"):
        KinoPipeline.from_pretrained(tmp_path / "none")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="model_index.json is missing"):
        KinoPipeline.from_pretrained(tmp_path / "empty")
    d = pipe.save_pretrained(tmp_path / "p")
    (d / "transformer" / "model.safetensors").write_bytes(b"\0" * 10)
    with pytest.raises(ModelError, match="cannot load the DiT"):
        KinoPipeline.from_pretrained(d)


def test_mismatched_components_are_refused(tiny_vae, tiny_dit_config):
    with pytest.raises(ModelError, match="text width 99"):
        KinoPipeline(DiT(tiny_dit_config(text_dim=99)), tiny_vae(), TextEncoder())
