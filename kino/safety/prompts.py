"""The prompt classifier: allow a prompt, or reject it with a category and a short reason.

Three signals, all offline, cheapest first:
1. curated term lists per category (kino/safety/data/<category>.txt), matched on normalized text
   that sees through leetspeak, spacing, repeated letters, inner punctuation, asterisks for letters
   and look-alike letters (kino/safety/terms.py), after the policy's allow-list phrases are blanked out;
2. the linear model (TF-IDF + linear SVM, calibrated) of `alt-profanity-check`
   (https://github.com/dimitrismistriotis/alt-profanity-check), evaluated from kino's copy of its
   numbers (kino/safety/profanity.py): its probability that the text is offensive, against the
   policy's threshold, rejects as "abuse";
3. a learned layer (kino/safety/classifier.py): logistic regression over the sentence embedding
   of the same normalized text from the packaged MiniLM kino already ships; a category whose
   probability reaches its threshold rejects. It catches paraphrases and indirect references
   ("the boy wizard with the scar") that no term list names.

`check_prompt` never raises (a missing model only removes that signal and says so in the
decision); `enforce_prompt` raises PolicyError for a rejection, for the command line's exit code.
Pass the pipeline's text encoder as `encoder` to reuse its embedding cache (the MiniLM weights are
loaded once per process either way: kino.models.text shares them).

Every entry point first puts the prompt in the one form the text encoder also sees
(kino/safety/normalize.py: format characters removed, NFKC), so the model is never conditioned on
text the policy did not judge; a prompt that holds only invisible characters is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from kino.errors import DependencyError, ModelError, PolicyError
from kino.safety.normalize import normalize_prompt, strip_invisible
from kino.safety.policy import Category, SafetyConfig, SafetyPolicy, load_policy_file
from kino.safety.terms import Matcher, blank_allowed, compile_terms, masked_words, normalize, spaced_runs


class Verdict(StrEnum):
    ALLOW = "allow"
    REJECT = "reject"


@dataclass(frozen=True)
class Decision:
    """What the classifier decided about one prompt."""

    verdict: Verdict
    category: Category | None = None
    reason: str = ""  # one line: what matched, for the user and the logs
    profanity: float | None = None  # the model's probability, None when the signal was not used
    classifier: float | None = None  # the learned layer's highest category probability, None if not used

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW

    def message(self) -> str:
        """The one-line refusal shown to the user (empty for an allowed prompt)."""
        if self.allowed:
            return ""
        if self.category is None:
            return f"prompt refused: {self.reason}"
        return (
            f"prompt refused by the safety policy: {self.category.description} ({self.reason}); "
            "rephrase it, or see docs/safety.md"
        )


@lru_cache(maxsize=32)
def _matchers(policy: SafetyPolicy) -> tuple[tuple[Category, Matcher], ...]:
    # Ordered as the Category enum so a prompt that hits several lists reports the first.
    return tuple((c, compile_terms(policy.terms(c))) for c in Category if c in policy.categories)


def profanity_probability(text: str) -> float:
    """alt-profanity-check's probability that `text` is offensive (loads its model lazily)."""
    return profanity_probabilities([text])[0]


def profanity_probabilities(texts: list[str]) -> list[float]:
    """`profanity_probability` of many texts in one call (kino/safety/profanity.py: alt-profanity-check's
    model, read from kino's copy of its numbers, without importing scikit-learn)."""
    from kino.safety.profanity import shipped_model

    return [float(p) for p in shipped_model().probabilities(list(texts))]


def check_prompt(text: str, config: SafetyConfig | None = None, encoder=None) -> Decision:
    """Allow or reject a prompt under the policy (config, else $KINO_SAFETY_POLICY, else the default).

    `encoder`: a kino.models.text.TextEncoder for the packaged MiniLM (the pipeline's) that the
    learned layer reuses; None uses one shared per process.
    """
    return check_prompts([text], config, encoder)[0]


