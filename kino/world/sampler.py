"""Random scene specs, with a compositional split: some combinations only ever appear in HELDOUT.

The held-out combinations (docs/world.md lists them for users):
- color with shape: green star, pink square, blue triangle, yellow diamond, orange circle;
- shape with motion: circling square, falling star, spinning diamond.
A TRAIN spec has none of these pairs on any object (nor after a collision recolors an object);
every HELDOUT spec has at least one, on an object that no scripted event moves, so the pair is
really drawn. So a model trained on TRAIN meets each held-out pair's parts, never the pair.

Other rules, in both splits: no spinning circle (a turning circle looks still); no object whose
color is too close to the background (`spec.is_low_contrast`; for day_to_night also the night
look); events only when the scene has the objects they need; the crowding rule (ROOM below): the
objects fit the room the camera leaves, else the largest are made smaller. Together with the
renderer's layout rule (kino.world.motion: objects' paths overlap in at most LAYOUT_OVERLAP of
the frames unless an event brings them together) this keeps every object of a scene visible for
most of the clip, so that what the captions say of it is true.
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
    is_low_contrast,
)


class Split(StrEnum):
    TRAIN = "train"
    HELDOUT = "heldout"


HELDOUT_COLOR_SHAPE: frozenset[tuple[Color, Shape]] = frozenset({
    (Color.GREEN, Shape.STAR),
    (Color.PINK, Shape.SQUARE),
    (Color.BLUE, Shape.TRIANGLE),
    (Color.YELLOW, Shape.DIAMOND),
    (Color.ORANGE, Shape.CIRCLE),
})  # fmt: skip
HELDOUT_SHAPE_MOTION: frozenset[tuple[Shape, Motion]] = frozenset({
    (Shape.SQUARE, Motion.CIRCLING),
    (Shape.STAR, Motion.FALLING),
    (Shape.DIAMOND, Motion.SPINNING),
})  # fmt: skip
NEVER_SHAPE_MOTION: frozenset[tuple[Shape, Motion]] = frozenset({(Shape.CIRCLE, Motion.SPINNING)})

# How often things happen (weights need not sum to 1 where they are relative).
OBJECT_COUNT_WEIGHTS = {1: 0.5, 2: 0.3, 3: 0.2}
STATIC_CAMERA = 0.6  # the rest is shared evenly by the four camera moves
OBJECT_EVENT = 0.25  # chance of one of collide / leave_return / occlude, when the scene allows it
DAY_TO_NIGHT = 0.1  # chance of day_to_night, on a DAY_BACKGROUNDS scene
DAY_BACKGROUNDS = (Background.WHITE, Background.GRAY, Background.SKY, Background.GRASS, Background.SUNSET)
HORIZONTAL = (Motion.LEFT, Motion.RIGHT)
# The crowding rule: a small object takes 1 unit of room, medium 2, large 3, one more when it
# grows; a scene's objects fit in ROOM[camera] units (a pan or a zoom in leaves less of the canvas
# where objects stay in view), else the largest are made a size smaller until they do (or all are small).
ROOM_OF_SIZE = {Size.SMALL: 1, Size.MEDIUM: 2, Size.LARGE: 3}
ROOM = {Camera.STATIC: 6, Camera.ZOOM_OUT: 6, Camera.PAN_LEFT: 5, Camera.PAN_RIGHT: 5, Camera.ZOOM_IN: 4}


def heldout_pairs(obj: ObjectSpec) -> list[tuple]:
    """The held-out pairs one object shows: (color, shape) and/or (shape, motion)."""
    out: list[tuple] = []
    if (obj.color, obj.shape) in HELDOUT_COLOR_SHAPE:
        out.append((obj.color, obj.shape))
    if (obj.shape, obj.motion) in HELDOUT_SHAPE_MOTION:
        out.append((obj.shape, obj.motion))
    return out


def is_heldout(spec: SceneSpec) -> bool:
    """True when any object shows a held-out pair, counting the color a collision gives it."""
    if any(heldout_pairs(o) for o in spec.objects):
        return True
    for e in spec.events:
        if e.kind == EventKind.COLLIDE:
            subject = spec.objects[e.subject]
            if (collide_color(subject.color, e.color), subject.shape) in HELDOUT_COLOR_SHAPE:
                return True
    return False


def sample_spec(
    rng: np.random.Generator,
    split: Split = Split.TRAIN,
    width: int = 64,
    height: int = 64,
    fps: float = 8.0,
    num_frames: int = 16,
    max_objects: int = 3,
) -> SceneSpec:
    """A random scene of `split` on the given canvas; positions and speeds are left to the render seed."""
    split = Split(split)
    max_objects = max(1, min(int(max_objects), 3))
    carrier_pair = None
    if split == Split.HELDOUT:  # one object will carry a held-out pair chosen first
        pairs = sorted(HELDOUT_COLOR_SHAPE | HELDOUT_SHAPE_MOTION, key=str)
        carrier_pair = pairs[int(rng.integers(len(pairs)))]
    backgrounds = list(Background)
    if carrier_pair is not None and isinstance(carrier_pair[0], Color):
        backgrounds = [b for b in backgrounds if not is_low_contrast(carrier_pair[0], b)]
    background = backgrounds[int(rng.integers(len(backgrounds)))]
    counts = [n for n in OBJECT_COUNT_WEIGHTS if n <= max_objects]
    w = np.array([OBJECT_COUNT_WEIGHTS[n] for n in counts])
    n = int(rng.choice(counts, p=w / w.sum()))
    cameras = [c for c in Camera if c != Camera.STATIC]
    camera = Camera.STATIC if rng.random() < STATIC_CAMERA else cameras[int(rng.integers(len(cameras)))]
    night = background in DAY_BACKGROUNDS and rng.random() < DAY_TO_NIGHT
    looks = (background, Background.NIGHT) if night else (background,)
    colors = [c for c in Color if not any(is_low_contrast(c, b) for b in looks)]

    # an object event, and the roles it gives (index -> required motion choices)
    kinds = [EventKind.LEAVE_RETURN] + ([EventKind.COLLIDE, EventKind.OCCLUDE] if n >= 2 else [])
    free = list(range(1, n)) if carrier_pair is not None else list(range(n))  # object 0 carries
    kind = kinds[int(rng.integers(len(kinds)))] if rng.random() < OBJECT_EVENT else None
    need = 1 if kind == EventKind.LEAVE_RETURN else 2
    if kind is not None and len(free) < need:
        kind = None
    roles: dict[int, tuple[Motion, ...]] = {}
    event = None
    if kind is not None:
        picked = [free[i] for i in rng.permutation(len(free))[:need]]
        subject = picked[0]
        if kind == EventKind.LEAVE_RETURN:
            roles[subject] = (Motion.LEFT, Motion.RIGHT, Motion.UP, Motion.DOWN)
            event = Event(kind, subject)
        else:
            other = picked[1]
            roles[subject] = HORIZONTAL
            roles[other] = (Motion.STILL,)  # collide: filled in below once the subject's direction is known
            event = Event(kind, subject, other)

    # Objects of one scene get different colors: two same-colored objects that overlap read as
    # one blob to the analyzer (and to a viewer), and "the red ball" stays unambiguous.
    objects: list[ObjectSpec] = []
    used: set[Color] = (
        {carrier_pair[0]} if carrier_pair is not None and isinstance(carrier_pair[0], Color) else set()
    )
    for k in range(n):
        fixed: dict = {}
        if k == 0 and carrier_pair is not None:
            a, b = carrier_pair
            fixed = {"color": a, "shape": b} if isinstance(a, Color) else {"shape": a, "motion": b}
        avail = [c for c in colors if c not in used] or colors  # a dark-and-light scene may run short
        objects.append(_sample_object(rng, split, avail, roles.get(k), fixed))
        used.add(objects[-1].color)
    _make_room(objects, camera)
    if event is not None and event.kind == EventKind.COLLIDE:
        s, o = event.subject, event.other
        toward = Motion.LEFT if objects[s].motion == Motion.RIGHT else Motion.RIGHT
        other_motion = (Motion.STILL, toward)[int(rng.integers(2))]
        objects[o] = ObjectSpec(objects[o].shape, objects[o].color, objects[o].size, other_motion)
        # the color after contact: new to the scene if one is left, else any but the subject's own;
        # never a held-out (color, shape) pair in the training split
        allowed = [c for c in colors if c != objects[s].color]
        if split == Split.TRAIN:
            allowed = [c for c in allowed if (c, objects[s].shape) not in HELDOUT_COLOR_SHAPE]
        after = [c for c in allowed if c not in {obj.color for obj in objects}] or allowed
        event = Event(EventKind.COLLIDE, s, o, after[int(rng.integers(len(after)))])
    if event is not None and event.kind == EventKind.OCCLUDE:
        s, o = event.subject, event.other
        # the other stands in front: make it at least as big as the subject so it hides it
        big = max(objects[s].size, objects[o].size, key=list(Size).index)
        objects[o] = ObjectSpec(objects[o].shape, objects[o].color, big, Motion.STILL, depth=1)
        objects[s] = ObjectSpec(
            objects[s].shape, objects[s].color, objects[s].size, objects[s].motion, depth=0
        )
    events = tuple(e for e in (event, Event(EventKind.DAY_TO_NIGHT) if night else None) if e is not None)
    return SceneSpec(
        objects=tuple(objects), background=background, camera=camera, events=events,
        width=width, height=height, fps=fps, num_frames=num_frames,
    )  # fmt: skip


def follows_rules(spec: SceneSpec) -> bool:
    """True when `spec` keeps the rules every sampled scene keeps (both splits; the module docstring).

    The rules: no spinning circle; objects of different colors, none of them low-contrast with the
    background (nor with the night look under day_to_night, which needs a day background); the
    crowding rule; at most one object event, on objects whose motions it fits (leave_return: a
    straight move; collide: a horizontal subject meeting a still object or one coming toward it,
    and a new color; occlude: a horizontal subject passing behind a still object at least its size).
    `kino.enhance.complete_spec` keeps to them when it fills what a prompt leaves open.
    """
    objs = spec.objects
    if any((o.shape, o.motion) in NEVER_SHAPE_MOTION for o in objs):
        return False
    if len({o.color for o in objs}) < len(objs):
        return False
    kinds = [e.kind for e in spec.events]
    looks = [spec.background]
    if EventKind.DAY_TO_NIGHT in kinds:
        if spec.background not in DAY_BACKGROUNDS:
            return False
        looks.append(Background.NIGHT)
    if any(is_low_contrast(o.color, b) for o in objs for b in looks):
        return False
    crowded = room_needed(objs) > ROOM[spec.camera] and any(o.size != Size.SMALL for o in objs)
    if crowded and EventKind.OCCLUDE not in kinds:  # an occluder is sized up after the crowding rule
        return False
    object_events = [e for e in spec.events if e.kind != EventKind.DAY_TO_NIGHT]
    if len(object_events) > 1:
        return False
    for e in object_events:
        s = objs[e.subject]
        if e.kind == EventKind.LEAVE_RETURN:
            if s.motion not in (Motion.LEFT, Motion.RIGHT, Motion.UP, Motion.DOWN):
                return False
            continue
        o = objs[e.other]
        if s.motion not in HORIZONTAL:
            return False
        if e.kind == EventKind.COLLIDE:
            toward = Motion.LEFT if s.motion == Motion.RIGHT else Motion.RIGHT
            if o.motion not in (Motion.STILL, toward) or collide_color(s.color, e.color) == s.color:
                return False
        elif e.kind == EventKind.OCCLUDE:
            sizes = list(Size)
            if o.motion != Motion.STILL or o.depth <= s.depth or sizes.index(o.size) < sizes.index(s.size):
                return False
    return True


def room_needed(objects: list[ObjectSpec] | tuple[ObjectSpec, ...]) -> int:
    """How much of the canvas a scene's objects take, in ROOM units (see ROOM)."""
    return sum(ROOM_OF_SIZE[o.size] + (o.motion == Motion.GROWING) for o in objects)


