"""The LoRA training run: data, steps, checkpoints, logs, validation videos and a held-out eval loss.

`run_lora_training` is what `kino train lora` runs (one process, or torchrun with --parallel ddp|fsdp).
Per step each rank takes its slices of the step's global batch from the family cache
(kino.data.buckets_global), LoRATrainer.train_step accumulates, syncs and steps; rank 0 logs the loss
(kino.train.monitor: TensorBoard, metrics.jsonl, the console). Checkpoints are gathered by every rank
(collective under FSDP2) and written by rank 0. Every `validate_every` steps rank 0 (every rank under
FSDP2, whose blocks all-gather) generates the validation
prompts with the current adapter through the family's kino adapter (the same code `kino generate`
runs) into RUN/samples/step-XXXXXXXX/NN.mp4, and logs their frames to TensorBoard (`samples/NN`);
every `eval_every` steps the loss of the held-out clips at fixed noise (eval/loss). Validation runs
under a forked RNG: a run with it follows the same losses as one without.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from kino.errors import InputError
from kino.train.distributed import Parallel


@dataclass(frozen=True)
class LoRARunOptions:
    """How a LoRA run executes and reports (the recipe is LoRATrainConfig)."""

    parallel: Parallel = Parallel.NONE
    dtype: str | None = None  # the frozen base's dtype (None: bf16 on a GPU, fp32 on a CPU)
    init_lora: str | None = None  # start from this LoRA file (diffusers or ComfyUI format)
    cache_area: int = 64 * 64  # when --data is a manifest: the cache's bucket area and frame cap
    cache_frames: int = 17
    log_every: int = 10
    tensorboard: bool = True
    console: bool = False
    validate_every: int = 0
    validation_prompts: tuple[str, ...] = ()
    validation_image: str | None = None  # a conditioned LoRA's validation: image-to-video from this image
    validation_steps: int = 20
    validation_size: tuple[int, int] | None = None  # (width, height); None: the training clips' size
    validation_frames: int | None = None
    eval_every: int = 0
    eval_clips: int = 1  # clips held out of training for the eval loss (when eval_every > 0)
    overwrite: bool = False
    workers: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "parallel", Parallel(self.parallel))
        object.__setattr__(self, "validation_prompts", tuple(self.validation_prompts))
        if min(self.validate_every, self.eval_every, self.workers) < 0 or self.eval_clips < 1:
            raise InputError("--validate-every, --eval-every and --workers must be >= 0, --eval-clips >= 1")
        if self.validate_every and not self.validation_prompts:
            raise InputError("--validate-every needs at least one --validation-prompt")
        if self.validation_image is not None and not Path(self.validation_image).is_file():
            raise InputError(f"--validation-image {self.validation_image}: no such file")  # before any step
        if self.init_lora is not None and not Path(self.init_lora).exists():
            raise InputError(f"--init-lora {self.init_lora}: no such file")


def run_lora_training(cfg, model_dir: str | Path, data: str | Path, out: str | Path, resume: bool = False,
                      device: str = "cpu", options: LoRARunOptions | None = None,
                      on_step: Callable[[int, int, float], None] | None = None) -> Path:
    """Train (or resume) a LoRA into `out`; returns RUN/pytorch_lora_weights.safetensors."""
    from kino.train.distributed import barrier, init_distributed, shutdown, sum_over_ranks
    from kino.train.loop import check_run_folder
    from kino.train.lora import LoRATrainer
    from kino.train.monitor import Monitor

    options = options or LoRARunOptions()
    info, dev = init_distributed(options.parallel, device)
    run = Path(out)
    monitor = None
    try:
        check_run_folder(run, resume, options.overwrite, info)
        full = clips_of(data, model_dir, run, options, device, info, cfg.seed)
        n = len(full)
        held = list(range(n - options.eval_clips, n)) if options.eval_every else []
        if held and n <= len(held):
            raise InputError(f"--data holds {n} clips; --eval-clips {options.eval_clips} would leave none to train")
        if not n:
            raise InputError(f"--data {data} holds no clips")
        train = Subset(full, [i for i in range(n) if i not in held])
        trainer = LoRATrainer(cfg, model_dir, dev, options.dtype, index=full.index)
        if options.validate_every and trainer.den.variant in ("i2v", "flf2v") and not options.validation_image:
            raise InputError(f"--validate-every on a Wan {trainer.den.variant.upper()} folder needs "
                             f"--validation-image (it makes no video from text alone)")
        distribute(trainer, info)
        if trainer.sharded and info.is_main:
            import sys

            print(f"note: {shard_summary(trainer, info)}", file=sys.stderr, flush=True)
        if options.init_lora and not resume:
            trainer.init_from(options.init_lora)
        if resume:
            trainer.resume(run / "checkpoints")
        null = trainer.null_text(train)
        batches = micro_batches(train, cfg, info, trainer.step_count, options.workers)
        monitor = Monitor(run, cfg.steps, trainer.step_count, enabled=info.is_main, tensorboard=options.tensorboard,
                          console=options.console, log_every=options.log_every)
        first = info.rank * cfg.grad_accum
        held_items = [full[i] for i in held]
        while trainer.step_count < cfg.steps:
            stats = trainer.train_step([next(batches) for _ in range(cfg.grad_accum)], first, null)
            loss, samples, tokens = sum_over_ranks([stats.loss, stats.samples, stats.tokens], info)
            loss /= info.world_size
            step = trainer.step_count
            monitor.step(step, loss, stats.lr, stats.grad_norm, int(samples), int(tokens))
            if step % cfg.checkpoint_every == 0 or step == cfg.steps:
                trainer.save(run / "checkpoints")  # every rank (FSDP2 gathers the adapters); rank 0 writes
                barrier(info)
            if held_items and step % options.eval_every == 0:
                value = trainer.eval_loss(held_items, null)
                monitor.scalars(step, {"eval/loss": value})
                monitor.message(f"step {step}: eval loss {value:.4f} on {len(held_items)} held-out clip(s)")
            if options.validate_every and step % options.validate_every == 0 and (info.is_main or trainer.sharded):
                validate_on_rank(trainer, options, run / "samples" / f"step-{step:08d}", monitor, train)
            if options.validate_every:
                barrier(info)
            if on_step is not None and info.is_main:
                on_step(step, cfg.steps, loss)
        paths = trainer.write_loras(run)  # every rank (FSDP2 gathers the adapters); rank 0 writes
        barrier(info)
        return paths[0]
    finally:
        if monitor is not None:
            monitor.close()
        shutdown()


class Subset:
    """Some clips of a FamilyClips / CachedClips, with their `shapes` (for the bucket sampler)."""

    def __init__(self, dataset, indices: list[int]) -> None:
        self.dataset, self.indices = dataset, list(indices)
        self.index = getattr(dataset, "index", {})
        self.clips = [dataset.clips[i] for i in self.indices]

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def shapes(self) -> list[tuple[int, int, int]]:
        shapes = self.dataset.shapes
        return [shapes[i] for i in self.indices]

    def __getitem__(self, i: int) -> dict:
        return self.dataset[self.indices[i]]

    def null_text(self):
        return self.dataset.null_text()


def clips_of(data, model_dir, run: Path, options: LoRARunOptions, device: str, info, seed: int):
    """The training data: a family cache (LTX-Video, Wan; a manifest is cached first) or, for a kino
    pipeline, kino's own latent cache (kino data cache --vae)."""
    from kino.families.base import Family
    from kino.families.loading import detect_family

    if detect_family(model_dir) is Family.KINO:
        from kino.data.cache import CachedClips

        if not Path(data).is_dir():
            raise InputError(f"--data {data}: a kino model trains on kino's latent cache; make it with "
                             f"`kino data cache MANIFEST --vae {model_dir} --out CACHE`")
        return CachedClips(data, seed=seed)
    from kino.data.family_cache import FamilyClips

    return FamilyClips(cached_data(data, model_dir, run, options, device, info), seed=seed)