def check_prompts(texts: list[str], config: SafetyConfig | None = None, encoder=None) -> list[Decision]:
    """`check_prompt` for many prompts at once (the models see them in batches); same decisions.

    A prompt that is empty once invisible characters are removed is rejected with no category.
    """
    policy = (config or load_policy_file()).policy
    texts = [strip_invisible(t) for t in texts]  # the form the text encoder sees (normalize.py)
    norms = [blank_allowed(normalize(t), policy.allow) for t in texts]
    out: list[Decision | None] = [None] * len(texts)
    for i, norm in enumerate(norms):
        if not texts[i].strip():
            out[i] = Decision(Verdict.REJECT, None, "it is empty or holds only invisible characters")
            continue
        runs, masked = spaced_runs(norm), masked_words(texts[i])
        for cat, matcher in _matchers(policy):
            hit = matcher.find(norm, runs, masked)
            if hit is not None:
                out[i] = Decision(Verdict.REJECT, cat, f"matched {hit.strip()!r}")
                break
    todo = [i for i, d in enumerate(out) if d is None]
    probs: dict[int, float] = {}
    notes = []
    if todo and policy.profanity_threshold is not None and Category.ABUSE in policy.categories:
        try:
            # The model sees the de-obfuscated text (it was trained on plain words) without the
            # allow-listed phrases ("naked mole rat" is not obscene).
            probs = dict(zip(todo, profanity_probabilities([norms[i] for i in todo]), strict=True))
        except DependencyError as e:
            notes.append(f"profanity model not used: {e}")
        for i, prob in probs.items():
            if prob >= policy.profanity_threshold:
                reason = f"profanity model {prob:.2f} >= {policy.profanity_threshold}"
                out[i] = Decision(Verdict.REJECT, Category.ABUSE, reason, prob)
    todo = [i for i in todo if out[i] is None]
    tops: dict[int, float | None] = {}
    if todo and policy.classifier:
        try:
            found = _classify([" ".join(norms[i].split()) for i in todo], policy, encoder)
        except (DependencyError, ModelError) as e:
            found = [(None, None)] * len(todo)
            notes.append(f"classifier not used: {e}")
        for i, (decision, top) in zip(todo, found, strict=True):
            tops[i] = top
            if decision is not None:
                out[i] = Decision(decision.verdict, decision.category, decision.reason, probs.get(i), top)
    note = "; ".join(notes)
    return [d if d is not None else Decision(Verdict.ALLOW, None, note, probs.get(i), tops.get(i))
            for i, d in enumerate(out)]


def _classify(norms: list[str], policy: SafetyPolicy, encoder) -> list[tuple[Decision | None, float | None]]:
    """The learned layer on normalized texts: per text, (a rejection or None, the highest category probability)."""
    from kino.safety.classifier import category_scores_many, shipped_classifier

    clf = shipped_classifier()
    thresholds = {**clf.thresholds, **{c.value: t for c, t in policy.classifier_thresholds}}
    enabled = [c for c in Category if c in policy.categories and c.value in thresholds]
    out: list[tuple[Decision | None, float | None]] = [(None, None)] * len(norms)
    if not enabled:
        return out
    todo = [i for i, norm in enumerate(norms) if len(norm.split()) >= policy.classifier_min_words]
    for i, scores in zip(todo, category_scores_many([norms[i] for i in todo], encoder, clf), strict=True):
        # The category furthest over its threshold wins (enum order breaks ties).
        over = [(scores[c.value] - thresholds[c.value], c) for c in enabled if scores[c.value] >= thresholds[c.value]]
        top = max(scores[c.value] for c in enabled)
        if not over:
            out[i] = (None, top)
            continue
        _, cat = max(over, key=lambda x: x[0])
        out[i] = (Decision(Verdict.REJECT, cat, f"classifier {scores[cat.value]:.2f} >= {thresholds[cat.value]}"), top)
    return out


def enforce_prompt(text: str, config: SafetyConfig | None = None, encoder=None) -> Decision:
    """Check a prompt and raise PolicyError (exit code 5) with a one-line reason if it is rejected
    (InputError, exit code 2, if it is empty once invisible characters are removed)."""
    decision = check_prompt(normalize_prompt(text), config, encoder)
    if not decision.allowed:
        raise PolicyError(decision.message(), decision.category.value)
    return decision
