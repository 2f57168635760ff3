"""The safety policy and its configuration file: categories, thresholds, allow-lists, frame review, C2PA.

The shipped default is kino/safety/data/policy.toml. A user's policy file (TOML or JSON, same
keys) is given by path or by the environment variable KINO_SAFETY_POLICY; keys it leaves out keep
their defaults. Example (TOML):

    categories = ["sexual", "violence", "hate", "self_harm", "likeness", "ip", "abuse"]
    profanity_threshold = 0.9        # alt-profanity-check's probability; omit or -1 to turn it off
    allow = ["killer whale", "bloody mary"]
    [classifier]                     # the learned layer over MiniLM sentence embeddings
    enabled = true
    thresholds = { ip = 0.9 }        # per category; categories left out keep the shipped thresholds
    [terms]                          # extra terms per category, on top of the shipped lists
    ip = ["my rival's mascot"]
    [frames]                         # an ONNX image classifier for frame review (optional)
    model = "nsfw.onnx"              # relative paths are relative to the policy file
    labels = ["safe", "unsafe"]
    unsafe = ["unsafe"]
    size = [224, 224]
    threshold = 0.5
    [c2pa]
    enabled = true
    cert = "/path/chain.pem"         # or KINO_C2PA_CERT; a local chain is made when neither is set
    key = "/path/key.pem"            # or KINO_C2PA_KEY
    trust = ["/path/root.pem"]       # anchors `kino verify` trusts
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field, replace
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from kino.errors import InputError


class Category(StrEnum):
    """What a prompt may be rejected for."""

    SEXUAL = "sexual"
    VIOLENCE = "violence"
    HATE = "hate"
    SELF_HARM = "self_harm"
    LIKENESS = "likeness"
    IP = "ip"
    ABUSE = "abuse"  # abusive or obscene language (alt-profanity-check's model)

    @property
    def description(self) -> str:
        return CATEGORY_TEXT[self]


CATEGORY_TEXT = {
    Category.SEXUAL: "sexual content",
    Category.VIOLENCE: "graphic violence or gore",
    Category.HATE: "hateful content",
    Category.SELF_HARM: "self-harm",
    Category.LIKENESS: "a real person's likeness",
    Category.IP: "a copyrighted character or brand",
    Category.ABUSE: "abusive or obscene language",
}


def _choices() -> str:
    return ", ".join(c.value for c in Category)


def category(value: str) -> Category:
    """A Category from its name, with a one-line error listing the valid names."""
    try:
        return Category(value)
    except ValueError:
        raise InputError(f"unknown safety category {value!r}; use one of {_choices()}") from None


@dataclass(frozen=True)
class SafetyPolicy:
    """Which categories are enforced, the profanity model's threshold and the allow-list."""

    categories: frozenset[Category] = frozenset(Category)
    profanity_threshold: float | None = 0.9  # None turns the model signal off
    allow: tuple[str, ...] = ()  # phrases that never count (killer whale, bloody mary)
    extra_terms: tuple[tuple[Category, tuple[str, ...]], ...] = ()
    classifier: bool = True  # the embedding classifier (kino/safety/classifier.py); False turns it off
    # per-category probability thresholds that replace the shipped ones (chosen on validation)
    classifier_thresholds: tuple[tuple[Category, float], ...] = ()
    # The learned layer judges prompts of at least this many words. On one- or two-word fragments
    # ("more", "before") sentence embeddings carry too little to decide and fired on harmless words;
    # named people, brands and obscenities in short prompts are still caught by the term lists and
    # the profanity model.
    classifier_min_words: int = 3

    def __post_init__(self) -> None:
        t = self.profanity_threshold
        if t is not None and not 0.0 < t <= 1.0:
            raise InputError(f"profanity_threshold {t} is out of range; use a value in (0, 1] or -1 for off")
        for cat, t in self.classifier_thresholds:
            if not 0.0 < t <= 1.0:
                raise InputError(f"classifier threshold {t} for {cat.value} is out of range; use a value in (0, 1]")

    def terms(self, cat: Category) -> tuple[str, ...]:
        """The shipped terms of a category plus the policy's extra ones."""
        from kino.safety.terms import shipped_terms

        extra = dict(self.extra_terms).get(cat, ())
        return shipped_terms(cat.value) + tuple(extra)


@dataclass(frozen=True)
class FrameReviewConfig:
    """An ONNX image classifier for frame review: its file, labels, input and decision rule."""

    model: str  # path of the .onnx file
    labels: tuple[str, ...]  # one per output, in order
    unsafe: tuple[str, ...]  # labels that flag a frame
    size: tuple[int, int] = (224, 224)  # (width, height) the model takes
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    threshold: float = 0.5  # a frame is flagged when an unsafe label's probability reaches this
    softmax: bool = True  # the model outputs logits (True) or probabilities (False)
    sample_frames: int = 8  # frames reviewed per video, evenly spaced, first and last included

    def __post_init__(self) -> None:
        if not self.labels:
            raise InputError("frame review needs labels, one per model output, e.g. ['safe', 'unsafe']")
        bad = [u for u in self.unsafe if u not in self.labels]
        if bad or not self.unsafe:
            raise InputError(f"unsafe labels {bad or '[]'} must be some of the labels {list(self.labels)}")
        if not 0.0 < self.threshold <= 1.0:
            raise InputError(f"frame threshold {self.threshold} is out of range; use a value in (0, 1]")
        if self.sample_frames < 1 or min(self.size) < 1:
            raise InputError("frame review needs sample_frames >= 1 and a positive input size")


