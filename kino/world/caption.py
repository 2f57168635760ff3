"""Captions of a scene at three levels of detail, with paraphrases chosen by a seed.

SHORT is what a person types ("red ball bouncing"); MEDIUM is one sentence naming every object;
DETAILED is a paragraph naming every object's size, color, shape and motion, the background,
the camera and every event. The model trains on DETAILED captions (the recaptioning idea of
DALL-E 3, "Improving Image Generation with Better Captions", used by Sora), and a user's short
prompt is expanded into one at sampling time.

Every word the captioner can write is in the tables below (SHAPE_WORDS ... EVENT_WORDS); the
prompt parser (kino.world.parse) merges them into its lexicon, so it understands all of them.
The first entry of each table is the plain name. docs/world.md points here.
"""

from __future__ import annotations

from enum import StrEnum

import numpy as np

from kino.world.motion import collide_color
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


class CaptionLevel(StrEnum):
    SHORT = "short"
    MEDIUM = "medium"
    DETAILED = "detailed"


# ----------------------------------------------------------------------------- the vocabulary

SHAPE_WORDS: dict[Shape, tuple[str, ...]] = {
    Shape.CIRCLE: ("circle", "ball", "disc"),
    Shape.SQUARE: ("square", "box", "block"),
    Shape.TRIANGLE: ("triangle",),
    Shape.STAR: ("star",),
    Shape.DIAMOND: ("diamond", "rhombus"),
}
COLOR_WORDS: dict[Color, tuple[str, ...]] = {
    Color.RED: ("red",),
    Color.ORANGE: ("orange",),
    Color.YELLOW: ("yellow",),
    Color.GREEN: ("green",),
    Color.CYAN: ("cyan", "turquoise"),
    Color.BLUE: ("blue",),
    Color.PURPLE: ("purple", "violet"),
    Color.PINK: ("pink",),
    Color.WHITE: ("white",),
}
SIZE_WORDS: dict[Size, tuple[str, ...]] = {
    Size.SMALL: ("small", "little", "tiny"),
    Size.MEDIUM: ("medium", "medium-sized", "mid-sized"),
    Size.LARGE: ("large", "big", "huge"),
}
# verb phrases that follow the object ("a red ball bouncing around")
MOTION_WORDS: dict[Motion, tuple[str, ...]] = {
    Motion.STILL: ("staying still", "resting in place", "not moving"),
    Motion.LEFT: ("moving left", "sliding to the left", "drifting left"),
    Motion.RIGHT: ("moving right", "sliding to the right", "drifting right"),
    Motion.UP: ("moving up", "rising", "floating upward"),
    Motion.DOWN: ("moving down", "sinking", "drifting downward"),
    Motion.BOUNCING: ("bouncing around", "bouncing off the edges", "ricocheting around the frame"),
    Motion.FALLING: ("falling and bouncing on the ground", "dropping to the ground and bouncing", "falling"),
    Motion.CIRCLING: ("circling", "circling around", "going around in circles"),
    Motion.GROWING: ("growing", "getting bigger", "expanding"),
    Motion.SHRINKING: ("shrinking", "getting smaller", "contracting"),
    Motion.SPINNING: ("spinning", "rotating", "turning in place"),
}
# the short level's words: one per motion, what people type ("red ball bouncing")
MOTION_SHORT: dict[Motion, str] = {
    Motion.STILL: "", Motion.LEFT: "moving left", Motion.RIGHT: "moving right", Motion.UP: "moving up",
    Motion.DOWN: "moving down", Motion.BOUNCING: "bouncing", Motion.FALLING: "falling",
    Motion.CIRCLING: "circling", Motion.GROWING: "growing", Motion.SHRINKING: "shrinking",
    Motion.SPINNING: "spinning",
}  # fmt: skip
BACKGROUND_WORDS: dict[Background, tuple[str, ...]] = {
    Background.BLACK: ("a black background", "a plain black backdrop"),
    Background.WHITE: ("a white background", "a plain white backdrop"),
    Background.GRAY: ("a gray background", "a plain grey backdrop"),
    Background.NAVY: ("a navy background", "a dark navy backdrop"),
    Background.SKY: ("a clear sky", "an open daytime sky"),
    Background.GRASS: ("a grassy field under the sky", "a meadow with a horizon"),
    Background.NIGHT: ("a starry night sky", "the night sky"),
    Background.SUNSET: ("a sunset sky", "a warm sunset"),
}
# full sentences about the camera
CAMERA_WORDS: dict[Camera, tuple[str, ...]] = {
    Camera.STATIC: (
        "The camera is static.",
        "The camera stays still.",
        "The shot is locked off, with a fixed camera.",
    ),
    Camera.PAN_LEFT: ("The camera pans left.", "The camera slowly pans to the left.", "The view pans left."),
    Camera.PAN_RIGHT: (
        "The camera pans right.",
        "The camera slowly pans to the right.",
        "The view pans right.",
    ),
    Camera.ZOOM_IN: (
        "The camera zooms in.",
        "The camera slowly zooms in.",
        "The view zooms in on the scene.",
    ),
    Camera.ZOOM_OUT: (
        "The camera zooms out.",
        "The camera slowly zooms out.",
        "The view zooms out from the scene.",
    ),
}
CAMERA_SHORT: dict[Camera, str] = {
    Camera.STATIC: "", Camera.PAN_LEFT: "camera pans left", Camera.PAN_RIGHT: "camera pans right",
    Camera.ZOOM_IN: "camera zooms in", Camera.ZOOM_OUT: "camera zooms out",
}  # fmt: skip
# event clauses: {s} the subject, {o} the other, {c} the new color (collide)
EVENT_WORDS: dict[EventKind, tuple[str, ...]] = {
    EventKind.COLLIDE: (
        "{s} collides with {o} and turns {c}",
        "{s} runs into {o} and changes color to {c}",
        "when {s} hits {o}, it turns {c}",
    ),
    EventKind.LEAVE_RETURN: (
        "{s} leaves the frame and comes back",
        "{s} goes out of view and then returns",
        "{s} exits the frame and later reappears",
    ),
    EventKind.OCCLUDE: (
        "{s} passes behind {o}",
        "{s} goes behind {o} and comes out the other side",
        "{s} slips behind {o} for a moment",
    ),
    EventKind.DAY_TO_NIGHT: (
        "day turns to night",
        "the light fades from day to night",
        "the sky darkens into night",
    ),
}
# the short level's event words, said after the objects
EVENT_SHORT: dict[EventKind, str] = {
    EventKind.COLLIDE: "they collide",
    EventKind.LEAVE_RETURN: "leaves the frame and comes back",
    EventKind.OCCLUDE: "passes behind the other",
    EventKind.DAY_TO_NIGHT: "day turns to night",
}
COUNT_WORDS = {1: "one", 2: "two", 3: "three"}
LEADS = {1: ("Also, ", "Next to it, ", "In addition, "), 2: ("Finally, ", "Lastly, ", "And ")}