def _make_room(objects: list[ObjectSpec], camera: Camera) -> None:
    """The crowding rule: shrink the largest objects a size class at a time until they fit ROOM[camera]."""
    while room_needed(objects) > ROOM[camera]:
        sizes = list(Size)
        k = max(range(len(objects)), key=lambda i: (ROOM_OF_SIZE[objects[i].size], i))
        o = objects[k]
        if o.size == Size.SMALL:
            return
        objects[k] = ObjectSpec(o.shape, o.color, sizes[sizes.index(o.size) - 1], o.motion)


def _sample_object(
    rng: np.random.Generator,
    split: Split,
    colors: list[Color],
    motions: tuple[Motion, ...] | None,
    fixed: dict,
) -> ObjectSpec:
    """One object with allowed attributes; in TRAIN never a held-out pair, never a spinning circle."""
    shapes, sizes, all_motions = list(Shape), list(Size), list(motions or Motion)
    for _ in range(1000):
        shape = fixed.get("shape") or shapes[int(rng.integers(len(shapes)))]
        color = fixed.get("color") or colors[int(rng.integers(len(colors)))]
        motion = fixed.get("motion") or all_motions[int(rng.integers(len(all_motions)))]
        size = sizes[int(rng.integers(len(sizes)))]
        obj = ObjectSpec(shape, color, size, motion)
        if (shape, motion) in NEVER_SHAPE_MOTION:
            continue
        if split == Split.TRAIN and heldout_pairs(obj):
            continue
        return obj
    raise AssertionError("no allowed object for these constraints")  # unreachable with the tables above
