"""The world's renderer: a SceneSpec and a seed become uint8 frames (T, H, W, 3), deterministically.

How a clip is drawn (docs/world.md says the same for users):
1. `plan_scene` (kino.world.motion) turns the spec and the seed into a few numbers per object
   (start, speed, direction, an event's keyframes); what the spec leaves as None comes from the seed.
2. For a chunk of frames, `states` (kino.world.motion) gives every object's per-frame state on
   screen, through the camera (pan around a horizontal cylinder, then zoom about the centre).
3. The background (gradient stops of BACKGROUND_STOPS, a ground line on grass, world-anchored
   specks or stars) is filled in, then each object is drawn in depth order: its signed distance
   function is evaluated on a window around it for the whole chunk at once, float32 (t, h, w)
   arrays, and coverage = clip(0.5 - sdf, 0, 1) gives one pixel of anti-aliasing at the edges.

Letters: T frames, K objects, H, W canvas, t frames in a chunk, h, w an object's window, N specks.
Coordinates are pixels, x right and y down, pixel (i, j) has its centre at (j + 0.5, i + 0.5).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from kino.world.motion import CIRCUM, Plan, plan_scene, states
from kino.world.spec import BACKGROUND_STOPS, HORIZON, Background, Camera, SceneSpec, Shape

WORK_PIXELS = 1 << 22  # at most this many pixels per float32 work buffer (48 MiB)
# (color, strength) of the world-anchored specks on each background: faint texture by day, stars at night
SPECK_DAY = {Background.WHITE: ((0, 0, 0), 0.3), Background.GRAY: ((0, 0, 0), 0.35)}
SPECK_DEFAULT = ((255, 255, 255), 0.35)
STARS = ((255, 255, 240), 0.9)
NIGHT_GROUND = 0.35  # day_to_night on grass: the ground ends at this fraction of its day color
DIAMOND_ASPECT = 0.65  # a diamond is a rhombus, narrower than tall, so it is never a turned square
STAR_INNER = 0.45  # inner radius of the five-pointed star, fraction of the outer

# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class Trajectory:
    """Ground-truth per-frame state of every object, as drawn on screen (after the camera).

    `visible` means some of the object is inside the frame (it may still be hidden behind a nearer
    object during an occlusion). `order` lists object indices back to front, the drawing order.
    """

    x: np.ndarray  # (T, K) centre x in pixels (centre of the upright shape's bounding box)
    y: np.ndarray  # (T, K) centre y in pixels
    scale: np.ndarray  # (T, K) half-extent in pixels on screen
    angle: np.ndarray  # (T, K) rotation in radians, clockwise on screen
    color: np.ndarray  # (T, K, 3) uint8 RGB
    visible: np.ndarray  # (T, K) bool
    order: tuple[int, ...]  # back to front
    pan: np.ndarray  # (T,) how far the scene has slid right, pixels (negative: left)
    zoom: np.ndarray  # (T,) magnification about the frame centre
    night: np.ndarray  # (T,) 0 day look .. 1 night look (day_to_night)


# ----------------------------------------------------------------------------- public API


def render(spec: SceneSpec, seed: int = 0) -> np.ndarray:
    """All frames of `spec` as uint8 (T, H, W, 3); identical bytes for the same (spec, seed)."""
    out = np.empty((spec.num_frames, spec.height, spec.width, 3), np.uint8)  # (T, H, W, 3)
    i = 0
    for part in iter_render(spec, seed):
        out[i : i + len(part)] = part
        i += len(part)
    return out


def iter_render(spec: SceneSpec, seed: int = 0, chunk: int = 64) -> Iterator[np.ndarray]:
    """Frames of `spec` in chunks of up to `chunk` frames, (t, H, W, 3) uint8; memory independent of T."""
    plan = plan_scene(spec, seed)
    chunk = max(1, int(chunk))
    # float32 work buffers stay under WORK_PIXELS pixels: large canvases draw a chunk in parts
    step = max(1, min(chunk, WORK_PIXELS // (spec.width * spec.height)))
    cache: dict[str, np.ndarray] = {}  # the still background, drawn once per clip
    for start in range(0, spec.num_frames, chunk):
        stop = min(spec.num_frames, start + chunk)
        parts = [
            _draw_chunk(plan, np.arange(i, min(stop, i + step)) / float(spec.fps), cache)
            for i in range(start, stop, step)
        ]
        yield parts[0] if len(parts) == 1 else np.concatenate(parts)  # (t, H, W, 3)


def trajectory(spec: SceneSpec, seed: int = 0) -> Trajectory:
    """The per-frame state of every object that `render(spec, seed)` draws."""
    plan = plan_scene(spec, seed)
    t = np.arange(spec.num_frames) / float(spec.fps)
    s = states(plan, t)
    H, W = spec.height, spec.width
    ext = s["scale"] * np.array([CIRCUM[o.shape] for o in plan.objs])  # (T, K)
    visible = (s["x"] + ext > 0) & (s["x"] - ext < W) & (s["y"] + ext > 0) & (s["y"] - ext < H)
    return Trajectory(
        x=s["x"], y=s["y"], scale=s["scale"], angle=s["angle"],
        color=np.rint(s["rgb"]).astype(np.uint8), visible=visible, order=plan.order,
        pan=s["pan"], zoom=s["zoom"], night=s["night"],
    )  # fmt: skip


# ----------------------------------------------------------------------------- drawing


def _draw_chunk(plan: Plan, t: np.ndarray, cache: dict[str, np.ndarray]) -> np.ndarray:
    """Frames at times t (seconds) as uint8 (t, H, W, 3): background, then objects back to front."""
    spec = plan.spec
    H, W = spec.height, spec.width
    s = states(plan, t)
    if spec.camera == Camera.STATIC and not s["night"].any():  # nothing in the background moves
        if "bg" not in cache:
            cache["bg"] = _background(plan, np.zeros(1), np.ones(1), np.zeros(1))[0]  # (H, W, 3)
        buf = np.empty((len(t), H, W, 3), np.float32)  # (t, H, W, 3)
        buf[:] = cache["bg"]
    else:
        buf = _background(plan, s["pan"], s["zoom"], s["night"])  # (t, H, W, 3)
    for k in plan.order:
        _draw_object(buf, plan.objs[k].shape, s["x"][:, k], s["y"][:, k], s["scale"][:, k],
                     s["angle"][:, k], s["rgb"][:, k])  # fmt: skip
    buf += 0.5
    return buf.astype(np.uint8)


def _stops_rgb(bg: Background, fy: np.ndarray) -> np.ndarray:
    """Background color at world heights fy (fraction of H from the top), (..., 3) float32."""
    stops = BACKGROUND_STOPS[bg]
    if bg == Background.GRASS:  # a hard ground line: sky stops above it, ground stops below
        return np.where((fy < HORIZON)[..., None], _interp(stops[:2], fy), _interp(stops[2:], fy))
    return _interp(stops, fy)


def _interp(stops, fy: np.ndarray) -> np.ndarray:
    xp = [p for p, _ in stops]
    return np.stack([np.interp(fy, xp, [c[i] for _, c in stops]) for i in range(3)], axis=-1).astype(
        np.float32
    )


def _background(plan: Plan, pan: np.ndarray, zoom: np.ndarray, night: np.ndarray) -> np.ndarray:
    """Background frames (t, H, W, 3) float32: gradient rows, the ground line, then the specks."""
    spec = plan.spec
    H, W, bg = spec.height, spec.width, spec.background
    rows = np.arange(H, dtype=np.float32) + 0.5
    wy = H / 2 + (rows[None, :] - H / 2) / zoom[:, None]  # (t, H) world y of each screen row
    day = _stops_rgb(bg, wy / H)  # (t, H, 3)
    if bg == Background.GRASS:  # anti-alias the ground line: ground coverage of each row
        cov = np.clip((wy - HORIZON * H) * zoom[:, None] + 0.5, 0.0, 1.0)[..., None]  # (t, H, 1)
        day = (1 - cov) * _interp(BACKGROUND_STOPS[bg][:2], wy / H) + cov * _interp(
            BACKGROUND_STOPS[bg][2:], wy / H
        )
    n = night[:, None, None]  # (t, 1, 1)
    rowcol = day
    if night.any():
        dark = _stops_rgb(Background.NIGHT, wy / H)  # (t, H, 3)
        if bg == Background.GRASS:  # the ground stays, darkened, so the ground line remains
            dark = (1 - cov) * dark + cov * NIGHT_GROUND * day
        rowcol = (1 - n) * day + n * dark
    buf = np.empty((len(pan), H, W, 3), np.float32)  # (t, H, W, 3)
    buf[:] = rowcol[:, :, None, :]
    # specks, anchored in the world: they slide with a pan and spread with a zoom
    dcol, dstr = STARS if bg == Background.NIGHT else SPECK_DAY.get(bg, SPECK_DEFAULT)
    col = (1 - night)[:, None] * np.asarray(dcol, np.float32) + night[:, None] * np.asarray(
        STARS[0], np.float32
    )
    strength = (1 - night) * dstr + night * STARS[1]  # (t,)
    idx, alpha = _speck_alpha(plan, pan, zoom)  # only the few pixels the specks touch
    pixels = buf.reshape(-1, 3)  # (t*H*W, 3) view
    ti = idx // (H * W)
    alpha = (alpha * strength[ti])[:, None]
    pixels[idx] += alpha * (col[ti] - pixels[idx])
    return buf


def _speck_alpha(plan: Plan, pan: np.ndarray, zoom: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat pixel indices into (t, H, W) and their coverage by the specks (summed, at most 1)."""
    H, W = plan.spec.height, plan.spec.width
    T = len(pan)
    L = W + 2 * plan.pad
    px, py = plan.specks[:, 0], plan.specks[:, 1]
    vx = np.mod(px[None, :] + pan[:, None] + plan.pad, L) - plan.pad  # (t, N)
    z = zoom[:, None]
    sx, sy = W / 2 + z * (vx - W / 2), H / 2 + z * (py[None, :] - H / 2)  # (t, N)
    near = ((sx > -3) & (sx < W + 3) & (sy > -3) & (sy < H + 3)).any(0)  # most of the cylinder is off screen
    sx, sy = sx[:, near].astype(np.float32), sy[:, near].astype(np.float32)  # (t, n)
    rs = (plan.speck_r * z).astype(np.float32)  # (t, 1)
    ws = int(math.ceil(2 * (plan.speck_r * float(zoom.max()) + 1)))
    off = np.arange(ws)
    cx = np.floor(sx - ws / 2 + 0.5).astype(np.int64)[..., None] + off  # (t, N, ws)
    cy = np.floor(sy - ws / 2 + 0.5).astype(np.int64)[..., None] + off  # (t, N, ws)
    dx = cx + 0.5 - sx[..., None]
    dy = cy + 0.5 - sy[..., None]
    d = np.sqrt(dx[:, :, None, :] ** 2 + dy[:, :, :, None] ** 2)  # (t, N, ws, ws)
    cov = np.clip(0.5 - (d - rs[..., None, None]), 0.0, 1.0)
    inside = ((cx >= 0) & (cx < W))[:, :, None, :] & ((cy >= 0) & (cy < H))[:, :, :, None]  # (t, N, ws, ws)
    ti = np.arange(T)[:, None, None, None]
    flat = (ti * H + np.clip(cy, 0, H - 1)[:, :, :, None]) * W + np.clip(cx, 0, W - 1)[:, :, None, :]
    keep = inside & (cov > 0)
    idx, inverse = np.unique(flat[keep], return_inverse=True)  # specks may share a pixel
    alpha = np.bincount(inverse, weights=cov[keep], minlength=len(idx))
    return idx, np.minimum(alpha, 1.0).astype(np.float32)


