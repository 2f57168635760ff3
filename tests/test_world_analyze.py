"""The world's analyzer and scorer on what the renderer draws: accuracy, every motion/camera/event, robustness."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from kino.io import read_video, write_video
from kino.world.analyze import analyze
from kino.world.parse import parse_prompt
from kino.world.render import render
from kino.world.sampler import sample_spec
from kino.world.score import Attribute, accuracy, score
from kino.world.spec import (
    Background,
    Camera,
    Event,
    EventKind,
    Motion,
    ObjectSpec,
    PromptSpec,
    SceneSpec,
)


def h264(frames: np.ndarray, fps: float, tmp_path) -> np.ndarray:
    path = tmp_path / "clip.mp4"
    write_video(path, frames, fps=fps)
    return read_video(path).frames


# The targets are 99% of attributes for one-object scenes and 97% for two and three.
# On this sample (seed 2026) the analyzer measured 0.993 and 0.984 (2026-11-22, after the
# sampler's crowding rule and the renderer's layout rule; 0.989-0.993 and 0.898-0.903 before). The
# H.264 encoder is not bit-exact from run to run, so the floors sit just under these figures.
ONE_OBJECT_FLOOR = 0.985
MULTI_OBJECT_FLOOR = 0.975


def test_accuracy_after_h264(tmp_path):
    """On random specs at 64x64, after an H.264 round trip, the analyzer agrees with the spec."""
    rng = np.random.default_rng(2026)
    met, asked = Counter(), Counter()
    for i in range(72):
        spec = sample_spec(rng, num_frames=17)
        frames = h264(render(spec, seed=i), spec.fps, tmp_path)
        result = accuracy(analyze(frames, spec.fps), spec)
        k = 1 if len(spec.objects) == 1 else 2
        met[k] += result.met
        asked[k] += len(result.checks)
    assert met[1] / asked[1] >= ONE_OBJECT_FLOOR, met[1] / asked[1]
    assert met[2] / asked[2] >= MULTI_OBJECT_FLOOR, met[2] / asked[2]


MOTION_SHAPE = {Motion.SPINNING: "star", Motion.CIRCLING: "triangle", Motion.GROWING: "square"}


@pytest.mark.parametrize("motion", list(Motion))
def test_every_motion_is_recognised(motion):
    for seed in range(2):
        shape = MOTION_SHAPE.get(motion, "diamond" if seed else "circle")
        spec = SceneSpec(
            objects=(ObjectSpec(shape, "red", "medium", motion),), background="black", num_frames=17
        )
        a = analyze(render(spec, seed=seed), spec.fps)
        assert a.count == 1 and a.objects[0].motion == motion, (seed, a.summary())


@pytest.mark.parametrize("camera", list(Camera))
def test_every_camera_is_recognised_and_undone(camera):
    spec = SceneSpec(objects=(ObjectSpec("square", "yellow", "medium", "still"),), background="night",
                     camera=camera, num_frames=17)  # fmt: skip
    a = analyze(render(spec, seed=3), spec.fps)
    assert a.camera == camera
    assert a.objects[0].motion == Motion.STILL  # the camera's motion is not the object's


@pytest.mark.parametrize("background", list(Background))
def test_every_background_is_recognised(background):
    spec = SceneSpec(objects=(ObjectSpec("circle", "red" if background != "sunset" else "cyan", "small"),),
                     background=background, camera="pan_left", num_frames=9)  # fmt: skip
    a = analyze(render(spec, seed=1), spec.fps)
    assert a.background == background and a.camera == Camera.PAN_LEFT


EVENT_SCENES = {
    EventKind.COLLIDE: SceneSpec(objects=(ObjectSpec("circle", "red", "medium", "right"),
                                          ObjectSpec("square", "blue", "medium", "still")),
                                 events=(Event("collide", 0, 1, "green"),), num_frames=17),
    EventKind.LEAVE_RETURN: SceneSpec(objects=(ObjectSpec("star", "yellow", "medium", "left"),),
                                      events=(Event("leave_return", 0),), num_frames=17),
    EventKind.OCCLUDE: SceneSpec(objects=(ObjectSpec("circle", "pink", "small", "right"),
                                          ObjectSpec("square", "blue", "large", "still")),
                                 events=(Event("occlude", 0, 1),), num_frames=17),
    EventKind.DAY_TO_NIGHT: SceneSpec(objects=(ObjectSpec("diamond", "red", "medium"),), background="sky",
                                      events=(Event("day_to_night"),), num_frames=17),
}  # fmt: skip


@pytest.mark.parametrize("kind", list(EventKind))
def test_every_event_is_recognised(kind, tmp_path):
    spec = EVENT_SCENES[kind]
    frames = h264(render(spec, seed=0), spec.fps, tmp_path)
    a = analyze(frames, spec.fps)
    assert [e.kind for e in a.events] == [kind], a.summary()
    assert accuracy(a, spec).fraction == 1.0, a.summary()


def test_no_events_in_a_quiet_scene():
    spec = SceneSpec(
        objects=(ObjectSpec("star", "white", "large", "still"),), background="navy", num_frames=17
    )
    assert analyze(render(spec), spec.fps).events == []


def test_blurred_and_noisy_renders_still_score():
    """What generators produce is softer and noisier than the renderer: the analyzer copes."""
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(5)
    fractions = []
    for i in range(12):
        spec = sample_spec(rng, num_frames=17, max_objects=1)
        f = render(spec, seed=i).astype(np.float32)
        f = gaussian_filter(f, sigma=(0, 1.0, 1.0, 0)) + rng.normal(0, 8.0, f.shape)
        f = np.clip(np.rint(f), 0, 255).astype(np.uint8)
        fractions.append(accuracy(analyze(f, spec.fps), spec).fraction)
    assert np.mean(fractions) >= 0.9, fractions


def test_analysis_is_json_with_per_frame_tracks():
    spec = SceneSpec(objects=(ObjectSpec("circle", "red", "small", "right"), ObjectSpec("star", "blue", "large")),
                     num_frames=9)  # fmt: skip
    a = analyze(render(spec), spec.fps)
    d = json.loads(json.dumps(a.to_dict()))
    assert d["count"] == 2 and len(d["objects"]) == 2
    for o in d["objects"]:
        assert len(o["track"]) == len(o["colors"]) == len(o["shapes"]) == len(o["area"]) == 9
    red = next(o for o in d["objects"] if o["color"] == "red")
    xs = [p[0] for p in red["track"] if p is not None]
    assert xs[-1] > xs[0]  # moving right
    assert set(red["colors"]) == {"red"}


def test_one_image_and_bad_input():
    spec = SceneSpec(objects=(ObjectSpec("triangle", "green", "large"),), background="white", num_frames=1)
    a = analyze(render(spec)[0], 8.0)  # one (H, W, 3) frame
    assert (a.count, a.objects[0].shape, a.objects[0].color) == (1, "triangle", "green")
    from kino.errors import InputError

    with pytest.raises(InputError):
        analyze(np.zeros((4, 8, 8), np.float32), 8.0)


def test_score_matches_asked_objects_to_seen_ones_in_any_order():
    spec = SceneSpec(objects=(ObjectSpec("circle", "red", "small", "right"), ObjectSpec("square", "blue", "large")),
                     num_frames=17)  # fmt: skip
    a = analyze(render(spec), spec.fps)
    good = score(a, parse_prompt("a big blue box and a small red ball moving right"))
    assert good.fraction == 1.0 and len(good.checks) == 7
    bad = score(a, parse_prompt("a green star spinning, the camera zooms in"))
    assert bad.fraction == 0.0
    assert {c.attribute for c in bad.checks} == {
        Attribute.SHAPE,
        Attribute.COLOR,
        Attribute.MOTION,
        Attribute.CAMERA,
    }
    assert score(a, PromptSpec()).fraction is None  # nothing asked: no score, never 1.0
    assert "nothing measurable" in score(a, PromptSpec()).summary()
    half = score(a, parse_prompt("two red balls"))
    assert 0 < half.fraction < 1
    assert json.loads(json.dumps(half.to_dict()))["asked"] == len(half.checks)
