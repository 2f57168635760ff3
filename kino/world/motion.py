"""Where everything in a world clip is at any time: the plan of a scene, and its per-frame state.

`plan_scene(spec, seed)` turns a SceneSpec and a seed into a few numbers per object (start
position, speed, direction, the keyframes of an event's path); whatever the spec leaves as None
comes from the seed. `states(plan, t)` then evaluates every object at times t in world pixels
and maps it through the camera: a pan around a horizontal cylinder, then a zoom about the centre.
kino.world.render draws what this says; docs/world.md describes the same rules for users.

Letters: K objects, t frames in a chunk, N specks. Coordinates are pixels, x right and y down.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from kino.world.spec import (
    HORIZON,
    PALETTE,
    SIZE_FRACTION,
    Background,
    Camera,
    Color,
    EventKind,
    Motion,
    SceneSpec,
    Shape,
)

# ----------------------------------------------------------------------------- constants of the world

RAMP_SECONDS = 4.0  # growing, shrinking, zoom and scripted events play out over min(clip, this)
GROW_FACTOR = 1.6  # growing: scale x1.6 over the ramp, then hold
SHRINK_FACTOR = 0.6
ZOOM_FACTOR = 1.5  # zoom in: the view magnifies x1.5 over the ramp (zoom out: x1/1.5)
PAN_SPEED = 0.2  # canvas widths per second
PAN_SECONDS = 2.5  # objects start where a pan keeps them on screen for this long
LINEAR_SPEED = (0.2, 0.35)  # left/right/up/down, canvas fractions per second (drawn from the seed)
MIN_SPEED = 0.15  # ... slowed down to no less than this where the clip is too long to cross the frame
BOUNCE_SPEED = (0.3, 0.45)  # bouncing, fractions of min(W, H) per second
CIRCLE_TURNS = (0.35, 0.5)  # circling, turns per second
CIRCLE_RADIUS = 0.22  # circling path radius, fraction of min(W, H)
SPIN_TURNS = (0.15, 0.3)  # spinning, turns per second
FALL_SECONDS = 0.9  # falling: release to ground; an elastic bounce brings it back up (period 2x)
EVENT_SPEED = (0.2, 0.3)  # collide / occlude, canvas widths per second
SPECK_CELL = 0.2  # one speck per cell of this fraction of min(W, H), kept with SPECK_KEEP
SPECK_KEEP = 0.5
# The layout rule (see _keep_apart): two objects' paths overlap in at most this share of the
# clip's frames, unless an event brings them together; LAYOUT_TRIES redraws of a start to get
# there, judged on LAYOUT_SAMPLES frames spread over the clip.
LAYOUT_OVERLAP = 0.1
LAYOUT_TRIES = 24
LAYOUT_SAMPLES = 48

# Half-width of the upright shape (for contact and margins) and circumradius, in units of the
# half-extent r = SIZE_FRACTION[size] * min(W, H).
HALF_WIDTH = {
    Shape.CIRCLE: 1.0,
    Shape.SQUARE: 1.0,
    Shape.TRIANGLE: 1.0,
    Shape.STAR: 0.95,
    Shape.DIAMOND: 0.65,
}
CIRCUM = {Shape.CIRCLE: 1.0, Shape.SQUARE: 1.42, Shape.TRIANGLE: 1.42, Shape.STAR: 1.0, Shape.DIAMOND: 1.0}
BOTTOM = {Shape.CIRCLE: 1.0, Shape.SQUARE: 1.0, Shape.TRIANGLE: 1.0, Shape.STAR: 0.81, Shape.DIAMOND: 1.0}


@dataclass
class ObjectPlan:
    """One object's plan: everything needed to evaluate it at any time."""

    shape: Shape
    rgb: tuple[int, int, int]
    r: float  # half-extent in world pixels at scale 1
    mode: str  # keys | linear | bounce | fall | circle
    p: dict  # mode parameters
    grow: float = 1.0  # scale factor reached at the end of the ramp
    turns: float = 0.0  # spin, turns per second (signed)
    change_t: float | None = None  # collide: time of contact, when the color changes
    change_rgb: tuple[int, int, int] | None = None


