"""Run an evaluation: each prompt with each seed -> a video -> the world analyzer -> scores and metrics.

A video comes from the pipeline (`KinoPipeline.__call__`, the one way in) or, with `reference=True`,
from the world renderer drawing the prompt's ground-truth scene: the analyzer's ceiling, needing no
model. An item with a `condition` (the conditioning suite) renders its scene and gives parts of it to
that mode of kino.modes (kino/eval/conditioning.py). Every (prompt, seed) is independent and seeded, so a run is deterministic and any subset of it
can run in another process; the JSON report is written to a temporary name and renamed into place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kino.errors import InputError
from kino.eval.metrics import Summary, VideoMetrics, measure, summarize
from kino.eval.suites import EvalPrompt, reference_scene

if TYPE_CHECKING:
    from kino.pipeline import KinoPipeline


@dataclass(frozen=True)
class EvalConfig:
    """How to generate each video. None means the pipeline's default (64x64, 2 s at 8 fps with no model)."""

    seeds: int = 1  # each prompt runs with seeds 0 .. seeds-1
    enhance: bool = True  # generate from kino.enhance's detailed caption; always score the original prompt
    steps: int | None = None
    guidance: float | None = None  # text guidance scale (None: the model's)
    width: int | None = None
    height: int | None = None
    seconds: float | None = None
    fps: float | None = None
    reference: bool = False  # render the ground-truth scene instead of generating

    def __post_init__(self) -> None:
        if self.seeds < 1:
            raise InputError(f"--seeds must be at least 1, got {self.seeds}")
        if self.steps is not None and self.steps < 1:
            raise InputError(f"--steps must be at least 1, got {self.steps}")
        if self.seconds is not None and self.seconds <= 0:
            raise InputError(f"--seconds must be positive, got {self.seconds}")
        if self.guidance is not None and self.guidance < 0:
            raise InputError(f"--guidance must be >= 0, got {self.guidance}")
        if self.fps is not None and self.fps <= 0:
            raise InputError(f"--fps must be positive, got {self.fps}")


@dataclass(frozen=True)
class Canvas:
    """The resolved size, rate and length every video of a run has."""

    width: int
    height: int
    fps: float
    num_frames: int


@dataclass(frozen=True)
class VideoResult:
    """One (prompt, seed): what was generated from, what the analyzer saw, the score and the metrics."""

    item: EvalPrompt
    seed: int
    generated_from: str  # the text given to the model (the enhanced prompt) or "reference render"
    analysis: dict[str, Any]  # Analysis.to_dict() less the per-frame lists, plus its summary line
    score: dict[str, Any]  # Score.to_dict()
    metrics: VideoMetrics
    seen: Any = field(default=None, repr=False, compare=False)  # the Analysis, for the chance level
    notes: tuple[str, ...] = field(default=(), compare=False)  # the enhancer's (e.g. a prompt given as written)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.item.id, "prompt": self.item.prompt, "seed": self.seed,
                "condition": None if self.item.condition is None else self.item.condition.value,
                "generated_from": self.generated_from, "expect": self.item.expect.to_dict(),
                "score": self.score, "metrics": self.metrics.to_dict(), "analysis": self.analysis}


@dataclass(frozen=True)
class EvalReport:
    """Every per-video result and their summary."""

    results: list[VideoResult]
    summary: Summary
    canvas: Canvas
    config: EvalConfig
    source: str  # the suite name or the prompts file
    model: str  # the model directory, or "reference"
    notes: tuple[str, ...] = ()  # what the user should know, each once (the videos' notes)

    def to_dict(self) -> dict[str, Any]:
        from dataclasses import asdict

        return {"source": self.source, "model": self.model, "notes": list(self.notes), "config": asdict(self.config),
                "canvas": asdict(self.canvas), "summary": self.summary.to_dict(),
                "results": [r.to_dict() for r in self.results]}

    def write_json(self, path: str | os.PathLike) -> Path:
        """Write the report atomically: a temporary file beside `path`, then os.replace."""
        return write_json_atomic(path, self.to_dict())


def resolve_canvas(config: EvalConfig, pipe: KinoPipeline | None) -> Canvas:
    """Size, fps and frame count from the config, else the pipeline's scheduler (else 64x64, 2 s, 8 fps)."""
    from kino.families.kino import defaults_of
    from kino.generation import GenerationRequest, resolve
    from kino.pipeline import SchedulerConfig
    from kino.world.spec import check_size

    asked = GenerationRequest("x", width=config.width, height=config.height, fps=config.fps, seconds=config.seconds,
                              steps=config.steps)
    if pipe is not None:  # the model's defaults, resolved and checked where every front end resolves them
        from kino.families import VideoModel

        r = resolve(asked, pipe.defaults if isinstance(pipe, VideoModel) else defaults_of(pipe))
        return Canvas(r.width, r.height, r.fps, max(1, round(r.seconds * r.fps)))
    s = SchedulerConfig()
    width, height = config.width or s.width, config.height or s.height
    fps = float(config.fps or s.fps)
    check_size(width, height)  # the renderer's limits
    return Canvas(width, height, fps, max(1, round((config.seconds or s.seconds) * fps)))


