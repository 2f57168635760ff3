"""Rectified flow (flow matching on straight paths), as in SD3, Open-Sora 1.2+ and Wan.

Convention: t = 0 is data and t = 1 is noise; x_t = (1 - t) x_0 + t e and the network predicts the
velocity dx_t/dt = e - x_0. Timesteps are per sample (B,) or per latent frame (B, T): a frame with t = 0
is a clean condition. No network code here, and no diffusion maths in the network.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from enum import StrEnum

import torch
from torch import Tensor

from kino.errors import InputError


class TimestepSampling(StrEnum):
    """How training draws t."""

    UNIFORM = "uniform"
    LOGIT_NORMAL = "logit-normal"  # SD3 (Esser et al. 2024): more weight on the middle of the path


@dataclass(frozen=True)
class FlowConfig:
    """Training-time flow settings; the defaults suit the tiny world model."""

    sampling: TimestepSampling = TimestepSampling.LOGIT_NORMAL
    logit_mean: float = 0.0
    logit_std: float = 1.0
    base_shift: float = 1.0  # shift at reference_tokens; grows as sqrt(tokens / reference_tokens)
    reference_tokens: int = 256
    max_shift: float = 8.0
    caption_dropout: float = 0.1  # probability of training on the empty prompt (for guidance)
    # Weight of a temporal term beside the mean squared velocity error: the mean squared change of the error
    # from one latent frame to the next, from frame 1 on (a causal VAE codes frame 0 alone, in other units).
    # A positive quadratic form of the error, so the best prediction is still the conditional mean; with a
    # network too small to reach it, the term spends capacity on what differs between neighbouring latent
    # frames, where an error shows as a jump at every latent-frame boundary (world-tiny v2's flicker).
    temporal_weight: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "sampling", TimestepSampling(self.sampling))
        if self.logit_std <= 0:
            raise InputError(f"logit_std must be positive, got {self.logit_std}")
        if not 0 < self.base_shift <= self.max_shift:
            raise InputError(f"need 0 < base_shift <= max_shift, got {self.base_shift} and {self.max_shift}")
        if self.reference_tokens < 1:
            raise InputError(f"reference_tokens must be positive, got {self.reference_tokens}")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise InputError(f"caption_dropout must be in [0, 1), got {self.caption_dropout}")
        if self.temporal_weight < 0:
            raise InputError(f"temporal_weight must be >= 0, got {self.temporal_weight}")

    @classmethod
    def from_options(cls, pairs: list[str] | tuple[str, ...]) -> FlowConfig:
        """A config from KEY=VALUE strings over the defaults (`kino train dit --flow-option`), e.g.
        base_shift=2.2 reference_tokens=80; InputError (one line) naming the valid keys otherwise."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        given: dict[str, object] = {}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            key = key.strip().replace("-", "_")
            if not sep or key not in fields:
                raise InputError(f"--flow-option {pair!r} is not KEY=VALUE with KEY one of {', '.join(fields)}")
            kind = type(getattr(cls(), key))
            try:
                given[key] = value.strip() if issubclass(kind, str) else kind(value)
            except ValueError:
                raise InputError(f"--flow-option {pair!r}: {key} takes a {kind.__name__}") from None
        try:
            return cls(**given)
        except ValueError as e:  # an unknown sampling name
            raise InputError(f"--flow-option: {e}; sampling is one of "
                             f"{', '.join(s.value for s in TimestepSampling)}") from None

    def shift_settings(self) -> dict[str, float | int]:
        """The time-shift fields a pipeline's SchedulerConfig takes, so it samples as it was trained."""
        return {"base_shift": self.base_shift, "reference_tokens": self.reference_tokens,
                "max_shift": self.max_shift}

    def time_shift(self, num_tokens: int) -> float:
        """The shift training applies to a clip of num_tokens DiT tokens (token_shift of this config)."""
        return token_shift(num_tokens, self.base_shift, self.reference_tokens, self.max_shift)


@dataclass(frozen=True)
class PathSample:
    """A point on the flow path and the velocity the network should predict there."""

    x_t: Tensor  # (B, C, T, H, W)
    target: Tensor  # (B, C, T, H, W): e - x_0
    t: Tensor  # (B,) or (B, T), float32


