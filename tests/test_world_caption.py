"""Captions: deterministic per seed, varied across seeds, and the detailed level names everything."""

from __future__ import annotations

import numpy as np
import pytest

from kino.world.caption import (
    BACKGROUND_WORDS,
    CAMERA_WORDS,
    COLOR_WORDS,
    EVENT_WORDS,
    MOTION_WORDS,
    SHAPE_WORDS,
    SIZE_WORDS,
    CaptionLevel,
    caption,
    captions,
)
from kino.world.motion import collide_color
from kino.world.sampler import Split, sample_spec
from kino.world.spec import (
    Background,
    Camera,
    Color,
    Event,
    EventKind,
    Motion,
    ObjectSpec,
    SceneSpec,
    Shape,
    Size,
)

SPEC = SceneSpec(
    objects=(ObjectSpec("circle", "red", "small", "right"), ObjectSpec("square", "blue", "large", "left"),
             ObjectSpec("star", "yellow", "medium", "spinning")),
    background="grass", camera="pan_left",
    events=(Event("collide", 0, 1, "green"), Event("day_to_night")),
)  # fmt: skip


# words that each event's every phrasing contains one of
EVENT_KEYS = {
    EventKind.COLLIDE: ("collides with", "runs into", "hits"),
    EventKind.LEAVE_RETURN: ("leaves the frame", "goes out of view", "exits the frame"),
    EventKind.OCCLUDE: ("behind",),
    EventKind.DAY_TO_NIGHT: ("to night", "into night"),
}


def said(text: str, words) -> bool:
    return any(w in text.lower() for w in words)


def test_tables_cover_the_vocabulary():
    for table, enum in (
        (SHAPE_WORDS, Shape),
        (COLOR_WORDS, Color),
        (SIZE_WORDS, Size),
        (MOTION_WORDS, Motion),
        (BACKGROUND_WORDS, Background),
        (CAMERA_WORDS, Camera),
        (EVENT_WORDS, EventKind),
    ):
        assert set(table) == set(enum) and all(table[k] for k in enum)  # fmt: skip
    # a word names one thing only
    for table in (SHAPE_WORDS, COLOR_WORDS, SIZE_WORDS):
        words = [w for ws in table.values() for w in ws]
        assert len(words) == len(set(words))


def test_deterministic_per_seed_and_varied_across_seeds():
    for level in CaptionLevel:
        assert caption(SPEC, level, seed=3) == caption(SPEC, level, seed=3)
        assert len({caption(SPEC, level, seed=s) for s in range(20)}) >= 5
    assert captions(SPEC, 4)[CaptionLevel.DETAILED] == caption(SPEC, CaptionLevel.DETAILED, 4)


def test_detailed_names_every_attribute():
    rng = np.random.default_rng(0)
    specs = [SPEC] + [sample_spec(rng, split) for _ in range(150) for split in Split]
    for i, spec in enumerate(specs):
        text = caption(spec, CaptionLevel.DETAILED, seed=i)
        for o in spec.objects:
            for table, key in (
                (SIZE_WORDS, o.size),
                (COLOR_WORDS, o.color),
                (SHAPE_WORDS, o.shape),
                (MOTION_WORDS, o.motion),
            ):
                assert said(text, table[key]), (text, key)  # fmt: skip
        assert said(text, BACKGROUND_WORDS[spec.background])
        assert said(text, [s.lower() for s in CAMERA_WORDS[spec.camera]])
        for e in spec.events:
            assert said(text, EVENT_KEYS[e.kind]), (text, e.kind)
            if e.kind == EventKind.COLLIDE:
                after = collide_color(spec.objects[e.subject].color, e.color)
                assert said(text, COLOR_WORDS[after])
        count = {1: "one object", 2: "two objects", 3: "three objects"}[len(spec.objects)]
        assert count in text


def test_event_phrases_name_their_objects():
    text = caption(SPEC, CaptionLevel.DETAILED, seed=1)
    assert "green" in text and "red" in text and ("night" in text)


@pytest.mark.parametrize("seed", range(5))
def test_short_is_short_and_about_the_first_object(seed):
    text = caption(SPEC, CaptionLevel.SHORT, seed)
    assert len(text.split()) <= 16
    assert said(text, COLOR_WORDS[Color.RED]) and said(text, SHAPE_WORDS[Shape.CIRCLE])
    one = SceneSpec(objects=(ObjectSpec("circle", "red", motion="bouncing"),))
    assert caption(one, CaptionLevel.SHORT, seed).split()[-1] == "bouncing"


def test_medium_is_one_sentence_with_every_object():
    text = caption(SPEC, CaptionLevel.MEDIUM, 2)
    assert text.count(".") == 1 and text.endswith(".")
    for o in SPEC.objects:
        assert said(text, COLOR_WORDS[o.color]) and said(text, SHAPE_WORDS[o.shape])
    assert "pans left" in text


def test_same_color_and_shape_are_told_apart_by_size():
    spec = SceneSpec(objects=(ObjectSpec("star", "red", "small", "left"), ObjectSpec("star", "red", "large")),
                     events=(Event("occlude", 0, 1),))  # fmt: skip
    text = caption(spec, CaptionLevel.DETAILED, 0)
    sentence = [s for s in text.split(". ") if "behind" in s][0].lower()
    assert said(sentence, SIZE_WORDS[Size.SMALL]) and said(sentence, SIZE_WORDS[Size.LARGE])
