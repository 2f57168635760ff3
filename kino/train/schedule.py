"""The learning-rate schedule of every trainer (the DiT's and the VAE's): linear warmup, then a flat rate
or a cosine decay that reaches `min_lr_ratio` x lr at the last step (step `steps - 1`)."""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Protocol


class LRSchedule(StrEnum):
    """After the linear warmup: a flat rate, or a cosine decay to min_lr_ratio x lr at the last step."""

    CONSTANT = "constant"
    COSINE = "cosine"


class ScheduleConfig(Protocol):
    """The fields of a training config the schedule reads (DiTTrainConfig, VAETrainConfig)."""

    lr: float
    warmup: int
    steps: int
    min_lr_ratio: float


def lr_at(step: int, cfg: ScheduleConfig) -> float:
    """The rate of optimizer step `step` (0-based): warmup (step + 1) / warmup x lr, then constant
    (rectified-flow DiTs train well at a flat rate; EMA smooths) or cosine. A config without a
    `schedule` field (the VAE's) decays on the cosine."""
    schedule = LRSchedule(getattr(cfg, "schedule", LRSchedule.COSINE))
    warm = min(1.0, (step + 1) / max(cfg.warmup, 1))
    if schedule is LRSchedule.CONSTANT or step < cfg.warmup:
        return cfg.lr * warm
    done = min(1.0, (step - cfg.warmup) / max(cfg.steps - cfg.warmup - 1, 1))  # 0 after warmup, 1 at the end
    return cfg.lr * (cfg.min_lr_ratio + (1.0 - cfg.min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * done)))
