"""Storyboards: several shots made into one video whose subjects stay consistent across shots.

The file format (YAML; every key but `shots` is optional):

    subject: a red circle and a blue square   # said in every shot's prompt, so cuts keep the cast
    seed: 7                                   # shared by every shot (default: random, then recorded)
    size: 64x64                               # WIDTHxHEIGHT (default: the model's)
    fps: 8
    negative: blurry
    shots:
      - prompt: the red circle rolls to the left
        seconds: 3
      - prompt: the blue square falls
        seconds: 2
        transition: continuous                # or cut (default: continuous)

A continuous shot starts from the previous shot's last frames (its first window is conditioned on them,
as the windows of a long video are); a cut starts fresh, from the shared seed's noise, and the subject
description keeps the cast. Shots longer than one pass are made in windows. Bad files get one error
line naming the line and field and what is valid.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from kino.errors import InputError


class Transition(StrEnum):
    CUT = "cut"
    CONTINUOUS = "continuous"


@dataclass(frozen=True)
class StoryShot:
    prompt: str
    seconds: float
    transition: Transition = Transition.CONTINUOUS
    line: int = 0  # where the shot is in its file (1-based; 0 when built in code)


@dataclass(frozen=True)
class Storyboard:
    shots: tuple[StoryShot, ...]
    subject: str | None = None
    seed: int | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    negative: str | None = None
    source: str = "storyboard"

    def prompt_of(self, shot: StoryShot) -> str:
        """The shot's prompt with the shared subject description (when there is one)."""
        return f"{self.subject}. {shot.prompt}" if self.subject else shot.prompt


TOP_KEYS = ("shots", "subject", "seed", "size", "fps", "negative")
SHOT_KEYS = ("prompt", "seconds", "transition")


def load_storyboard(source: str | os.PathLike | dict) -> Storyboard:
    """A Storyboard from a YAML file or an already parsed dict; InputError (one line) for a bad one."""
    import yaml

    if isinstance(source, dict):
        return _build(source, "storyboard", lambda *_: 0)
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"storyboard {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read storyboard {path} ({e.__class__.__name__})") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: not valid YAML ({getattr(e, 'problem', None) or 'syntax error'})") from None
    return _build(data, str(path), lambda *keys: _line(node, keys))


def _line(node, keys: tuple) -> int:
    """1-based line of the value at keys (str for mappings, int for lists) in a composed YAML node."""
    import yaml

    line = node.start_mark.line + 1 if node is not None else 0
    for key in keys:
        if isinstance(node, yaml.MappingNode):
            found = [v for k, v in node.value if k.value == key]
            if not found:
                return line
            node = found[0]
        elif isinstance(node, yaml.SequenceNode) and isinstance(key, int) and key < len(node.value):
            node = node.value[key]
        else:
            return line
        line = node.start_mark.line + 1
    return line


def _build(data, name: str, line: Callable[..., int]) -> Storyboard:
    def err(msg: str, *keys) -> InputError:
        n = line(*keys)
        return InputError(f"{name}{f' line {n}' if n else ''}: {msg}")

    if data is None:
        raise err("the storyboard is empty; it needs `shots:`, a list of shots with prompt and seconds")
    if not isinstance(data, dict):
        raise err("a storyboard is a mapping with `shots:` (a list of shots with prompt and seconds)")
    unknown = [k for k in data if k not in TOP_KEYS]
    if unknown:
        raise err(f"unknown field {unknown[0]!r}; valid fields are {', '.join(TOP_KEYS)}", unknown[0])
    shots = data.get("shots")
    if not shots:
        raise err("the storyboard has no shots; add `shots:` with at least one shot (prompt, seconds)", "shots")
    if not isinstance(shots, list):
        raise err("`shots` must be a list of shots, each with prompt and seconds", "shots")
    out = []
    for i, raw in enumerate(shots):
        where = f"shot {i + 1}"
        if not isinstance(raw, dict):
            raise err(f"{where} must be a mapping with prompt and seconds", "shots", i)
        bad = [k for k in raw if k not in SHOT_KEYS]
        if bad:
            raise err(f"{where}: unknown field {bad[0]!r}; valid fields are {', '.join(SHOT_KEYS)}", "shots", i, bad[0])
        prompt = raw.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise err(f"{where}: prompt must be non-empty text", "shots", i, "prompt")
        seconds = raw.get("seconds")
        if seconds is None:
            raise err(f"{where} needs seconds: how long it lasts, a number > 0 (e.g. `seconds: 2`)", "shots", i)
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
            raise err(f"{where}: seconds must be a number > 0, got {seconds!r}", "shots", i, "seconds")
        tr = raw.get("transition", Transition.CONTINUOUS.value)
        if tr not in [t.value for t in Transition]:
            raise err(f"{where}: transition must be one of {', '.join(t.value for t in Transition)}, got {tr!r}",
                      "shots", i, "transition")
        out.append(StoryShot(prompt.strip(), float(seconds), Transition(tr), line("shots", i)))
    width = height = None
    if data.get("size") is not None:
        from kino.commands.generate import parse_size

        try:
            width, height = parse_size(str(data["size"]))
        except InputError as e:
            raise err(str(e), "size") from None
    seed = data.get("seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise err(f"seed must be a whole number >= 0, got {seed!r}", "seed")
    fps = data.get("fps")
    if fps is not None and (isinstance(fps, bool) or not isinstance(fps, (int, float)) or fps <= 0):
        raise err(f"fps must be a number > 0, got {fps!r}", "fps")
    for key in ("subject", "negative"):
        if data.get(key) is not None and not isinstance(data[key], str):
            raise err(f"{key} must be text, got {data[key]!r}", key)
    return Storyboard(tuple(out), data.get("subject"), seed, width, height, None if fps is None else float(fps),
                      data.get("negative"), name)


def storyboard_request(board: Storyboard, **settings):
    """The storyboard as a kino.generation.GenerationRequest of mode storyboard (its size, fps, seed and
    negative prompt; `settings` are further request fields: steps, guidance, enhance, c2pa, a seed that
    overrides the board's...). Run it with kino.generation.generate_file like any request."""
    from kino.generation import GenerationRequest, Shot

    seed = settings.pop("seed", None)
    return GenerationRequest(
        mode="storyboard", shots=tuple(Shot(s.prompt, s.seconds, str(s.transition)) for s in board.shots),
        subject=board.subject, seed=seed if seed is not None else board.seed, width=board.width,
        height=board.height, fps=board.fps, negative_prompt=board.negative, **settings)


def generate_storyboard_file(model, board: Storyboard, output: str | os.PathLike, model_name: str | None = None,
                             safety=None, enhancer=None, callback: Callable[[int, int], None] | None = None,
                             on_prompt: Callable[[str], None] | None = None, **settings):
    """`generate_file(model, storyboard_request(board, **settings), output, ...)`: the storyboard's video
    through the one path (policy on every shot's prompt and on their joined text, enhancement with one
    context for every shot, frame review, watermark, C2PA with mode "storyboard").

    Returns a kino.generation.GenerationResult whose seams are the window and shot boundaries.
    """
    from kino.generation import generate_file

    return generate_file(model, storyboard_request(board, **settings), output, model_name=model_name, safety=safety,
                         enhancer=enhancer, callback=callback, on_prompt=on_prompt)
