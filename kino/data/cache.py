"""The latent + text-embedding cache: training reads tensors, not videos.

`write_cache` runs every clip of a source through the VAE (normalized latents, C x t x h x w) and
every caption level through the text encoder (hidden states of the real tokens, L x D), and writes
them to sharded safetensors files. Sources: a manifest (`build_cache`, `ManifestSource`) or kino's
world rendered straight to tensors (kino.data.world_cache).

    CACHE/cache.json           settings (the source's: manifest hash and shaping, or the world's recipe;
                               VAE, text encoder, shard size, dtype)
    CACHE/shard_00000.safetensors   "c0000000.latent", "c0000000.text.detailed", ... per clip
    CACHE/shard_00000.json     the shard's clips (id, key, latent shape, levels, a world clip's spec) and failures
    CACHE/index.json           all clips, in source order, assembled from the shard files

Resumable: a shard whose .safetensors and .json both exist (and account for its whole span) is complete
and skipped; each file is
written to a temporary name and renamed, the .json last, so a crash mid-shard only redoes that
shard. Running against a cache built with other settings is refused rather than mixed.
A clip that cannot be decoded is recorded as failed, never fatal. `CachedClips` reads a finished cache:
normalized latents and text hidden states, so training reads tensors, not videos.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from torch.utils.data import Dataset

from kino.data.clips import ClipShaping, ManifestClips
from kino.data.manifest import atomic_write_text
from kino.errors import InputError, MediaError
from kino.io import atomic_write

CACHE_VERSION = 1
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


class VideoEncoder(Protocol):
    """What the cache needs of a VAE: `encode` (B, 3, T, H, W) -> normalized (B, C, t, h, w)."""

    def encode(self, x: torch.Tensor) -> torch.Tensor: ...


class PromptEncoder(Protocol):
    """What the cache needs of a text encoder: `encode(list[str])` -> object with .hidden (B, L, D), .mask (B, L)."""

    def encode(self, prompts: list[str]) -> Any: ...


@dataclass(frozen=True)
class CacheConfig:
    """How the cache is cut and stored."""

    shard_size: int = 256  # clips per shard file
    dtype: str = "float16"  # storage dtype of latents and text states
    shaping: ClipShaping = field(default_factory=ClipShaping)

    def __post_init__(self) -> None:
        if self.shard_size < 1:
            raise InputError(f"shard_size {self.shard_size} must be at least 1")
        if self.dtype not in DTYPES:
            raise InputError(f"cache dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")


@dataclass
class CacheReport:
    built: list[int]  # shard numbers written in this run
    skipped: list[int]  # shard numbers already complete
    clips: int
    failed: list[dict[str, str]]


def shard_name(i: int) -> str:
    return f"shard_{i:05d}"


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class SourceClip:
    """One clip of a source, ready to encode: pixels (3, T, H, W) in [-1, 1] and its captions by level."""

    id: str
    video: torch.Tensor  # (3, T, H, W)
    captions: dict[str, str]
    extra: dict[str, Any] = field(default_factory=dict)  # stored with the clip's entry (a world clip's scene spec)


class ClipSource(Protocol):
    """What the cache writer encodes: `len` clips, clip j a pure function of j (so shards resume), and the
    settings that name them (stored in cache.json; a resume with other settings is refused)."""

    settings: dict[str, Any]

    def __len__(self) -> int: ...

    def clip(self, j: int) -> SourceClip:
        """Clip j; MediaError when it cannot be read (recorded as failed, not fatal)."""
        ...

    def clip_id(self, j: int) -> str:
        """Clip j's id, without reading it (for the failure record)."""
        ...


class ManifestSource:
    """The clips of a manifest (kino data prepare), shaped to their buckets."""

    def __init__(self, manifest: str | os.PathLike, shaping: ClipShaping) -> None:
        self.data = ManifestClips(manifest, shaping)
        self.settings = {"manifest_sha256": file_sha256(manifest), "shaping": asdict(shaping)}

    def __len__(self) -> int:
        return len(self.data)

    def clip(self, j: int) -> SourceClip:
        rec = self.data.records[j]
        item = self.data[j]
        return SourceClip(rec.id, item["video"], {k: v for k, v in rec.captions.items() if v})

    def clip_id(self, j: int) -> str:
        return self.data.records[j].id