@dataclass
class Plan:
    """A scene's plan: its objects' plans, the drawing order, timing, the camera cylinder, the specks."""

    spec: SceneSpec
    objs: list[ObjectPlan]
    order: tuple[int, ...]
    ramp: float  # seconds
    last: float  # time of the last frame, seconds
    pad: float  # the camera cylinder extends the canvas by pad on each side
    specks: np.ndarray  # (N, 2) world positions
    speck_r: float


# ----------------------------------------------------------------------------- planning


def plan_scene(spec: SceneSpec, seed: int) -> Plan:
    """The plan of `spec` under `seed`: deterministic, and cheap (a few numbers per object)."""
    W, H, m = spec.width, spec.height, min(spec.width, spec.height)
    last = (spec.num_frames - 1) / float(spec.fps)
    ramp = min(last, RAMP_SECONDS) if last > 0 else 1.0
    objs: list[ObjectPlan] = []
    placed: list[tuple[float, float, float]] = []  # (x, y, radius) of start positions so far
    for k, o in enumerate(spec.objects):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1, k])
        obj = _plan_motion(o, rng, spec, last, placed)
        placed.append((obj.p.get("x0", obj.p.get("x", W / 2)), obj.p.get("y0", obj.p.get("y", H / 2)), obj.r))
        objs.append(obj)
    order = sorted(range(len(objs)), key=lambda k: (spec.objects[k].depth, k))
    for k, e in enumerate(spec.events):
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 2, k])
        if e.kind == EventKind.COLLIDE:
            _plan_collide(spec, objs, e, rng, ramp)
        elif e.kind == EventKind.LEAVE_RETURN:
            _plan_leave(spec, objs, e, rng, ramp)
        elif e.kind == EventKind.OCCLUDE:
            _plan_occlude(spec, objs, e, rng, ramp)
            # the event wins over the depth fields: the subject is drawn just behind the other
            order.remove(e.subject)
            order.insert(order.index(e.other), e.subject)
    pad = 0.25 * W + 0.5 * m  # wide enough that a zoomed-out view never shows an object twice
    rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 3])
    specks = _speck_layout(rng, W, H, m, pad)
    plan = Plan(spec, objs, tuple(order), ramp, last, pad, specks, max(0.7, 0.01 * m))
    _keep_apart(plan, seed, placed)
    return plan


