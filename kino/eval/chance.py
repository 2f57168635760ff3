"""Figures that false passes cannot inflate: each attribute's chance level, and flicker.

Chance level (issue 18): a video that ignores its prompt still meets some of what it asks (a
"static" camera, a "medium" object, one of eight backgrounds). The chance level of an attribute is
the share met when each video is scored against the suite's *other* prompts instead of its own, so
it holds what the model does whatever it is asked (and the analyzer's false passes on its output).
The margin, own adherence minus chance, is what the prompt itself contributed; a model that follows
only background and colour shows margins near zero on everything else however high its total is.

Flicker: the mean absolute change of pixel values (0-255) from one frame to the next, of the
generated video and of the ground-truth render of the same prompt and seed. Their ratio is 1 for a
video that changes as much as the world does; blocks that appear and vanish every few frames raise it.

Letters: T frames, H height, W width.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kino.world.analyze import Analysis
from kino.world.score import Attribute, score
from kino.world.spec import PromptSpec


def chance_counts(analyses: Sequence[Analysis], own: Sequence[int], expects: Sequence[PromptSpec]
                  ) -> dict[str, tuple[int, int]]:
    """(met, asked) per attribute of each analysis scored against every prompt but its own.

    `own[i]` is the index in `expects` of the prompt analysis i was made for (several seeds of one
    prompt share it). Pooled over all (video, other prompt) pairs, in Attribute order.
    """
    met: dict[str, int] = {}
    asked: dict[str, int] = {}
    for analysis, mine in zip(analyses, own, strict=True):
        for j, expect in enumerate(expects):
            if j == mine:
                continue
            for check in score(analysis, expect).checks:
                k = check.attribute.value
                met[k] = met.get(k, 0) + int(check.met)
                asked[k] = asked.get(k, 0) + 1
    return {a.value: (met[a.value], asked[a.value]) for a in Attribute if a.value in asked}


def margins(own: dict[str, tuple[int, int]], chance: dict[str, tuple[int, int]]) -> dict[str, float]:
    """Own adherence minus chance level, per attribute asked in both (and "total", pooled)."""
    out = {k: own[k][0] / own[k][1] - chance[k][0] / chance[k][1] for k in own if k in chance}
    if own and chance:
        pooled = lambda d: sum(m for m, _ in d.values()) / sum(a for _, a in d.values())  # noqa: E731
        out["total"] = pooled(own) - pooled(chance)
    return out


def flicker(frames: np.ndarray) -> float | None:
    """Mean |frame[t+1] - frame[t]| over all pixels and steps of uint8 frames (T, H, W, 3); None: 1 frame."""
    if len(frames) < 2:
        return None
    f = frames.astype(np.int16)  # (T, H, W, 3): differences of uint8 need a signed type
    return float(np.abs(np.diff(f, axis=0)).mean())


def latent_steps(num_frames: int, temporal_factor: int) -> tuple[list[int], list[int]]:
    """Frame-to-frame steps i (frame i -> i + 1) of a causal VAE's video that cross a latent-frame boundary
    and those inside one. The VAE codes frame 0 alone and then groups of temporal_factor frames, so latent
    frame k >= 1 holds pixel frames 1 + (k - 1) tf .. k tf; frame 0's step (two codes meet) is in neither."""
    latent = [0 if f == 0 else (f - 1) // temporal_factor + 1 for f in range(num_frames)]
    cross = [i for i in range(1, num_frames - 1) if latent[i] != latent[i + 1]]
    inside = [i for i in range(1, num_frames - 1) if latent[i] == latent[i + 1]]
    return cross, inside


def boundary_change(frames: np.ndarray, temporal_factor: int) -> tuple[float, float] | None:
    """(mean |change| at latent-frame boundary steps, mean |change| at steps inside a latent frame), 0-255,
    of uint8 frames (T, H, W, 3); None when the video has no step of one kind (fewer than 2 latent frames
    after the first). Their ratio is ~1 for a video without latent structure (a render) and grows when a
    model's latent frames disagree, whatever the video holds: a blank or frozen video, which the flicker
    ratio scores as steady, cannot lower it."""
    cross, inside = latent_steps(len(frames), temporal_factor)
    if not cross or not inside:
        return None
    d = np.abs(np.diff(frames.astype(np.int16), axis=0)).mean(axis=(1, 2, 3))  # (T - 1,)
    return float(d[cross].mean()), float(d[inside].mean())


def flicker_ratio(generated: Sequence[float | None], rendered: Sequence[float | None]) -> float | None:
    """Pooled mean generated flicker over mean render flicker, over videos that have both."""
    pairs = [(g, r) for g, r in zip(generated, rendered, strict=True) if g is not None and r is not None]
    if not pairs:
        return None
    rend = float(np.mean([r for _, r in pairs]))
    return float(np.mean([g for g, _ in pairs])) / rend if rend > 0 else None