def _draw_object(buf, shape, x, y, scale, angle, rgb) -> None:
    """Composite one object over buf (t, H, W, 3) in place, inside a window that follows it."""
    T, H, W, _ = buf.shape
    ext = float((scale * CIRCUM[shape]).max()) + 1.5
    sw, sh = min(W, int(math.ceil(2 * ext)) + 2), min(H, int(math.ceil(2 * ext)) + 2)
    x0 = np.clip(np.floor(x - sw / 2), 0, W - sw).astype(np.int64)  # (t,)
    y0 = np.clip(np.floor(y - sh / 2), 0, H - sh).astype(np.int64)
    cols = x0[:, None] + np.arange(sw)  # (t, w)
    rows = y0[:, None] + np.arange(sh)  # (t, h)
    u = (cols + 0.5 - x[:, None]).astype(np.float32)[:, None, :]  # (t, 1, w)
    v = (rows + 0.5 - y[:, None]).astype(np.float32)[:, :, None]  # (t, h, 1)
    if np.any(angle != 0):  # into the object's own frame: rotate by -angle
        c = np.cos(angle).astype(np.float32)[:, None, None]
        s = np.sin(angle).astype(np.float32)[:, None, None]
        u, v = c * u + s * v, c * v - s * u  # (t, h, w)
    r = scale.astype(np.float32)[:, None, None]  # (t, 1, 1)
    a = np.clip(0.5 - _sdf(shape, u, v, r), 0.0, 1.0)[..., None]  # (t, h, w, 1)
    color = rgb.astype(np.float32)[:, None, None, :]  # (t, 1, 1, 3)
    if sw == W and sh == H:
        buf += a * (color - buf)
        return
    # blend frame by frame through basic slices (views): measured faster than gathering the
    # windows with fancy indexing, which copies twice
    for k in range(T):
        patch = buf[k, y0[k] : y0[k] + sh, x0[k] : x0[k] + sw]  # (h, w, 3) view
        patch += a[k] * (color[k] - patch)


