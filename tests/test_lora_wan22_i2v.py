"""Conditioned LoRAs on a tiny Wan 2.2 I2V A14B folder (WanImageToVideoPipeline with transformer_2 and
boundary_ratio 0.9, no CLIP image encoder: the given frames come in as mask + latent channels only).

Training both experts on the first frame, or on the first and last frames, lowers each expert's loss; the
two saved LoRA files load into a fresh pipeline's two experts and give exactly what the trained in-memory
model gives; `--expert high` trains only the high-noise expert at sigmas >= the boundary and leaves the
low-noise expert's weights as they were."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_lora import SMALL, _cfg, _train, manifest  # noqa: F401  (the module fixture: the real clips)
from tiny_families import tiny_models  # noqa: F401  (the session fixture)

from kino.data.family_cache import FamilyClips, build_family_cache
from kino.errors import InputError
from kino.families.lora import LOW_NOISE_NAME, WEIGHT_NAME, LoRAUse, apply_model_loras, read_lora
from kino.train.lora import LoRATrainer
from kino.train.lora_loop import validation_model

KIND = "wan-i2v-a14b"


@pytest.fixture(scope="module")
def cache(manifest, tiny_models, tmp_path_factory):  # noqa: F811
    out = tmp_path_factory.mktemp("i2v-a14b") / "cache"
    build_family_cache(manifest, tiny_models[KIND], out, SMALL)
    return out


def _images(folder) -> list[str]:
    from kino.io import write_image

    rng = np.random.default_rng(0)
    paths = []
    for n in range(2):
        write_image(folder / f"{n}.png", rng.integers(0, 256, (32, 32, 3), dtype=np.uint8))
        paths.append(str(folder / f"{n}.png"))
    return paths


def _generate(model, mode: str, images: list[str]) -> np.ndarray:
    """Two steps (t = 1000 on the high-noise expert, t = 7 on the low-noise one), float frames."""
    from kino.generation import GenerationRequest, resolve

    given = {"from_image": images[0]} if mode == "image-to-video" else {"keyframes": tuple(images)}
    req = resolve(GenerationRequest("a red ball moves left", mode=mode, width=32, height=32, seconds=5 / 8, fps=8.0,
                                    steps=2, seed=3, enhance=False, **given), model.defaults)
    return model.run(req, req.prompt, 3)[0].frames


def _expert_loss(trainer, items, null, sigma: float) -> float:
    """The fixed-noise loss at one sigma (>= 0.9: the high-noise expert's, below: the low-noise one's)."""
    return trainer.eval_loss(items, null, sigmas=(sigma,))


@pytest.mark.parametrize(("condition", "mode"), [("first", "image-to-video"), ("first-last", "interpolate")])
def test_both_experts_conditioned(condition, mode, cache, tiny_models, tmp_path):  # noqa: F811
    from kino.families import load_model

    folder = tiny_models[KIND]
    data = FamilyClips(cache, level="detailed")
    assert data.index["variant"] == "i2v" and data.index["conditions"] == ["first", "first-last"]
    assert set(data[0]["conditions"]) == {"first", "first_last"}  # no CLIP image states on Wan 2.2
    trainer = LoRATrainer(_cfg(condition=condition, condition_prob=1.0, lr=5e-3, expert="both"), folder,
                          index=data.index)
    assert trainer.experts == ["high", "low"]
    items = [data[i] for i in range(len(data))]
    null = trainer.null_text(data)
    before = {s: _expert_loss(trainer, items, null, s) for s in (0.95, 0.3)}
    _train(trainer, cache, 8)
    after = {s: _expert_loss(trainer, items, null, s) for s in (0.95, 0.3)}
    assert all(after[s] < before[s] * 0.99 for s in before), (before, after)

    images = _images(tmp_path)
    trained = _generate(validation_model(trainer), mode, images)
    files = trainer.write_loras(tmp_path)
    assert [f.name for f in files] == [WEIGHT_NAME, LOW_NOISE_NAME]
    assert [str(read_lora(f).expert) for f in files] == ["high", "low"]
    fresh = load_model(folder)
    plain = _generate(fresh, mode, images)
    assert np.abs(plain - trained).max() > 1e-4  # the LoRAs change the conditioned output
    recs = apply_model_loras(fresh, [LoRAUse(str(f)) for f in files])
    assert [r["expert"] for r in recs] == ["high", "low"]
    assert np.abs(_generate(fresh, mode, images) - trained).max() <= 1e-6


def test_first_last_mixes_first_only(cache, tiny_models):  # noqa: F811
    """--condition first-last: a clip gets the last frame too with condition_prob, else the first only."""
    data = FamilyClips(cache, level="detailed")
    item = data[0]
    batch = [item, item]  # a micro-batch is one bucket shape
    seen = set()
    for prob in (0.0, 1.0, 0.5):
        t = LoRATrainer(_cfg(condition="first-last", condition_prob=prob), tiny_models[KIND], index=data.index)
        for seed in range(4):
            channels = t.wan_conditioning(batch, torch.Generator().manual_seed(seed))["channels"]  # (B, 4 + C, F, H, W)
            for c in channels:
                last = bool(c[3, -1].eq(1).all())  # mask channel 3 of the last latent frame: the last pixel frame
                assert torch.equal(c[4:], item["conditions"]["first_last" if last else "first"])
                assert not last or prob > 0.0
                assert last or prob < 1.0
                seen.add(last)
    assert seen == {True, False}


def test_expert_high_trains_only_the_high_noise_expert(cache, tiny_models, tmp_path):  # noqa: F811
    folder = tiny_models[KIND]
    index = FamilyClips(cache).index
    t = LoRATrainer(_cfg(condition="first", expert="high", lr=5e-3), folder, index=index)
    assert t.experts == ["high"]
    g = torch.Generator().manual_seed(0)
    assert float(t.sample_sigma(2000, 64, "high", g).min()) >= 0.9 - 1e-6  # WanImageToVideoPipeline's switch
    low = {k: v.clone() for k, v in t.den.by_expert["low"].state_dict().items()}
    high = {k: v.clone() for k, v in t.lora_states()["high"].items()}
    _train(t, cache, 3)
    assert all(torch.equal(v, t.den.by_expert["low"].state_dict()[k]) for k, v in low.items())
    assert any(not torch.equal(v, t.lora_states()["high"][k]) for k, v in high.items())
    assert [f.name for f in t.write_loras(tmp_path)] == [WEIGHT_NAME]

    lo = LoRATrainer(_cfg(condition="first", expert="low"), folder, index=index)
    assert float(lo.sample_sigma(2000, 64, "low", g).max()) < 0.9
    with pytest.raises(InputError, match="trains --condition first or first-last, not random-keyframes"):
        LoRATrainer(_cfg(condition="random-keyframes"), folder, index=index)