def evaluate(items: list[EvalPrompt], config: EvalConfig, pipe: KinoPipeline | None = None,
             progress: Callable[[int, int], None] | None = None, source: str = "prompts",
             model: str = "") -> EvalReport:
    """Generate (or render) every prompt with every seed, analyze, score and summarize.

    `pipe` is required unless config.reference; progress(done, total) is called after each video.
    """
    if not items:
        raise InputError("there are no prompts to evaluate")
    if pipe is None and not config.reference:
        raise InputError("evaluating a model needs a pipeline; pass one, or use the reference renders")
    canvas = resolve_canvas(config, None if config.reference else pipe)
    from kino.families import VideoModel

    if isinstance(pipe, VideoModel) and not config.reference and any(i.condition is not None for i in items):
        raise InputError(f"the conditioned suites run on kino's own pipeline; {pipe.family} models run the "
                         f"text suites (world-train, world-held-out, ...)")
    if any(item.condition is not None for item in items):
        from kino.eval.conditioning import check_frames

        check_frames(canvas.num_frames)  # before any video is made
    total = len(items) * config.seeds
    enhancer = enhancer_for(pipe) if config.enhance and not config.reference else None
    results = []
    for item in items:
        for seed in range(config.seeds):
            results.append(evaluate_one(item, seed, config, canvas, pipe, enhancer))
            if progress is not None:
                progress(len(results), total)
    summary = summarize([r.metrics for r in results])
    if len(items) > 1:  # the chance level: every video against the suite's other prompts
        from kino.eval.chance import chance_counts

        index = {id(item): i for i, item in enumerate(items)}
        summary = replace(summary, chance=chance_counts([r.seen for r in results],
                                                        [index[id(r.item)] for r in results],
                                                        [item.expect for item in items]))
    notes = tuple(dict.fromkeys(n for r in results for n in r.notes))
    return EvalReport(results, summary, canvas, config, source, "reference" if config.reference else model, notes)


def enhancer_for(pipe):
    """The prompt enhancer of `pipe`'s family (kino.enhance.make_enhancer): offline, a real-world family's
    (LTX-Video, Wan) prompt goes to the model as written, since the world expander describes kino's world."""
    from kino.enhance import make_enhancer
    from kino.families import VideoModel

    return make_enhancer(family=str(pipe.family) if isinstance(pipe, VideoModel) else None)


def evaluate_one(item: EvalPrompt, seed: int, config: EvalConfig, canvas: Canvas,
                 pipe: KinoPipeline | None, enhancer=None) -> VideoResult:
    """One video of one prompt and seed, analyzed and scored against what the original prompt asked;
    `enhancer` (kino.enhance.make_enhancer's, for the model's family) writes the prompt the model gets."""
    from kino.world.analyze import analyze
    from kino.world.render import render
    from kino.world.score import score

    conditioned = None
    # the ground truth: the reference video, the conditioning inputs, and the flicker every video is set against
    truth = render(reference_scene(item, canvas.width, canvas.height, canvas.fps, canvas.num_frames), seed)
    text, notes = "reference render", ()
    if not config.reference:
        text = item.prompt
        if config.enhance:
            from kino.eval.conditioning import given_inputs

            # a conditioned video's caption is filled from what its inputs show (as kino.generation does)
            inputs = None if item.condition is None else given_inputs(item.condition, truth, canvas.fps)
            got = (enhancer or enhancer_for(pipe)).enhance(item.prompt, seed=seed, inputs=inputs)
            text, notes = got.text, tuple(got.notes)
    if item.condition is not None:  # part of the rendered scene given to the mode (reference: the scene kept)
        from kino.eval.conditioning import condition_on_truth, measure_conditioned, reference_conditioned

        made = reference_conditioned(item.condition, truth, canvas.fps) if config.reference else \
            condition_on_truth(item.condition, truth, text, pipe, canvas.fps, width=canvas.width,
                               height=canvas.height, num_inference_steps=config.steps,
                               guidance_scale=config.guidance, seed=seed)
        frames, conditioned = made.frames, measure_conditioned(made, canvas.fps)
    elif config.reference:
        frames = truth
    else:
        from kino.families import VideoModel
        from kino.families.kino import KinoModel
        from kino.generation import GenerationRequest, resolve

        # the model step of the one generation path (no policy or publishing here); any family
        model = pipe if isinstance(pipe, VideoModel) else KinoModel(pipe)
        request = resolve(GenerationRequest(item.prompt, width=canvas.width, height=canvas.height, fps=canvas.fps,
                                            seconds=canvas.num_frames / canvas.fps, steps=config.steps,
                                            guidance=config.guidance, seed=seed),
                          model.defaults)
        frames = model.generate(request, text, seed).frames  # (T, H, W, 3) uint8
    analysis = analyze(frames, canvas.fps)
    result = score(analysis, item.expect)
    seen = {k: v for k, v in analysis.to_dict().items() if k not in ("pan", "zoom", "objects")}
    seen["objects"] = [{k: o[k] for k in ("color", "shape", "size", "motion")} for o in analysis.to_dict()["objects"]]
    seen["summary"] = analysis.summary()
    metrics = measure(analysis, result, conditioned, frames, truth, temporal_factor=_temporal_factor(pipe))
    return VideoResult(item, seed, text, seen, result.to_dict(), metrics, analysis, notes)


def _temporal_factor(pipe) -> int | None:
    """Pixel frames per latent frame of the model's VAE (None: no model, e.g. a reference run)."""
    if pipe is None:
        return None
    from kino.families import VideoModel

    if isinstance(pipe, VideoModel):
        return int(pipe.defaults.frame_multiple)
    return int(pipe.vae.config.temporal_factor)


def write_json_atomic(path: str | os.PathLike, data: Any) -> Path:
    """json.dump to a temporary file in the target's folder, then os.replace it into place."""
    from kino.io import atomic_write

    path = Path(path)
    with atomic_write(path, mkdir=True) as f:
        json.dump(data, f, indent=2, default=str)
        f.write("\n")
    return path
