"""`kino data ...`: prepare a folder of videos into a manifest, recaption it, cache latents, inspect it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kino.commands.output import plural
from kino.data.buckets import BatchMode
from kino.data.captioner import CaptionBackend

data_app = typer.Typer(help="Training data: ingest videos, recaption, cache latents.", no_args_is_help=True)


def _progress():
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())


@data_app.command("prepare")
def prepare(
    folder: Annotated[Path, typer.Argument(help="Folder of videos and images (searched recursively).")],
    out: Annotated[Path, typer.Option("--out", "-o", "--output", help="Manifest to write (JSONL).")],
    captions: Annotated[Path | None, typer.Option(help="Captions by file name (.jsonl or .csv).")] = None,
    fps: Annotated[float | None, typer.Option(help="Target frame rate (default 8; 0 keeps each file's).")] = 8.0,
    min_seconds: Annotated[float, typer.Option(help="Drop clips shorter than this.")] = 1.0,
    max_seconds: Annotated[float | None, typer.Option(help="Split longer scenes into pieces of this.")] = 10.0,
    min_motion: Annotated[float, typer.Option(help="Drop clips whose motion score (0..255) is below.")] = 0.5,
    cut_floor: Annotated[float, typer.Option(help="Least histogram distance (0..2) for a scene cut.")] = 0.3,
    cut_ratio: Annotated[float, typer.Option(help="A cut's distance over its neighbours' mean.")] = 3.0,
    workers: Annotated[int, typer.Option(help="Processes decoding files in parallel.")] = 1,
) -> None:
    """Probe, cut at scene changes, resample and filter every file; write the manifest and skipped list."""
    from rich.table import Table

    from kino.commands.output import console as make_console
    from kino.data.manifest import sidecar_path
    from kino.data.prepare import PrepareConfig, prepare_folder, scan_folder

    config = PrepareConfig(fps=fps or None, min_seconds=min_seconds, max_seconds=max_seconds,
                           min_motion=min_motion, cut_floor=cut_floor, cut_ratio=cut_ratio, workers=workers)
    console = make_console(stderr=True)
    total = len(scan_folder(folder))
    with _progress() as bar:
        task = bar.add_task("prepare", total=total)
        result = prepare_folder(folder, out, config, captions,
                                on_file=lambda r: bar.update(task, advance=1, description=Path(r.path).name[:30]))
    if result.skipped:
        table = Table(title=f"skipped {len(result.skipped)} {plural(len(result.skipped), 'file')}")
        table.add_column("file", overflow="fold")
        table.add_column("reason", overflow="fold")
        for s in result.skipped:
            table.add_row(_relative(s.path, folder), s.reason)
        console.print(table)
    n, k, short = len(result.records), len(result.skipped), result.dropped_short
    print(f"wrote {out}: {n} {plural(n, 'clip')}; {k} {plural(k, 'file')} skipped, "
          f"{short} {plural(short, 'piece')} too short, {result.dropped_static} near-static "
          f"(details in {sidecar_path(out)})")


def _relative(path: str, folder: Path) -> str:
    try:
        return Path(path).relative_to(folder).as_posix()
    except ValueError:
        return path


@data_app.command("caption")
def caption(
    manifest: Annotated[Path, typer.Argument(help="Manifest to fill with captions (rewritten in place).")],
    backend: Annotated[CaptionBackend, typer.Option(help="Who writes the captions.")] = CaptionBackend.OPENAI,
    base_url: Annotated[str | None, typer.Option(help="Chat-completions base URL, needed by the openai backend (or env KINO_CAPTION_BASE_URL).")] = None,
    model: Annotated[str | None, typer.Option(help="Model name on that server (or env KINO_CAPTION_MODEL).")] = None,
    model_dir: Annotated[Path | None, typer.Option(help="Local image-to-text model folder (backend local).")] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per request.")] = 60.0,
    retries: Annotated[int, typer.Option(help="Extra tries on timeouts, 429 and 5xx.")] = 3,
    frames: Annotated[int, typer.Option(help="Frames shown to the captioner per clip.")] = 3,
    overwrite: Annotated[bool, typer.Option(help="Recaption clips that already have every level.")] = False,
    device: Annotated[str, typer.Option(help="Torch device of the local model.")] = "cpu",
) -> None:
    """Fill captions at the short, medium and detailed levels; a failed clip is recorded, not fatal."""
    from kino.data.captioner import (
        LocalCaptioner,
        OpenAICaptioner,
        OpenAIConfig,
        WorldCaptioner,
        caption_manifest,
    )
    from kino.data.manifest import read_manifest
    from kino.errors import InputError

    if backend is CaptionBackend.WORLD:
        captioner = WorldCaptioner.for_manifest(read_manifest(manifest), manifest.parent)
    elif backend is CaptionBackend.LOCAL:
        if model_dir is None:
            raise InputError("the local backend needs --model-dir DIR (a transformers image-to-text model)")
        captioner = LocalCaptioner(model_dir, device=device)
    else:
        captioner = OpenAICaptioner(OpenAIConfig.from_env(base_url=base_url, model=model, timeout=timeout,
                                                          retries=retries, num_frames=frames))
    total = len(read_manifest(manifest))
    with _progress() as bar:
        task = bar.add_task("caption", total=total)
        report = caption_manifest(manifest, captioner, num_frames=frames, overwrite=overwrite,
                                  on_clip=lambda rec, err: bar.update(task, advance=1))
    for clip_id, reason in report.failed[:20]:
        print(f"failed {clip_id}: {reason}")
    print(f"captioned {report.captioned} {plural(report.captioned, 'clip')}, kept {report.kept}, "
          f"failed {len(report.failed)}; wrote {manifest}")
    if report.failed and not report.captioned and not report.kept:
        from kino.errors import ServiceError

        raise ServiceError(f"every clip failed to caption ({len(report.failed)} of {total}); first: "
                           f"{report.failed[0][1]}")


@data_app.command("cache")
def cache(
    manifest: Annotated[Path | None, typer.Argument(help="Manifest of the clips to encode (or --world COUNT).")] = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Cache folder (resumable).")] = ...,
    world: Annotated[int | None, typer.Option("--world", help="Instead of a manifest: render COUNT clips of kino's "
                                                             "world straight to tensors (a larger COUNT extends "
                                                             "the cache).")] = None,
    seed: Annotated[int, typer.Option(help="--world: the world stream's seed (clip j is a function of seed, j).")] = 0,
    size: Annotated[list[str] | None, typer.Option(help="--world: clip size WIDTHxHEIGHT (repeat). "
                                                        "[default: 64x64, 96x64, 64x96]")] = None,
    frames: Annotated[list[int] | None, typer.Option(help="--world: frame counts, 1 + 4k (repeat). "
                                                          "[default: 9, 17]")] = None,
    image_prob: Annotated[float, typer.Option(help="--world: share of 1-frame clips (images).")] = 0.1,
    encode_batch: Annotated[int, typer.Option(help="--world: clips of one shape the VAE encodes together.")] = 8,
    vae: Annotated[Path | None, typer.Option(help="The VAE: a `kino train vae` run folder (its newest checkpoint), "
                                                  "a VAE or pipeline folder. [default: the built-in model's VAE]")] = None,
    text_encoder: Annotated[str, typer.Option(help="'minilm' (packaged) or a text encoder folder.")] = "minilm",
    area: Annotated[int, typer.Option(help="Pixels per frame of the aspect-ratio buckets.")] = 64 * 64,
    max_frames: Annotated[int, typer.Option(help="At most this many frames per clip (snapped to 1+4k).")] = 17,
    shard_size: Annotated[int, typer.Option(help="Clips per shard file.")] = 256,
    dtype: Annotated[str, typer.Option(help="Storage dtype: float16, bfloat16 or float32.")] = "float16",
    device: Annotated[str, typer.Option(help="Torch device, e.g. cpu or cuda.")] = "cpu",
    threads: Annotated[int, typer.Option(help="Torch CPU threads (0: the default).")] = 0,
    model: Annotated[Path | None, typer.Option(help="An LTX-Video or Wan folder: cache with its own VAE and text "
                                                    "encoder, for `kino train lora` (entries keyed by content; float16 is stored "
                                                    "as bfloat16, whose range T5 states need).")] = None,
) -> None:
    """Precompute VAE latents and text embeddings into sharded safetensors with an index."""
    from kino.errors import InputError

    if (manifest is None) == (world is None):
        raise InputError("give a manifest or --world COUNT (one of them)")
    if world is not None and world < 1:
        raise InputError(f"--world {world}: the cache needs at least 1 clip")
    if threads < 0:
        raise InputError(f"--threads {threads} must be >= 0 (0: the default)")
    if threads:
        import torch

        torch.set_num_threads(threads)
    if world is not None and model is not None:
        raise InputError("--world caches for kino's own DiT; --model (an open model's cache) needs a manifest")
    if model is not None:
        from kino.data.family_cache import FamilyCacheConfig, build_family_cache

        with _progress() as bar:
            task = bar.add_task("cache", total=None)
            fam = build_family_cache(manifest, model, out, FamilyCacheConfig(area=area, max_frames=max_frames,
                                                                           dtype="bfloat16" if dtype == "float16" else dtype),
                                     device=device, on_clip=lambda done, n: bar.update(task, completed=done, total=n))
        print(f"wrote {out}: {fam.clips} clips ({fam.encoded} encoded, {fam.reused} unchanged and reused, "
              f"{fam.texts} captions encoded); {len(fam.failed)} clips failed")
        return
    from kino.commands.train import _size
    from kino.data.buckets import TokenFactors
    from kino.data.cache import CacheConfig, build_cache
    from kino.data.clips import ClipShaping
    from kino.models.text import TextEncoder
    from kino.models.vae import CausalVAE
    from kino.train.vae_folder import resolve_vae

    sizes = tuple(_size(s) for s in size) if size else ((64, 64), (96, 64), (64, 96))  # kino train dit's world
    world_frames = tuple(frames) if frames else (9, 17)
    vae = resolve_vae(vae)
    model = CausalVAE.from_pretrained(vae, device=device)
    factors = TokenFactors(temporal=model.config.temporal_factor, spatial=model.config.spatial_factor)
    config = CacheConfig(shard_size=shard_size, dtype=dtype,
                         shaping=ClipShaping(area=area, max_frames=max_frames, factors=factors))
    if world is not None:
        from kino.data.world import WorldClips

        WorldClips(sizes=sizes, num_frames=world_frames, image_prob=image_prob)  # one-line errors before loading
    if text_encoder.lower() in ("minilm", "packaged-minilm", "default"):
        encoder = TextEncoder(device=device)
    else:
        encoder = TextEncoder.from_pretrained(text_encoder, device=device)
    identity = {"vae": str(vae.resolve()), "text_encoder": encoder.encoder_id}
    with _progress() as bar:
        task = bar.add_task("cache", total=None)
        progress = lambda done, n: bar.update(task, completed=done, total=n)  # noqa: E731
        if world is not None:
            from kino.data.world_cache import build_world_cache

            report = build_world_cache(world, model, encoder, out, config, identity=identity, device=device,
                                       on_clip=progress, encode_batch=encode_batch, seed=seed, sizes=sizes,
                                       num_frames=world_frames, image_prob=image_prob)
        else:
            report = build_cache(manifest, model, encoder, out, config, identity=identity, device=device,
                                 on_clip=progress)
    print(f"wrote {out}: {report.clips} clips; shards built {len(report.built)}, already complete "
          f"{len(report.skipped)}; {len(report.failed)} clips failed")


@data_app.command("inspect")
def inspect(
    path: Annotated[Path, typer.Argument(help="A manifest (.jsonl) or a cache folder.")],
    token_budget: Annotated[int, typer.Option(help="Tokens per batch, to count batches.")] = 4096,
    mode: Annotated[BatchMode, typer.Option(help="Batching mode to count batches for.")] = BatchMode.BUCKET,
    area: Annotated[int, typer.Option(help="Bucket area (manifests only).")] = 64 * 64,
    max_frames: Annotated[int, typer.Option(help="Frame cap (manifests only).")] = 17,
    patch: Annotated[str, typer.Option(help="The DiT's patch TxHxW in latent cells, for the token counts "
                                            "(world-tiny-v2: 1x4x4).")] = "1x2x2",
) -> None:
    """Counts, durations, caption coverage, buckets and batches of a manifest or a cache."""
    from collections import Counter

    from rich.table import Table

    from kino.commands.output import console as make_console
    from kino.data.buckets import BucketBatchSampler, TokenFactors
    from kino.data.cache import CachedClips
    from kino.data.clips import ClipShaping, ManifestClips
    from kino.data.manifest import read_sidecar
    from kino.errors import InputError

    try:
        patch_size = tuple(int(v) for v in patch.lower().split("x"))
        factors = TokenFactors(patch=patch_size)
    except (ValueError, InputError):
        raise InputError(f"--patch {patch!r} is not three positive ints TxHxW, e.g. 1x2x2 or 1x4x4") from None
    console = make_console()
    if path.is_dir():
        ds = CachedClips(path)
        shapes = ds.shapes
        console.print(f"cache {path}: {len(ds)} clips, {len(ds.index['failed'])} failed, "
                      f"text width {ds.index['text_dim']}")
    else:
        ds = ManifestClips(path, ClipShaping(area=area, max_frames=max_frames))
        shapes = ds.shapes
        recs = ds.records
        kinds = Counter(r.kind.value for r in recs)
        seconds = sum(r.seconds for r in recs)
        levels = Counter(lv for r in recs for lv, text in r.captions.items() if text)
        side = read_sidecar(path)
        console.print(f"manifest {path}: {len(recs)} clips ({dict(kinds)}), {seconds:.1f} s of video, "
                      f"{len(side.get('skipped', []))} files skipped")
        console.print("captions: " + (", ".join(f"{k} {v}/{len(recs)}" for k, v in sorted(levels.items()))
                                      or "none; run `kino data caption`"))
    if not shapes:
        return
    table = Table(title="buckets (latent t x h x w)")
    for col in ("latent shape", "clips", "tokens each"):
        table.add_column(col)
    for shape, count in sorted(Counter(shapes).items()):
        table.add_row("x".join(map(str, shape)), str(count), str(factors.latent_tokens(shape)))
    console.print(table)
    sampler = BucketBatchSampler(shapes, max(token_budget, max(factors.latent_tokens(s) for s in shapes)),
                                 factors, mode=mode)
    console.print(f"{len(sampler)} batches per epoch at {sampler.budget} tokens ({mode.value})")


def register(app: typer.Typer) -> None:
    app.add_typer(data_app, name="data")
