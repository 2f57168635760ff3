"""The world's scene spec: validation with one-line errors, JSON round trip, the contrast rule."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kino.errors import InputError
from kino.world.sampler import Split, sample_spec
from kino.world.spec import (
    BACKGROUND_STOPS,
    MIN_CONTRAST,
    PALETTE,
    Background,
    Color,
    Event,
    ObjectSpec,
    PromptSpec,
    SceneSpec,
    contrast,
    is_low_contrast,
)


def one(**kw) -> SceneSpec:
    return SceneSpec(objects=(ObjectSpec("circle", "red"),), **kw)


@pytest.mark.parametrize(
    "kw,words",
    [
        ({"width": 70}, "multiple of 8"),
        ({"height": 24}, "from 32 to 512"),
        ({"width": 520}, "from 32 to 512"),
        ({"fps": 0}, "fps"),
        ({"num_frames": 0}, "num_frames"),
        ({"background": "purple"}, "valid: black, white"),
        ({"camera": "dolly"}, "pan_left"),
        ({"events": (Event("collide", 0, None),)}, "two different objects"),
        ({"events": (Event("leave_return", 3),)}, "names object 3"),
    ],
)
def test_invalid_specs_say_what_is_valid(kw, words):
    with pytest.raises(InputError) as e:
        one(**kw)
    assert words in str(e.value) and "\n" not in str(e.value)


def test_bad_objects():
    with pytest.raises(InputError, match="valid: circle"):
        ObjectSpec("hexagon", "red")
    with pytest.raises(InputError, match="outside the canvas"):
        ObjectSpec("circle", "red", x=1.5)
    with pytest.raises(InputError, match="1 to 3 objects"):
        SceneSpec(objects=())
    with pytest.raises(InputError, match="1 to 3 objects"):
        SceneSpec(objects=(ObjectSpec("circle", "red"),) * 4)


def test_canvas_range():
    for w, h in ((32, 32), (512, 512), (96, 40), (512, 32)):
        assert one(width=w, height=h).width == w
    assert one(num_frames=600, fps=30).seconds == 20.0


def test_json_round_trip():
    rng = np.random.default_rng(0)
    specs = [sample_spec(rng, split) for split in Split for _ in range(50)]
    specs.append(SceneSpec(objects=(ObjectSpec("star", "pink", "large", "circling", x=0.2, y=0.7, speed=0.3, depth=2),
                                    ObjectSpec("square", "white")),
                           events=(Event("collide", 0, 1, "cyan"), Event("day_to_night")), background="sunset",
                           camera="zoom_out", width=128, height=72, fps=24.0, num_frames=600))  # fmt: skip
    for spec in specs:
        text = spec.to_json()
        assert json.loads(text)["objects"][0]["shape"] == spec.objects[0].shape.value  # plain JSON
        back = SceneSpec.from_json(text)
        assert back == spec and back.to_json() == text
    prompt = PromptSpec.of_scene(specs[-1])
    assert PromptSpec.from_dict(json.loads(json.dumps(prompt.to_dict()))) == prompt


def test_not_a_spec():
    with pytest.raises(InputError, match="invalid JSON"):
        SceneSpec.from_json("{")
    with pytest.raises(InputError, match="not a scene spec"):
        SceneSpec.from_json('{"colour": 1}')


def test_contrast_rule():
    # the cases the rule exists for
    assert is_low_contrast(Color.WHITE, Background.WHITE)
    assert is_low_contrast(Color.GREEN, Background.GRASS)
    assert is_low_contrast(Color.BLUE, Background.NAVY)
    assert is_low_contrast(Color.ORANGE, Background.SUNSET)
    # and strong pairs pass
    assert not is_low_contrast(Color.RED, Background.BLACK)
    assert not is_low_contrast(Color.YELLOW, Background.NAVY)
    assert contrast(Color.WHITE, Background.BLACK) > 1.5 * MIN_CONTRAST  # Lab L* 96 vs 0
    for bg in Background:  # every background leaves at least three readable colors
        assert sum(not is_low_contrast(c, bg) for c in Color) >= 3
        assert all(len(rgb) == 3 for _, rgb in BACKGROUND_STOPS[bg])
    assert set(PALETTE) == set(Color)
