"""What a user asks for, and everything that can be checked before a model loads.

`GenerationRequest` is a flat frozen dataclass of JSON-able fields (paths as str, sequences as tuples,
shots as dicts after `asdict`), validated when built, so the server stores it and rebuilds it as
`GenerationRequest(**stored)`. `check_request` checks the output path and probes every input file;
`check_device` the torch device; `resolve(request, model.defaults)` is the one place where size, fps,
seconds, steps and guidance are filled from a model's defaults (the command line, the server, `kino
eval` and storyboards all call it), with the sizes a video input keeps (`kept_size`) and the warning
for a size far from every trained size (`size_warning`). kino.generation runs a checked request.
"""

from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

from kino.errors import InputError
from kino.modes import Mode

VIDEO_MODES = (Mode.EXTEND, Mode.EDIT, Mode.CONNECT, Mode.LOOP)  # modes whose input is a video: they keep its size
FAR_FROM_TRAINED = 4.0  # an asked area this many times above (or below) every trained size gets a warning

EDIT_STRENGTH = 0.6  # SDEdit's default noise level: keeps the layout, redraws the detail


@dataclass(frozen=True)
class Shot:
    """One shot of a storyboard request: its prompt, length and how it follows the previous shot."""

    prompt: str
    seconds: float
    transition: str = "continuous"  # kino.storyboard.Transition: continuous or cut


