"""benchmarks/flicker_boundaries.py: which frame-to-frame steps cross a latent-frame boundary, and its split."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest


def _bench():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "flicker_boundaries.py"
    spec = importlib.util.spec_from_file_location("flicker_boundaries", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_boundary_steps_of_a_causal_latent():
    bench = _bench()
    # 17 frames at 4x: latent frames {0}, {1..4}, {5..8}, {9..12}, {13..16}; frame 0's step is left out
    cross, inside = bench.steps_by_kind(17, 4)
    assert cross == [4, 8, 12]
    assert inside == [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15]
    assert bench.steps_by_kind(9, 2) == ([2, 4, 6], [1, 3, 5, 7])


def test_split_finds_jumps_at_boundaries():
    bench = _bench()
    frames = np.zeros((17, 4, 4, 3), dtype=np.uint8)
    for f in range(1, 17):  # one grey level per latent frame: every change is at a boundary (and frame 0's step)
        frames[f] = 10 * ((f - 1) // 4 + 1)
    boundary, inside, every = bench.split(frames, 4)
    assert boundary == pytest.approx(10.0) and inside == 0.0
    assert every == pytest.approx(40 / 16)