def build_cache(
    manifest: str | os.PathLike,
    vae: VideoEncoder,
    text_encoder: PromptEncoder,
    out: str | os.PathLike,
    config: CacheConfig | None = None,
    identity: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    on_clip: Callable[[int, int], None] | None = None,
) -> CacheReport:
    """Encode a manifest's clips and captions into `out` (resumable); returns what was built and skipped.

    identity: names of the VAE and text encoder, stored in cache.json so a resume with others is refused.
    on_clip(done, total) is called after each clip (for a progress bar).
    """
    config = config or CacheConfig()
    return write_cache(ManifestSource(manifest, config.shaping), vae, text_encoder, out, config, identity, device,
                       on_clip)


def write_cache(
    source: ClipSource,
    vae: VideoEncoder,
    text_encoder: PromptEncoder,
    out: str | os.PathLike,
    config: CacheConfig | None = None,
    identity: dict[str, Any] | None = None,
    device: str | torch.device = "cpu",
    on_clip: Callable[[int, int], None] | None = None,
    encode_batch: int = 1,
) -> CacheReport:
    """Encode any clip source into `out`, shard by shard (resumable); returns what was built and skipped.

    A shard is complete when its .safetensors and .json exist and the .json accounts for every clip of its
    span, so a source that grew (a larger world count) rebuilds its last, shorter shard and adds the rest.
    encode_batch: clips of one shape encoded by the VAE together (at 8, a world build on one CPU thread
    was 1.4x faster a clip, BENCHMARKS.md); each clip's latent is the same as encoded alone, to float error.
    """
    config = config or CacheConfig()
    if encode_batch < 1:
        raise InputError(f"encode_batch {encode_batch} must be at least 1")
    out = Path(out)
    settings = {"version": CACHE_VERSION, "shard_size": config.shard_size, "dtype": config.dtype,
                **source.settings, **(identity or {})}
    out.mkdir(parents=True, exist_ok=True)
    settings_path = out / "cache.json"
    settings = json.loads(json.dumps(settings))  # as it reads back from JSON (tuples become lists)
    if settings_path.is_file():
        old = json.loads(settings_path.read_text())
        if old != settings:
            diff = sorted(k for k in set(old) | set(settings) if old.get(k) != settings.get(k))
            raise InputError(f"{out} holds a cache built with other settings ({', '.join(diff)}); "
                             "use a new --out folder or delete this one")
    else:
        atomic_write_text(settings_path, json.dumps(settings, indent=2, sort_keys=True) + "\n")
    probe = latent_probe(vae, device)
    if (out / PROBE_FILE).is_file():
        _same_probe(out, probe, f"{out} was encoded by another VAE (its latent probe differs); use a new --out "
                                "folder or delete this one")
    else:
        atomic_write_text(out / PROBE_FILE, json.dumps({"probe": probe}) + "\n")

    n = len(source)
    shards = (n + config.shard_size - 1) // config.shard_size
    built, skipped = [], []
    done = [0]

    def tick(k: int = 1) -> None:
        done[0] += k
        if on_clip:
            on_clip(done[0], n)

    for s in range(shards):
        lo, hi = s * config.shard_size, min(n, (s + 1) * config.shard_size)
        if _shard_complete(out, s, hi - lo):
            skipped.append(s)
            tick(hi - lo)
            continue
        _build_shard(source, range(lo, hi), s, vae, text_encoder, out, DTYPES[config.dtype], device, tick,
                     encode_batch)
        built.append(s)
    index = assemble_index(out, shards)
    return CacheReport(built, skipped, len(index["clips"]), index["failed"])


def _shard_complete(out: Path, s: int, size: int) -> bool:
    meta, tensors = out / f"{shard_name(s)}.json", out / f"{shard_name(s)}.safetensors"
    if not (meta.is_file() and tensors.is_file()):
        return False
    body = json.loads(meta.read_text())
    return len(body["clips"]) + len(body["failed"]) == size


