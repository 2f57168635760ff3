"""Every way to prompt besides plain text: each mode turns images or videos into clean condition latents
(kino.diffusion.conditioning) in chosen latent frames of a pass, samples, and splices the result.

Where a condition goes in the causal VAE's latent (latent frame 0 codes pixel frame 0 alone, latent
frame j >= 1 codes pixel frames 4j-3..4j with everything before as causal past):

- at the start (image-to-video, forward extension, a window's head): the frames are encoded as a fresh
  clip (`KinoPipeline.encode_frames`): an image is exactly latent frame 0, and the last 1 + 4(k-1)
  frames of a video are exactly latent frames 0..k-1 of a clip that starts with them, which is what
  training's first/head masks showed the model.
- later (last frame, backward extension, the start of the second video of a connection, keyframes):
  4m frames are encoded after a copy of their own first frame (`KinoPipeline.encode_inner`) and the lone
  first latent is dropped, so each latent frame codes four frames with a causal past, as inner latent
  frames do. An image there is four copies of it: the keyframe is held for four pixel frames (half a
  second at 8 fps) and lands on pixel frame 4j. Encoding the image alone would give a first-frame code,
  a kind of latent the model never sees at an inner position.

Outputs are uint8 frames (T, H, W, 3) plus `seams`: the frame indices where generated frames meet given
ones or a new window starts (what the continuity benchmark measures).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np
import torch

from kino.diffusion.conditioning import Condition
from kino.errors import InputError


class Mode(StrEnum):
    """The generation modes; the C2PA manifest records which one made an output."""

    TEXT = "text"
    IMAGE_TO_VIDEO = "image-to-video"
    EXTEND = "extend"
    LOOP = "loop"
    INTERPOLATE = "interpolate"
    CONNECT = "connect"
    EDIT = "edit"
    STORYBOARD = "storyboard"  # several shots in one video (kino.storyboard)


@dataclass(frozen=True)
class ModeOutput:
    """A mode's frames (T, H, W, 3) uint8, the settings of its (last) pass, seams and notes for the user."""

    frames: np.ndarray
    settings: object  # kino.pipeline.GenerationSettings
    mode: Mode
    seams: tuple[int, ...] = ()
    notes: tuple[str, ...] = ()
    key_frames: tuple[int, ...] = ()  # interpolation: output frame index of each keyframe
    timings: dict[str, float] = field(default_factory=dict)


# -- inputs ------------------------------------------------------------------------------------------


def fit_frames(frames: np.ndarray, width: int, height: int, what: str, notes: list[str]) -> np.ndarray:
    """Frames (T, H, W, 3) resized to cover width x height and centre-cropped; a note says so."""
    if frames.shape[1:3] == (height, width):
        return frames
    from PIL import Image

    h0, w0 = frames.shape[1:3]
    scale = max(width / w0, height / h0)
    rw, rh = max(width, round(w0 * scale)), max(height, round(h0 * scale))
    x0, y0 = (rw - width) // 2, (rh - height) // 2
    out = np.stack([np.asarray(Image.fromarray(f).resize((rw, rh), Image.BICUBIC))[y0:y0 + height, x0:x0 + width]
                    for f in frames])
    notes.append(f"{what} is {w0}x{h0}; resized and centre-cropped to {width}x{height}")
    return out


def load_image(path: str | Path, width: int, height: int, notes: list[str]) -> np.ndarray:
    """An image (or a video's frame: `clip.mp4@1.5` is the frame at 1.5 s, `clip.mp4` its first) as
    (H, W, 3) uint8 at the asked size."""
    from kino.io import iter_frames, probe

    text = str(path)
    at = None
    if "@" in text and not Path(text).exists():
        text, _, when = text.rpartition("@")
        try:
            at = float(when)
        except ValueError:
            raise InputError(f"{path}: after @ comes a time in seconds, e.g. clip.mp4@1.5") from None
        if at < 0:
            raise InputError(f"{path}: the time after @ must be >= 0")
    if at is None:
        frame = next(iter_frames(text, max_frames=1))
    else:
        index = round(at * probe(text).fps)
        count, frame = 0, None
        for f in iter_frames(text, max_frames=index + 1):  # holds one frame at a time
            count, frame = count + 1, f
        if count <= index:
            raise InputError(f"{path}: the video is {count} frames long; there is no frame at {at:g} s")
    return fit_frames(frame[None], width, height, str(path), notes)[0]


