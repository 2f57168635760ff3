"""Wan 2.1 / 2.2 through kino on tiny random-weight folders: kino == diffusers, every mode, variants."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from tiny_families import tiny_models  # noqa: F401  (the session fixture)

from kino.errors import InputError
from kino.families.base import Family
from kino.families.loading import detect_family, load_model
from kino.generation import GenerationRequest
from kino.io import write_image, write_video

SIZE = dict(width=16, height=16, fps=8.0, steps=2, seed=5)
PROMPT = "a red circle moves left"


@pytest.fixture(scope="module")
def media(tmp_path_factory):
    rng = np.random.default_rng(1)
    d = tmp_path_factory.mktemp("wan-media")
    for n in ("a", "b"):
        write_video(d / f"{n}.mp4", rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8), 8)
    for n in ("i", "j"):
        write_image(d / f"{n}.png", rng.integers(0, 256, (16, 16, 3), dtype=np.uint8))
    return d


@pytest.fixture(scope="module")
def vace(tiny_models):  # noqa: F811
    return load_model(tiny_models["wan-vace"])


def direct(cls, folder, **kw) -> np.ndarray:
    """diffusers' own pipeline `cls` on the same folder: (T, H, W, 3) float in [0, 1]."""
    pipe = cls.from_pretrained(folder, local_files_only=True)
    pipe.set_progress_bar_config(disable=True)
    out = pipe(prompt=PROMPT, negative_prompt=None, width=16, height=16, num_inference_steps=2, guidance_scale=5.0,
               generator=torch.Generator("cpu").manual_seed(5), output_type="np", **kw)
    return out.frames[0]