@dataclass(frozen=True)
class GenerationRequest:
    """What a user asks for. None means "the model's default" (see `resolve`).

    Every field is JSON-able (paths as str, sequences as tuples, shots as dicts after `asdict`), so
    `GenerationRequest(**json.loads(json.dumps(request.to_dict())))` rebuilds it; lists are turned back
    into tuples here. Invalid values raise InputError with one line when the request is built.
    """

    prompt: str = ""  # a storyboard's prompt may stay empty: its shots carry the prompts
    mode: str = Mode.TEXT.value
    negative_prompt: str | None = None
    seconds: float | None = None
    fps: float | None = None
    width: int | None = None
    height: int | None = None
    steps: int | None = None
    guidance: float | None = None
    seed: int | None = None
    enhance: bool = True  # expand the prompt into the detailed caption style the model trained on
    c2pa: bool = True  # sign the output with C2PA content credentials
    include_prompt: bool = False  # put the prompts into the C2PA manifest (opt-in)
    image_only: bool = False  # one frame, written as a PNG (text-to-image)
    from_image: str | None = None  # image-to-video: the first frame (or last, with to_image)
    to_image: bool = False
    video: str | None = None  # extend, loop (optional), edit
    videos: tuple[str, ...] = ()  # connect: (A, B)
    keyframes: tuple[str, ...] = ()  # interpolate: images, or video frames as clip.mp4@SECONDS
    key_times: tuple[float, ...] | None = None  # seconds of each keyframe (default: evenly spread)
    strength: float | None = None  # edit: SDEdit noise level in [0, 1] (default EDIT_STRENGTH)
    backward: bool = False  # extend before the video instead of after it
    condition_guidance: float | None = None  # guidance scale of the condition frames (1: off)
    prompts: tuple[str, ...] = ()  # long videos: one prompt per window (cycled), besides `prompt`
    shots: tuple[Shot, ...] = ()  # storyboard: the shots in order
    subject: str | None = None  # storyboard: said in every shot's prompt, so cuts keep the cast

    def __post_init__(self) -> None:
        _set = object.__setattr__
        for name in ("from_image", "video"):  # paths as str
            v = getattr(self, name)
            if v is not None:
                _set(self, name, os.fspath(v))
        _set(self, "videos", tuple(os.fspath(v) for v in self.videos))
        _set(self, "keyframes", tuple(os.fspath(v) for v in self.keyframes))
        _set(self, "prompts", tuple(self.prompts))
        if self.key_times is not None:
            _set(self, "key_times", tuple(_number(t, "a key time", low=0.0, inclusive=True) for t in self.key_times))
        _set(self, "shots", tuple(s if isinstance(s, Shot) else _shot(s, i) for i, s in enumerate(self.shots)))
        try:
            mode = Mode(self.mode)
        except ValueError:
            raise InputError(f"unknown mode {self.mode!r}; choose one of {', '.join(m.value for m in Mode)}") from None
        if mode is Mode.TEXT and self.from_image:
            mode = Mode.IMAGE_TO_VIDEO  # --from-image alone means image-to-video
        _set(self, "mode", mode.value)
        if not isinstance(self.prompt, str):
            raise InputError(f"the prompt must be text, got {type(self.prompt).__name__}")
        if mode is Mode.STORYBOARD:
            if not self.shots:
                raise InputError("a storyboard needs at least one shot (prompt and seconds)")
        elif not self.prompt.strip():
            raise InputError('the prompt is empty; describe the video, e.g. "a red circle moves left"')
        self._check_settings()
        need = {Mode.IMAGE_TO_VIDEO: ("from_image", self.from_image), Mode.EXTEND: ("video", self.video),
                Mode.EDIT: ("video", self.video)}
        if mode in need and not need[mode][1]:
            raise InputError(f"mode {mode} needs {need[mode][0]}")
        if mode is Mode.CONNECT and len(self.videos) != 2:
            raise InputError(f"mode connect needs two videos, got {len(self.videos)}")
        if mode is Mode.INTERPOLATE and len(self.keyframes) < 2:
            raise InputError(f"mode interpolate needs at least 2 keyframes, got {len(self.keyframes)}")
        if self.key_times is not None and len(self.key_times) != len(self.keyframes):
            raise InputError(f"{len(self.keyframes)} keyframes but {len(self.key_times)} key times")
        if self.image_only and mode is not Mode.TEXT:
            raise InputError(f"--image-only makes a text-to-image still; it does not combine with mode {mode}"
                             + (" (--from-image animates an image; drop one of them)" if self.from_image else ""))
        if self.to_image and mode is not Mode.IMAGE_TO_VIDEO:
            raise InputError("--to-image needs --from-image IMAGE")

    def _check_settings(self) -> None:
        _set = object.__setattr__
        if self.seconds is not None:
            _set(self, "seconds", _number(self.seconds, "--seconds"))
        if self.fps is not None:
            _set(self, "fps", _number(self.fps, "--fps", high=240.0))
        for name in ("width", "height"):
            v = getattr(self, name)
            if v is not None:
                if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                    raise InputError(f"{name} must be a whole number > 0, got {v!r}; e.g. --size 64x64")
        if (self.width is None) != (self.height is None):
            raise InputError("give both width and height (--size WIDTHxHEIGHT), or neither")
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int)
                                       or self.steps < 1):
            raise InputError(f"--steps must be a whole number >= 1, got {self.steps!r}")
        if self.guidance is not None:
            _set(self, "guidance", _number(self.guidance, "--guidance", low=0.0, inclusive=True))
        if self.condition_guidance is not None:
            _set(self, "condition_guidance", _number(self.condition_guidance, "--condition-guidance", low=0.0,
                                                     inclusive=True))
        if self.strength is not None:
            s = _number(self.strength, "--strength", low=0.0, inclusive=True)
            if s > 1.0:
                raise InputError(f"strength must be in [0, 1] (0 keeps the input, 1 ignores it), got {s:g}")
            _set(self, "strength", s)
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, int)
                                      or not 0 <= self.seed < 2**63):
            raise InputError(f"--seed must be a whole number in [0, 2^63), got {self.seed!r}")

    @property
    def all_prompts(self) -> tuple[str, ...]:
        """Every prompt the user wrote: the prompt, the window prompts, each storyboard shot (with the subject)."""
        if Mode(self.mode) is Mode.STORYBOARD:
            return tuple(self.shot_prompt(s) for s in self.shots)
        return (self.prompt, *(p for p in self.prompts if p.strip()))

    def shot_prompt(self, shot: Shot) -> str:
        """A storyboard shot's prompt with the shared subject description (when there is one)."""
        return f"{self.subject}. {shot.prompt}" if self.subject else shot.prompt

    @property
    def manifest_mode(self) -> str:
        """The mode as the C2PA manifest records it."""
        if self.mode == Mode.TEXT:
            return "text-to-image" if self.image_only else "text-to-video"
        return self.mode

    def to_dict(self) -> dict:
        """The request as JSON-able values: `GenerationRequest(**d)` rebuilds it."""
        return asdict(self)