def cached_data(data: str | Path, model_dir, run: Path, options: LoRARunOptions, device: str, info) -> Path:
    """The family cache to train on: `data` itself, or a manifest cached into RUN/cache (rank 0 encodes)."""
    from kino.data.family_cache import FamilyCacheConfig, build_family_cache, read_family_index
    from kino.train.distributed import barrier

    p = Path(data)
    if p.is_dir():
        read_family_index(p)
        return p
    if not p.is_file():
        raise InputError(f"--data {data}: neither a family cache folder (kino data cache --model) nor a manifest "
                         f"(kino data prepare)")
    if info.is_main:
        build_family_cache(p, model_dir, run / "cache",
                           FamilyCacheConfig(area=options.cache_area, max_frames=options.cache_frames), device=device)
    barrier(info)
    return run / "cache"


def micro_batches(dataset, cfg, info, start_step: int, workers: int):
    """This rank's micro-batches from step `start_step`: its slices of each step's global batch
    (kino.data.buckets_global), so the global data order is the same on any world size and a resume on
    another world size continues it."""
    from torch.utils.data import DataLoader

    from kino.data.buckets_global import GlobalBatches, RankSlices
    from kino.train.data import Layout

    Layout(info.rank, info.world_size, cfg.grad_accum).micro_size(cfg.batch_size)  # refuses an uneven split
    sampler = RankSlices(GlobalBatches(dataset.shapes, cfg.batch_size, seed=cfg.seed), info.rank,
                         info.world_size, cfg.grad_accum, start_step)
    loader = DataLoader(dataset, batch_sampler=sampler, num_workers=workers, collate_fn=list,
                        persistent_workers=workers > 0)
    return iter(loader)