def _keep_apart(plan: Plan, seed: int, placed: list) -> None:
    """The layout rule: objects' paths overlap in at most LAYOUT_OVERLAP of the clip's frames.

    A real scene generator does this so that what the captions say stays true: an object hidden
    behind another for most of the clip is not "visible", and a viewer (or the analyzer) cannot
    read its shape or motion. Two objects "overlap" in a frame when both are on screen and their
    centres are closer than the sum of their half-widths (one covers a good part of the other).
    Only the objects whose path the seed picks are moved: when the layout breaks the rule, up to
    LAYOUT_TRIES fresh draws of all of them (start, direction, speed) are tried together, and the
    first within the limit, else the least overlapping, is kept. Pairs that an event brings
    together on purpose (collide, occlude) are exempt; objects placed by the spec (x or y given)
    or moved by an event stay where they are, and the others keep away from them.
    """
    spec = plan.spec
    K = len(spec.objects)
    if K < 2:
        return
    scripted: set[int] = set()
    exempt: set[frozenset[int]] = set()
    for e in spec.events:
        if e.kind in (EventKind.COLLIDE, EventKind.OCCLUDE):
            scripted |= {e.subject, e.other}
            exempt.add(frozenset((e.subject, e.other)))
        elif e.kind == EventKind.LEAVE_RETURN:
            scripted.add(e.subject)
    free = [k for k, o in enumerate(spec.objects) if k not in scripted and o.x is None and o.y is None]
    pairs = [
        (i, j) for i in range(K) for j in range(i + 1, K)
        if frozenset((i, j)) not in exempt and (i in free or j in free)
    ]  # fmt: skip
    if not pairs:
        return
    n = min(spec.num_frames, LAYOUT_SAMPLES)
    t = np.linspace(0.0, plan.last, n) if n > 1 else np.zeros(1)  # (t,) seconds
    half = np.array([HALF_WIDTH[o.shape] for o in plan.objs])  # (K,)
    circum = np.array([CIRCUM[o.shape] for o in plan.objs])  # (K,)
    W, H = spec.width, spec.height

    def overlap() -> float:
        s = states(plan, t)
        x, y, scale = s["x"], s["y"], s["scale"]  # (t, K)
        ext = scale * circum
        on = (x + ext > 0) & (x - ext < W) & (y + ext > 0) & (y - ext < H)  # (t, K) on screen
        worst = 0.0
        for i, j in pairs:
            near = (
                np.hypot(x[:, i] - x[:, j], y[:, i] - y[:, j]) < scale[:, i] * half[i] + scale[:, j] * half[j]
            )
            worst = max(worst, float((on[:, i] & on[:, j] & near).mean()))
        return worst

    best, best_objs = overlap(), list(plan.objs)
    for attempt in range(1, LAYOUT_TRIES + 1):
        if best <= LAYOUT_OVERLAP:
            break
        starts = [p for i, p in enumerate(placed) if i not in free]
        for k in free:  # the same draws as plan_scene, from a fresh stream per attempt
            rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, 1, k, attempt])
            plan.objs[k] = _plan_motion(spec.objects[k], rng, spec, plan.last, starts)
            p = plan.objs[k].p
            starts.append((p.get("x0", p.get("x", W / 2)), p.get("y0", p.get("y", H / 2)), plan.objs[k].r))
        f = overlap()
        if f < best:
            best, best_objs = f, list(plan.objs)
    plan.objs[:] = best_objs


