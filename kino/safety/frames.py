"""Frame review: an image classifier looks at sampled frames of every output before it is written.

Any object with `review(frames) -> FrameReview` is a frame classifier (the `FrameClassifier`
protocol). kino ships one runner, `OnnxFrameClassifier`, for any ONNX image classifier described
by a `FrameReviewConfig` (path, labels, which labels are unsafe, input size, mean/std, threshold);
onnxruntime is an optional extra (`pip install kino[safety-onnx]`, i.e. onnxruntime).

Shapes: frames (T, H, W, 3) uint8; the model input (N, 3, h, w) float32; its output (N, L).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from kino.errors import DependencyError, InputError, ModelError, PolicyError
from kino.safety.policy import FrameReviewConfig


@dataclass(frozen=True)
class FrameReview:
    """Per-frame label scores of the reviewed frames and the decision."""

    indices: tuple[int, ...]  # which frames of the video were reviewed
    labels: tuple[str, ...]
    scores: np.ndarray  # (N, L) probability of each label for each reviewed frame
    flagged: tuple[int, ...]  # video frame indices with an unsafe label at or above the threshold
    worst: tuple[str, float] | None = None  # (label, score) of the highest unsafe score seen

    @property
    def ok(self) -> bool:
        return not self.flagged

    def summary(self) -> dict:
        """A small JSON-able record for the C2PA manifest."""
        return {
            "frames_reviewed": len(self.indices),
            "flagged_frames": list(self.flagged),
            "worst": None
            if self.worst is None
            else {"label": self.worst[0], "score": round(self.worst[1], 4)},
        }


@runtime_checkable
class FrameClassifier(Protocol):
    """Anything that reviews frames (T, H, W, 3) uint8 and says which are unsafe."""

    name: str

    def review(self, frames: np.ndarray, indices: tuple[int, ...] | None = None) -> FrameReview: ...


def sample_indices(num_frames: int, count: int) -> tuple[int, ...]:
    """`count` evenly spaced frame indices of a video, first and last included (all if fewer)."""
    if num_frames <= count:
        return tuple(range(num_frames))
    return tuple(int(round(i)) for i in np.linspace(0, num_frames - 1, count))


class OnnxFrameClassifier:
    """Runs an ONNX image classifier (input (N, 3, h, w) float32, output (N, L)) on frames."""

    def __init__(self, config: FrameReviewConfig) -> None:
        self.config = config
        self.name = f"onnx:{config.model}"
        try:
            import onnxruntime as ort
        except ImportError:
            raise DependencyError(
                "frame review with an ONNX model needs onnxruntime; pip install onnxruntime"
            ) from None
        try:
            self._session = ort.InferenceSession(config.model, providers=["CPUExecutionProvider"])
        except Exception as e:  # onnxruntime raises its own types for missing or corrupt files
            raise ModelError(
                f"cannot load the frame classifier {config.model}: {str(e).splitlines()[0][:160]}"
            ) from None
        self._input = self._session.get_inputs()[0].name
        n_out = self._session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(config.labels):
            raise ModelError(
                f"frame classifier {config.model} has {n_out} outputs but {len(config.labels)} labels are given"
            )

    def _prepare(self, frames: np.ndarray) -> np.ndarray:
        from PIL import Image

        w, h = self.config.size
        resized = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BILINEAR)) for f in frames])
        x = resized.astype(np.float32) / 255.0  # (N, h, w, 3)
        x = (x - np.array(self.config.mean, np.float32)) / np.array(self.config.std, np.float32)
        return np.ascontiguousarray(x.transpose(0, 3, 1, 2))  # (N, 3, h, w)

    def review(self, frames: np.ndarray, indices: tuple[int, ...] | None = None) -> FrameReview:
        """Score the frames at `indices` (default: the config's evenly spaced sample)."""
        frames = np.asarray(frames)
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise InputError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {tuple(frames.shape)}")
        cfg = self.config
        indices = indices if indices is not None else sample_indices(len(frames), cfg.sample_frames)
        out = self._session.run(None, {self._input: self._prepare(frames[list(indices)])})[0]  # (N, L)
        out = np.asarray(out, dtype=np.float64).reshape(len(indices), -1)  # (N, L)
        if cfg.softmax:
            e = np.exp(out - out.max(axis=1, keepdims=True))
            out = e / e.sum(axis=1, keepdims=True)  # (N, L) probabilities
        unsafe = [cfg.labels.index(u) for u in cfg.unsafe]
        per_frame = out[:, unsafe].max(axis=1)  # (N,) worst unsafe score per frame
        flagged = tuple(i for i, s in zip(indices, per_frame, strict=True) if s >= cfg.threshold)
        j = int(per_frame.argmax())
        worst_label = cfg.unsafe[int(out[j, unsafe].argmax())]
        return FrameReview(tuple(indices), cfg.labels, out, flagged, (worst_label, float(per_frame[j])))


def build_classifier(config: FrameReviewConfig | None) -> FrameClassifier | None:
    """The configured frame classifier, or None when frame review is not configured."""
    return None if config is None else OnnxFrameClassifier(config)


def enforce_frames(frames: np.ndarray, classifier: FrameClassifier) -> FrameReview:
    """Review frames and raise PolicyError (exit code 5) when any reviewed frame is flagged."""
    review = classifier.review(frames)
    if not review.ok:
        label, score = review.worst
        raise PolicyError(
            f"output refused by the frame review: frame {review.flagged[0]} looks '{label}' "
            f"(score {score:.2f}); nothing was written",
            "frames",
        )
    return review