@dataclass(frozen=True)
class SafetyConfig:
    """Everything kino's safety layer does: prompt policy, frame review, watermark and C2PA signing."""

    policy: SafetyPolicy = field(default_factory=lambda: config_from_mapping({}, _default_mapping()).policy)
    frames: FrameReviewConfig | None = None  # None: no review ("not configured" in the manifest)
    watermark: bool = True
    c2pa: bool = True
    include_prompt: bool = False  # the prompt goes into the manifest only when the user opts in
    cert: str | None = None  # PEM chain (end-entity first); KINO_C2PA_CERT when None
    key: str | None = None  # PEM private key; KINO_C2PA_KEY when None
    trust: tuple[str, ...] = ()  # PEM files of trust anchors for verification
    config_dir: str | None = None  # where the local signing chain lives; KINO_CONFIG_DIR when None

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> SafetyConfig:
        """From a policy file, else $KINO_SAFETY_POLICY, else the shipped default (see load_policy_file)."""
        return load_policy_file(path)

    def with_(self, **changes: Any) -> SafetyConfig:
        """A copy with some fields changed (e.g. c2pa=False for --no-c2pa)."""
        return replace(self, **changes)


def _read_mapping(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise InputError(f"safety policy file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".json":
            return json.loads(text)
        return tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise InputError(f"safety policy file {path} is not valid {path.suffix[1:].upper()}: {e}") from None


def _default_mapping() -> dict[str, Any]:
    text = (resources.files("kino.safety") / "data" / "policy.toml").read_text(encoding="utf-8")
    return tomllib.loads(text)


KNOWN_KEYS = {"categories", "profanity_threshold", "allow", "terms", "classifier", "frames", "c2pa", "watermark"}
CLASSIFIER_KEYS = {"enabled", "thresholds", "min_words"}


def _classifier_section(c: Any) -> tuple[bool, tuple[tuple[Category, float], ...], int]:
    """([classifier] enabled, thresholds, min_words) from a policy mapping's section."""
    if not isinstance(c, dict) or set(c) - CLASSIFIER_KEYS:
        raise InputError(f"bad [classifier] section in safety policy; valid keys: {sorted(CLASSIFIER_KEYS)}")
    thresholds = c.get("thresholds") or {}
    try:
        pairs = tuple(sorted((category(k), float(v)) for k, v in thresholds.items()))
    except (TypeError, ValueError, AttributeError):
        raise InputError("[classifier] thresholds must map categories to numbers, e.g. { ip = 0.9 }") from None
    min_words = c.get("min_words", 3)
    if not isinstance(min_words, int) or min_words < 1:
        raise InputError(f"[classifier] min_words must be a whole number >= 1, got {min_words!r}")
    return bool(c.get("enabled", True)), pairs, min_words


def config_from_mapping(d: dict[str, Any], base: dict[str, Any] | None = None) -> SafetyConfig:
    """A SafetyConfig from a policy mapping; keys it leaves out come from `base` (the shipped default)."""
    unknown = set(d) - KNOWN_KEYS
    if unknown:
        raise InputError(
            f"unknown key(s) {sorted(unknown)} in safety policy; valid keys: {sorted(KNOWN_KEYS)}"
        )
    m = {**(base or {}), **d}
    threshold = m.get("profanity_threshold", 0.9)
    threshold = None if threshold is None or threshold < 0 else float(threshold)
    extra = tuple((category(k), tuple(v)) for k, v in (m.get("terms") or {}).items())
    # a user's [classifier] section replaces keys of the shipped one, not the whole section
    user = d.get("classifier", {})
    if not isinstance(user, dict):
        raise InputError("[classifier] in a safety policy is a table, e.g. enabled = false")
    enabled, thresholds, min_words = _classifier_section({**(base or {}).get("classifier", {}), **user})
    policy = SafetyPolicy(
        categories=frozenset(category(c) for c in m.get("categories", [c.value for c in Category])),
        profanity_threshold=threshold,
        allow=tuple(m.get("allow", ())),
        extra_terms=extra,
        classifier=enabled,
        classifier_thresholds=thresholds,
        classifier_min_words=min_words,
    )
    frames = None
    if m.get("frames"):
        f = dict(m["frames"])
        try:
            frames = FrameReviewConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in f.items()})
        except TypeError as e:
            raise InputError(f"bad [frames] section in safety policy: {e}") from None
    c2pa = m.get("c2pa") or {}
    return SafetyConfig(
        policy=policy,
        frames=frames,
        watermark=bool(m.get("watermark", True)),
        c2pa=bool(c2pa.get("enabled", True)),
        cert=c2pa.get("cert"),
        key=c2pa.get("key"),
        trust=tuple(c2pa.get("trust", ())),
    )


def load_policy_file(path: str | os.PathLike | None = None) -> SafetyConfig:
    """The safety config from `path`, else from $KINO_SAFETY_POLICY, else the shipped default policy."""
    base = _default_mapping()
    if path is None:
        path = os.environ.get("KINO_SAFETY_POLICY") or None
    if path is None:
        return config_from_mapping({}, base)
    path = Path(path)
    return config_from_mapping(_relative_to(_read_mapping(path), path.parent), base)


def _relative_to(d: dict[str, Any], folder: Path) -> dict[str, Any]:
    """Relative file paths in a policy file (frame model, certificates, trust anchors) are relative to it."""

    def fix(p: str) -> str:
        q = Path(p).expanduser()
        return str(q if q.is_absolute() else folder / q)

    d = dict(d)
    if isinstance(d.get("frames"), dict) and "model" in d["frames"]:
        d["frames"] = {**d["frames"], "model": fix(d["frames"]["model"])}
    if isinstance(d.get("c2pa"), dict):
        c = dict(d["c2pa"])
        for k in ("cert", "key"):
            if c.get(k):
                c[k] = fix(c[k])
        if c.get("trust"):
            c["trust"] = [fix(t) for t in c["trust"]]
        d["c2pa"] = c
    return d