def _number(value, what: str, low: float = 0.0, high: float | None = None, inclusive: bool = False) -> float:
    """A finite float above `low` (or at it, when inclusive) and at most `high`; InputError otherwise."""
    if isinstance(value, bool):
        raise InputError(f"{what} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InputError(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(v):
        raise InputError(f"{what} must be a finite number, got {value!r}")
    if v < low or (v == low and not inclusive):
        raise InputError(f"{what} must be {'>=' if inclusive else '>'} {low:g}, got {v:g}")
    if high is not None and v > high:
        raise InputError(f"{what} must be at most {high:g}, got {v:g}")
    return v


def _shot(raw, i: int) -> Shot:
    if not isinstance(raw, dict) or set(raw) - {f.name for f in fields(Shot)}:
        raise InputError(f"shot {i + 1} must be a mapping of prompt, seconds and transition, got {raw!r}")
    prompt = raw.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError(f"shot {i + 1}: prompt must be non-empty text")
    transition = raw.get("transition", "continuous")
    if transition not in ("continuous", "cut"):
        raise InputError(f"shot {i + 1}: transition must be one of cut, continuous, got {transition!r}")
    return Shot(prompt.strip(), _number(raw.get("seconds"), f"shot {i + 1}: seconds"), str(transition))


# -- before any model loads -----------------------------------------------------------------------


def check_request(request: GenerationRequest, output: str | os.PathLike | None = None) -> None:
    """Check what can be checked without a model: the output path fits the mode and can be written,
    and every input file exists and is readable media (a header probe, no decoding). InputError or
    MediaError with one line."""
    from kino.io import probe

    if output is not None:
        check_output(request, output)
    inputs = [("--from-image", request.from_image), ("the video", request.video),
              *(("a video", v) for v in request.videos), *(("a keyframe", k) for k in request.keyframes)]
    for what, path in inputs:
        if path is None:
            continue
        text = str(path)
        if "@" in text and not Path(text).exists():  # clip.mp4@1.5: a video's frame
            text, _, when = text.rpartition("@")
            _number(when, f"{path}: the time after @", inclusive=True)
        p = Path(text)
        if not p.exists():
            from kino.errors import MediaError

            raise MediaError(f"{what} {p} does not exist")
        probe(p)  # MediaError (exit 3) for an empty or unreadable file


def check_output(request: GenerationRequest, output: str | os.PathLike) -> None:
    """The output path: a file (not a folder) in a folder that can be written, with a suffix that fits
    the mode (.png only for one frame, .gif only without C2PA)."""
    import tempfile

    from kino.io import Format

    out = Path(output)
    if out.is_dir():
        raise InputError(f"the output {out} is a folder; give a file name, e.g. {out / 'out.mp4'}")
    fmt = Format.of(out)
    if fmt is Format.FRAMES:
        raise InputError(f"the output {out} has no suffix; give a file name ending in .mp4 (or .png for one frame)")
    if request.c2pa and fmt not in (Format.MP4, Format.PNG):
        raise InputError(f"cannot sign {out.name}: content credentials need .mp4 or .png; use .mp4, or pass "
                         "--no-c2pa for an unsigned .gif")
    # a text request's frame count is known once seconds and fps are (after `resolve`, or when both are given)
    known = request.seconds is not None and request.fps is not None
    one_frame = request.image_only or (request.mode == Mode.TEXT and (not known
                                                                      or round(request.seconds * request.fps) == 1))
    if fmt is Format.PNG and not one_frame:
        hint = " (or --image-only for one frame)" if request.mode == Mode.TEXT else ""
        raise InputError(f"{out.name} is a PNG and holds one frame, but {request.mode} makes a video; use .mp4{hint}")
    parent = out.parent
    if not parent.is_dir():
        raise InputError(f"cannot write {out}: folder {parent} does not exist")
    try:  # a real probe: permissions, read-only or special file systems (/proc) all show here
        fd, name = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".probe", dir=parent)
        os.close(fd)
        os.unlink(name)
    except OSError as e:
        raise InputError(f"cannot write {out}: folder {parent} is not writable ({e.strerror or e})") from None