def distribute(trainer, info) -> None:
    """Wrap each trained transformer for DDP or FSDP2, in place, before any step, resume or --init-lora.

    ddp: every rank holds the frozen base; the adapters' gradients are averaged.
    fsdp: FSDP2 (torch.distributed.fsdp.fully_shard) over each transformer block, then the root: the frozen
    base (in its dtype), the adapters, their gradients and AdamW's state are sharded over the ranks; a block's
    parameters are all-gathered for its forward and backward and freed after. The trainable adapters are all
    fp32, which is what FSDP2 asks of a unit's trainable parameters (frozen ones may keep another dtype)."""
    trainer.dist = info
    if info.parallel is Parallel.NONE:
        return
    if info.parallel is Parallel.DDP:
        from torch.nn.parallel import DistributedDataParallel

        ids = [trainer.device.index] if trainer.device.type == "cuda" else None
        for e in trainer.experts:
            trainer.forward[e] = DistributedDataParallel(trainer.den.by_expert[e], device_ids=ids)
        return
    if trainer.cfg.fp8:
        raise InputError("--fp8 with --parallel fsdp is not supported (diffusers' layerwise casting recasts the "
                         "weights FSDP2 shards); use one of them")
    from torch.distributed.device_mesh import init_device_mesh

    mesh = init_device_mesh(trainer.device.type, (info.world_size,))
    for e in trainer.experts:
        shard_transformer(trainer.den.by_expert[e], trainer.den.family, mesh)
    trainer.sharded = True
    trainer.opt = trainer.make_optimizer()  # over the DTensor shards of the adapters


def shard_summary(trainer, info) -> str:
    """One line: how much of the frozen base this rank holds under FSDP2."""
    held = total = 0
    for e in trainer.experts:
        for p in trainer.den.by_expert[e].parameters():
            if not p.requires_grad:
                total += p.numel()
                held += p.to_local().numel() if hasattr(p, "to_local") else p.numel()
    return (f"FSDP2: the frozen base is sharded over {info.world_size} processes; rank {info.rank} holds "
            f"{held:,} of its {total:,} parameters")


def shard_transformer(model, family: str, mesh) -> None:
    """fully_shard each block of an LTX-Video / Wan transformer (VACE's context blocks too), then the root;
    kino's DiT as `kino train dit --parallel fsdp` shards it (kino.train.distributed.shard_dit)."""
    from torch.distributed.fsdp import fully_shard

    from kino.train.distributed import shard_dit

    if family == "kino":
        shard_dit(model, mesh)
        return
    blocks = list(getattr(model, "transformer_blocks", None) or model.blocks)  # LTX-Video / Wan
    blocks += list(getattr(model, "vace_blocks", None) or [])
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(model, mesh=mesh)


# ----------------------------------------------------------------------------- validation