def load_video(path: str | Path, width: int, height: int, notes: list[str],
               max_frames: int | None = None) -> np.ndarray:
    """A video as (T, H, W, 3) uint8 at the asked size; a clear error for one without frames.

    Frames are fitted one by one as they are decoded (never the whole video at its own size in memory:
    a 4K upload holds one 4K frame at a time), and at most max_frames are read."""
    from kino.errors import MediaError
    from kino.io import iter_frames

    seen: list[str] = []
    try:
        frames = [fit_frames(f[None], width, height, str(path), seen)[0]
                  for f in iter_frames(path, max_frames=max_frames)]
    except MediaError as e:
        if "no frames" in str(e):
            raise InputError(f"{path}: the video has no frames (zero length); give a video of 1 frame or more") from None
        raise
    notes.extend(seen[:1])
    return np.stack(frames)  # (T, H, W, 3)


# -- helpers ------------------------------------------------------------------------------------------


def _pixels(pipe, n: int) -> int:
    """Frames a pass decodes to hold n (1 + 4k)."""
    tf = pipe.vae.config.temporal_factor
    return 1 + -(-(n - 1) // tf) * tf


def _size(pipe, kw: dict) -> tuple[int, int]:
    return int(kw.get("width") or pipe.scheduler.width), int(kw.get("height") or pipe.scheduler.height)


def _fps(pipe, kw: dict) -> float:
    return float(kw.get("fps") or pipe.scheduler.fps)


def _check_pass(pipe, frames: int, fps: float, what: str) -> None:
    if frames > pipe.max_frames:
        raise InputError(f"{what} needs {frames} frames in one pass ({frames / fps:g} s at {fps:g} fps) but a pass "
                         f"holds {pipe.max_frames}; ask for fewer seconds")


def _condition(pipe, frames: int, width: int, height: int, head: torch.Tensor | None = None,
               inner: dict[int, torch.Tensor] | None = None, tail: torch.Tensor | None = None) -> Condition:
    """A Condition for a pass of `frames` pixel frames: head latents from frame 0, inner latents at given
    latent indices, tail latents ending at the last latent frame."""
    shape = pipe.latent_shape(frames, width, height)
    latent = torch.zeros(shape, device=pipe.device)
    mask = torch.zeros(shape[2], dtype=torch.bool)
    if head is not None:
        latent[:, :, :head.shape[2]] = head
        mask[:head.shape[2]] = True
    for j, z in (inner or {}).items():
        latent[:, :, j:j + z.shape[2]] = z
        mask[j:j + z.shape[2]] = True
    if tail is not None:
        latent[:, :, shape[2] - tail.shape[2]:] = tail
        mask[shape[2] - tail.shape[2]:] = True
    if bool(mask.all()):
        raise InputError("the conditions fill the whole pass; ask for more seconds so there is something to make")
    return Condition(latent, mask)


def _head_frames(pipe, video: np.ndarray) -> int:
    """How many of a video's last frames condition what follows: 1 + 4(overlap - 1), or fewer (1 + 4j)."""
    tf = pipe.vae.config.temporal_factor
    return min(pipe.overlap_frames, 1 + (len(video) - 1) // tf * tf)


def _inner_frames(pipe, video: np.ndarray) -> np.ndarray:
    """A video's first frames for an inner/tail condition: 4m frames (m <= overlap), or an image's four copies."""
    tf = pipe.vae.config.temporal_factor
    m = max(1, min(pipe.scheduler.window_overlap, len(video) // tf))
    frames = video[:m * tf]
    return frames if len(frames) == m * tf else np.repeat(video[:1], tf, axis=0)


def _call(pipe, prompt, kw: dict, **more):
    keys = ("negative_prompt", "fps", "width", "height", "num_inference_steps", "guidance_scale", "solver", "seed",
            "generator", "callback", "condition_guidance", "shift")
    return pipe(prompt, **{k: kw[k] for k in keys if kw.get(k) is not None}, **more)


# -- the modes ---------------------------------------------------------------------------------------


def image_to_video(pipe, prompt: str, image: np.ndarray, num_frames: int, to_image: bool = False,
                   **kw) -> ModeOutput:
    """Animate an image: it is frame 0 (or, with to_image, the last frame) of the video."""
    width, height = _size(pipe, kw)
    notes: list[str] = []
    image = fit_frames(image[None], width, height, "the image", notes)
    if to_image and num_frames != _pixels(pipe, num_frames):
        notes.append(f"{num_frames} frames rounded up to {_pixels(pipe, num_frames)} so the image is the last")
        num_frames = _pixels(pipe, num_frames)
    _check_pass(pipe, num_frames, _fps(pipe, kw), "image-to-video")
    if to_image:
        if num_frames == 1:
            raise InputError("--to-image needs a video of more than one frame")
        cond = _condition(pipe, num_frames, width, height, tail=pipe.encode_inner(np.repeat(image, 4, axis=0)))
    else:
        cond = _condition(pipe, num_frames, width, height, head=pipe.encode_frames(image))
    out = _call(pipe, prompt, kw, num_frames=num_frames, condition=cond)
    return ModeOutput(out.frames, out.settings, Mode.IMAGE_TO_VIDEO, notes=tuple(notes), timings=out.timings)


def extend(pipe, prompt: str, video: np.ndarray, num_frames: int, backward: bool = False, blend: bool = True,
           **kw) -> ModeOutput:
    """Add num_frames after the video (windows when longer than a pass) or, backward, before it (one pass;
    the video's first frames fade in from the pass's decode of them, as in `connect`)."""
    from kino.pipeline import Shot, plan_windows

    width, height = _size(pipe, kw)
    notes: list[str] = []
    video = fit_frames(video, width, height, "the video", notes)
    if num_frames < 1:
        raise InputError("an extension needs seconds > 0")
    if backward:
        inner = _inner_frames(pipe, video)
        total = _pixels(pipe, num_frames + len(inner))
        _check_pass(pipe, total, _fps(pipe, kw), "a backward extension")
        cond = _condition(pipe, total, width, height, tail=pipe.encode_inner(inner))
        out = _call(pipe, prompt, kw, num_frames=total, condition=cond)
        new = out.frames[:total - len(inner)][-num_frames:]  # generated frames just before the video's start
        if blend:
            video = _fade_in(out.frames[total - len(inner):], video)  # as in connect
        return ModeOutput(np.concatenate([new, video]), out.settings, Mode.EXTEND, (len(new),), tuple(notes),
                          timings=out.timings)
    head = _head_frames(pipe, video)
    windows = plan_windows([Shot(prompt, num_frames)], pipe.max_frames, pipe.overlap_frames,
                           pipe.vae.config.temporal_factor, first_cond=head)
    opts = {k: kw[k] for k in ("negative_prompt", "fps", "width", "height", "guidance_scale", "solver", "seed",
                               "generator", "callback", "condition_guidance", "shift") if kw.get(k) is not None}
    if "num_inference_steps" in kw:
        opts["steps"] = kw["num_inference_steps"]
    opts.pop("fps", None)
    new = np.concatenate(list(pipe.stream(windows, first_condition=video[-head:], fps=_fps(pipe, kw), **opts)))
    seams = tuple(len(video) + w.start for w in windows)
    return ModeOutput(np.concatenate([video, new]), _settings(pipe, prompt, kw, len(new), len(windows)),
                      Mode.EXTEND, seams, tuple(notes))


def crossfade(made: np.ndarray, given: np.ndarray) -> np.ndarray:
    """Frames that go from `made` to `given` (same length L): frame i is (1 - w) made + w given with
    w = (i + 1) / (L + 1). A generated transition flows into the pass's own decode of the conditioning
    frames, not into the given frames themselves, which differ from it by the VAE's round trip; fading
    from one to the other over the conditioning frames spreads that difference over L steps instead of
    putting all of it in the one step at the seam."""
    w = (np.arange(1, len(made) + 1, dtype=np.float32) / (len(made) + 1))[:, None, None, None]
    mixed = (1.0 - w) * made.astype(np.float32) + w * given.astype(np.float32)
    return mixed.round().clip(0, 255).astype(np.uint8)


def _fade_in(made: np.ndarray, video: np.ndarray) -> np.ndarray:
    """`video` whose first frames fade in from `made`, the pass's decode of them (an image's copies: one frame)."""
    n = min(len(made), len(video))
    return np.concatenate([crossfade(made[:n], video[:n]), video[n:]])


def connect(pipe, prompt: str, a: np.ndarray, b: np.ndarray, num_frames: int, mode: Mode = Mode.CONNECT,
            include_b: bool = True, blend: bool = True, **kw) -> ModeOutput:
    """A transition of num_frames from the end of a into the start of b; the output is a, it, then b.

    With `blend`, b's first frames (the tail condition) fade in from the pass's decode of them (crossfade),
    so the step from the transition into b is as smooth as the pass itself; `loop` does the same with the
    start of its video, which is the closure of the loop."""
    width, height = _size(pipe, kw)
    notes: list[str] = []
    a = fit_frames(a, width, height, "the first video", notes)
    b = fit_frames(b, width, height, "the second video", notes)
    head, inner = _head_frames(pipe, a), _inner_frames(pipe, b)
    total = _pixels(pipe, head + num_frames + len(inner))
    _check_pass(pipe, total, _fps(pipe, kw), "this transition")
    cond = _condition(pipe, total, width, height, head=pipe.encode_frames(a[-head:]), tail=pipe.encode_inner(inner))
    out = _call(pipe, prompt, kw, num_frames=total, condition=cond)
    gen = out.frames[head:total - len(inner)]  # (>= num_frames, H, W, 3)
    if blend:
        made = out.frames[total - len(inner):]
        if include_b:
            b = _fade_in(made, b)
        else:  # a loop: b is a, whose start follows the transition when the video repeats
            a = _fade_in(made, a)
    parts = [a, gen, b] if include_b else [a, gen]
    seams = (len(a), len(a) + len(gen)) if include_b else (len(a),)
    return ModeOutput(np.concatenate(parts), out.settings, mode, seams, tuple(notes), timings=out.timings)


def loop(pipe, prompt: str, num_frames: int, video: np.ndarray | None = None,
         transition_frames: int | None = None, blend: bool = True, **kw) -> ModeOutput:
    """A video whose last frame flows into its first: make (or take) a video, then generate a transition
    from its end back to its start and append it. Played on repeat, the seam is the transition's end."""
    if video is None:
        tf = pipe.vae.config.temporal_factor
        trans = transition_frames or max(tf, min(num_frames // 4, pipe.max_frames // 2))
        body = _call(pipe, prompt, kw, num_frames=max(1, num_frames - trans))
        video = body.frames
    else:
        trans = transition_frames or num_frames
    out = connect(pipe, prompt, video, video, trans, mode=Mode.LOOP, include_b=False, blend=blend, **kw)
    return ModeOutput(out.frames, out.settings, Mode.LOOP, out.seams + (len(out.frames),), out.notes,
                      timings=out.timings)


def interpolate(pipe, prompt: str, keyframes: Sequence[np.ndarray], num_frames: int | None = None,
                key_times: Sequence[float] | None = None, **kw) -> ModeOutput:
    """Frames between keyframes placed at key_times (seconds; default: evenly from 0 to the end)."""
    width, height = _size(pipe, kw)
    fps = _fps(pipe, kw)
    tf = pipe.vae.config.temporal_factor
    notes: list[str] = []
    if len(keyframes) < 2:
        raise InputError(f"interpolation needs at least 2 keyframes, got {len(keyframes)}")
    if key_times is None:
        n = num_frames or pipe.max_frames
        last = (n - 1) / fps
        key_times = [last * i / (len(keyframes) - 1) for i in range(len(keyframes))]
    key_times = [float(t) for t in key_times]
    if len(key_times) != len(keyframes):
        raise InputError(f"{len(keyframes)} keyframes but {len(key_times)} times; give one time per keyframe")
    for i in range(1, len(key_times)):
        if key_times[i] <= key_times[i - 1]:
            raise InputError(f"keyframes out of order: keyframe {i + 1} at {key_times[i]:g} s is not after keyframe "
                             f"{i} at {key_times[i - 1]:g} s; give times that increase")
    if key_times[0] < 0:
        raise InputError(f"keyframe times must be >= 0, got {key_times[0]:g}")
    slots = [0 if t == 0 else max(1, round(t * fps / tf)) for t in key_times]  # latent frame of each keyframe
    for i in range(1, len(slots)):
        if slots[i] == slots[i - 1]:
            raise InputError(f"keyframes {i} and {i + 1} ({key_times[i - 1]:g} s, {key_times[i]:g} s) fall in the same "
                             f"latent frame; space keyframes at least {tf / fps:g} s apart")
    total = max(num_frames or 0, 1 + tf * slots[-1])
    _check_pass(pipe, total, fps, "this interpolation")
    images = [fit_frames(k[None], width, height, f"keyframe {i + 1}", notes)[0] for i, k in enumerate(keyframes)]
    head = pipe.encode_frames(images[0][None]) if slots[0] == 0 else None
    inner = {j: pipe.encode_inner(np.repeat(img[None], tf, axis=0))
             for j, img in zip(slots, images, strict=True) if j > 0}
    cond = _condition(pipe, total, width, height, head=head, inner=inner)
    out = _call(pipe, prompt, kw, num_frames=total, condition=cond)
    keys = tuple(tf * j for j in slots)  # the pixel frame where each keyframe lands
    return ModeOutput(out.frames, out.settings, Mode.INTERPOLATE, notes=tuple(notes), key_frames=keys,
                      timings=out.timings)


def edit(pipe, prompt: str, video: np.ndarray, strength: float = 0.6, **kw) -> ModeOutput:
    """SDEdit (Meng et al. 2022): noise the video's latent to t = strength, denoise under the new prompt.
    strength 0 returns the VAE round trip of the input; 1 ignores it."""
    width, height = _size(pipe, kw)
    notes: list[str] = []
    video = fit_frames(video, width, height, "the video", notes)
    n = len(video)
    _check_pass(pipe, n, _fps(pipe, kw), "an edit")
    padded = _pixels(pipe, n)
    if padded > n:  # the VAE takes 1 + 4k frames: repeat the last, trim after
        video = np.concatenate([video, np.repeat(video[-1:], padded - n, axis=0)])
    out = _call(pipe, prompt, kw, num_frames=padded, init_latent=pipe.encode_frames(video), strength=strength)
    return ModeOutput(out.frames[:n], out.settings, Mode.EDIT, notes=tuple(notes), timings=out.timings)


def _settings(pipe, prompt: str, kw: dict, frames: int, windows: int):
    """Settings for a windowed mode (no single pass to take them from)."""
    from kino.pipeline import GenerationSettings

    width, height = _size(pipe, kw)
    shape = pipe.latent_shape(min(frames, pipe.max_frames), width, height)
    s = pipe.scheduler
    return GenerationSettings(prompt, kw.get("negative_prompt") or "", width, height, frames, _fps(pipe, kw),
                              int(kw.get("num_inference_steps") or s.num_inference_steps),
                              float(s.guidance_scale if kw.get("guidance_scale") is None else kw["guidance_scale"]),
                              str(kw.get("solver") or s.solver),
                              float(kw.get("shift") or pipe.shift_for(shape)), kw.get("seed"), shape,
                              condition_guidance=float(kw.get("condition_guidance") or s.condition_guidance),
                              windows=windows)
