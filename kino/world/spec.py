"""The world's scene spec: a JSON-serializable description of one clip, and its vocabulary.

A `SceneSpec` says everything the renderer draws: canvas, background, 1-3 objects with shape,
color, size and motion, the camera and the events. `render(spec, seed)` is deterministic, and
the captioner, the sampler's splits and the analyzer's scorer all speak this vocabulary.

A `PromptSpec` is the partial spec that a prompt asks for (every field optional); the parser
produces it and the scorer checks an analysis against it.

Each set of options is one StrEnum here; command-line choices and error messages come from it.

What each word means on screen (speeds, the ground line, how a pan or an event plays out) is in
docs/world.md and in the constants at the top of kino/world/motion.py. Conventions worth knowing
here: a size class names an object's size at the first frame (growing and shrinking change it
later); BACKGROUND_STOPS are the background colors the renderer draws (every background also has
faint world-anchored specks, stars at night); the contrast rule below is what the sampler obeys.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from enum import StrEnum
from functools import cache
from typing import Any

from kino.errors import InputError

# ----------------------------------------------------------------------------- vocabulary


class Background(StrEnum):
    BLACK = "black"
    WHITE = "white"
    GRAY = "gray"
    NAVY = "navy"
    SKY = "sky"  # vertical gradient, light blue
    GRASS = "grass"  # sky over a green ground below a horizon line
    NIGHT = "night"  # dark blue-black with small stars
    SUNSET = "sunset"  # warm vertical gradient


class Shape(StrEnum):
    CIRCLE = "circle"
    SQUARE = "square"
    TRIANGLE = "triangle"
    STAR = "star"
    DIAMOND = "diamond"


class Color(StrEnum):
    RED = "red"
    ORANGE = "orange"
    YELLOW = "yellow"
    GREEN = "green"
    CYAN = "cyan"
    BLUE = "blue"
    PURPLE = "purple"
    PINK = "pink"
    WHITE = "white"


class Size(StrEnum):
    SMALL = "small"
    MEDIUM = "medium"
    LARGE = "large"


class Motion(StrEnum):
    STILL = "still"
    LEFT = "left"  # moving left
    RIGHT = "right"
    UP = "up"
    DOWN = "down"
    BOUNCING = "bouncing"  # straight lines, reflecting off the frame's edges
    FALLING = "falling"  # falls under gravity and bounces on the ground
    CIRCLING = "circling"  # moves around a circle
    GROWING = "growing"
    SHRINKING = "shrinking"
    SPINNING = "spinning"  # rotates in place


class Camera(StrEnum):
    STATIC = "static"
    PAN_LEFT = "pan_left"  # the view moves left, so the scene slides right
    PAN_RIGHT = "pan_right"
    ZOOM_IN = "zoom_in"
    ZOOM_OUT = "zoom_out"


class EventKind(StrEnum):
    COLLIDE = "collide"  # two objects meet and the first changes color (cause and effect)
    LEAVE_RETURN = "leave_return"  # an object leaves the frame and comes back (object permanence)
    OCCLUDE = "occlude"  # an object passes behind another (depth order)
    DAY_TO_NIGHT = "day_to_night"  # the light fades from day to night


# RGB of each object color, far apart in hue/lightness so the analyzer separates them.
PALETTE: dict[Color, tuple[int, int, int]] = {
    Color.RED: (225, 35, 35),
    Color.ORANGE: (245, 135, 20),
    Color.YELLOW: (245, 225, 30),
    Color.GREEN: (40, 185, 55),
    Color.CYAN: (30, 215, 225),
    Color.BLUE: (40, 75, 235),
    Color.PURPLE: (150, 55, 210),
    Color.PINK: (250, 120, 195),
    Color.WHITE: (245, 245, 245),
}

# Half-extent of an object as a fraction of min(width, height).
SIZE_FRACTION: dict[Size, float] = {Size.SMALL: 0.08, Size.MEDIUM: 0.13, Size.LARGE: 0.19}

# Background looks: gradient stops (fraction of the canvas height from the top, RGB) in world
# coordinates. GRASS has a hard step at HORIZON (sky above, ground below). NIGHT is also where
# day_to_night ends. Every background also carries faint specks anchored in the world (bright
# stars on NIGHT) so that camera motion is visible even on a flat color; see kino/world/render.py.
HORIZON = 0.68  # GRASS: the ground line, as a fraction of the height from the top
BACKGROUND_STOPS: dict[Background, tuple[tuple[float, tuple[int, int, int]], ...]] = {
    Background.BLACK: ((0.0, (0, 0, 0)),),
    Background.WHITE: ((0.0, (255, 255, 255)),),
    Background.GRAY: ((0.0, (128, 128, 128)),),
    Background.NAVY: ((0.0, (18, 28, 92)),),
    Background.SKY: ((0.0, (70, 140, 225)), (1.0, (180, 215, 250))),
    Background.GRASS: (
        (0.0, (95, 160, 235)),
        (HORIZON, (175, 210, 245)),
        (HORIZON, (70, 150, 60)),
        (1.0, (40, 105, 35)),
    ),
    Background.NIGHT: ((0.0, (6, 8, 28)), (1.0, (22, 26, 60))),
    Background.SUNSET: ((0.0, (60, 40, 110)), (0.6, (200, 95, 95)), (1.0, (250, 170, 80))),
}

# The contrast rule: an object color is too close to a background when the CIE76 distance (Lab)
# between the color and any of the background's stop colors is below MIN_CONTRAST. The sampler
# never puts such a pair in a scene (for day_to_night scenes it checks the NIGHT look as well).
MIN_CONTRAST = 60.0

MIN_SIDE, MAX_SIDE, SIDE_STEP = 32, 512, 8
MAX_FRAMES = 100_000
MAX_OBJECTS = 3

# ----------------------------------------------------------------------------- specs


@dataclass(frozen=True)
class ObjectSpec:
    """One object. Position and speed are fractions of the canvas; None means "from the seed"."""

    shape: Shape
    color: Color
    size: Size = Size.MEDIUM
    motion: Motion = Motion.STILL
    x: float | None = None  # start centre, 0..1 of width
    y: float | None = None  # start centre, 0..1 of height
    speed: float | None = None  # canvas fractions per second (or turns per second when spinning)
    depth: int = 0  # larger is nearer the camera; drawn later

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", _enum(Shape, self.shape, "shape"))
        object.__setattr__(self, "color", _enum(Color, self.color, "color"))
        object.__setattr__(self, "size", _enum(Size, self.size, "size"))
        object.__setattr__(self, "motion", _enum(Motion, self.motion, "motion"))
        for name in ("x", "y"):
            v = getattr(self, name)
            if v is not None and not (0.0 <= v <= 1.0):
                raise InputError(f"object {name}={v} is outside the canvas; use a value in [0, 1]")


@dataclass(frozen=True)
class Event:
    """An event between objects, by index into `SceneSpec.objects`."""

    kind: EventKind
    subject: int = 0
    other: int | None = None  # collide / occlude: the second object
    color: Color | None = None  # collide: the subject's color after contact

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", _enum(EventKind, self.kind, "event"))
        if self.color is not None:
            object.__setattr__(self, "color", _enum(Color, self.color, "color"))


@dataclass(frozen=True)
class SceneSpec:
    """One clip of the world. Validated when built; `to_json`/`from_json` round-trip it."""

    objects: tuple[ObjectSpec, ...]
    background: Background = Background.BLACK
    camera: Camera = Camera.STATIC
    events: tuple[Event, ...] = ()
    width: int = 64
    height: int = 64
    fps: float = 8.0
    num_frames: int = 16

    def __post_init__(self) -> None:
        object.__setattr__(self, "objects", tuple(_obj(o) for o in self.objects))
        object.__setattr__(self, "events", tuple(_event(e) for e in self.events))
        object.__setattr__(self, "background", _enum(Background, self.background, "background"))
        object.__setattr__(self, "camera", _enum(Camera, self.camera, "camera"))
        check_size(self.width, self.height)
        if not (0 < float(self.fps) <= 240):
            raise InputError(f"fps {self.fps} is out of range; use a value in (0, 240]")
        if not (1 <= int(self.num_frames) <= MAX_FRAMES):
            raise InputError(f"num_frames {self.num_frames} is out of range; use 1 to {MAX_FRAMES}")
        if not (1 <= len(self.objects) <= MAX_OBJECTS):
            raise InputError(f"a scene holds 1 to {MAX_OBJECTS} objects, got {len(self.objects)}")
        for e in self.events:
            for i in (e.subject, e.other):
                if i is not None and not (0 <= i < len(self.objects)):
                    raise InputError(f"event {e.kind} names object {i}, but the scene has {len(self.objects)}")
            if e.kind in (EventKind.COLLIDE, EventKind.OCCLUDE) and (e.other is None or e.other == e.subject):
                raise InputError(f"event {e.kind} needs two different objects")

    @property
    def seconds(self) -> float:
        return self.num_frames / float(self.fps)

    def with_canvas(self, width: int, height: int, fps: float, num_frames: int) -> SceneSpec:
        return replace(self, width=width, height=height, fps=fps, num_frames=num_frames)

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SceneSpec:
        try:
            d = dict(d)
            d["objects"] = tuple(ObjectSpec(**o) for o in d["objects"])
            d["events"] = tuple(Event(**e) for e in d.get("events", ()))
            return cls(**d)
        except (TypeError, KeyError) as e:
            raise InputError(f"not a scene spec: {e}") from None

    @classmethod
    def from_json(cls, text: str) -> SceneSpec:
        try:
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as e:
            raise InputError(f"not a scene spec: invalid JSON ({e.msg})") from None


@dataclass(frozen=True)
class ObjectQuery:
    """What a prompt asks of one object; None means "not asked"."""

    shape: Shape | None = None
    color: Color | None = None
    size: Size | None = None
    motion: Motion | None = None


@dataclass(frozen=True)
class PromptSpec:
    """The partial spec a prompt asks for. Every field is optional."""

    objects: tuple[ObjectQuery, ...] = ()
    count: int | None = None  # number of objects, when the prompt says it
    background: Background | None = None
    camera: Camera | None = None
    events: tuple[EventKind, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return _plain(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PromptSpec:
        try:
            objs = tuple(
                ObjectQuery(**{k: (_ENUMS[k](v) if v is not None else None) for k, v in o.items()})
                for o in d.get("objects", ())
            )
            return cls(
                objects=objs,
                count=d.get("count"),
                background=Background(d["background"]) if d.get("background") else None,
                camera=Camera(d["camera"]) if d.get("camera") else None,
                events=tuple(EventKind(e) for e in d.get("events", ())),
            )
        except (TypeError, ValueError, KeyError) as e:
            raise InputError(f"not a prompt spec: {e}") from None

    @classmethod
    def of_scene(cls, spec: SceneSpec) -> PromptSpec:
        """Everything a full scene spec says, as a prompt spec."""
        return cls(
            objects=tuple(ObjectQuery(o.shape, o.color, o.size, o.motion) for o in spec.objects),
            count=len(spec.objects),
            background=spec.background,
            camera=spec.camera,
            events=tuple(e.kind for e in spec.events),
        )


# ----------------------------------------------------------------------------- helpers

_ENUMS = {"shape": Shape, "color": Color, "size": Size, "motion": Motion}


def check_size(width: int, height: int) -> None:
    """Raise InputError unless both sides are multiples of 8 in [32, 512]."""
    for name, v in (("width", width), ("height", height)):
        if not (MIN_SIDE <= int(v) <= MAX_SIDE) or int(v) % SIDE_STEP:
            raise InputError(
                f"{name} {v} is not valid for the world; use a multiple of {SIDE_STEP} "
                f"from {MIN_SIDE} to {MAX_SIDE}"
            )


def _lab(rgb: tuple[int, int, int]) -> tuple[float, float, float]:
    """sRGB (0-255) to CIE Lab (D65), for the contrast rule."""
    lin = [((c / 255 + 0.055) / 1.055) ** 2.4 if c / 255 > 0.04045 else c / 255 / 12.92 for c in rgb]
    r, g, b = lin
    xyz = (
        (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047,
        0.2126 * r + 0.7152 * g + 0.0722 * b,
        (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883,
    )
    f = [v ** (1 / 3) if v > 0.008856 else 7.787 * v + 16 / 116 for v in xyz]
    return 116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])


@cache
def contrast(color: Color, background: Background) -> float:
    """The smallest Lab distance between an object color and any stop color of a background."""
    a = _lab(PALETTE[Color(color)])
    return min(
        sum((p - q) ** 2 for p, q in zip(a, _lab(rgb), strict=True)) ** 0.5
        for _, rgb in BACKGROUND_STOPS[Background(background)]
    )


def is_low_contrast(color: Color, background: Background) -> bool:
    """True when `color` is too close to `background` to be read reliably (see MIN_CONTRAST)."""
    return contrast(color, background) < MIN_CONTRAST


def _enum(cls, value, what: str):
    try:
        return cls(value)
    except ValueError:
        valid = ", ".join(m.value for m in cls)
        raise InputError(f"unknown {what} {value!r}; valid: {valid}") from None


def _obj(o) -> ObjectSpec:
    return o if isinstance(o, ObjectSpec) else ObjectSpec(**o)


def _event(e) -> Event:
    return e if isinstance(e, Event) else Event(**e)


def _plain(x):
    if isinstance(x, StrEnum):
        return x.value
    if isinstance(x, dict):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_plain(v) for v in x]
    return x