def _plan_motion(o, rng: np.random.Generator, spec: SceneSpec, last: float, placed: list) -> ObjectPlan:
    """An object's own motion, with what the spec leaves open drawn from `rng`."""
    W, H, m = spec.width, spec.height, min(spec.width, spec.height)
    r = SIZE_FRACTION[o.size] * m
    grow = {Motion.GROWING: GROW_FACTOR, Motion.SHRINKING: SHRINK_FACTOR}.get(o.motion, 1.0)
    rmax = r * max(1.0, grow)
    spin = o.motion == Motion.SPINNING
    mx = rmax * (CIRCUM[o.shape] if spin else HALF_WIDTH[o.shape]) + 1.0
    my = rmax * (CIRCUM[o.shape] if spin else 1.0) + 1.0
    obj = ObjectPlan(o.shape, PALETTE[o.color], r, "keys", {}, grow=grow)

    def pick(lo: float, hi: float, given: float | None, size: float) -> float:
        if given is not None:
            return given * size
        return float(rng.uniform(lo, hi)) if hi > lo else (lo + hi) / 2

    x_lo, x_hi, y_lo, y_hi = _safe_box(spec, last, mx, my)
    x = pick(x_lo, x_hi, o.x, W)
    y = pick(y_lo, y_hi, o.y, H)
    if (
        o.x is None
        and o.y is None
        and o.motion in (Motion.STILL, Motion.SPINNING, Motion.GROWING, Motion.SHRINKING)
    ):
        for _ in range(20):  # keep still things apart at the start, so that each can be read
            if all(math.hypot(x - px, y - py) > 1.1 * (rmax + pr) for px, py, pr in placed):
                break
            x, y = pick(x_lo, x_hi, None, W), pick(y_lo, y_hi, None, H)
    if o.motion in (Motion.LEFT, Motion.RIGHT, Motion.UP, Motion.DOWN):
        horiz = o.motion in (Motion.LEFT, Motion.RIGHT)
        sign = -1.0 if o.motion in (Motion.LEFT, Motion.UP) else 1.0
        side, margin = (W, mx) if horiz else (H, my)
        frac = o.speed if o.speed is not None else float(rng.uniform(*LINEAR_SPEED))
        span = side - 2 * margin
        pv = _pan_velocity(spec) if horiz else 0.0  # a pan adds to the motion on screen
        if o.speed is None and last > 0:  # slow down (not below MIN_SPEED) to cross the frame at most once
            fit = (0.95 * span / last - max(0.0, sign * pv)) / side
            frac = max(min(frac, fit), min(frac, MIN_SPEED))
        v = sign * frac * side
        screen_v = v + pv
        travel = abs(screen_v) * last
        given = o.x if horiz else o.y
        if given is None and travel <= span:  # start so that the whole path stays inside
            lo, hi = (margin + travel, side - margin) if screen_v < 0 else (margin, side - margin - travel)
            start = float(rng.uniform(lo, hi)) if hi > lo else lo
            x, y = (start, y) if horiz else (x, start)
        obj.mode = "linear"
        # positions wrap around the canvas (leave at one edge, enter at the other) for long clips
        obj.p = {"x0": x, "y0": y, "vx": v if horiz else 0.0, "vy": 0.0 if horiz else v,
                 "wx": W + 2 * mx, "wy": H + 2 * my, "mx": mx, "my": my}  # fmt: skip
    elif o.motion == Motion.BOUNCING:
        v = (o.speed if o.speed is not None else float(rng.uniform(*BOUNCE_SPEED))) * m
        theta = float(rng.uniform(math.radians(25), math.radians(65))) + math.pi / 2 * int(rng.integers(4))
        vx, vy = v * math.cos(theta), v * math.sin(theta)
        lo_x, hi_x, lo_y, hi_y = mx, W - mx, my, H - my
        if o.x is None and o.y is None:  # make sure it meets a wall within the first half of the clip
            dx = (hi_x - x) / vx if vx > 0 else (x - lo_x) / -vx
            dy = (hi_y - y) / vy if vy > 0 else (y - lo_y) / -vy
            if min(dx, dy) > 0.5 * last:
                x = hi_x - 0.3 * vx * last if vx > 0 else lo_x - 0.3 * vx * last
                x = float(np.clip(x, lo_x, hi_x))
        obj.mode = "bounce"
        obj.p = {"x0": x, "y0": y, "vx": vx, "vy": vy, "lo_x": lo_x, "hi_x": max(hi_x, lo_x + 1e-3),
                 "lo_y": lo_y, "hi_y": max(hi_y, lo_y + 1e-3)}  # fmt: skip
    elif o.motion == Motion.FALLING:
        ground = HORIZON * H if spec.background == Background.GRASS else H  # bounces on the ground
        yg = ground - r * BOTTOM[o.shape]
        y0 = o.y * H if o.y is not None else float(rng.uniform(my, my + 0.1 * H))
        y0 = min(y0, yg - 1.0)
        g = 2.0 * (yg - y0) / FALL_SECONDS**2
        obj.mode = "fall"
        obj.p = {"x": x, "y0": y0, "g": g, "tf": FALL_SECONDS}
    elif o.motion == Motion.CIRCLING:
        rho = min(CIRCLE_RADIUS * m, max(0.1 * m, min(W - 2 * mx, H - 2 * my) / 2 - 1))
        c_lo, c_hi, cy_lo, cy_hi = _safe_box(spec, last, mx + rho, my + rho)
        cx, cy = pick(c_lo, c_hi, o.x, W), pick(cy_lo, cy_hi, o.y, H)
        turns = (
            o.speed * m / (2 * math.pi * rho) if o.speed is not None else float(rng.uniform(*CIRCLE_TURNS))
        )
        turns *= 1.0 if rng.random() < 0.5 else -1.0
        obj.mode = "circle"
        obj.p = {
            "cx": cx,
            "cy": cy,
            "rho": rho,
            "w": 2 * math.pi * turns,
            "phase": float(rng.uniform(0, 2 * math.pi)),
        }
    else:
        obj.p = {"t": [0.0], "x": [x], "y": [y]}
    if spin:
        turns = o.speed if o.speed is not None else float(rng.uniform(*SPIN_TURNS))
        obj.turns = turns if rng.random() < 0.5 else -turns
    if obj.mode == "keys" and "x0" not in obj.p:
        obj.p.update({"x0": x, "y0": y})
    return obj


