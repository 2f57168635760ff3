"""The latent-frame boundary figure (kino.eval.chance.boundary_change, kino eval's boundary_ratio): which steps
cross a boundary, the split, and the pooled ratio a blank video cannot lower."""

from __future__ import annotations

import numpy as np
import pytest

from kino.eval.chance import boundary_change, flicker, latent_steps


def test_boundary_steps_of_a_causal_latent():
    # 17 frames at 4x: latent frames {0}, {1..4}, {5..8}, {9..12}, {13..16}; frame 0's step is left out
    cross, inside = latent_steps(17, 4)
    assert cross == [4, 8, 12]
    assert inside == [1, 2, 3, 5, 6, 7, 9, 10, 11, 13, 14, 15]
    assert latent_steps(9, 2) == ([2, 4, 6], [1, 3, 5, 7])


def test_split_finds_jumps_at_boundaries():
    frames = np.zeros((17, 4, 4, 3), dtype=np.uint8)
    for f in range(1, 17):  # one grey level per latent frame, plus a small ramp inside it
        frames[f] = 20 * ((f - 1) // 4 + 1) + (f - 1) % 4
    boundary, inside = boundary_change(frames, 4)
    assert boundary == pytest.approx(17.0) and inside == pytest.approx(1.0)  # 20 up, 3 back down; 1 a step
    assert flicker(frames) == pytest.approx((20 + 3 * 17 + 12 * 1) / 16)
    assert boundary_change(frames[:5], 4) is None  # one latent frame after the first: no boundary step


def test_summary_pools_the_boundary_ratio():
    """The ratio pools sums: a video whose latent frames jump raises it, a frozen one (no change at all)
    leaves it where it is (the flicker ratio would call it perfectly steady), one too short has none."""
    from kino.eval.metrics import VideoMetrics, summarize

    def video(boundary):
        return VideoMetrics(adherence={"color": (1, 1)}, consistency={"color": None, "shape": None, "size": None},
                            smoothness=None, motion=0.0, dynamic=False, flicker=1.0, render_flicker=1.0,
                            boundary=boundary)

    s = summarize([video((6.0, 2.0)), video((2.0, 2.0)), video((0.0, 0.0)), video(None)])
    assert s.boundary_ratio == pytest.approx(4.0 / 2.0)
    assert s.to_dict()["boundary_ratio"] == pytest.approx(2.0)
    assert summarize([video(None)]).boundary_ratio is None