# ----------------------------------------------------------------------------- captions


def captions(spec: SceneSpec, seed: int = 0) -> dict[CaptionLevel, str]:
    """All three captions of `spec`, each deterministic per seed."""
    return {level: caption(spec, level, seed) for level in CaptionLevel}


def caption(spec: SceneSpec, level: CaptionLevel = CaptionLevel.DETAILED, seed: int = 0) -> str:
    """One caption of `spec` at `level`; `seed` picks synonyms and sentence order."""
    level = CaptionLevel(level)
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, list(CaptionLevel).index(level), 11])
    if level == CaptionLevel.SHORT:
        return _short(spec, rng)
    if level == CaptionLevel.MEDIUM:
        return _medium(spec, rng)
    return _detailed(spec, rng)


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _a(phrase: str) -> str:
    return ("an " if phrase[:1] in "aeiou" else "a ") + phrase


def _noun(o: ObjectSpec, rng, size: bool = True) -> str:
    words = [_pick(rng, SIZE_WORDS[o.size])] if size else []
    return " ".join(words + [_pick(rng, COLOR_WORDS[o.color]), _pick(rng, SHAPE_WORDS[o.shape])])


def _ref(spec: SceneSpec, i: int, rng) -> str:
    """'the red ball', with the size too when another object has the same color and shape."""
    o = spec.objects[i]
    twin = any(j != i and p.color == o.color and p.shape == o.shape for j, p in enumerate(spec.objects))
    return "the " + _noun(o, rng, size=twin)