def _pan_velocity(spec: SceneSpec) -> float:
    """How fast the scene slides right on screen, pixels per second (negative: left)."""
    sign = {Camera.PAN_LEFT: 1.0, Camera.PAN_RIGHT: -1.0}.get(spec.camera, 0.0)
    return sign * PAN_SPEED * spec.width


def _safe_box(spec: SceneSpec, last: float, mx: float, my: float) -> tuple[float, float, float, float]:
    """Start positions (x_lo, x_hi, y_lo, y_hi) from which a resting object stays on screen.

    A pan slides the scene: start upstream by the slide over the first PAN_SECONDS. A zoom in
    magnifies about the centre: start close enough to it.
    """
    W, H = spec.width, spec.height
    x_lo, x_hi, y_lo, y_hi = mx, W - mx, my, H - my
    slide = _pan_velocity(spec) * min(last, PAN_SECONDS)
    x_lo, x_hi = (x_lo, x_hi - slide) if slide > 0 else (x_lo - slide, x_hi)
    if spec.camera == Camera.ZOOM_IN:
        hx, hy = max(0.0, W / 2 / ZOOM_FACTOR - mx), max(0.0, H / 2 / ZOOM_FACTOR - my)
        x_lo, x_hi = max(x_lo, W / 2 - hx), min(x_hi, W / 2 + hx)
        y_lo, y_hi = max(y_lo, H / 2 - hy), min(y_hi, H / 2 + hy)
    if x_hi < x_lo:
        x_lo = x_hi = (x_lo + x_hi) / 2
    if y_hi < y_lo:
        y_lo = y_hi = (y_lo + y_hi) / 2
    return x_lo, x_hi, y_lo, y_hi


def _plan_collide(spec: SceneSpec, objs: list[ObjectPlan], e, rng: np.random.Generator, ramp: float) -> None:
    """Subject and other meet side by side on one row; at contact the subject takes e.color and both stop."""
    W, H = spec.width, spec.height
    s, o = objs[e.subject], objs[e.other]
    ds = -1.0 if spec.objects[e.subject].motion == Motion.LEFT else 1.0  # the subject's direction
    other_moves = spec.objects[e.other].motion != Motion.STILL
    hs, ho = s.r * HALF_WIDTH[s.shape], o.r * HALF_WIDTH[o.shape]
    my = max(s.r, o.r) + 1.0
    y = float(rng.uniform(my, H - my)) if H > 2 * my else H / 2
    tc = 0.55 * ramp
    mid = W / 2 + float(rng.uniform(-0.08, 0.08)) * W  # the point of contact
    xs, xo = mid - ds * hs, mid + ds * ho  # centres at contact
    room_s = (xs - hs - 1) if ds > 0 else (W - hs - 1 - xs)
    room_o = (W - ho - 1 - xo) if ds > 0 else (xo - ho - 1)
    v = float(rng.uniform(*EVENT_SPEED)) * W
    v = max(0.0, min(v, room_s / tc, room_o / tc if other_moves else math.inf))
    s.mode, s.grow, s.turns = "keys", 1.0, 0.0
    s.p = {"t": [0.0, tc], "x": [xs - ds * v * tc, xs], "y": [y, y]}
    o.mode, o.grow, o.turns = "keys", 1.0, 0.0
    o.p = {"t": [0.0, tc], "x": [xo + ds * v * tc if other_moves else xo, xo], "y": [y, y]}
    s.change_t, s.change_rgb = tc, PALETTE[collide_color(spec.objects[e.subject].color, e.color)]


def collide_color(before: Color, after: Color | None) -> Color:
    """The subject's color after a collision: `after`, or when None the next color of Color after `before`."""
    if after is not None:
        return Color(after)
    colors = list(Color)
    return colors[(colors.index(Color(before)) + 1) % len(colors)]


