"""Chance levels, margins and flicker (kino.eval.chance), with known answers, and in a `kino eval` report."""

from __future__ import annotations

import numpy as np
import pytest

from kino.eval.chance import chance_counts, flicker, flicker_ratio, margins
from kino.eval.metrics import summarize
from kino.eval.runner import EvalConfig, evaluate
from kino.eval.suites import suite_prompts
from kino.world.analyze import Analysis
from kino.world.spec import Background, Camera, PromptSpec


def seen(background: Background, camera: Camera = Camera.STATIC) -> Analysis:
    return Analysis(64, 64, 8.0, 16, background, 0, [], camera, [])


def test_chance_scores_each_video_against_the_other_prompts():
    black, white = Background.BLACK, Background.WHITE
    expects = [PromptSpec(background=black), PromptSpec(background=black), PromptSpec(background=white)]
    analyses = [seen(black), seen(black), seen(white)]
    # video 0 meets prompt 1 (black) and misses 2; video 1 meets 0, misses 2; video 2 misses 0 and 1
    assert chance_counts(analyses, [0, 1, 2], expects) == {"background": (2, 6)}
    own = {"background": (3, 3)}
    assert margins(own, {"background": (2, 6)}) == pytest.approx({"background": 2 / 3, "total": 2 / 3})
    # two seeds of prompt 0 share it as their own; a model that ignores its prompt has no margin
    same = [seen(black)] * 4
    counts = chance_counts(same, [0, 0, 1, 1], [PromptSpec(background=black), PromptSpec(background=white)])
    assert counts == {"background": (2, 4)}
    assert margins({"background": (2, 4)}, counts)["background"] == 0


def test_chance_pools_kinds_in_attribute_order():
    expects = [PromptSpec(background=Background.NIGHT, camera=Camera.STATIC),
               PromptSpec(background=Background.GRAY, camera=Camera.PAN_LEFT)]
    analyses = [seen(Background.NIGHT), seen(Background.GRAY, Camera.PAN_LEFT)]
    counts = chance_counts(analyses, [0, 1], expects)
    assert counts == {"background": (0, 2), "camera": (0, 2)} and list(counts) == ["background", "camera"]
    m = margins({"background": (2, 2), "camera": (1, 2)}, counts)
    assert m == pytest.approx({"background": 1.0, "camera": 0.5, "total": 0.75})


def test_flicker_known_answers():
    still = np.full((5, 4, 4, 3), 77, np.uint8)
    assert flicker(still) == 0.0
    blink = np.stack([np.zeros((4, 4, 3), np.uint8), np.full((4, 4, 3), 255, np.uint8)] * 2)  # (4, 4, 4, 3)
    assert flicker(blink) == 255.0  # no uint8 wrap-around
    ramp = np.stack([np.full((2, 2, 3), 10 * t, np.uint8) for t in range(6)])
    assert flicker(ramp) == 10.0
    assert flicker(still[:1]) is None
    assert flicker_ratio([2.0, 4.0, None], [1.0, 1.0, 5.0]) == 3.0
    assert flicker_ratio([None], [1.0]) is None
    assert summarize([]).flicker_ratio is None


def test_reference_report_has_chance_margins_and_flicker():
    items = suite_prompts("world-train", 64, 64, 8.0, 16)[:4]
    report = evaluate(items, EvalConfig(reference=True))
    s = report.summary.to_dict()
    assert s["flicker_ratio"] == 1.0 and s["flicker"] == s["render_flicker"] > 0  # renders are their own truth
    ch = s["chance"]
    assert set(ch) == set(s["adherence"])
    # the renders follow their own prompts (about 1.0) far better than the other prompts
    assert s["chance_total"] < s["adherence_total"] - 0.3
    for k, v in ch.items():
        assert v["margin"] == pytest.approx(s["adherence"][k]["fraction"] - v["fraction"], abs=1e-3)
        assert v["asked"] > 0
    assert s["margin_total"] == pytest.approx(s["adherence_total"] - s["chance_total"], abs=1e-3)
    one = evaluate(items[:1], EvalConfig(reference=True)).summary.to_dict()
    assert one["chance"] is None and one["margin_total"] is None  # no other prompt to score against