def _build_shard(source: ClipSource, span: range, s: int, vae: VideoEncoder, text_encoder: PromptEncoder,
                 out: Path, dtype: torch.dtype, device, tick: Callable[[], None], encode_batch: int) -> None:
    from safetensors.torch import save_file

    tensors: dict[str, torch.Tensor] = {}
    entries: dict[int, dict[str, Any]] = {}
    failed = []
    text_dim = None
    pending: dict[tuple[int, ...], list[tuple[int, torch.Tensor]]] = {}  # clips waiting for the VAE, by shape

    def encode(group: list[tuple[int, torch.Tensor]]) -> None:
        with torch.no_grad():
            x = torch.stack([v for _, v in group]).to(device)  # (B, 3, T, H, W)
            latents = vae.encode(x)  # (B, C, t, h, w)
        for (j, _), latent in zip(group, latents, strict=True):
            tensors[f"c{j:07d}.latent"] = latent.detach().to("cpu", dtype).contiguous()
            entries[j]["latent_shape"] = list(latent.shape)
            tick()

    for j in span:
        key = f"c{j:07d}"
        try:
            clip = source.clip(j)
        except MediaError as e:
            failed.append({"id": source.clip_id(j), "reason": str(e).splitlines()[0]})
            tick()
            continue
        levels = sorted(k for k, v in clip.captions.items() if v)
        for level in levels:
            emb = text_encoder.encode([clip.captions[level]])
            hidden = emb.hidden[0][emb.mask[0].bool()]  # (L, D): real tokens only, padded again at collate
            text_dim = int(hidden.shape[-1])
            tensors[f"{key}.text.{level}"] = hidden.detach().to("cpu", dtype).contiguous()
        entries[j] = {"id": clip.id, "key": key, "latent_shape": None, "levels": levels, **clip.extra}
        group = pending.setdefault(tuple(clip.video.shape), [])
        group.append((j, clip.video))
        if len(group) >= encode_batch:
            encode(pending.pop(tuple(clip.video.shape)))
    for group in pending.values():
        encode(group)
    name = shard_name(s)
    with atomic_write(out / f"{name}.safetensors", mode=None) as tmp:
        save_file(tensors, tmp, metadata={"shard": str(s)})
    clips = [entries[j] for j in sorted(entries)]  # in source order
    body = {"shard": f"{name}.safetensors", "clips": clips, "failed": failed, "text_dim": text_dim}
    atomic_write_text(out / f"{name}.json", json.dumps(body, indent=1) + "\n")  # last: marks it complete


def assemble_index(out: Path, shards: int) -> dict[str, Any]:
    """Join the shard files into index.json (atomically) and return it."""
    clips, failed, text_dim = [], [], None
    for s in range(shards):
        body = json.loads((out / f"{shard_name(s)}.json").read_text())
        for c in body["clips"]:
            clips.append({**c, "shard": body["shard"]})
        failed.extend(body["failed"])
        text_dim = text_dim or body.get("text_dim")
    settings = json.loads((out / "cache.json").read_text())
    index = {"settings": settings, "text_dim": text_dim or 0, "clips": clips, "failed": failed}
    atomic_write_text(out / "index.json", json.dumps(index, indent=1) + "\n")
    return index


PROBE_FILE = "vae_probe.json"  # the latent of a fixed clip under the cache's VAE (which latent space it holds)


def latent_probe(vae: VideoEncoder, device: str | torch.device = "cpu") -> list[float]:
    """Per-channel mean and standard deviation of the VAE's latent of one fixed 9-frame 64x64 clip (a smooth
    gradient plus seeded noise): the same for one encoder in any dtype, apart for another encoder."""
    g = torch.Generator().manual_seed(18)
    ramp = torch.linspace(-0.8, 0.8, 64)
    x = (ramp[None, None, None, :] * ramp.flip(0)[None, None, :, None]).expand(3, 9, 64, 64).clone()
    x = (x + 0.2 * torch.randn(x.shape, generator=g)).clamp(-1, 1)[None]  # (1, 3, 9, 64, 64)
    with torch.no_grad():
        z = vae.encode(x.to(device)).float().cpu()[0]  # (C, t, h, w)
    flat = z.reshape(z.shape[0], -1)
    return [round(float(v), 5) for v in torch.cat([flat.mean(1), flat.std(1)])]


def _same_probe(cache_dir: Path, probe: list[float], message: str) -> None:
    stored = json.loads((cache_dir / PROBE_FILE).read_text())["probe"]
    # float16-rounded weights move it ~1e-4, a 1.5x first convolution ~0.016, another seed ~0.2
    if len(stored) != len(probe) or any(abs(a - b) > 0.005 + 0.01 * abs(a) for a, b in zip(stored, probe, strict=True)):
        raise InputError(message)


