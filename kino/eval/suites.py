"""The prompts `kino eval` runs: built-in suites drawn from the world, or a JSONL prompts file.

Each item is a prompt, the partial spec it is scored against (`expect`) and, where there is one, the
ground-truth scene that `--reference` renders. Suites are deterministic: a fixed seed per suite
draws the same specs and captions on every machine, at the canvas the evaluation runs at.

- world-train: specs of the training split; prompts alternate their detailed and medium captions;
  expect is everything the spec says (PromptSpec.of_scene).
- world-heldout: the same from the held-out split (color/shape and shape/motion pairs never trained on).
- short-prompts: short, user-like prompts (the SHORT captions of training specs); expect is what the
  prompt parser reads in them, so only the attributes the prompt names are scored.
- conditioning: training-split specs captioned as world-train, each with a conditioned mode in turn
  (image-to-video, forward extension, interpolation; `condition`): the runner renders the scene and
  gives the mode its first frame, its first second, or its first and last frames (kino.eval.conditioning).
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from kino.errors import InputError
from kino.world.spec import PromptSpec, SceneSpec

if TYPE_CHECKING:
    from kino.modes import Mode

SUITE_SIZE = 48  # prompts per built-in suite (the conditioning suite: 16 per mode)
SUITE_SEEDS = {"world-train": 1001, "world-heldout": 1002, "short-prompts": 1003,
               "conditioning": 1004}  # spec-drawing seeds


class Suite(StrEnum):
    """The built-in prompt suites; the CLI's --suite choices."""

    WORLD_TRAIN = "world-train"
    WORLD_HELDOUT = "world-heldout"
    SHORT_PROMPTS = "short-prompts"
    CONDITIONING = "conditioning"


@dataclass(frozen=True)
class EvalPrompt:
    """One prompt to evaluate: what is asked (`expect`) and, when known, the scene that answers it."""

    id: str
    prompt: str
    expect: PromptSpec
    scene: SceneSpec | None = None  # ground truth for --reference; None: completed from expect
    condition: Mode | None = None  # conditioning suite: the mode given parts of the rendered scene

    def to_dict(self) -> dict:
        return {"id": self.id, "prompt": self.prompt, "expect": self.expect.to_dict(),
                "scene": None if self.scene is None else self.scene.to_dict(),
                "condition": None if self.condition is None else self.condition.value}


def suite_prompts(suite: Suite | str, width: int = 64, height: int = 64, fps: float = 8.0,
                  num_frames: int = 16, size: int = SUITE_SIZE) -> list[EvalPrompt]:
    """The `size` prompts of a built-in suite, with scenes drawn on the given canvas."""
    from kino.eval.conditioning import CONDITION_MODES
    from kino.world.caption import CaptionLevel, caption
    from kino.world.parse import parse_prompt
    from kino.world.sampler import Split, sample_spec

    suite = Suite(suite)
    rng = np.random.default_rng(SUITE_SEEDS[suite.value])
    split = Split.HELDOUT if suite is Suite.WORLD_HELDOUT else Split.TRAIN
    items = []
    for i in range(size):
        spec = sample_spec(rng, split, width=width, height=height, fps=fps, num_frames=num_frames)
        if suite is Suite.SHORT_PROMPTS:
            text = caption(spec, CaptionLevel.SHORT, seed=i)
            expect = parse_prompt(text)
        else:  # the detailed caption is what the model trained on; the medium one is terser
            level = CaptionLevel.DETAILED if i % 2 == 0 else CaptionLevel.MEDIUM
            text = caption(spec, level, seed=i)
            expect = PromptSpec.of_scene(spec)
        mode = CONDITION_MODES[i % len(CONDITION_MODES)] if suite is Suite.CONDITIONING else None
        items.append(EvalPrompt(f"{suite.value}-{i:03d}", text, expect, spec, mode))
    return items


def load_prompts(path: str | Path) -> list[EvalPrompt]:
    """Read a JSONL prompts file: one object per line with "prompt", optional "expect" and "scene".

    "expect" is a partial spec in PromptSpec.to_dict's shape; without it the prompt parser decides what
    is asked. "scene" (SceneSpec.to_dict) is the ground truth that --reference renders. Blank lines and
    lines starting with # are skipped. InputError names the file and line of the first bad line.
    """
    from kino.world.parse import parse_prompt

    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise InputError(f"prompts file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read prompts file {path}: {type(e).__name__}") from None
    items = []
    for n, line in enumerate(lines, start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        where = f"{path.name} line {n}"
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise InputError(f"{where}: not JSON ({e.msg}); each line is "
                             '{"prompt": "...", "expect": {...}}') from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise InputError(f'{where}: needs a non-empty "prompt" string, e.g. {{"prompt": "a red ball"}}')
        unknown = set(row) - {"id", "prompt", "expect", "scene"}
        if unknown:
            raise InputError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}; valid: id, prompt, "
                             "expect, scene")
        try:
            expect = PromptSpec.from_dict(_dict(row["expect"], "expect")) if "expect" in row \
                else parse_prompt(row["prompt"])
            scene = SceneSpec.from_dict(_dict(row["scene"], "scene")) if "scene" in row else None
        except InputError as e:
            raise InputError(f"{where}: {str(e).splitlines()[0]}") from None
        items.append(EvalPrompt(str(row.get("id", f"{path.stem}-{n:03d}")), row["prompt"], expect, scene))
    if not items:
        raise InputError(f"prompts file {path} has no prompts; write one JSON object per line")
    return items


def reference_scene(item: EvalPrompt, width: int, height: int, fps: float, num_frames: int) -> SceneSpec:
    """The scene --reference renders: the item's ground truth, or a scene completing what it asks."""
    if item.scene is not None:
        return item.scene.with_canvas(width, height, fps, num_frames)
    from kino.enhance import complete_spec

    # the same prompt always completes to the same scene (seeded by its text)
    rng = np.random.default_rng(zlib.crc32(item.prompt.strip().lower().encode()))
    return complete_spec(item.expect, rng, width, height, fps, num_frames)


def _dict(value, key: str) -> dict:
    if not isinstance(value, dict):
        raise InputError(f'"{key}" must be a JSON object, got {type(value).__name__}')
    return value