def _event(spec: SceneSpec, e: Event, rng) -> str:
    s = _ref(spec, e.subject, rng)
    o = _ref(spec, e.other, rng) if e.other is not None else ""
    c = ""
    if e.kind == EventKind.COLLIDE:
        c = _pick(rng, COLOR_WORDS[collide_color(spec.objects[e.subject].color, e.color)])
    return _pick(rng, EVENT_WORDS[e.kind]).format(s=s, o=o, c=c)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _short(spec: SceneSpec, rng) -> str:
    o = spec.objects[0]
    parts = [f"{_noun(o, rng, size=rng.random() < 0.3)} {MOTION_SHORT[o.motion]}".strip()]
    if len(spec.objects) > 1:
        second = _noun(spec.objects[1], rng, size=False)
        parts.append("and " + ("another " + second if second in parts[0] else _a(second)))
    if spec.events and rng.random() < 0.7:
        parts.append(", " + EVENT_SHORT[spec.events[0].kind])
    return " ".join(parts).replace(" ,", ",")


def _medium(spec: SceneSpec, rng) -> str:
    objs = [f"{_a(_noun(o, rng))} {_pick(rng, MOTION_WORDS[o.motion])}" for o in spec.objects]
    things = objs[0] if len(objs) == 1 else ", ".join(objs[:-1]) + " and " + objs[-1]
    text = f"{things} on {_pick(rng, BACKGROUND_WORDS[spec.background])}"
    extra = [CAMERA_SHORT[spec.camera]] if spec.camera != Camera.STATIC else []
    extra += [_event(spec, e, rng) for e in spec.events]
    if extra:
        text += "; " + ", and ".join(extra)
    return _cap(text) + "."


def _detailed(spec: SceneSpec, rng) -> str:
    n = len(spec.objects)
    setting = _pick(rng, BACKGROUND_WORDS[spec.background])
    intro = _pick(rng, (
        f"The scene shows {COUNT_WORDS[n]} object{'s' if n > 1 else ''} on {setting}.",
        f"On {setting}, there {'are' if n > 1 else 'is'} {COUNT_WORDS[n]} object{'s' if n > 1 else ''}.",
        f"A video of {COUNT_WORDS[n]} object{'s' if n > 1 else ''} against {setting}.",
    ))  # fmt: skip
    sentences = []
    for i, o in enumerate(spec.objects):
        noun, motion = _noun(o, rng), _pick(rng, MOTION_WORDS[o.motion])
        lead = _pick(rng, LEADS[i]) if i else ""
        sentences.append(_cap(lead + _pick(rng, (
            f"{_a(noun)} is {motion}.",
            f"there is {_a(noun)}, {motion}.",
            f"{_a(noun)} can be seen {motion}.",
        ))))  # fmt: skip
    events = [_cap(_event(spec, e, rng)) + "." for e in spec.events]
    camera = _pick(rng, CAMERA_WORDS[spec.camera])
    order = int(rng.integers(3))
    if order == 0:
        parts = [intro, *sentences, *events, camera]
    elif order == 1:
        parts = [intro, camera, *sentences, *events]
    else:
        parts = [*sentences, intro, *events, camera]
    return " ".join(parts)
