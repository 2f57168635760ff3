"""What a conditioned request's inputs show, for the prompt enhancer (kino.enhance).

An image-to-video's image, an extension's video, an interpolation's keyframes: the world analyzer
reads them (kino.world.analyze), and what it sees fills what the user's prompt leaves open, so the
enhanced caption never contradicts the frames the video starts from (issue 16 #2; measured by
benchmarks/conditioned_enhance.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from kino.errors import InputError


@dataclass(frozen=True)
class Inputs:
    """What a conditioned request gives the model besides its prompt, for the enhancer to stay consistent
    with: an image-to-video's image, an extension's video, an interpolation's keyframes.

    `frames` are consecutive frames of a video at `fps` (its motion and camera are read too), or, with
    `fps` None, separate stills (keyframes, an image: only what they show is read, not how it moves).
    """

    frames: np.ndarray  # (T, H, W, 3) uint8
    fps: float | None = None

    def __post_init__(self) -> None:
        f = np.asarray(self.frames)
        if f.ndim == 3:
            f = f[None]  # one image (H, W, 3) -> (1, H, W, 3)
        if f.ndim != 4 or f.shape[-1] != 3 or not len(f):
            raise InputError(f"enhancer inputs must be frames (T, H, W, 3), got shape {tuple(f.shape)}")
        object.__setattr__(self, "frames", f)


def seen(inputs: Inputs):
    """(Analysis, video): what the analyzer sees in the inputs, of the whole video when they are one
    (video True), else of the first still."""
    from kino.world.analyze import analyze

    video = inputs.fps is not None and len(inputs.frames) > 1
    return analyze(inputs.frames if video else inputs.frames[:1], inputs.fps or 8.0), video


def with_inputs(asked, inputs: Inputs):
    """`asked` (a PromptSpec) with what the analyzer sees in `inputs` filling what it leaves open.

    Every seen object is kept (asked objects are matched to the seen one that agrees on most of what
    they ask, and take its other attributes); the background always comes from the frames (a
    conditioned video keeps its backdrop); a video's motion and camera continue unless asked.
    """
    from kino.world.spec import MAX_OBJECTS, ObjectQuery

    analysis, video = seen(inputs)
    pool = list(analysis.objects[:MAX_OBJECTS])
    objects = []
    for q in asked.objects:
        agree = [sum(getattr(q, a) is not None and getattr(q, a) == getattr(o, a)
                     for a in ("shape", "color", "size", "motion")) for o in pool]
        o = pool.pop(int(np.argmax(agree))) if pool else None
        objects.append(q if o is None else _fill(q, o, video))
    objects += [_fill(ObjectQuery(), o, video) for o in pool][: MAX_OBJECTS - len(objects)]
    return replace(
        asked,
        objects=tuple(objects),
        count=asked.count or (len(objects) or None),
        background=asked.background or analysis.background,
        camera=asked.camera or (analysis.camera if video else None),
    )


def _fill(q, o, video: bool):
    from kino.world.spec import ObjectQuery

    return ObjectQuery(shape=q.shape or o.shape, color=q.color or o.color, size=q.size or o.size,
                       motion=q.motion or (o.motion if video else None))


INPUT_FRAMES = 8  # frames of a given video the enhancer reads (its end, or its start for a backward extension)


def request_inputs(request) -> Inputs | None:
    """The frames a conditioned kino.generation.GenerationRequest starts from, for the enhancer (None: a
    text request). Read at the request's size, the video's tail (its head for a backward extension) one
    frame at a time, so a long input never sits in memory whole."""
    from collections import deque

    from kino import modes
    from kino.io import iter_frames, probe

    w, h = int(request.width or 64), int(request.height or 64)
    mode, notes = str(request.mode), []
    if mode == "image-to-video" and request.from_image:
        return Inputs(modes.load_image(request.from_image, w, h, notes))
    if mode == "interpolate" and request.keyframes:
        return Inputs(np.stack([modes.load_image(k, w, h, notes) for k in request.keyframes]))
    video = request.videos[0] if mode == "connect" and request.videos else request.video
    if not video:
        return None
    head = mode == "extend" and request.backward
    tail = deque(maxlen=None if head else INPUT_FRAMES)
    for frame in iter_frames(video, max_frames=INPUT_FRAMES if head else None):
        tail.append(modes.fit_frames(frame[None], w, h, str(video), notes)[0])
    return Inputs(np.stack(tail), fps=probe(video).fps)
