"""The profanity model of `alt-profanity-check`, evaluated without scikit-learn.

alt-profanity-check (https://github.com/dimitrismistriotis/alt-profanity-check, MIT licence; after
Victor Zhou's profanity-check) is a TF-IDF vectorizer (unigrams, sklearn's English stop words, l2
norm, smoothed idf) feeding five linear SVMs, each calibrated with Platt's sigmoid
(CalibratedClassifierCV, 5 folds); the probability is the mean of the five. Importing the package
imports scikit-learn and unpickles both objects at import time: about 1.6 s of CPU on a 2-core
machine, paid by every cold `kino generate`. The model is only a vocabulary, an idf vector and five
weight vectors, so kino keeps those numbers in kino/safety/data/profanity_model.safetensors (built
from the installed package by `python -m kino.safety.profanity`) and computes the same probability
with numpy; tests/test_safety_classifier.py checks it against the package on many texts.

Letters: B texts, V vocabulary words, K calibrated classifiers.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path

import numpy as np

from kino.errors import DependencyError

FILE = "profanity_model.safetensors"
TOKEN = re.compile(r"(?u)\b\w\w+\b")  # sklearn's default token_pattern


@dataclass(frozen=True)
class ProfanityModel:
    """TF-IDF + K sigmoid-calibrated linear classifiers; `probabilities(texts)` -> (B,)."""

    vocabulary: dict[str, int]  # word -> column
    stop_words: frozenset[str]
    idf: np.ndarray  # (V,)
    coef: np.ndarray  # (K, V) weights of each fold's linear SVM
    intercept: np.ndarray  # (K,)
    a: np.ndarray  # (K,) Platt sigmoid: p = 1 / (1 + exp(a f + b))
    b: np.ndarray  # (K,)

    def features(self, texts: list[str]) -> np.ndarray:
        """l2-normalized TF-IDF rows (B, V), as the package's TfidfVectorizer computes them."""
        x = np.zeros((len(texts), len(self.idf)))  # (B, V)
        for i, text in enumerate(texts):
            for word in TOKEN.findall(text.lower()):
                j = self.vocabulary.get(word) if word not in self.stop_words else None
                if j is not None:
                    x[i, j] += 1.0
        x *= self.idf
        norm = np.linalg.norm(x, axis=1, keepdims=True)  # (B, 1)
        return np.divide(x, norm, out=x, where=norm > 0)

    def probabilities(self, texts: list[str]) -> np.ndarray:
        """Probability that each text is offensive: the mean of the K calibrated classifiers, (B,)."""
        if not texts:
            return np.zeros(0)
        f = self.features(texts) @ self.coef.T + self.intercept  # (B, K) decision values
        p = 1.0 / (1.0 + np.exp(self.a * f + self.b))  # (B, K)
        return p.mean(axis=1)

    def save(self, path: str | Path) -> None:
        from safetensors.numpy import save_file

        words = sorted(self.vocabulary, key=self.vocabulary.get)
        meta = {"vocabulary": json.dumps(words), "stop_words": json.dumps(sorted(self.stop_words))}
        tensors = {"idf": self.idf, "coef": self.coef, "intercept": self.intercept, "a": self.a, "b": self.b}
        save_file({k: np.ascontiguousarray(v, np.float32) for k, v in tensors.items()}, str(path), metadata=meta)

    @classmethod
    def load(cls, path: str | Path) -> ProfanityModel:
        from safetensors import safe_open

        with safe_open(str(path), framework="np") as f:
            meta = f.metadata()
            t = {k: f.get_tensor(k).astype(np.float64) for k in ("idf", "coef", "intercept", "a", "b")}
        words = json.loads(meta["vocabulary"])
        return cls({w: i for i, w in enumerate(words)}, frozenset(json.loads(meta["stop_words"])), **t)


def from_package() -> ProfanityModel:
    """Read the numbers out of the installed alt-profanity-check (imports scikit-learn)."""
    try:
        from profanity_check import profanity_check as pc
    except ImportError:
        raise DependencyError("building the profanity model needs alt-profanity-check; "
                              "pip install alt-profanity-check") from None
    vec, model = pc.vectorizer, pc.model
    folds = model.calibrated_classifiers_
    if list(model.classes_) != [0, 1] or any(c.method != "sigmoid" for c in folds):
        raise DependencyError("this alt-profanity-check is not the binary sigmoid-calibrated model kino reads")
    return ProfanityModel(
        vocabulary={w: int(i) for w, i in vec.vocabulary_.items()},
        stop_words=frozenset(vec.get_stop_words() or ()),
        idf=np.asarray(vec.idf_, np.float64),
        coef=np.stack([c.estimator.coef_[0] for c in folds]).astype(np.float64),
        intercept=np.array([c.estimator.intercept_[0] for c in folds], np.float64),
        a=np.array([c.calibrators[0].a_ for c in folds], np.float64),
        b=np.array([c.calibrators[0].b_ for c in folds], np.float64),
    )


def shipped_path() -> Path:
    return Path(str(resources.files("kino.safety") / "data" / FILE))


@cache
def shipped_model() -> ProfanityModel:
    """The shipped numbers, read once per process."""
    return ProfanityModel.load(shipped_path())


if __name__ == "__main__":
    from_package().save(shipped_path())
    print(f"wrote {shipped_path()}")