def validation_model(trainer):
    """The family's kino adapter over the folder's components and the trainer's (adapted) transformers."""
    import diffusers

    from kino.families.diffusers_common import RunOptions, quiet
    from kino.families.loading import read_index

    folder = trainer.model_dir
    if trainer.den.family == "kino":
        from kino.families.kino import KinoModel

        return KinoModel(trainer.den.meta["pipe"], folder.name, str(folder))
    cls = getattr(diffusers, str(read_index(folder)["_class_name"]))
    given = {"transformer": trainer.den.by_expert["high"]}
    if "low" in trainer.den.by_expert:
        given["transformer_2"] = trainer.den.by_expert["low"]
    with quiet():
        pipe = cls.from_pretrained(folder, torch_dtype=trainer.dtype, local_files_only=True, **given)
    pipe.set_progress_bar_config(disable=True)
    if trainer.den.family == "ltx":
        from kino.families.ltx import LTXModel as Model
    else:
        from kino.families.wan import WanModel as Model
    return Model(pipe, folder, str(trainer.device), trainer.dtype, RunOptions())


def validate_on_rank(trainer, options: LoRARunOptions, folder: Path, monitor, dataset) -> None:
    """Validation on rank 0; under FSDP2 every rank runs the same generation (each block's all-gather is
    collective) and the others write into a temporary folder."""
    if trainer.is_main:
        validate(trainer, options, folder, monitor, dataset)
        return
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        validate(trainer, options, Path(tmp) / folder.name, monitor, dataset)


def validate(trainer, options: LoRARunOptions, folder: Path, monitor, dataset) -> list[Path]:
    """Generate the validation prompts (and image-to-video from validation_image) with the current LoRA."""
    from kino.generation import GenerationRequest, resolve
    from kino.io import atomic_dir, write_video

    if getattr(trainer, "_validation", None) is None:
        trainer._validation = validation_model(trainer)
    model = trainer._validation
    shape = dataset.shapes[0]  # (t, h, w) latent of the first training clip
    f = trainer.index.get("factors", {})
    width = options.validation_size[0] if options.validation_size else shape[2] * int(f.get("spatial", 8))
    height = options.validation_size[1] if options.validation_size else shape[1] * int(f.get("spatial", 8))
    m = model.defaults.size_multiple  # the family's size rule (LTX-Video: 32)
    width, height = (max(m, round(v / m) * m) for v in (width, height))
    frames = options.validation_frames or 1 + (shape[0] - 1) * int(f.get("temporal", 4))
    fps = float(dataset.clips[0].get("fps", model.defaults.fps))
    # text-to-video where the folder makes it; its conditioned mode from the validation image (FLF2V: the
    # image at both ends, interpolate)
    jobs = [("text", p, None) for p in options.validation_prompts] if "text" in model.modes else []
    for mode in ("image-to-video", "interpolate"):
        if options.validation_image and mode in model.modes and (mode == "image-to-video" or not jobs):
            jobs.append((mode, options.validation_prompts[0], options.validation_image))
            break
    written = []
    was = {e: trainer.den.by_expert[e].training for e in trainer.experts}
    for e in trainer.experts:
        trainer.den.by_expert[e].eval()
    try:
        with torch.random.fork_rng(devices=[]), atomic_dir(folder) as tmp:
            for i, (mode, prompt, image) in enumerate(jobs):
                given = {"keyframes": (image, image)} if mode == "interpolate" else {"from_image": image}
                req = GenerationRequest(prompt=prompt, mode=mode, width=width, height=height, fps=fps,
                                        seconds=frames / fps, steps=options.validation_steps, seed=i, enhance=False,
                                        **given)
                req = resolve(req, model.defaults)
                out = model.generate(req, prompt, i)
                write_video(tmp / f"{i:02d}.mp4", out.frames, out.fps)
                written.append(folder / f"{i:02d}.mp4")
                if monitor.writer is not None:
                    frames_t = torch.from_numpy(out.frames).permute(0, 3, 1, 2)  # (T, 3, H, W) uint8
                    monitor.writer.add_images(f"samples/{i:02d}", frames_t, trainer.step_count, dataformats="NCHW")
            (tmp / "prompts.txt").write_text("\n".join(f"{m}: {p}" for m, p, _ in jobs) + "\n")
    finally:
        for e, t in was.items():
            trainer.den.by_expert[e].train(t)
    monitor.message(f"validation: {folder}")
    return written