def png(path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def test_text_and_edit_equal_diffusers(tiny_models, media):  # noqa: F811
    from diffusers import WanPipeline, WanVideoToVideoPipeline

    from kino.io import read_video

    wan = load_model(tiny_models["wan"])
    assert detect_family(tiny_models["wan"]) is Family.WAN and wan.variant.startswith("Wan 2.1 T2V")
    assert wan.modes == {"text", "edit"}
    out, _ = wan.run(GenerationRequest(prompt=PROMPT, seconds=5 / 8, **SIZE), PROMPT, 5)
    ref = direct(WanPipeline, tiny_models["wan"], num_frames=5)
    assert out.frames.shape == (5, 16, 16, 3) and np.abs(out.frames - ref).max() <= 1e-5
    # edit: 6 frames padded to 9 with the last one repeated, the output cut back to 6
    req = GenerationRequest(prompt=PROMPT, mode="edit", video=str(media / "a.mp4"), strength=0.5, **SIZE)
    out, job = wan.run(req, PROMPT, 5)
    frames = read_video(media / "a.mp4").frames
    padded = [png_of(f) for f in np.concatenate([frames, np.repeat(frames[-1:], 3, axis=0)])]
    ref = direct(WanVideoToVideoPipeline, tiny_models["wan"], video=padded, strength=0.5)
    assert out.frames.shape[0] == 6 and np.abs(out.frames - ref[:6]).max() <= 1e-5
    assert any("rounded up to 9" in n for n in job.notes)


def png_of(frame):
    from PIL import Image

    return Image.fromarray(frame)


def test_vace_keyframes_and_i2v_equal_diffusers(tiny_models, vace, media):  # noqa: F811
    from diffusers import WanImageToVideoPipeline, WanVACEPipeline
    from PIL import Image

    i, j = media / "i.png", media / "j.png"
    assert vace.modes == {"text", "image-to-video", "interpolate", "extend", "connect", "loop", "storyboard"}
    req = GenerationRequest(prompt=PROMPT, mode="interpolate", keyframes=(str(i), str(j)), key_times=(0.0, 1.0),
                            **SIZE)
    out, _ = vace.run(req, PROMPT, 5)
    gray, white, black = Image.new("RGB", (16, 16), (128,) * 3), Image.new("L", (16, 16), 255), Image.new("L", (16, 16), 0)
    video = [png(i)] + [gray] * 7 + [png(j)]
    mask = [black] + [white] * 7 + [black]
    ref = direct(WanVACEPipeline, tiny_models["wan-vace"], num_frames=9, video=video, mask=mask)
    assert out.frames.shape[0] == 9 and np.abs(out.frames - ref).max() <= 1e-5

    i2v = load_model(tiny_models["wan-i2v"])
    assert i2v.modes == {"image-to-video"} and i2v.variant.startswith("Wan 2.1 I2V")
    out, _ = i2v.run(GenerationRequest(prompt=PROMPT, from_image=str(i), seconds=5 / 8, **SIZE), PROMPT, 5)
    ref = direct(WanImageToVideoPipeline, tiny_models["wan-i2v"], num_frames=5, image=png(i))
    assert np.abs(out.frames - ref).max() <= 1e-5


@pytest.mark.parametrize("mode, extra, frames, seams", [
    ("text", {}, 5, ()),
    ("image-to-video", {"from_image": "i.png"}, 5, ()),
    ("image-to-video", {"from_image": "i.png", "to_image": True}, 5, ()),
    ("extend", {"video": "a.mp4"}, 6 + 4, (6,)),
    ("extend", {"video": "a.mp4", "backward": True}, 4 + 6, (4,)),
    ("connect", {"videos": ("a.mp4", "b.mp4")}, None, None),
    ("loop", {"video": "a.mp4"}, None, None),
])
def test_vace_modes_run(vace, media, mode, extra, frames, seams):
    extra = {k: (tuple(str(media / x) for x in v) if isinstance(v, tuple) else str(media / v) if isinstance(v, str)
                 else v) for k, v in extra.items()}
    got = vace.generate(GenerationRequest(prompt=PROMPT, mode=mode, seconds=0.5, **SIZE, **extra), PROMPT, 5)
    assert got.frames.shape[1:] == (16, 16, 3)
    if frames is not None:
        assert len(got.frames) == frames and got.seams == seams
    assert got.settings["family"] == "wan" and "VACE" in got.settings["variant"]


def test_flf2v_a14b_ti2v_variants(tiny_models, media):  # noqa: F811
    i, j = str(media / "i.png"), str(media / "j.png")
    flf = load_model(tiny_models["wan-flf2v"])
    assert flf.modes == {"interpolate", "connect", "loop"} and "FLF2V" in flf.variant
    got = flf.generate(GenerationRequest(prompt=PROMPT, mode="interpolate", keyframes=(i, j), seconds=5 / 8, **SIZE),
                       PROMPT, 5)
    assert len(got.frames) == 5
    got = flf.generate(GenerationRequest(prompt=PROMPT, mode="loop", video=str(media / "a.mp4"), seconds=0.5, **SIZE),
                       PROMPT, 5)
    assert len(got.frames) == 6 + 7 and got.seams == (6, 13)  # a 9-frame pass: its 7 inner frames close the loop
    with pytest.raises(InputError, match="first and a last frame only"):
        flf.generate(GenerationRequest(prompt=PROMPT, mode="interpolate", keyframes=(i, j, i), seconds=1.0, **SIZE),
                     PROMPT, 5)

    a14b = load_model(tiny_models["wan-a14b"])
    assert a14b.two_experts and a14b.modes == {"text"} and "A14B" in a14b.variant
    assert set(a14b.info().components) >= {"transformer", "transformer_2"}
    assert len(a14b.generate(GenerationRequest(prompt=PROMPT, seconds=5 / 8, **SIZE), PROMPT, 5).frames) == 5

    ti2v = load_model(tiny_models["wan-ti2v"])
    assert ti2v.modes == {"text", "image-to-video"} and ti2v.defaults.size_multiple == 32
    got = ti2v.generate(GenerationRequest(prompt=PROMPT, from_image=i, seconds=5 / 8, **{**SIZE, "width": 32,
                                                                                            "height": 32}), PROMPT, 5)
    assert got.frames.shape == (5, 32, 32, 3)
    with pytest.raises(InputError, match="first frame only"):  # TI2V-5B ignores last_image: refused, not ignored
        ti2v.generate(GenerationRequest(prompt=PROMPT, from_image=i, to_image=True, seconds=1.0,
                                        **{**SIZE, "width": 32, "height": 32}), PROMPT, 5)


def test_unsupported_mode_names_what_can(tiny_models, media):  # noqa: F811
    wan = load_model(tiny_models["wan"])
    req = GenerationRequest(prompt=PROMPT, mode="extend", video=str(media / "a.mp4"), **SIZE)
    with pytest.raises(InputError) as e:
        wan.generate(req, PROMPT, 5)
    msg = str(e.value)
    assert "cannot do extend" in msg and "it can do: edit, text" in msg and "LTX-Video" in msg and "VACE" in msg
    assert "\n" not in msg


def test_vace_storyboard(vace):
    from kino.generation import Shot

    shots = (Shot("a red circle", 0.5), Shot("it moves left", 0.5), Shot("a blue square", 0.5, "cut"))
    board = vace.generate(GenerationRequest(mode="storyboard", shots=shots, **SIZE), "", 5)
    assert len(board.frames) == 12 and board.seams == (4, 8)