_SQRT5 = math.sqrt(5.0)
_DIAMOND_NORM = math.sqrt(1.0 + DIAMOND_ASPECT**2)
_STAR_SECTOR = math.pi / 5
# the star's edge in its folded half-sector: from the tip (0, 1) to the inner vertex, outward normal n
_STAR_IN = (STAR_INNER * math.sin(_STAR_SECTOR), STAR_INNER * math.cos(_STAR_SECTOR))
_STAR_N = (1.0 - _STAR_IN[1], _STAR_IN[0])
_STAR_NN = math.hypot(*_STAR_N)


def _sdf(shape: Shape, u: np.ndarray, v: np.ndarray, r: np.ndarray) -> np.ndarray:
    """Signed distance in pixels (negative inside) of an upright shape of half-extent r at (u, v).

    Polygons use the largest distance to their edges' lines: exact at the edges, where the
    one-pixel anti-aliasing needs it, and a slight underestimate beyond the corners.
    """
    if shape == Shape.CIRCLE:
        return np.sqrt(u * u + v * v) - r
    if shape == Shape.SQUARE:
        return np.maximum(np.abs(u), np.abs(v)) - r
    if shape == Shape.DIAMOND:  # half-width DIAMOND_ASPECT * r, half-height r
        return (np.abs(u) + DIAMOND_ASPECT * np.abs(v) - DIAMOND_ASPECT * r) / _DIAMOND_NORM
    if shape == Shape.TRIANGLE:  # apex (0, -r), base corners (+-r, r)
        return np.maximum(v - r, (2 * np.abs(u) - v - r) / _SQRT5)
    # star: fold the angle from "up" into one half-sector [0, pi/5], then one edge is left
    rho = np.sqrt(u * u + v * v)
    ang = np.abs(np.mod(np.arctan2(u, -v) + _STAR_SECTOR, 2 * _STAR_SECTOR) - _STAR_SECTOR)
    pu, pv = rho * np.sin(ang), rho * np.cos(ang)
    return (pu * _STAR_N[0] + (pv - r) * _STAR_N[1]) / _STAR_NN