def _plan_leave(spec: SceneSpec, objs: list[ObjectPlan], e, rng: np.random.Generator, ramp: float) -> None:
    """The subject leaves through the edge its motion points at, stays out a while, then comes back."""
    W, H = spec.width, spec.height
    s = objs[e.subject]
    motion = spec.objects[e.subject].motion
    if motion not in (Motion.LEFT, Motion.RIGHT, Motion.UP, Motion.DOWN):
        motion = Motion.LEFT
    horiz = motion in (Motion.LEFT, Motion.RIGHT)
    side, other_side = (W, H) if horiz else (H, W)
    half = s.r * (HALF_WIDTH[s.shape] if horiz else 1.0) + 1.0
    gone = s.r * CIRCUM[s.shape] + 2.0  # fully outside
    to_low = motion in (Motion.LEFT, Motion.UP)
    inside = half + 0.12 * side if to_low else side - half - 0.12 * side
    out = -gone if to_low else side + gone
    m2 = s.r + 1.0
    across = float(rng.uniform(m2, other_side - m2)) if other_side > 2 * m2 else other_side / 2
    times = np.array([0.0, 0.35 * ramp, 0.6 * ramp, 0.95 * ramp])
    path = np.array([inside, out, out, inside])
    # the path is planned on screen: a pan would otherwise drag the subject away so that it comes
    # back only as a sliver at the edge, or not at all (the scene slides by pan velocity x t)
    slide = _pan_velocity(spec) * times
    xs = path - slide if horiz else across - slide
    ys = np.full(4, across) if horiz else path
    s.mode, s.grow, s.turns = "keys", 1.0, 0.0
    s.p = {"t": times.tolist(), "x": xs.tolist(), "y": ys.tolist()}


def _plan_occlude(spec: SceneSpec, objs: list[ObjectPlan], e, rng: np.random.Generator, ramp: float) -> None:
    """The other stands near the middle; the subject crosses behind it from one side to the other."""
    W, H = spec.width, spec.height
    s, o = objs[e.subject], objs[e.other]
    ds = -1.0 if spec.objects[e.subject].motion == Motion.LEFT else 1.0
    hs, ho = s.r * HALF_WIDTH[s.shape] + 1, o.r * HALF_WIDTH[o.shape] + 1
    xo = float(rng.uniform(0.42, 0.58)) * W
    myo = o.r + 1.0
    yo = float(rng.uniform(myo, H - myo)) if H > 2 * myo else H / 2
    ys = float(np.clip(yo + rng.uniform(-0.15, 0.15) * o.r, s.r + 1, max(s.r + 1, H - s.r - 1)))
    d = max(hs + ho + 2.0, 0.35 * W)  # start and end clear of the other
    d = min(d, xo - hs, W - hs - xo)
    o.mode, o.grow, o.turns = "keys", 1.0, 0.0
    o.p = {"t": [0.0], "x": [xo], "y": [yo]}
    s.mode, s.grow, s.turns = "keys", 1.0, 0.0
    s.p = {"t": [0.0, ramp], "x": [xo - ds * d, xo + ds * d], "y": [ys, ys]}


def _speck_layout(rng: np.random.Generator, W: int, H: int, m: int, pad: float) -> np.ndarray:
    """World positions (N, 2) of the background specks: one per cell of a jittered grid, some dropped.

    The grid covers the camera's whole cylinder (circumference W + 2 pad, so pans wrap seamlessly)
    and the height a zoomed-out view can show.
    """
    L = W + 2 * pad
    nx = max(1, round(L / (SPECK_CELL * m)))
    top, bottom = -0.3 * H, 1.3 * H
    ny = max(1, math.ceil((bottom - top) / (SPECK_CELL * m)))
    cw, ch = L / nx, (bottom - top) / ny
    gx, gy = np.meshgrid(np.arange(nx), np.arange(ny), indexing="xy")  # (ny, nx)
    x = -pad + (gx + rng.uniform(0.2, 0.8, gx.shape)) * cw
    y = top + (gy + rng.uniform(0.2, 0.8, gy.shape)) * ch
    keep = rng.random(gx.shape) < SPECK_KEEP
    return np.stack([x[keep], y[keep]], axis=1).astype(np.float32)  # (N, 2)


# ----------------------------------------------------------------------------- per-frame state


