"""The DiT training run: data, steps, checkpoints, logs, sample videos and world evaluations.

`run_training` is what `kino train dit` (through `train_dit`, at the end) runs, on one process or under
torchrun with DDP or FSDP2 (kino.train.distributed). Per step: each rank takes its micro-batches
(kino.train.data), DiTTrainer.train_step accumulates and syncs gradients, the loss and throughput
are reduced to rank 0, which logs them (kino.train.monitor). Every `checkpoint_every` steps all ranks
write a checkpoint; every `sample_every` steps rank 0 renders a few prompts with the EMA model to
RUN/samples/step-XXXXXXXX/*.mp4, and every `eval_every` steps it runs kino.eval on a couple of world
prompts (RUN/eval/step-XXXXXXXX.json, and eval/* in TensorBoard). Sampling and evaluation run under
a forked RNG, so they do not change the training run: a run with them follows the same losses.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from kino.errors import InputError
from kino.train.distributed import DistInfo, Parallel

DEFAULT_PROMPTS = (
    "a red circle moves from left to right on a white background",
    "a blue square and a green triangle bounce on a gray background",
)


@dataclass(frozen=True)
class RunOptions:
    """How a run executes and reports (the recipe itself is DiTTrainConfig)."""

    parallel: Parallel = Parallel.NONE
    source: str = "world"  # "world", a cache folder (kino data cache) or a manifest file (kino data prepare)
    token_budget: int = 0  # DiT tokens per micro-batch for cache/manifest data (0: micro-batch x largest clip)
    workers: int = 0  # DataLoader worker processes per rank
    log_every: int = 10
    tensorboard: bool = True
    console: bool = False  # progress bar or plain log lines on stderr (rank 0)
    sample_every: int = 0  # 0: no sample videos
    sample_prompts: tuple[str, ...] = DEFAULT_PROMPTS
    sample_steps: int = 20  # sampler steps of sample videos and evaluation videos
    sample_size: tuple[int, int] = (64, 64)  # (width, height)
    sample_frames: int = 17
    eval_every: int = 0  # 0: no world evaluation during training
    eval_prompts: int = 2
    overwrite: bool = False  # replace a run already in the folder (without: refused unless resuming)
    allow_uncaptioned: bool = False  # train on cache/manifest data whose clips have no caption
    init_from: str | None = None  # a new run starts from this DiT's weights where they fit (kino.train.warm_start)

    def __post_init__(self) -> None:
        object.__setattr__(self, "parallel", Parallel(self.parallel))
        object.__setattr__(self, "sample_prompts", tuple(self.sample_prompts))
        if min(self.sample_every, self.eval_every, self.workers, self.token_budget) < 0:
            raise InputError("sample_every, eval_every, workers and token_budget must be >= 0")
        if self.eval_prompts < 1 or self.sample_steps < 1 or self.sample_frames < 1:
            raise InputError("eval_prompts, sample_steps and sample_frames must be >= 1")


def run_training(cfg, vae, out_dir: str | Path, resume: bool = False, device: torch.device | str = "cpu",
                 data: Callable | None = None, on_step: Callable[[int, int, float], None] | None = None,
                 model_config=None, options: RunOptions | None = None) -> Path:
    """Train (or resume) into out_dir/checkpoints; write the EMA pipeline to out_dir/pipeline; return it."""
    from kino.models.text import TextEncoder
    from kino.train.checkpoint import latest_checkpoint
    from kino.train.distributed import barrier, distribute, init_distributed, shutdown, sum_over_ranks
    from kino.train.dit import DiTTrainer
    from kino.train.monitor import Monitor

    options = options or RunOptions()
    info, device = init_distributed(options.parallel, device)
    out = Path(out_dir)
    monitor = None
    try:
        check_run_folder(out, resume, options.overwrite, info)
        trainer = DiTTrainer(cfg, vae, TextEncoder(), device, model_config)
        if options.init_from and not (resume and latest_checkpoint(out / "checkpoints")):
            # before DDP/FSDP2 wrap or shard the model; a resumed run keeps its own weights
            from kino.train.warm_start import warm_start

            started = warm_start(trainer.model, options.init_from, trainer.ema)
            if info.is_main:
                print(f"kino: {started.summary()}", file=sys.stderr)
        distribute(trainer, info)
        if resume:
            trainer.resume(out / "checkpoints")
        if data is None and Path(str(options.source)).is_dir():  # a latent cache: encoded by this VAE?
            from kino.data.cache import check_cache_vae

            check_cache_vae(options.source, trainer.vae, trainer.device)
        batches = micro_batches(cfg, options, data, info, trainer.step_count, trainer.model.config.patch_size)
        monitor = Monitor(out, cfg.steps, trainer.step_count, enabled=info.is_main,
                          tensorboard=options.tensorboard, console=options.console, log_every=options.log_every)
        first = (info.rank * cfg.grad_accum)
        while trainer.step_count < cfg.steps:
            stats = trainer.train_step([next(batches) for _ in range(cfg.grad_accum)], first)
            loss, samples, tokens = sum_over_ranks([stats.loss, stats.samples, stats.tokens], info)
            loss /= info.world_size
            if not math.isfinite(loss):
                raise InputError(f"the loss became {loss} at step {trainer.step_count}; lower --lr")
            step = trainer.step_count
            monitor.step(step, loss, stats.lr, stats.grad_norm, int(samples), int(tokens))
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                trainer.save(out / "checkpoints")
            if options.sample_every and step % options.sample_every == 0:
                sample_videos(trainer, info, options, out / "samples" / f"step-{step:08d}", monitor)
            if options.eval_every and step % options.eval_every == 0:
                evaluate_world(trainer, info, options, out / "eval" / f"step-{step:08d}.json", monitor)
            if on_step is not None and info.is_main:
                on_step(step, cfg.steps, loss)
        pipe = ema_pipeline(trainer, info, options.source)
        path = pipe.save_pretrained(out / "pipeline") if pipe is not None else out / "pipeline"
        barrier(info)
        return path
    finally:
        if monitor is not None:
            monitor.close()
        shutdown()


RUN_PARTS = ("checkpoints", "metrics.jsonl", "tensorboard", "samples", "eval", "pipeline")  # what a run writes


def check_run_folder(out: Path, resume: bool, overwrite: bool, info: DistInfo) -> None:
    """Refuse to start a new run over an old one (it would restart at step 0, overwrite its checkpoints
    and append every step again to metrics.jsonl); with `overwrite`, rank 0 removes the old run first."""
    import shutil

    from kino.train.checkpoint import latest_checkpoint
    from kino.train.distributed import barrier

    if resume:
        return
    last = latest_checkpoint(out / "checkpoints") if (out / "checkpoints").is_dir() else None
    if last is None and not (out / "metrics.jsonl").exists():
        return
    if not overwrite:
        held = f"a run at {last.name}" if last is not None else "a run (metrics.jsonl)"
        raise InputError(f"{out} already holds {held}; continue it with --resume, train into a new --out, "
                         f"or replace it with --overwrite")
    if info.is_main:
        for name in RUN_PARTS:
            part = out / name
            if part.is_dir():
                shutil.rmtree(part)
            elif part.exists():
                part.unlink()
    barrier(info)


def micro_batches(cfg, options: RunOptions, data: Callable | None, info: DistInfo, start_step: int,
                  patch: tuple[int, int, int] = (1, 2, 2)):
    """This rank's micro-batches from start_step, from the source the options name (patch: the DiT's)."""
    from kino.train.data import Layout, prepared_micro_batches, stream_micro_batches, world_micro_batches

    layout = Layout(info.rank, info.world_size, cfg.grad_accum)
    if data is not None:
        return stream_micro_batches(data, cfg, layout, start_step)
    if options.source == "world":
        return world_micro_batches(cfg, layout, start_step, options.workers)
    return prepared_micro_batches(options.source, cfg, layout, start_step, options.token_budget, options.workers,
                                  options.allow_uncaptioned, patch)


# ----------------------------------------------------------------------------- the EMA model at work


def ema_pipeline(trainer, info: DistInfo, source: str = "world"):
    """A KinoPipeline over the EMA weights on rank 0 (gathered from the shards under FSDP2); None elsewhere."""
    from kino.models.dit import DiT
    from kino.pipeline import KinoPipeline
    from kino.train.distributed import full_state_dict

    if info.parallel is Parallel.FSDP:
        state = full_state_dict(trainer.ema, info)  # collective
        if not info.is_main:
            return None
        with torch.random.fork_rng(devices=[]):
            ema = DiT(trainer.model.config)
        ema.load_state_dict(state)
        ema = ema.to(trainer.device).eval()
    elif not info.is_main:
        return None
    else:
        ema = trainer.ema
    return KinoPipeline(ema, trainer.vae, trainer.text_encoder, training_scheduler(trainer.cfg, source),
                        device=trainer.device)


def training_scheduler(cfg, source: str = "world"):
    """The sampling defaults a trained DiT's pipeline keeps: the training's time shift (base shift,
    reference tokens, cap), its fps and, for world data, the sizes it was trained at (the size warning)."""
    from kino.pipeline import SchedulerConfig

    sizes = cfg.sizes if str(source) == "world" else ()
    if not sizes and Path(str(source), "cache.json").is_file():  # a world latent cache keeps its recipe
        recipe = json.loads(Path(str(source), "cache.json").read_text()).get("world") or {}
        sizes = tuple(tuple(s) for s in recipe.get("sizes", ()))
    return SchedulerConfig(**cfg.flow.shift_settings(), fps=cfg.fps, trained_sizes=sizes)


def _forked(device: torch.device):
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def sample_videos(trainer, info: DistInfo, options: RunOptions, folder: Path, monitor) -> list[Path]:
    """Render options.sample_prompts with the EMA model to folder/NN.mp4 (rank 0), atomically per folder."""
    from kino.io import atomic_dir, write_video

    pipe = ema_pipeline(trainer, info, options.source)
    written = []
    if pipe is not None:
        w, h = options.sample_size
        fps = trainer.cfg.fps
        with _forked(trainer.device), atomic_dir(folder) as tmp:
            for i, prompt in enumerate(options.sample_prompts):
                video = pipe(prompt, width=w, height=h, num_frames=options.sample_frames, fps=fps,
                             num_inference_steps=options.sample_steps, seed=i)
                write_video(tmp / f"{i:02d}.mp4", video.frames, fps)
                written.append(folder / f"{i:02d}.mp4")
            (tmp / "prompts.txt").write_text("\n".join(options.sample_prompts) + "\n")
        monitor.message(f"samples: {folder}")
    from kino.train.distributed import barrier

    barrier(info)
    return written


def evaluate_world(trainer, info: DistInfo, options: RunOptions, path: Path, monitor) -> dict | None:
    """kino.eval on options.eval_prompts world prompts with the EMA model (rank 0); the summary dict."""
    from kino.eval.runner import EvalConfig, evaluate
    from kino.eval.suites import Suite, suite_prompts
    from kino.train.distributed import barrier

    pipe = ema_pipeline(trainer, info, options.source)
    summary = None
    if pipe is not None:
        w, h = options.sample_size
        fps = trainer.cfg.fps
        items = suite_prompts(Suite.WORLD_TRAIN, width=w, height=h, fps=fps, num_frames=options.sample_frames,
                              size=options.eval_prompts)
        config = EvalConfig(seeds=1, enhance=False, steps=options.sample_steps, width=w, height=h,
                            seconds=options.sample_frames / fps, fps=fps)
        with _forked(trainer.device):
            report = evaluate(items, config, pipe, source=Suite.WORLD_TRAIN.value, model=f"step {trainer.step_count}")
        report.write_json(path)
        summary = report.summary.to_dict()
        monitor.scalars(trainer.step_count, {"eval/adherence": summary["adherence_total"],
                                             "eval/smoothness": summary["smoothness"],
                                             "eval/dynamic_degree": summary["dynamic_degree"]})
        monitor.message(f"eval: adherence {summary['adherence_total']} ({path})")
    barrier(info)
    return summary




def train_dit(cfg, vae, out_dir: str | Path, resume: bool = False, device: torch.device | str = "cpu",
              data: Callable | None = None, on_step: Callable[[int, int, float], None] | None = None,
              model_config=None, **options) -> Path:
    """Train (or resume) a DiT (cfg: kino.train.dit.DiTTrainConfig) into out_dir/checkpoints and write
    the EMA pipeline to out_dir/pipeline; returns the pipeline directory.

    data(cfg, start) gives the stream of items {"video", "caption"} from data position `start` (default:
    the world). on_step(step, total, loss) reports progress; model_config replaces the preset's DiT config.
    `options` are RunOptions fields (parallel, data source, logging, samples, evaluation).
    """
    return run_training(cfg, vae, out_dir, resume=resume, device=device, data=data, on_step=on_step,
                        model_config=model_config, options=RunOptions(**options))
