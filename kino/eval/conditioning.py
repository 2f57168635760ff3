"""The conditioning suite's videos: a rendered ground-truth scene, part of it given to a conditioned mode.

Each item of `Suite.CONDITIONING` names a mode (`EvalPrompt.condition`); the scene is rendered with the
video's seed, T frames on the run's canvas, and the mode (kino.modes, the code `kino generate
--from-image`, `kino extend` and `kino interpolate` run) gets:

- image-to-video: frame 0 of the render, for a T-frame video. Conditioned: output frame 0.
- extend (forward): the first second of the render (at most half of it: `given_frames`), extended by the
  rest of the T frames. The given frames come out untouched; what is measured is the seam, the step from
  the last given frame into the first new one (`kino.eval.continuity.seam_report`).
- interpolate: frames 0 and T - 1 as keyframes, at the mode's default times (0 and (T - 1) / fps, snapped
  to latent frames: the second lands on the multiple of 4 nearest T - 1, at most 2 frames off, and the
  video ends there or at frame T - 1, whichever is later). Conditioned: the frames where the keyframes
  land (`key_frames`).

With `--reference` the render itself stands for the mode's output, conditioned where the mode would be:
the ceiling (identical conditioned frames, a seam that is an ordinary step of the scene).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kino.errors import InputError
from kino.eval.continuity import psnr, seam_report
from kino.eval.metrics import PSNR_CAP, ConditionMetrics
from kino.modes import Mode

if TYPE_CHECKING:
    from kino.pipeline import KinoPipeline

CONDITION_MODES = (Mode.IMAGE_TO_VIDEO, Mode.EXTEND, Mode.INTERPOLATE)  # the suite's items take them in turn


@dataclass(frozen=True)
class Conditioned:
    """A video made from parts of a ground truth, and where those parts were imposed."""

    frames: np.ndarray  # (T', H, W, 3) uint8
    mode: Mode
    keys: tuple[tuple[int, np.ndarray], ...] = ()  # (output frame, the (H, W, 3) input image held there)
    seams: tuple[int, ...] = ()  # extension: output frames where generated frames start


def given_frames(num_frames: int, fps: float) -> int:
    """Frames of the ground truth an extension is given: its first second, at most half the clip."""
    return max(1, min(round(fps), num_frames // 2))


def given_inputs(mode: Mode, truth: np.ndarray, fps: float):
    """What `condition_on_truth` gives the mode, as the prompt enhancer reads it (kino.enhance.Inputs)."""
    from kino.enhance import Inputs

    if mode == Mode.EXTEND:
        return Inputs(truth[: given_frames(len(truth), fps)], fps=fps)
    if mode == Mode.INTERPOLATE:
        return Inputs(np.stack([truth[0], truth[-1]]))  # keyframes: stills
    return Inputs(truth[0])  # image-to-video


def condition_on_truth(mode: Mode, truth: np.ndarray, prompt: str, pipe: KinoPipeline, fps: float,
                       **kw) -> Conditioned:
    """Run `mode` on parts of the rendered truth (T, H, W, 3); kw go to the mode (seed, steps, size)."""
    from kino import modes

    n = len(truth)
    check_frames(n)
    kw = {k: v for k, v in kw.items() if v is not None}
    if mode == Mode.IMAGE_TO_VIDEO:
        out = modes.image_to_video(pipe, prompt, truth[0], n, fps=fps, **kw)
        return Conditioned(out.frames, mode, keys=((0, truth[0]),))
    if mode == Mode.EXTEND:
        g = given_frames(n, fps)
        out = modes.extend(pipe, prompt, truth[:g], n - g, fps=fps, **kw)
        return Conditioned(out.frames, mode, seams=out.seams)
    if mode == Mode.INTERPOLATE:
        keys = (truth[0], truth[-1])
        out = modes.interpolate(pipe, prompt, keys, num_frames=n, fps=fps, **kw)
        return Conditioned(out.frames, mode, keys=tuple(zip(out.key_frames, keys, strict=True)))
    raise InputError(f"the conditioning suite has no mode {mode!r}; valid: {', '.join(CONDITION_MODES)}")


def reference_conditioned(mode: Mode, truth: np.ndarray, fps: float) -> Conditioned:
    """The truth itself as a mode's output, with its conditions where `condition_on_truth` puts them."""
    n = len(truth)
    check_frames(n)
    if mode == Mode.IMAGE_TO_VIDEO:
        return Conditioned(truth, mode, keys=((0, truth[0]),))
    if mode == Mode.EXTEND:
        return Conditioned(truth, mode, seams=(given_frames(n, fps),))
    if mode == Mode.INTERPOLATE:
        return Conditioned(truth, mode, keys=((0, truth[0]), (n - 1, truth[-1])))
    raise InputError(f"the conditioning suite has no mode {mode!r}; valid: {', '.join(CONDITION_MODES)}")


def measure_conditioned(c: Conditioned, fps: float) -> ConditionMetrics:
    """PSNR of the output at each conditioned frame against its input (mean, dB), and the seam jumps."""
    value = None
    if c.keys:  # identical frames have infinite PSNR: capped so that means and the JSON stay finite
        value = float(np.mean([min(psnr(c.frames[f], image), PSNR_CAP) for f, image in c.keys]))
    if not c.seams:
        return ConditionMetrics(c.mode.value, psnr=value)
    r = seam_report(c.frames, c.seams, fps)
    return ConditionMetrics(c.mode.value, psnr=value, seam_position=r.position_seam,
                            ordinary_position=r.position_ordinary, seam_color=r.color_seam,
                            ordinary_color=r.color_ordinary)


def check_frames(n: int) -> None:
    """InputError unless the videos are long enough for every mode of the suite."""
    if n < 3:  # an extension needs a given frame, the seam step and an ordinary step to compare it with
        raise InputError(f"the conditioning suite needs videos of at least 3 frames, got {n}; ask for more "
                         "--seconds")