def _camera(plan: Plan, t: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pan, zoom, night), each (t,): scene shift right in pixels, magnification, night mix."""
    spec = plan.spec
    cam = spec.camera
    pan = _pan_velocity(spec) * t  # pan left: the view moves left, so the scene slides right
    ramp = np.clip(t / plan.ramp, 0.0, 1.0)
    zoom = np.ones_like(t)
    if cam == Camera.ZOOM_IN:
        zoom = ZOOM_FACTOR**ramp
    elif cam == Camera.ZOOM_OUT:
        zoom = ZOOM_FACTOR ** (-ramp)
    night = np.zeros_like(t)
    if any(e.kind == EventKind.DAY_TO_NIGHT for e in spec.events) and plan.last > 0:
        u = np.clip(t / plan.last, 0.0, 1.0)
        night = u * u * (3 - 2 * u)  # smoothstep
    return pan, zoom, night


def _world(obj: ObjectPlan, t: np.ndarray, ramp: float) -> tuple[np.ndarray, ...]:
    """World (x, y, scale, angle, rgb) of one object at times t: (t,) arrays and (t, 3)."""
    p = obj.p
    if obj.mode == "keys":
        x, y = np.interp(t, p["t"], p["x"]), np.interp(t, p["t"], p["y"])
    elif obj.mode == "linear":
        x = p["x0"] + p["vx"] * t  # wrapped in _states, on screen, after the pan
        y = np.mod(p["y0"] + p["vy"] * t + p["my"], p["wy"]) - p["my"]
    elif obj.mode == "bounce":
        x, y = (_reflect(p[f"{a}0"] + p[f"v{a}"] * t, p[f"lo_{a}"], p[f"hi_{a}"]) for a in ("x", "y"))
    elif obj.mode == "fall":
        tf = p["tf"]
        s = np.mod(t, 2 * tf)
        tau = np.where(s < tf, s, 2 * tf - s)  # time since release, mirrored by the elastic bounce
        x, y = np.full_like(t, p["x"]), p["y0"] + 0.5 * p["g"] * tau * tau
    else:  # circle
        a = p["phase"] + p["w"] * t
        x, y = p["cx"] + p["rho"] * np.cos(a), p["cy"] + p["rho"] * np.sin(a)
    scale = obj.r * obj.grow ** np.clip(t / ramp, 0.0, 1.0)
    angle = 2 * math.pi * obj.turns * t
    rgb = np.tile(np.asarray(obj.rgb, np.float32), (len(t), 1))  # (t, 3)
    if obj.change_t is not None:
        rgb[t >= obj.change_t - 1e-9] = obj.change_rgb
    return x, y, scale, angle, rgb


def _reflect(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Fold an unbounded straight path into [lo, hi], reflecting off both ends."""
    span = hi - lo
    u = np.mod(x - lo, 2 * span)
    return lo + np.where(u < span, u, 2 * span - u)


def states(plan: Plan, t: np.ndarray) -> dict[str, np.ndarray]:
    """Screen state of every object at times t: x, y, scale, angle (t, K), rgb (t, K, 3), camera (t,)."""
    W, H = plan.spec.width, plan.spec.height
    pan, zoom, night = _camera(plan, t)
    cols = [_world(o, t, plan.ramp) for o in plan.objs]
    x, y, scale, angle = (np.stack([c[i] for c in cols], axis=1) for i in range(4))  # (t, K)
    rgb = np.stack([c[4] for c in cols], axis=1)  # (t, K, 3)
    L = W + 2 * plan.pad
    vx = np.mod(x + pan[:, None] + plan.pad, L) - plan.pad  # around the camera's cylinder
    for k, o in enumerate(plan.objs):
        if o.mode == "linear":  # a straight mover that leaves the view re-enters it at the opposite edge
            vx[:, k] = np.mod(x[:, k] + pan + o.p["mx"], o.p["wx"]) - o.p["mx"]
    z = zoom[:, None]
    return {
        "x": W / 2 + z * (vx - W / 2), "y": H / 2 + z * (y - H / 2), "scale": scale * z,
        "angle": angle, "rgb": rgb, "pan": pan, "zoom": zoom, "night": night,
    }  # fmt: skip
