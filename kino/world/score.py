"""Scorer: does what the analyzer saw match what a prompt (or a full scene spec) asked for?

`score(analysis, prompt_spec)` checks every attribute the prompt asks for: the background, the
count, each asked object's color/shape/size/motion, the camera and each event. Asked objects are
matched to seen objects by an optimal assignment (Hungarian) that maximises agreeing attributes,
so "a red circle and a blue square" is met whichever order the analyzer lists them in.
`accuracy(analysis, scene_spec)` is the same check against everything a full spec says.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from kino.world.analyze import Analysis
from kino.world.spec import PromptSpec, SceneSpec


class Attribute(StrEnum):
    """What one check is about."""

    BACKGROUND = "background"
    COUNT = "count"
    COLOR = "color"
    SHAPE = "shape"
    SIZE = "size"
    MOTION = "motion"
    CAMERA = "camera"
    EVENT = "event"


OBJECT_ATTRIBUTES = (Attribute.SHAPE, Attribute.COLOR, Attribute.SIZE, Attribute.MOTION)


@dataclass(frozen=True)
class Check:
    """One asked attribute: what was asked, what was seen (None: nothing to compare), met or missed."""

    attribute: Attribute
    asked: str
    seen: str | None
    met: bool
    object: int | None = None  # index of the asked object, for object attributes

    @property
    def label(self) -> str:
        return (
            f"object {self.object + 1} {self.attribute}" if self.object is not None else str(self.attribute)
        )


@dataclass(frozen=True)
class Score:
    """Every check; `fraction` is the share met, None when nothing measurable was asked (a prompt
    outside the world's vocabulary asks for nothing the analyzer can check: that is no score, not 1.0)."""

    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def met(self) -> int:
        return sum(c.met for c in self.checks)

    @property
    def fraction(self) -> float | None:
        return self.met / len(self.checks) if self.checks else None

    def summary(self) -> str:
        """One line for people: "3 of 4 asked attributes met (0.75)", or that nothing measurable was asked."""
        if not self.checks:
            return "nothing measurable was asked (no color, shape, size, motion, camera, background or event " \
                "the world's analyzer can check)"
        n = len(self.checks)
        return f"{self.met} of {n} asked attribute{'' if n == 1 else 's'} met ({self.fraction:.2f})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "fraction": None if self.fraction is None else round(self.fraction, 4),
            "met": self.met,
            "asked": len(self.checks),
            "checks": [
                {
                    **{k: (str(v) if isinstance(v, StrEnum) else v) for k, v in asdict(c).items()},
                    "label": c.label,
                }
                for c in self.checks
            ],  # fmt: skip
        }


def score(analysis: Analysis, prompt: PromptSpec) -> Score:
    """Check each attribute `prompt` asks for against what `analysis` saw."""
    checks: list[Check] = []
    if prompt.background is not None:
        checks.append(_check(Attribute.BACKGROUND, prompt.background, analysis.background))
    if prompt.count is not None:
        checks.append(_check(Attribute.COUNT, prompt.count, analysis.count))
    checks += _object_checks(analysis, prompt)
    if prompt.camera is not None:
        checks.append(_check(Attribute.CAMERA, prompt.camera, analysis.camera))
    seen_kinds = {e.kind for e in analysis.events}
    for kind in prompt.events:
        checks.append(
            Check(Attribute.EVENT, str(kind), str(kind) if kind in seen_kinds else None, kind in seen_kinds)
        )
    return Score(tuple(checks))


def accuracy(analysis: Analysis, spec: SceneSpec) -> Score:
    """Check everything a full scene spec says (the analyzer's accuracy on the renderer's clips)."""
    return score(analysis, PromptSpec.of_scene(spec))


def _check(attribute: Attribute, asked, seen, obj: int | None = None) -> Check:
    return Check(
        attribute, str(asked), None if seen is None else str(seen), seen is not None and asked == seen, obj
    )


def _object_checks(analysis: Analysis, prompt: PromptSpec) -> list[Check]:
    asked = prompt.objects
    if not asked:
        return []
    seen = analysis.objects
    # agreement[i, j]: how many asked attributes of object i seen object j has
    agree = np.zeros((len(asked), max(1, len(seen))))
    for i, q in enumerate(asked):
        for j, o in enumerate(seen):
            agree[i, j] = sum(
                getattr(q, a) is not None and getattr(q, a) == getattr(o, a) for a in OBJECT_ATTRIBUTES
            )
    match: dict[int, int] = {}
    if seen:
        from scipy.optimize import linear_sum_assignment

        rows, cols = linear_sum_assignment(-agree)
        match = dict(zip(rows.tolist(), cols.tolist(), strict=True))
    checks = []
    for i, q in enumerate(asked):
        o = seen[match[i]] if i in match else None
        for a in OBJECT_ATTRIBUTES:
            want = getattr(q, a)
            if want is not None:
                checks.append(_check(a, want, None if o is None else getattr(o, a), i))
    return checks
