"""Prompt enhancement: turn a short user prompt into the detailed caption the model trained on.

Sora, like DALL-E 3, trains on highly descriptive captions and has a language model expand a
user's short prompt into one at generation time. kino ships two enhancers:

- `WorldExpander` (default, offline): parses the prompt with the world's parser, keeps every
  attribute the user asked for, fills what they left open from the world's priors (seeded), and
  writes the detailed caption in the training captioner's style. Words it does not know are
  kept, in a closing sentence, never dropped.
- `ChatEnhancer`: any OpenAI-compatible chat completions endpoint (base URL, model, key and
  timeout from the config or KINO_ENHANCE_* variables), with a retry and a timeout; on any
  failure it falls back to the world expander and says so in a warning.
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
import warnings
from dataclasses import dataclass, field, replace
from enum import StrEnum
from functools import lru_cache
from typing import Protocol

import numpy as np

from kino.enhance_inputs import INPUT_FRAMES, Inputs, request_inputs, with_inputs
from kino.errors import InputError

__all__ = ["INPUT_FRAMES", "ChatEnhancer", "EnhanceBackend", "Enhanced", "Enhancer", "EnhancerConfig", "Inputs",
           "WorldExpander", "complete_spec", "enhance", "make_enhancer", "request_inputs", "unknown_words",
           "with_inputs"]


class EnhanceBackend(StrEnum):
    WORLD = "world"
    OPENAI = "openai"


@dataclass(frozen=True)
class EnhancerConfig:
    """Which enhancer to use and how to reach an LLM. `from_env` reads KINO_ENHANCE_*."""

    backend: EnhanceBackend = EnhanceBackend.WORLD
    base_url: str | None = None  # required by the openai backend: there is no default endpoint
    model: str = "gpt-4o-mini"
    api_key: str | None = None
    timeout: float = 20.0  # seconds per request
    retries: int = 1  # extra attempts after the first
    temperature: float = 0.2

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "backend", EnhanceBackend(self.backend))
        except ValueError:
            valid = ", ".join(b.value for b in EnhanceBackend)
            raise InputError(f"unknown enhancer backend {self.backend!r}; valid: {valid}") from None
        if self.backend is EnhanceBackend.OPENAI and not self.base_url:
            raise InputError("the openai enhancer needs an endpoint: set KINO_ENHANCE_BASE_URL (an OpenAI-compatible "
                             "chat server, e.g. http://HOST:PORT/v1); without one, use the offline world enhancer")
        if self.base_url and not self.base_url.startswith(("http://", "https://")):
            raise InputError(f"enhancer base URL {self.base_url!r} must start with http:// or https://")
        if self.timeout <= 0:
            raise InputError(f"enhancer timeout {self.timeout} must be positive")
        if self.retries < 0:
            raise InputError(f"enhancer retries {self.retries} must be 0 or more")

    @classmethod
    def from_env(cls, **overrides) -> EnhancerConfig:
        env = os.environ
        values = {
            "backend": env.get("KINO_ENHANCE_BACKEND", EnhanceBackend.WORLD.value),
            "base_url": env.get("KINO_ENHANCE_BASE_URL") or None,
            "model": env.get("KINO_ENHANCE_MODEL", cls.model),
            "api_key": env.get("KINO_ENHANCE_API_KEY") or env.get("OPENAI_API_KEY"),
            "timeout": float(env.get("KINO_ENHANCE_TIMEOUT", cls.timeout)),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)


@dataclass(frozen=True)
class Enhanced:
    """An enhanced prompt and how it was made."""

    prompt: str  # what the user typed
    text: str  # the detailed caption to generate from
    backend: EnhanceBackend
    seed: int
    fell_back: bool = False  # True when the LLM failed and the world expander answered
    notes: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {
            "prompt": self.prompt,
            "enhanced_prompt": self.text,
            "backend": self.backend.value,
            "seed": self.seed,
            "fell_back": self.fell_back,
        }


class Enhancer(Protocol):
    def enhance(self, prompt: str, seed: int = 0, context: str | None = None, inputs: Inputs | None = None,
                still: bool = False) -> Enhanced: ...


# ----------------------------------------------------------------------------- world expander

_STOPWORDS = frozenset(
    "a an the and or of in on at to with from into onto over under by for is are be being its it "
    "that this these those as while then there their his her very some one two three 1 2 3 ,".split()
)


class WorldExpander:
    """The offline, world-aware expander (deterministic per prompt and seed).

    It never refuses a prompt the model could take as written: a prompt that names nothing the world
    can draw ("a cat playing piano in a jazz club") is passed through as written, and one that asks more
    than a scene holds ("five red balls") is drawn with what fits and keeps the user's words; each says
    so in one line of `Enhanced.notes`.
    """

    def __init__(self, width: int = 64, height: int = 64, fps: float = 8.0, num_frames: int = 17) -> None:
        self.canvas = (width, height, fps, num_frames)

    def enhance(self, prompt: str, seed: int = 0, context: str | None = None, inputs: Inputs | None = None,
                still: bool = False) -> Enhanced:
        """The detailed caption of `prompt`. What the prompt leaves open is drawn from a generator seeded
        by (prompt, seed), or by (context, seed) when given: the shots of one storyboard pass their
        shared subject, so each shot fills the open attributes (background, camera, unasked colors)
        the same way and the subject stays consistent from shot to shot.

        `inputs` (a conditioned request's image, video or keyframes) are read with the world's analyzer
        first: what they show (background, objects, and for a video its motion and camera) fills what
        the prompt leaves open, so the caption never contradicts the frames the video starts from.
        `still` (text-to-image) fills nothing that moves: objects still, a static camera, no events.
        """
        from kino.world.caption import CaptionLevel, caption
        from kino.world.parse import parse_prompt
        from kino.world.spec import MAX_OBJECTS

        prompt = _check_prompt(prompt)
        asked = parse_prompt(prompt)
        unknown = unknown_words(prompt)
        if inputs is None and not asked.objects and not asked.count and unknown:
            note = ("the prompt names nothing kino's world draws (shapes, colors, motions, camera, backgrounds); "
                    "it was given to the model as written")
            return Enhanced(prompt, prompt, EnhanceBackend.WORLD, seed, notes=(note,))
        notes: list[str] = []
        n_asked = max(len(asked.objects), asked.count or 0)
        if n_asked > MAX_OBJECTS:
            notes.append(f"a scene of kino's world holds at most {MAX_OBJECTS} objects; the enhanced prompt "
                         f"describes {MAX_OBJECTS} of the {n_asked} asked and keeps your words")
            asked = replace(asked, objects=asked.objects[:MAX_OBJECTS], count=MAX_OBJECTS)
        if inputs is not None:
            asked = with_inputs(asked, inputs)
        rng = np.random.default_rng(_seed_of(prompt if context is None else context, seed))
        try:
            spec = complete_spec(asked, rng, *self.canvas)
            if still:
                spec = _still(spec, asked)
            text = caption(spec, CaptionLevel.DETAILED, seed=seed)
        except InputError as e:  # the world cannot hold what was asked: the model takes it as written
            note = f"the world cannot draw this prompt ({e}); it was given to the model as written"
            return Enhanced(prompt, prompt, EnhanceBackend.WORLD, seed, notes=(note,))
        if unknown or notes:
            # Keep what the world cannot draw in the user's own words, in one closing sentence.
            text = f"{text.rstrip()} The scene is described as: {prompt.strip().rstrip('.')}."
        return Enhanced(prompt, text, EnhanceBackend.WORLD, seed, notes=tuple(notes))


def _still(spec, asked):
    """`spec` as one frame shows it: unasked motions still, the camera static unless asked, no unasked events."""
    from kino.world.spec import Camera, Motion

    objects = tuple(
        o if i < len(asked.objects) and asked.objects[i].motion else replace(o, motion=Motion.STILL)
        for i, o in enumerate(spec.objects)
    )
    events = tuple(e for e in spec.events if e.kind in asked.events)
    return replace(spec, objects=objects, camera=asked.camera or Camera.STATIC, events=events)


COMPLETE_TRIES = 4000  # prior draws complete_spec tries before it falls back (~50 us each)


def complete_spec(asked, rng: np.random.Generator, width: int, height: int, fps: float, num_frames: int):
    """A full SceneSpec that has everything `asked` (a PromptSpec) and priors for the rest.

    The rest is a draw from the world's priors given what is asked (rejection sampling): a training
    scene is drawn with exactly the asked number of objects, the asked attributes are put in, and
    the draw is kept only when the scene still keeps the world's rules (`follows_rules`: a backdrop
    the asked colors stand out on, distinct colors, events that fit the asked motions), has every
    asked event, and shows no held-out pair the prompt did not ask for. So the caption never says
    what the renderer cannot show ("circling" and "leaves the frame"), never puts a white object on
    a white backdrop, and never adds a combination the model has not trained on. After
    COMPLETE_TRIES draws (a prompt asking for something the rules forbid) the last draw is kept with
    unasked events that contradict it dropped and asked events added.
    """
    from kino.world.sampler import Split, follows_rules, heldout_pairs, sample_spec
    from kino.world.spec import EventKind

    n_asked = max(len(asked.objects), asked.count or 0)
    last = None
    for _ in range(COMPLETE_TRIES):
        spec = sample_spec(rng, Split.TRAIN, width=width, height=height, fps=fps, num_frames=num_frames)
        if n_asked and len(spec.objects) != n_asked:
            continue
        last = spec = _put_asked(spec, asked)
        kinds = {e.kind for e in spec.events}
        if not set(asked.events) <= kinds or not follows_rules(spec):
            continue
        if any(not _asked_pair(asked, i, pair) for i, o in enumerate(spec.objects) for pair in heldout_pairs(o)):
            continue
        return spec
    if last is None:  # no draw had the asked count (more objects than a scene holds): the old way
        spec = sample_spec(rng, Split.TRAIN, width=width, height=height, fps=fps, num_frames=num_frames)
        objects = list(spec.objects)[:n_asked]
        while len(objects) < n_asked:
            objects.append(objects[-1])
        last = _put_asked(replace(spec, objects=tuple(objects)), asked)
    events = tuple(e for e in last.events if e.kind in asked.events or e.kind is EventKind.DAY_TO_NIGHT)
    return _with_events(replace(last, events=events), asked.events)


def _put_asked(spec, asked):
    """`spec` with the asked attributes of `asked` (objects by position, background, camera) put in."""
    from kino.world.spec import ObjectSpec

    objects = list(spec.objects)
    for i, q in enumerate(asked.objects[: len(objects)]):
        o = objects[i]
        objects[i] = ObjectSpec(
            shape=q.shape or o.shape,
            color=q.color or o.color,
            size=q.size or o.size,
            motion=q.motion or o.motion,
            x=o.x,
            y=o.y,
            speed=o.speed,
            depth=o.depth,
        )
    events = tuple(e for e in spec.events if e.subject < len(objects) and (e.other or 0) < len(objects))
    return replace(
        spec,
        objects=tuple(objects),
        background=asked.background or spec.background,
        camera=asked.camera or spec.camera,
        events=events,
    )


def _asked_pair(asked, i: int, pair: tuple) -> bool:
    """True when the prompt asked object `i` for both parts of the held-out `pair`."""
    if i >= len(asked.objects):
        return False
    q = asked.objects[i]
    return all(v in (q.shape, q.color, q.motion) for v in pair)


def _with_events(spec, kinds):
    from kino.world.spec import Event, EventKind

    have = {e.kind for e in spec.events}
    events = list(spec.events)
    for kind in kinds:
        if kind in have:
            continue
        two = len(spec.objects) >= 2
        if kind in (EventKind.COLLIDE, EventKind.OCCLUDE) and not two:
            spec = replace(spec, objects=spec.objects + (spec.objects[0],))
        other = 1 if kind in (EventKind.COLLIDE, EventKind.OCCLUDE) else None
        events.append(Event(kind, subject=0, other=other))
    return replace(spec, events=tuple(events))


def unknown_words(prompt: str) -> list[str]:
    """Words of `prompt` that the world does not know (stopwords aside).

    A word is known when the captioner uses it or the parser reads something from it alone.
    """
    from kino.world.parse import parse_prompt
    from kino.world.spec import PromptSpec

    vocab = _caption_vocabulary()
    words = re.findall(r"[a-z']+", prompt.lower())
    return [
        w
        for w in words
        if w not in vocab and w not in _STOPWORDS and parse_prompt(w) == PromptSpec()
    ]


@lru_cache(maxsize=1)
def _caption_vocabulary() -> frozenset[str]:
    """Every word the world captioner writes, over a fixed sample of scenes and all three levels."""
    from kino.world.caption import captions
    from kino.world.sampler import Split, sample_spec

    rng = np.random.default_rng(0)
    vocab: set[str] = set()
    for i in range(300):
        spec = sample_spec(rng, Split.TRAIN if i % 2 else Split.HELDOUT)
        for text in captions(spec, seed=i).values():
            vocab.update(re.findall(r"[a-z']+", text.lower()))
    return frozenset(vocab)


# ----------------------------------------------------------------------------- LLM backend

SYSTEM_PROMPT = (
    "You rewrite short prompts for a text-to-video model into one detailed descriptive paragraph, "
    "in the style of the examples. Keep every object, color, shape, size, motion, camera move, "
    "background and event the user asked for; add concrete details for what they left open; never "
    "contradict them. Answer with the paragraph only."
)


# the caption style each real-world family was trained on, after its own prompt guides: LTX-Video's README
# ("start with the main action ... specific movements ... appearance ... background ... camera angles ...
# lighting", one flowing paragraph under 200 words) and Wan's prompt extension (subject, scene, motion,
# camera language, atmosphere and style in one detailed paragraph)
FAMILY_SYSTEM_PROMPTS = {
    "ltx": ("You rewrite short prompts for the LTX-Video text-to-video model into one flowing, chronological "
            "paragraph of at most 200 words: start with the main action, then specific movements and gestures, "
            "the look of people and objects, the background and environment, camera angles and movement, and "
            "lighting and colors, as a cinematographer would describe a shot. Keep everything the user asked for; "
            "never contradict it. Answer with the paragraph only."),
    "wan": ("You rewrite short prompts for the Wan text-to-video model into one detailed paragraph: the subject "
            "and its appearance, the scene, the motion, the camera language (shot size, angle, movement), and the "
            "atmosphere and visual style. Keep everything the user asked for; never contradict it. Answer with the "
            "paragraph only."),
}


class ChatEnhancer:
    """An OpenAI-compatible chat completions endpoint, falling back to the world expander (for a real-world
    `family`, to the prompt as written). A real-world family gets its own caption style (FAMILY_SYSTEM_PROMPTS)
    and none of the world's examples."""

    def __init__(self, config: EnhancerConfig, fallback: Enhancer | None = None, family: str | None = None) -> None:
        self.config = config
        self.family = str(family) if family is not None and str(family) in FAMILY_SYSTEM_PROMPTS else None
        self.fallback = fallback or (AsWritten(self.family) if self.family else WorldExpander())

    def messages(self, prompt: str, inputs: Inputs | None = None, still: bool = False) -> list[dict]:
        if self.family:
            return [{"role": "system", "content": FAMILY_SYSTEM_PROMPTS[self.family]},
                    {"role": "user", "content": prompt}]
        msgs = [{"role": "system", "content": SYSTEM_PROMPT}]
        for short, detailed in style_examples():
            msgs += [{"role": "user", "content": short}, {"role": "assistant", "content": detailed}]
        return msgs + [{"role": "user", "content": prompt + _situation(inputs, still)}]

    def enhance(self, prompt: str, seed: int = 0, context: str | None = None, inputs: Inputs | None = None,
                still: bool = False) -> Enhanced:
        prompt = _check_prompt(prompt)  # the chat model sees the prompt alone; context seeds the fallback
        errors = []
        for attempt in range(self.config.retries + 1):
            try:
                text = self._ask(prompt, seed, inputs, still)
                return Enhanced(prompt, text, EnhanceBackend.OPENAI, seed)
            except _ChatFailure as e:
                errors.append(str(e))
                if attempt < self.config.retries:
                    time.sleep(min(2.0, 0.25 * 2**attempt))
        note = f"prompt enhancer at {self.config.base_url} failed ({errors[-1]}); used the offline expander"
        warnings.warn(note, stacklevel=2)
        out = self.fallback.enhance(prompt, seed, context, inputs, still)
        return replace(out, fell_back=True, notes=(note, *out.notes))

    def _ask(self, prompt: str, seed: int, inputs: Inputs | None = None, still: bool = False) -> str:
        body = {
            "model": self.config.model,
            "messages": self.messages(prompt, inputs, still),
            "temperature": self.config.temperature,
            "seed": seed,
        }
        req = urllib.request.Request(
            self.config.base_url.rstrip("/") + "/chat/completions",
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json"}
            | ({"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}),
            method="POST",
        )
        try:
            with urllib.request.urlopen(req, timeout=self.config.timeout) as resp:
                payload = json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            raise _ChatFailure(f"HTTP {e.code}") from None
        except (urllib.error.URLError, TimeoutError, OSError) as e:
            raise _ChatFailure(f"unreachable: {getattr(e, 'reason', e)}") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise _ChatFailure("the reply is not JSON") from None
        try:
            text = payload["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError):
            raise _ChatFailure("the reply has no choices[0].message.content") from None
        if not isinstance(text, str) or not text.strip():
            raise _ChatFailure("the reply is empty")
        return " ".join(text.split())


class _ChatFailure(Exception):
    pass


def _situation(inputs: Inputs | None, still: bool) -> str:
    """What the chat model must stay consistent with, appended to the user's prompt."""
    parts = []
    if still:
        parts.append("This is a single still image: describe no motion, camera move or event.")
    if inputs is not None:
        from kino.enhance_inputs import seen

        analysis, video = seen(inputs)
        what = "given video shows" if video else "given image shows"
        parts.append(f"The {what}: {analysis.summary()}. Keep what it shows; describe only what it leaves open.")
    return ("\n\n" + " ".join(parts)) if parts else ""


def style_examples(n: int = 3) -> list[tuple[str, str]]:
    """(short, detailed) caption pairs from the world captioner: the style the model trained on."""
    from kino.world.caption import CaptionLevel, caption
    from kino.world.sampler import Split, sample_spec

    rng = np.random.default_rng(1234)
    pairs = []
    for i in range(n):
        spec = sample_spec(rng, Split.TRAIN)
        pairs.append(
            (caption(spec, CaptionLevel.SHORT, seed=i), caption(spec, CaptionLevel.DETAILED, seed=i))
        )
    return pairs


# ----------------------------------------------------------------------------- entry point

def make_enhancer(config: EnhancerConfig | None = None, family: str | None = None) -> Enhancer:
    """The enhancer a config asks for (the offline world expander by default). For a real-world model
    (`family` "ltx" or "wan") the offline expander, which describes kino's procedural world, is replaced
    by `AsWritten`: the prompt goes to the model as typed, with one note; the LLM backend writes in that
    family's caption style."""
    config = config or EnhancerConfig.from_env()
    if config.backend is EnhanceBackend.OPENAI:
        return ChatEnhancer(config, family=family)
    if family is not None and str(family) != "kino":
        return AsWritten(str(family))
    return WorldExpander()


class AsWritten:
    """The offline "enhancer" of a real-world model (LTX-Video, Wan): the prompt as written, one note."""

    def __init__(self, family: str) -> None:
        self.family = family

    def enhance(self, prompt: str, seed: int = 0, context: str | None = None, inputs: Inputs | None = None,
                still: bool = False) -> Enhanced:
        prompt = _check_prompt(prompt)
        note = (f"offline enhancement describes kino's own world, not a {self.family} model's; the prompt was given "
                f"as written (set KINO_ENHANCE_BACKEND=openai with an endpoint for an LLM rewrite)")
        return Enhanced(prompt, prompt, EnhanceBackend.WORLD, seed, notes=(note,))


def enhance(prompt: str, seed: int = 0, config: EnhancerConfig | None = None, inputs: Inputs | None = None,
            still: bool = False) -> Enhanced:
    """Enhance one prompt with the configured enhancer (see `WorldExpander.enhance` for inputs and still)."""
    return make_enhancer(config).enhance(prompt, seed, inputs=inputs, still=still)


def _check_prompt(prompt: str) -> str:
    if not isinstance(prompt, str) or not prompt.strip():
        raise InputError("the prompt is empty; describe the video, e.g. 'a red ball bouncing'")
    return prompt


def _seed_of(prompt: str, seed: int) -> int:
    # The same prompt and seed always give the same caption; different prompts draw differently.
    import zlib

    return (zlib.crc32(prompt.strip().lower().encode()) ^ (seed * 0x9E3779B1)) & 0xFFFFFFFF