def token_shift(num_tokens: int, base_shift: float = 1.0, reference_tokens: int = 256,
                max_shift: float = 8.0) -> float:
    """Time shift for a sequence length: more tokens keep more noise for longer (SD3's resolution shift,
    alpha = sqrt(m / n)); clamped to [1, max_shift]."""
    return float(min(max(base_shift * math.sqrt(num_tokens / reference_tokens), 1.0), max_shift))


def shift_time(t: Tensor, shift: float) -> Tensor:
    """Warp t in [0, 1] towards noise: s t / (1 + (s - 1) t); shift 1 is the identity, 0 and 1 stay fixed."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def sample_t(shape: tuple[int, ...], config: FlowConfig, shift: float = 1.0,
             generator: torch.Generator | None = None, device: torch.device | str = "cpu") -> Tensor:
    """Draw training timesteps (float32) of the given shape, then apply the time shift."""
    if config.sampling == TimestepSampling.UNIFORM:
        t = torch.rand(shape, generator=generator, device=device)
    else:
        n = torch.randn(shape, generator=generator, device=device)
        t = torch.sigmoid(config.logit_mean + config.logit_std * n)
    return shift_time(t, shift)


def _expand_t(t: Tensor, x: Tensor) -> Tensor:
    """t (B,) or (B, T) broadcast against x (B, C, T, H, W)."""
    if t.dim() == 1:
        return t[:, None, None, None, None]  # (B, 1, 1, 1, 1)
    if t.dim() == 2 and t.shape == (x.shape[0], x.shape[2]):
        return t[:, None, :, None, None]  # (B, 1, T, 1, 1)
    raise InputError(f"t must be (B,) or (B, T) for x {tuple(x.shape)}, got {tuple(t.shape)}")


def flow_path(x0: Tensor, noise: Tensor, t: Tensor) -> PathSample:
    """The straight path: x_t = (1 - t) x_0 + t e, target e - x_0 (computed in float32)."""
    if x0.shape != noise.shape:
        raise InputError(f"x0 {tuple(x0.shape)} and noise {tuple(noise.shape)} differ in shape")
    x0f, ef, tf = x0.float(), noise.float(), t.float()
    te = _expand_t(tf, x0f)
    return PathSample(x_t=(1 - te) * x0f + te * ef, target=ef - x0f, t=tf)


def flow_loss(pred: Tensor, path: PathSample, frame_weight: Tensor | None = None,
              temporal_weight: float = 0.0) -> Tensor:
    """Mean squared velocity error; frame_weight (B, T) can exclude clean condition frames (weight 0).

    temporal_weight > 0 adds that weight times the mean squared change of the error between neighbouring
    latent frames 1..T-1 (FlowConfig.temporal_weight); a condition frame's error counts as zero there (the
    sampler puts the given latent in its place), and a pair counts when either of its frames is trained."""
    diff = pred.float() - path.target  # (B, C, T, H, W)
    err = diff**2
    if frame_weight is None:
        loss = err.mean()
    else:
        w = frame_weight.float()[:, None, :, None, None].expand_as(err)  # (B, C, T, H, W)
        loss = (err * w).sum() / w.sum().clamp_min(1.0)
    if temporal_weight > 0 and diff.shape[2] >= 3:
        w_t = (torch.ones(diff.shape[0], diff.shape[2], device=diff.device) if frame_weight is None
               else frame_weight.float())  # (B, T)
        kept = diff * w_t[:, None, :, None, None]  # a condition frame's error does not reach the sample
        step = (kept[:, :, 2:] - kept[:, :, 1:-1]) ** 2  # (B, C, T - 2, H, W)
        pair = torch.maximum(w_t[:, 2:], w_t[:, 1:-1])[:, None, :, None, None].expand_as(step)
        loss = loss + temporal_weight * (step * pair).sum() / pair.sum().clamp_min(1.0)
    return loss


def drop_captions(captions: list[str], p: float, generator: torch.Generator | None = None) -> list[str]:
    """Replace each caption by the empty prompt with probability p (classifier-free guidance training)."""
    keep = torch.rand(len(captions), generator=generator) >= p
    return [c if k else "" for c, k in zip(captions, keep.tolist(), strict=True)]
