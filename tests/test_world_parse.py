"""The prompt parser: user phrasings, binding of attributes to objects, and the captioner's words."""

from __future__ import annotations

import numpy as np
import pytest

from kino.world.caption import CaptionLevel, captions
from kino.world.parse import parse_prompt
from kino.world.sampler import sample_spec
from kino.world.spec import Background, Camera, EventKind, Motion, PromptSpec, Shape, Size

ATTRS = ("shape", "color", "size", "motion")


def objs(p: PromptSpec) -> list[tuple]:
    return [tuple(None if getattr(o, a) is None else str(getattr(o, a)) for a in ATTRS) for o in p.objects]


@pytest.mark.parametrize(
    ("text", "objects", "extra"),
    [
        ("a red ball bouncing", [("circle", "red", None, "bouncing")], {}),
        ("two blue squares moving left on a night sky",
         [("square", "blue", None, "left")] * 2, {"count": 2, "background": Background.NIGHT}),
        ("a big pink star spinning, camera zooms in",
         [("star", "pink", "large", "spinning")], {"camera": Camera.ZOOM_IN}),
        ("a green circle falls and bounces while the light fades to night",
         [("circle", "green", None, "falling")], {"events": (EventKind.DAY_TO_NIGHT,), "background": None}),
        ("a red circle and a blue square", [("circle", "red", None, None), ("square", "blue", None, None)], {}),
        ("a small yellow triangle moves to the left", [("triangle", "yellow", "small", "left")], {}),
        ("a cyan diamond drifting right", [("diamond", "cyan", None, "right")], {}),
        ("a white star goes around in circles", [("star", "white", None, "circling")], {}),
        ("a purple box gets bigger", [("square", "purple", None, "growing")], {}),
        ("a tiny orange rhombus getting smaller", [("diamond", "orange", "small", "shrinking")], {}),
        ("3 green triangles rising", [("triangle", "green", None, "up")] * 3, {"count": 3}),
        ("a spinning star", [("star", None, None, "spinning")], {}),
        ("a red square circles around", [("square", "red", None, "circling")], {}),
        ("a medium-sized blue disc sinking slowly", [("circle", "blue", "medium", "down")], {}),
        ("the orange block stays still on a white background",
         [("square", "orange", None, "still")], {"background": Background.WHITE}),
    ],
)  # fmt: skip
def test_user_phrasings(text, objects, extra):
    p = parse_prompt(text)
    assert objs(p) == objects
    for key, want in extra.items():
        assert getattr(p, key) == want, (text, key)


@pytest.mark.parametrize(
    ("text", "camera"),
    [
        ("the camera pans left", Camera.PAN_LEFT),
        ("camera slowly pans to the right over a red ball", Camera.PAN_RIGHT),
        ("zooming out", Camera.ZOOM_OUT),
        ("the view zooms in on a star", Camera.ZOOM_IN),
        ("a fixed camera watches a green box", Camera.STATIC),
        ("a red ball", None),
    ],
)
def test_camera_phrases(text, camera):
    assert parse_prompt(text).camera == camera


def test_camera_direction_is_not_an_object_motion():
    p = parse_prompt("a red circle, the camera pans left")
    assert p.camera == Camera.PAN_LEFT and p.objects[0].motion is None


@pytest.mark.parametrize(
    ("text", "event"),
    [
        ("a red circle collides with a blue square and turns green", EventKind.COLLIDE),
        ("when the red ball hits the blue box, it turns yellow", EventKind.COLLIDE),
        ("an orange ball leaves the frame and comes back", EventKind.LEAVE_RETURN),
        ("a star goes out of view and then returns", EventKind.LEAVE_RETURN),
        ("a small circle passes behind a big square", EventKind.OCCLUDE),
        ("day turns to night over a grassy field", EventKind.DAY_TO_NIGHT),
        ("the sky darkens into night", EventKind.DAY_TO_NIGHT),
    ],
)
def test_event_phrases(text, event):
    assert event in parse_prompt(text).events


def test_collision_color_is_not_an_object():
    p = parse_prompt("a red circle collides with a blue square and turns green")
    assert objs(p) == [("circle", "red", None, None), ("square", "blue", None, None)]


def test_the_refers_back_instead_of_adding_an_object():
    p = parse_prompt("A red ball and a blue box. The red ball is spinning. The box rises.")
    assert objs(p) == [("circle", "red", None, "spinning"), ("square", "blue", None, "up")]


def test_day_to_night_is_not_a_night_background_and_sky_words_are_backgrounds():
    assert parse_prompt("a red star on a starry night sky").background == Background.NIGHT
    assert parse_prompt("a ball in a clear blue sky").background == Background.SKY
    assert objs(parse_prompt("a ball in a clear blue sky")) == [("circle", None, None, None)]
    assert parse_prompt("a meadow with a horizon").background == Background.GRASS
    assert parse_prompt("a dark navy backdrop").background == Background.NAVY


def test_unknown_words_are_ignored():
    p = parse_prompt("a majestic red ball, cinematic 4k lighting, bouncing joyfully")
    assert objs(p) == [("circle", "red", None, "bouncing")]
    assert parse_prompt("") == PromptSpec()
    assert parse_prompt("qwerty zxcv") == PromptSpec()


def test_number_words_and_generic_nouns_give_the_count():
    assert parse_prompt("three shapes on a black background").count == 3
    assert parse_prompt("a video of one object against a gray backdrop").count == 1
    assert parse_prompt("a red ball").count is None


@pytest.mark.parametrize("level", list(CaptionLevel))
def test_captions_round_trip_to_the_spec(level):
    """Every caption level parses to attributes the spec has; the detailed one to all of them."""
    rng = np.random.default_rng(7)
    for i in range(60):
        spec = sample_spec(rng)
        text = captions(spec, seed=i)[level]
        p = parse_prompt(text)
        full = PromptSpec.of_scene(spec)
        if level == CaptionLevel.DETAILED:
            assert sorted(objs(p)) == sorted(objs(full)), text
            assert (p.background, p.camera, p.count) == (spec.background, spec.camera, len(spec.objects)), (
                text
            )
            assert sorted(p.events) == sorted(full.events), text
            continue
        for q in p.objects:  # each object the caption names is one of the scene's
            assert any(all(getattr(q, a) in (None, getattr(o, a)) for a in ATTRS) for o in spec.objects), text
        assert p.background in (None, spec.background), text
        assert p.camera in (None, spec.camera), text
        assert set(p.events) <= set(full.events), text
        if level == CaptionLevel.MEDIUM:
            assert len(p.objects) == len(spec.objects), text


def test_enums_come_back():
    p = parse_prompt("a large green diamond falling")
    q = p.objects[0]
    assert (q.shape, q.size, q.motion) == (Shape.DIAMOND, Size.LARGE, Motion.FALLING)
