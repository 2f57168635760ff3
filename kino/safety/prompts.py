"""The prompt classifier: allow a prompt, or reject it with a category and a short reason.

Three signals, all offline, cheapest first:
1. curated term lists per category (kino/safety/data/<category>.txt), matched on normalized text
   that sees through leetspeak, spacing, repeated letters, inner punctuation and look-alike letters
   (kino/safety/terms.py), after the policy's allow-list phrases are blanked out;
2. the linear model (TF-IDF + linear SVM, calibrated) shipped by `alt-profanity-check`
   (https://github.com/dimitrismistriotis/alt-profanity-check): its probability that the text is
   offensive, against the policy's threshold, rejects as "abuse";
3. a learned layer (kino/safety/classifier.py): logistic regression over the sentence embedding
   of the same normalized text from the packaged MiniLM kino already ships; a category whose
   probability reaches its threshold rejects. It catches paraphrases and indirect references
   ("the boy wizard with the scar") that no term list names.

`check_prompt` never raises (a missing model only removes that signal and says so in the
decision); `enforce_prompt` raises PolicyError for a rejection, for the command line's exit code.
Pass the pipeline's text encoder as `encoder` so the MiniLM weights are loaded once per process.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

from kino.errors import DependencyError, ModelError, PolicyError
from kino.safety.policy import Category, SafetyConfig, SafetyPolicy, load_policy_file
from kino.safety.terms import Matcher, blank_allowed, compile_terms, normalize, spaced_runs


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
    try:
        from profanity_check import predict_prob
    except ImportError:
        raise DependencyError(
            "the prompt classifier's profanity model needs alt-profanity-check; pip install alt-profanity-check"
        ) from None
    return float(predict_prob([text])[0])


def check_prompt(text: str, config: SafetyConfig | None = None, encoder=None) -> Decision:
    """Allow or reject a prompt under the policy (config, else $KINO_SAFETY_POLICY, else the default).

    `encoder`: a kino.models.text.TextEncoder for the packaged MiniLM (the pipeline's) that the
    learned layer reuses; None uses one shared per process.
    """
    policy = (config or load_policy_file()).policy
    norm = blank_allowed(normalize(text), policy.allow)
    runs = spaced_runs(norm)
    for cat, matcher in _matchers(policy):
        hit = matcher.find(norm, runs)
        if hit is not None:
            return Decision(Verdict.REJECT, cat, f"matched {hit.strip()!r}")
    prob, notes = None, []
    if policy.profanity_threshold is not None and Category.ABUSE in policy.categories:
        try:
            # The model sees the de-obfuscated text (it was trained on plain words) without the
            # allow-listed phrases ("naked mole rat" is not obscene).
            prob = profanity_probability(norm)
        except DependencyError as e:
            notes.append(f"profanity model not used: {e}")
        if prob is not None and prob >= policy.profanity_threshold:
            return Decision(
                Verdict.REJECT,
                Category.ABUSE,
                f"profanity model {prob:.2f} >= {policy.profanity_threshold}",
                prob,
            )
    top = None
    if policy.classifier:
        try:
            decision, top = _classify(" ".join(norm.split()), policy, encoder)
        except (DependencyError, ModelError) as e:
            decision = None
            notes.append(f"classifier not used: {e}")
        if decision is not None:
            return Decision(decision.verdict, decision.category, decision.reason, prob, top)
    return Decision(Verdict.ALLOW, None, "; ".join(notes), prob, top)


def _classify(norm: str, policy: SafetyPolicy, encoder) -> tuple[Decision | None, float | None]:
    """The learned layer on normalized text: (a rejection or None, the highest category probability)."""
    from kino.safety.classifier import category_scores, shipped_classifier

    clf = shipped_classifier()
    thresholds = {**clf.thresholds, **{c.value: t for c, t in policy.classifier_thresholds}}
    enabled = [c for c in Category if c in policy.categories and c.value in thresholds]
    if not enabled or not norm:
        return None, None
    scores = category_scores(norm, encoder, clf)
    # The category furthest over its threshold wins (enum order breaks ties).
    over = [(scores[c.value] - thresholds[c.value], c) for c in enabled if scores[c.value] >= thresholds[c.value]]
    top = max(scores[c.value] for c in enabled)
    if not over:
        return None, top
    _, cat = max(over, key=lambda x: x[0])
    reason = f"classifier {scores[cat.value]:.2f} >= {thresholds[cat.value]}"
    return Decision(Verdict.REJECT, cat, reason), top


def enforce_prompt(text: str, config: SafetyConfig | None = None, encoder=None) -> Decision:
    """Check a prompt and raise PolicyError (exit code 5) with a one-line reason if it is rejected."""
    decision = check_prompt(text, config, encoder)
    if not decision.allowed:
        raise PolicyError(decision.message(), decision.category.value)
    return decision