def check_cache_vae(cache_dir: str | os.PathLike, vae: VideoEncoder, device: str | torch.device = "cpu") -> bool:
    """InputError (one line) when the cache's latents come from another VAE than `vae` (training a DiT on
    them would learn one latent space and decode with another); False for a cache from before the probe."""
    d = Path(cache_dir)
    if not (d / PROBE_FILE).is_file():
        return False
    built = json.loads((d / "cache.json").read_text()).get("vae", "?") if (d / "cache.json").is_file() else "?"
    _same_probe(d, latent_probe(vae, device), f"--data {d} was encoded by another VAE than --vae (the cache's: "
                                              f"{built}); pass that VAE, or rebuild the cache with this one")
    return True


def read_index(cache_dir: str | os.PathLike) -> dict[str, Any]:
    """The cache's index.json; InputError when the folder is not a finished cache."""
    p = Path(cache_dir) / "index.json"
    if not p.is_file():
        raise InputError(f"{cache_dir} is not a finished cache (no index.json); run `kino data cache`")
    try:
        return json.loads(p.read_text())
    except json.JSONDecodeError as e:
        raise InputError(f"{p}: not valid JSON ({e.msg})") from None


def caption_level(clip_id: str, levels, asked: str | None, seed: int, i: int,
                  weights: tuple[str, ...] | None = None) -> str | None:
    """The caption level item i trains on: the asked one (InputError if the clip lacks it), else one
    drawn from the clip's levels by (seed, i), so an epoch's draw repeats exactly on resume; None when
    the clip has no caption. weights: levels to draw from, a repeated one more often (a training
    recipe's caption_levels, e.g. detailed x8, medium, short); those the clip lacks are left out, and
    when it has none of them its own levels are drawn evenly."""
    levels = list(levels)
    if asked is not None:
        if asked not in levels:
            raise InputError(f"clip {clip_id} has no {asked!r} caption in the cache; it has {levels}")
        return asked
    if not levels:
        return None
    pool = sorted(lv for lv in weights or () if lv in levels) or levels  # sorted: the even draw as before
    return pool[int(np.random.default_rng([seed, i]).integers(len(pool)))]


class CachedClips(Dataset):
    """item -> {"latent": (C, t, h, w), "text": (L, D), "text_mask": (L,) bool, "level", "caption_id", "id"}.

    `level`: which caption level to use; None picks one of the clip's levels at random per item
    (seeded by `seed` and the item's index, so it is reproducible), from `weights` when given (see
    `caption_level`).
    """

    def __init__(self, cache_dir: str | os.PathLike, level: str | None = None, seed: int = 0,
                 dtype: torch.dtype = torch.float32, weights: tuple[str, ...] | None = None) -> None:
        self.dir = Path(cache_dir)
        self.index = read_index(self.dir)
        self.clips = self.index["clips"]
        self.level, self.seed, self.dtype, self.weights = level, seed, dtype, weights
        self._open: dict[str, Any] = {}

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def shapes(self) -> list[tuple[int, int, int]]:
        return [tuple(c["latent_shape"][1:]) for c in self.clips]

    def _shard(self, name: str):
        from safetensors import safe_open

        if name not in self._open:  # opened lazily per worker process; safetensors memory-maps the file
            self._open[name] = safe_open(str(self.dir / name), framework="pt")
        return self._open[name]

    def __getitem__(self, i: int) -> dict[str, Any]:
        c = self.clips[i]
        shard = self._shard(c["shard"])
        level = caption_level(c["id"], c["levels"], self.level, self.seed, i, self.weights)
        latent = shard.get_tensor(f"{c['key']}.latent").to(self.dtype)  # (C, t, h, w)
        if level is None:
            text = torch.zeros(1, self.index["text_dim"], dtype=self.dtype)  # (1, D): the empty caption
            mask = torch.zeros(1, dtype=torch.bool)
        else:
            text = shard.get_tensor(f"{c['key']}.text.{level}").to(self.dtype)  # (L, D)
            mask = torch.ones(text.shape[0], dtype=torch.bool)  # (L,)
        return {"latent": latent, "text": text, "text_mask": mask, "level": level, "id": c["id"]}