def check_device(device: str) -> None:
    """InputError with one line when torch cannot use `device` (e.g. cuda on a CPU-only torch)."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise InputError(f"unknown device {device!r}; use cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        build = "a CPU-only build" if torch.version.cuda is None else "a CUDA build that finds no GPU"
        raise InputError(f"--device {device}: this torch ({torch.__version__}) is {build}; use --device cpu, "
                         "or install a CUDA torch (see the README)")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise InputError(f"--device {device}: there are {torch.cuda.device_count()} GPUs (cuda:0 ..)")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(f"--device {device}: MPS is not available here; use --device cpu")


# -- defaults: the one place ----------------------------------------------------------------------


def resolve(request: GenerationRequest, defaults, notes: list[str] | None = None) -> GenerationRequest:
    """The request with size, fps, seconds, steps and guidance filled from `defaults` (a
    kino.families.ModelDefaults) and checked against what the model takes. No setting is left None.

    A mode whose input is a video (extend, edit, connect, loop of a video) keeps the video's size when
    no size is asked (rounded to the model's size multiple, with a note; the model's default size, with
    a note, when the video is far larger than anything the model was trained on). An interpolation
    without seconds lasts until its last keyframe (or one pass, when the keyframes are spread evenly).
    """
    notes = notes if notes is not None else []
    width, height = request.width, request.height
    if width is None and Mode(request.mode) in VIDEO_MODES:
        width, height = _input_size(request, defaults, notes)
    width, height = int(width or defaults.width), int(height or defaults.height)
    check_size(width, height, defaults.size_multiple)
    fps = float(request.fps if request.fps is not None else defaults.fps)
    seconds = request.seconds
    if seconds is None and request.mode == Mode.INTERPOLATE:
        tf = defaults.frame_multiple
        if request.key_times is not None:
            last = max(1, round(request.key_times[-1] * fps / tf)) if request.key_times[-1] > 0 else 0
            seconds = (1 + tf * last) / fps
        elif defaults.max_frames:
            seconds = defaults.max_frames / fps
    if seconds is None and request.mode == Mode.STORYBOARD:
        seconds = sum(s.seconds for s in request.shots)
    seconds = float(seconds if seconds is not None else defaults.seconds)
    if round(seconds * fps) < 1 and not request.image_only:
        raise InputError(f"{seconds:g} s at {fps:g} fps is less than one frame; ask for at least {1 / fps:.3g} s")
    steps = int(request.steps if request.steps is not None else defaults.steps)
    guidance = float(request.guidance if request.guidance is not None else defaults.guidance)
    return replace(request, width=width, height=height, fps=fps, seconds=seconds, steps=steps, guidance=guidance)


def check_size(width: int, height: int, multiple: int) -> None:
    """InputError naming the nearest valid sizes when width x height is not a multiple of `multiple`."""
    m = multiple
    if width < m or height < m or width % m or height % m:
        lo_w, lo_h = max(m, width // m * m), max(m, height // m * m)
        hi_w, hi_h = max(m, -(-width // m) * m), max(m, -(-height // m) * m)
        near = f"{lo_w}x{lo_h}" if (lo_w, lo_h) == (hi_w, hi_h) else f"{lo_w}x{lo_h} or {hi_w}x{hi_h}"
        raise InputError(f"size {width}x{height} is not a multiple of {m}; try {near}")


def _input_size(request: GenerationRequest, defaults, notes: list[str]) -> tuple[int | None, int | None]:
    """The size of a video-input mode's (first) video, as the model can take it; (None, None) for the default."""
    path = request.videos[0] if request.mode == Mode.CONNECT else request.video
    if path is None:  # a loop made from its prompt
        return None, None
    return kept_size(path, defaults, notes) or (None, None)


def kept_size(path: str | os.PathLike, defaults, notes: list[str] | None = None) -> tuple[int, int] | None:
    """The size a video input is worked at when no size is asked: its own, rounded to the model's size
    multiple (with a note), or None (the model's default size, with a note) when it is far larger than
    every size the model was trained at. The command line and the server both use it."""
    from kino.io import probe

    notes = notes if notes is not None else []
    info = probe(path)
    w0, h0, m = info.width, info.height, defaults.size_multiple
    largest = max((w * h for w, h in trained_sizes(defaults)), default=defaults.width * defaults.height)
    if w0 * h0 > FAR_FROM_TRAINED * largest:
        notes.append(f"{path} is {w0}x{h0}, far larger than this model's trained sizes "
                     f"({_sizes_text(defaults)}); working at {defaults.width}x{defaults.height} (pass --size to choose)")
        return None
    w, h = max(m, round(w0 / m) * m), max(m, round(h0 / m) * m)
    if (w, h) != (w0, h0):
        notes.append(f"{path} is {w0}x{h0}; the model needs multiples of {m}, so it is resized to {w}x{h}")
    return w, h


def trained_sizes(defaults) -> tuple[tuple[int, int], ...]:
    """The sizes a model was trained at (its default size when it does not say)."""
    return tuple(getattr(defaults, "trained_sizes", ()) or ()) or ((defaults.width, defaults.height),)


def _sizes_text(defaults) -> str:
    return ", ".join(f"{w}x{h}" for w, h in trained_sizes(defaults))


def size_warning(request: GenerationRequest, defaults) -> str | None:
    """One line when a resolved request's size is far from every size the model was trained at."""
    area = request.width * request.height
    areas = [w * h for w, h in trained_sizes(defaults)]
    if all(area > FAR_FROM_TRAINED * a or area * FAR_FROM_TRAINED < a for a in areas):
        return (f"{request.width}x{request.height} is far from the sizes this model was trained at "
                f"({_sizes_text(defaults)}): expect it to be slow and the video to follow the prompt poorly")
    return None
