"""Conditioned LoRAs on tiny Wan I2V, FLF2V and VACE folders: the cache holds each pipeline's conditioning
inputs, training on them lowers the loss, and the saved LoRA loads into the conditioned pipeline, changing
its output to exactly what the trained in-memory transformer gives."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_lora import SMALL, _cfg, _train, manifest  # noqa: F401  (the module fixture: the real clips)
from tiny_families import tiny_models  # noqa: F401  (the session fixture)

from kino.data.family_cache import FamilyClips, build_family_cache
from kino.errors import InputError
from kino.families.lora import LoRAUse, apply_model_loras
from kino.train.lora import LoRATrainer
from kino.train.lora_loop import LoRARunOptions, run_lora_training, validation_model

# folder -> (--condition, the cached inputs of a clip, the mode that uses them at inference)
VARIANTS = {
    "wan-i2v": ("first", {"first", "first_image"}, "image-to-video"),
    "wan-flf2v": ("first-last", {"first_last", "first_last_image"}, "interpolate"),
    "wan-vace": ("random-keyframes", {"none", "first", "first_last", "keyframes0", "keyframes1", "none_at",
                                      "first_at", "first_last_at", "keyframes0_at", "keyframes1_at"}, "interpolate"),
}


def _generate(model, mode: str, images: list[str]) -> np.ndarray:
    from kino.generation import GenerationRequest, resolve

    given = {"from_image": images[0]} if mode == "image-to-video" else {"keyframes": tuple(images)}
    req = resolve(GenerationRequest("a red ball moves left", mode=mode, width=32, height=32, seconds=5 / 8, fps=8.0,
                                    steps=2, seed=3, enhance=False, **given), model.defaults)
    return model.run(req, req.prompt, 3)[0].frames  # float frames, before uint8 rounding


@pytest.mark.parametrize("kind", list(VARIANTS))
def test_conditioned_wan_lora(kind, manifest, tiny_models, tmp_path):  # noqa: F811
    from kino.families import load_model
    from kino.io import write_image

    condition, keys, mode = VARIANTS[kind]
    folder = tiny_models[kind]
    cache = tmp_path / "cache"
    build_family_cache(manifest, folder, cache, SMALL)
    data = FamilyClips(cache, level="detailed")
    assert data.index["variant"] == kind.removeprefix("wan-") and set(data[0]["conditions"]) == keys
    first = data[0]["conditions"]["first" if kind != "wan-flf2v" else "first_last"]
    assert first.shape[1:] == data[0]["latent"].shape[1:]  # (C or 2C, t, h, w) over the clip's latent grid

    trainer = LoRATrainer(_cfg(condition=condition, condition_prob=1.0, lr=5e-3), folder, index=data.index)
    items = [data[i] for i in range(len(data))]
    null = trainer.null_text(data)
    before = trainer.eval_loss(items, null)
    _train(trainer, cache, 8)
    after = trainer.eval_loss(items, null)
    assert after < before * 0.99, (before, after)

    rng = np.random.default_rng(0)
    images = []
    for n in range(2):
        write_image(tmp_path / f"{n}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        images.append(str(tmp_path / f"{n}.png"))
    trained = _generate(validation_model(trainer), mode, images)
    path = trainer.write_loras(tmp_path)[0]
    fresh = load_model(folder)
    plain = _generate(fresh, mode, images)
    assert np.abs(plain - trained).max() > 1e-4  # the LoRA changes the conditioned output
    apply_model_loras(fresh, [LoRAUse(str(path))])
    assert np.abs(_generate(fresh, mode, images) - trained).max() <= 1e-6

    # the run loop: a validation video in the folder's conditioned mode (I2V / FLF2V make none from text)
    opts = dict(tensorboard=False, validate_every=1, validation_prompts=("a red ball",), validation_steps=1)
    run = tmp_path / "run"
    if kind != "wan-vace":
        with pytest.raises(InputError, match="needs --validation-image"):
            run_lora_training(_cfg(condition=condition, steps=1), folder, cache, run, options=LoRARunOptions(**opts))
    run_lora_training(_cfg(condition=condition, steps=1), folder, cache, run,
                      options=LoRARunOptions(**opts, validation_image=images[0]))
    from kino.io import read_video

    assert len(read_video(run / "samples" / "step-00000001" / "00.mp4").frames) > 1


def test_conditions_each_variant_refuses(manifest, tiny_models, tmp_path):  # noqa: F811
    with pytest.raises(InputError, match="trains --condition first, not first-last"):
        LoRATrainer(_cfg(condition="first-last"), tiny_models["wan-i2v"])
    with pytest.raises(InputError, match="trains --condition first-last, not first"):
        LoRATrainer(_cfg(condition="first"), tiny_models["wan-flf2v"])
    build_family_cache(manifest, tiny_models["wan"], tmp_path / "t2v", SMALL)  # a T2V cache: no I2V inputs
    with pytest.raises(InputError, match="no Wan I2V conditioning inputs"):
        LoRATrainer(_cfg(condition="first"), tiny_models["wan-i2v"], index=FamilyClips(tmp_path / "t2v").index)


@pytest.mark.parametrize("kind", list(VARIANTS))
def test_cached_inputs_are_the_pipelines_own(kind, manifest, tiny_models, tmp_path):  # noqa: F811
    """Known answer: the cached latents and images and the masks rebuilt in training equal what the diffusers
    pipeline's own prepare_latents / encode_image / prepare_video_latents / prepare_masks give for the clip."""
    from PIL import Image

    from kino.data.buckets import TokenFactors
    from kino.data.clips import ClipShaping, ManifestClips
    from kino.data.family_cache import FamilyEncoder
    from kino.train.lora_objectives import wan_i2v_mask, wan_vace_mask

    enc = FamilyEncoder(tiny_models[kind])
    shaping = ClipShaping(area=SMALL.area, max_frames=SMALL.max_frames,
                          factors=TokenFactors(temporal=enc.temporal, spatial=enc.spatial, patch=enc.patch))
    video = ManifestClips(manifest, shaping)[0]["video"]  # (3, T, H, W) in [-1, 1]
    _, frames, height, width = video.shape
    got = enc.encode_conditions(video, seed=1)
    pipe = enc.pipe
    t, h, w = 1 + (frames - 1) // 4, height // 8, width // 8
    if kind == "wan-vace":
        for name in ("first", "first_last", "keyframes0", "none"):
            known = got[f"{name}_at"].tolist()
            given = torch.full_like(video, 128 / 255 * 2 - 1)  # kino.families.wan.vace's gray video, white mask
            mask = torch.ones(1, 3, frames, height, width)
            for i in known:
                given[:, i], mask[:, :, i] = video[:, i], 0.0
            ref = pipe.prepare_video_latents(given[None], mask, [[]], device=torch.device("cpu"))[0]  # (2C, t, h, w)
            assert torch.allclose(got[name], ref.float(), atol=1e-5)
            ref_mask = pipe.prepare_masks(mask, [[]])[0]  # (64, t, h, w)
            assert torch.equal(wan_vace_mask(known, frames, t, h, w, 8), ref_mask)
        return
    last = kind == "wan-flf2v"
    name = "first_last" if last else "first"
    _, cond = pipe.prepare_latents(video[:, 0][None], 1, 16, height, width, frames, torch.float32, torch.device("cpu"),
                                   last_image=video[:, -1][None] if last else None)  # (1, 4 + C, t, h, w)
    assert torch.equal(wan_i2v_mask(1, frames, h, w, 4, last), cond[:, :4])
    assert torch.allclose(got[name][None], cond[:, 4:], atol=1e-5)
    pil = [Image.fromarray(((f.permute(1, 2, 0) + 1) * 127.5).round().byte().numpy()) for f in video[:, [0, -1]].unbind(1)]
    ref = pipe.encode_image(pil if last else pil[0], torch.device("cpu"))  # (1 or 2, N, D)
    assert torch.allclose(got[f"{name}_image"], ref.float(), atol=1e-5)
