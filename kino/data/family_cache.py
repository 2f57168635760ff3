"""A latent + text-state cache made with an open model family's own VAE and text encoder.

`build_family_cache(manifest, model_dir, out)` encodes every clip of a manifest with the folder's VAE
(LTX-Video or Wan; the latents normalized as that family's pipeline normalizes them) and every caption
with its text encoder (the pipeline's own `encode_prompt`), so a LoRA trainer reads tensors and never
loads the text encoder. Letters: C latent channels, t/h/w latent frames and pixels, L tokens, D width.

Entries are content-addressed: each is one safetensors file named by the SHA-256 of what made it,

    latent key = H(source file's SHA-256, clip range and fps, bucket (T, H, W), VAE identity, dtype)
    text key   = H(caption text, text encoder identity, max_sequence_length, dtype)

where a component's identity hashes its config and its weight files' names, sizes, safetensors
headers and first and last MiB. A changed file, caption, model or setting gives another key, so it
is computed again and nothing stale is read; unchanged entries are reused (a re-run over a grown
folder encodes only the new clips). `index.json` (written last, atomically) lists the manifest's clips
with their keys; `FamilyClips` reads it, giving items as kino.data.cache.CachedClips does.

    CACHE/index.json                   family, identities, shaping, clips -> keys, the empty prompt's key
    CACHE/latents/ab/abcdef....safetensors   "latent" (C, t, h, w)
    CACHE/text/cd/cdef....safetensors        "text" (L, D): the real tokens' states
    CACHE/conditions/ef/ef01....safetensors  a conditioned Wan folder's inputs per clip (below)

A Wan I2V, FLF2V or VACE folder conditions its transformer on VAE encodings of the given frames, which
the clip's own latent does not hold (the causal VAE sees zeros after the first frame, not the clip), so
they are encoded here too, as each diffusers 0.42 pipeline builds them, keyed by the latent's key, the
image encoder's identity and the condition kinds:
  - I2V (WanImageToVideoPipeline.prepare_latents, no last image): "first" = the normalized latent of
    [frame 0, zeros x (T - 1)], and "first_image" = the CLIP image encoder's penultimate hidden states of
    frame 0 (encode_image) when the folder has one (Wan 2.1; Wan 2.2 I2V A14B has none). Wan 2.2 I2V
    (no image_dim: the frames come in through the channels only) also takes a last image, so its cache
    holds "first_last" too (the FLF2V latent below, without image states);
  - FLF2V (the same with last_image): "first_last" = [frame 0, zeros, frame T-1], "first_last_image" of
    both frames (2, N, D);
  - VACE (WanVACEPipeline.prepare_video_latents, kino.families.wan's gray video and white mask):
    "none" (text only: video zeros, mask ones), "first", "first_last" and KEYFRAME_DRAWS draws of 1 to 3
    random frames ("keyframes0", ...; their frame indices as "keyframes0_at"): each the concatenated
    latents of the inactive (given frames) and reactive (gray elsewhere) videos (2C, t, h, w). The
    mask channels are rebuilt from the frame indices when training (kino.train.lora_objectives).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from kino.data.cache import caption_level
from kino.errors import InputError, MediaError, ModelError

CACHE_VERSION = 1
KEYFRAME_DRAWS = 2  # random keyframe sets cached per clip for a VACE folder (training picks one per draw)
VARIANT_CONDITIONS = {"i2v": ("first",), "flf2v": ("first-last",), "vace": ("first", "first-last", "random-keyframes")}
# Wan 2.2 I2V A14B: WanImageToVideoPipeline's last_image goes into the mask and latent channels alone (its
# transformer has no image_dim, so no CLIP states): first and first + last
I2V_22_CONDITIONS = ("first", "first-last")
GRAY = 128 / 255 * 2 - 1  # kino.families.wan.GRAY in the pipelines' [-1, 1]: VACE's "to generate" value
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
TEXT_LENGTH = {"ltx": 256, "wan": 512}  # max_sequence_length of each family's pipeline call (diffusers 0.42)


@dataclass(frozen=True)
class FamilyCacheConfig:
    """How clips are shaped and stored: bucket area (pixels per frame), frame cap, storage dtype."""

    area: int = 64 * 64
    max_frames: int = 17
    dtype: str = "bfloat16"  # T5 states overflow float16; bf16 keeps their range

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise InputError(f"cache dtype {self.dtype!r} is not one of {', '.join(DTYPES)}")
        if self.max_frames < 1 or self.area < 1:
            raise InputError("--max-frames and --area must be positive")


@dataclass
class FamilyCacheReport:
    clips: int
    encoded: int  # latents computed in this run
    reused: int  # latents found under their key
    texts: int  # caption states computed in this run
    failed: list[dict[str, str]]


def _sha(payload: Any) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def component_identity(folder: str | os.PathLike) -> str:
    """A component folder's identity: its config files and, per weight file, name, size, safetensors
    header and first and last MiB (a retrained or swapped component changes it; multi-GB files are not
    read whole)."""
    h = hashlib.sha256()
    d = Path(folder)
    if not d.is_dir():
        raise ModelError(f"{d}: no such model component folder")
    for p in sorted(d.iterdir()):
        if not p.is_file():
            continue
        h.update(p.name.encode())
        size = p.stat().st_size
        h.update(str(size).encode())
        with open(p, "rb") as f:
            if p.suffix == ".json" or size <= 2 << 20:
                h.update(f.read())
                continue
            h.update(f.read(1 << 20))  # a safetensors file's header (names, shapes, offsets) and first tensors
            f.seek(size - (1 << 20))
            h.update(f.read())
    return h.hexdigest()


class FamilyEncoder:
    """A family folder's VAE and text encoder (through its diffusers pipeline, without the transformer)."""

    def __init__(self, model_dir: str | os.PathLike, device: str = "cpu") -> None:
        from kino.families.base import Family
        from kino.families.diffusers_common import load_components, quiet, resolve_dtype
        from kino.families.loading import detect_family

        self.dir = Path(model_dir)
        self.family = detect_family(self.dir)
        if self.family is Family.KINO:
            raise InputError(f"{self.dir} is a kino pipeline; cache it with `kino data cache --vae DIR` (kino's "
                             f"own cache), --model takes LTX-Video and Wan folders")
        self.device = torch.device(device)
        dtype = resolve_dtype(str(device), None)
        with quiet():
            self.pipe = load_components(self.dir, None, dtype)
        self.pipe.to(self.device)
        vae = self.pipe.vae
        if self.family is Family.LTX:
            self.temporal, self.spatial = int(vae.temporal_compression_ratio), int(vae.spatial_compression_ratio)
        else:
            self.temporal, self.spatial = int(vae.config.scale_factor_temporal), int(vae.config.scale_factor_spatial)
        cfg = json.loads((self.dir / "transformer" / "config.json").read_text())
        if self.family is Family.LTX:
            self.patch = (int(cfg.get("patch_size_t", 1)), int(cfg.get("patch_size", 1)), int(cfg.get("patch_size", 1)))
        else:
            self.patch = tuple(int(p) for p in cfg.get("patch_size", (1, 2, 2)))
        self.text_length = TEXT_LENGTH[str(self.family)]
        self.identity = {"vae": component_identity(self.dir / "vae"),
                         "text_encoder": component_identity(self.dir / "text_encoder"),
                         "tokenizer": component_identity(self.dir / "tokenizer")}
        self.variant, self.conditions = condition_kinds(type(self.pipe).__name__,
                                                        bool(self.pipe.config.get("expand_timesteps", False)), cfg)
        if getattr(self.pipe, "image_encoder", None) is not None:
            self.identity["image_encoder"] = component_identity(self.dir / "image_encoder")

    def encode_video(self, video: torch.Tensor) -> torch.Tensor:
        """(3, T, H, W) in [-1, 1] -> the family's normalized latents (C, t, h, w): the posterior's mode."""
        vae = self.pipe.vae
        x = video[None].to(self.device, vae.dtype)  # (1, 3, T, H, W)
        with torch.no_grad():
            lat = vae.encode(x).latent_dist.mode()  # (1, C, t, h, w)
        if str(self.family) == "ltx":  # LTXConditionPipeline._normalize_latents (scaling factor 1)
            mean = vae.latents_mean.view(1, -1, 1, 1, 1).to(lat)
            std = vae.latents_std.view(1, -1, 1, 1, 1).to(lat)
        else:  # the Wan pipelines: (z - mean) / std with the VAE config's statistics
            mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1).to(lat)
            std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1).to(lat)
        return ((lat - mean) / std)[0].float()

    def encode_conditions(self, video: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
        """A clip's (3, T, H, W) conditioning inputs for this folder's pipeline (the module doc); {} for T < 2."""
        frames = video.shape[1]
        if not self.conditions or frames < 2:
            return {}
        zeros = video.new_zeros(3, frames - 2, *video.shape[2:])  # (3, T - 2, H, W)
        first, last = video[:, :1], video[:, -1:]
        out = {}
        if self.variant == "i2v":
            rest = video.new_zeros(3, frames - 1, *video.shape[2:])  # (3, T - 1, H, W)
            out["first"] = self.encode_video(torch.cat([first, rest], dim=1))  # (C, t, h, w)
            if "first-last" in self.conditions:  # Wan 2.2 I2V: the last image in the channels too
                out["first_last"] = self.encode_video(torch.cat([first, zeros, last], dim=1))  # (C, t, h, w)
            if getattr(self.pipe, "image_encoder", None) is not None:
                out["first_image"] = self.encode_images(video[:, :1])  # (1, N, D)
        elif self.variant == "flf2v":
            out["first_last"] = self.encode_video(torch.cat([first, zeros, last], dim=1))  # (C, t, h, w)
            out["first_last_image"] = self.encode_images(torch.cat([first, last], dim=1))  # (2, N, D)
        else:  # vace
            g = torch.Generator().manual_seed(seed)
            sets = {"none": [], "first": [0], "first_last": [0, frames - 1]}
            for j in range(KEYFRAME_DRAWS):
                k = 1 + int(torch.randint(0, min(3, frames), (1,), generator=g))
                sets[f"keyframes{j}"] = sorted(torch.randperm(frames, generator=g)[:k].tolist())
            for name, known in sets.items():
                out[name] = self.vace_latents(video, known)
                out[f"{name}_at"] = torch.tensor(known, dtype=torch.int64)
        return out

    def vace_latents(self, video: torch.Tensor, known: list[int]) -> torch.Tensor:
        """WanVACEPipeline.prepare_video_latents for frames `known` given (black mask), the rest gray under a
        white mask: cat(encode(video x (1 - mask)), encode(video x mask)) -> (2C, t, h, w)."""
        mask = torch.ones(1, video.shape[1], 1, 1)  # (1, T, 1, 1): 1 = generate
        given = torch.full_like(video, GRAY)
        if known:
            mask[:, known] = 0.0
            given[:, known] = video[:, known]
        return torch.cat([self.encode_video(given * (1 - mask)), self.encode_video(given * mask)], dim=0)

    def encode_images(self, frames: torch.Tensor) -> torch.Tensor:
        """(3, n, H, W) frames in [-1, 1] -> the image encoder's penultimate states (n, N, D), as
        WanImageToVideoPipeline.encode_image gives them (its image processor resizes)."""
        import numpy as np

        images = ((frames.permute(1, 2, 3, 0).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
        with torch.no_grad():
            inputs = self.pipe.image_processor(images=list(np.ascontiguousarray(images)), return_tensors="pt")
            enc = self.pipe.image_encoder
            inputs = inputs.to(next(enc.parameters()).device)
            states = enc(**inputs, output_hidden_states=True).hidden_states[-2]  # (n, N, D)
        return states.float().cpu()

    def encode_text(self, text: str) -> torch.Tensor:
        """One caption -> the states (L, D) of its real tokens, as the pipeline's encode_prompt makes them."""
        from kino.families.diffusers_common import quiet

        with quiet(), torch.no_grad():
            if str(self.family) == "ltx":
                embeds, mask, _, _ = self.pipe.encode_prompt(text, do_classifier_free_guidance=False,
                                                             max_sequence_length=self.text_length, device=self.device)
                return embeds[0][mask[0].bool()].float().cpu()  # (L, D)
            embeds, _ = self.pipe.encode_prompt(text, do_classifier_free_guidance=False,
                                                max_sequence_length=self.text_length, device=self.device)
            ids = self.pipe.tokenizer(text, max_length=self.text_length, truncation=True, add_special_tokens=True,
                                      return_attention_mask=True)["attention_mask"]
            return embeds[0][: int(sum(ids))].float().cpu()  # (L, D): the rest is the pipeline's zero padding


def condition_kinds(pipeline: str, expand_timesteps: bool, transformer_config: dict) -> tuple[str, tuple[str, ...]]:
    """(variant, the --condition kinds it trains) of a folder's pipeline class: Wan I2V -> first (Wan 2.2 I2V,
    whose transformer has no image_dim: first and first-last), FLF2V -> first-last, VACE -> first, first-last
    and random keyframes; others ("": LTX-Video's condition tokens, Wan T2V and TI2V's clean first frame)
    need no cached conditioning inputs."""
    variant = ""
    if pipeline == "WanVACEPipeline":
        variant = "vace"
    elif pipeline == "WanImageToVideoPipeline" and not expand_timesteps:  # FLF2V: the two images' tokens
        variant = "flf2v" if transformer_config.get("pos_embed_seq_len") is not None else "i2v"
        if variant == "i2v" and transformer_config.get("image_dim") is None:
            return variant, I2V_22_CONDITIONS
    return variant, VARIANT_CONDITIONS.get(variant, ())


def _write(path: Path, name: str, tensor: torch.Tensor, dtype: torch.dtype) -> None:
    _write_all(path, {name: tensor}, dtype)


def _write_all(path: Path, tensors: dict[str, torch.Tensor], dtype: torch.dtype) -> None:
    """Tensors into one safetensors file, atomically (floating ones in `dtype`, indices as they are)."""
    from safetensors.torch import save_file

    from kino.io import atomic_write

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path, mode=None) as tmp:
        save_file({k: (v.to(dtype) if v.is_floating_point() else v).contiguous() for k, v in tensors.items()}, tmp)


def build_family_cache(manifest: str | os.PathLike, model_dir: str | os.PathLike, out: str | os.PathLike,
                       config: FamilyCacheConfig | None = None, device: str = "cpu",
                       on_clip: Callable[[int, int], None] | None = None,
                       encoder: FamilyEncoder | None = None) -> FamilyCacheReport:
    """Encode a manifest's clips and captions with the folder's family into `out` (entries reused by key)."""
    from kino.data.buckets import TokenFactors
    from kino.data.cache import file_sha256
    from kino.data.clips import ClipShaping, ManifestClips
    from kino.data.manifest import atomic_write_text

    config = config or FamilyCacheConfig()
    enc = encoder or FamilyEncoder(model_dir, device)
    factors = TokenFactors(temporal=enc.temporal, spatial=enc.spatial, patch=enc.patch)
    shaping = ClipShaping(area=config.area, max_frames=config.max_frames, factors=factors)
    data = ManifestClips(manifest, shaping)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    dtype = DTYPES[config.dtype]
    text_settings = {"encoder": [enc.identity["text_encoder"], enc.identity["tokenizer"]],
                     "length": enc.text_length, "dtype": config.dtype, "v": CACHE_VERSION}

    def text_key(text: str) -> str:
        key = _sha({"text": text, **text_settings})
        path = out / "text" / key[:2] / f"{key}.safetensors"
        if not path.is_file():
            _write(path, "text", enc.encode_text(text), dtype)
            made[0] += 1
        return key

    made = [0]
    hashes: dict[Path, str] = {}
    clips, failed, encoded, reused = [], [], 0, 0
    n = len(data)
    for j, rec in enumerate(data.records):
        t, h, w = shaping.target(rec)
        src = rec.source(data.path.parent)
        try:
            if src not in hashes:
                hashes[src] = file_sha256(src)
            key = _sha({"source": hashes[src], "start": rec.start, "end": rec.end, "fps": rec.fps, "kind": str(rec.kind),
                        "shape": [t, h, w], "vae": enc.identity["vae"], "dtype": config.dtype, "v": CACHE_VERSION})
            path = out / "latents" / key[:2] / f"{key}.safetensors"
            cond_key = _sha({"latent": key, "conditions": list(enc.conditions), "draws": KEYFRAME_DRAWS,
                             "image_encoder": enc.identity.get("image_encoder"), "v": CACHE_VERSION})
            cond_path = out / "conditions" / cond_key[:2] / f"{cond_key}.safetensors"
            video = None
            if path.is_file():
                reused += 1
            else:
                video = data[j]["video"]  # (3, T, H, W)
                _write(path, "latent", enc.encode_video(video), dtype)  # (C, t, h, w)
                encoded += 1
            if enc.conditions and not cond_path.is_file():
                video = data[j]["video"] if video is None else video
                conditions = enc.encode_conditions(video, int(cond_key[:8], 16))
                if conditions:
                    _write_all(cond_path, conditions, dtype)
        except (MediaError, OSError) as e:
            failed.append({"id": rec.id, "reason": str(e).splitlines()[0] if str(e) else type(e).__name__})
            if on_clip:
                on_clip(j + 1, n)
            continue
        levels = {lv: text_key(text) for lv, text in sorted(rec.captions.items()) if text}
        lat_shape = list(factors.latent_shape(t, h, w))
        clip = {"id": rec.id, "latent": key, "latent_shape": lat_shape, "fps": rec.fps, "levels": levels}
        if cond_path.is_file():
            clip["conditions"] = cond_key
        clips.append(clip)
        if on_clip:
            on_clip(j + 1, n)
    index = {"version": CACHE_VERSION, "family": str(enc.family), "model": str(enc.dir.resolve()),
             "identity": enc.identity, "shaping": asdict(shaping), "dtype": config.dtype,
             "factors": {"temporal": enc.temporal, "spatial": enc.spatial, "patch": list(enc.patch)},
             "text_length": enc.text_length, "null_text": text_key(""), "clips": clips, "failed": failed,
             "variant": enc.variant, "conditions": list(enc.conditions)}
    atomic_write_text(out / "index.json", json.dumps(index, indent=1, sort_keys=True) + "\n")
    return FamilyCacheReport(len(clips), encoded, reused, made[0], failed)


def read_family_index(cache_dir: str | os.PathLike) -> dict:
    """A family cache's index.json; InputError when the folder is not one."""
    p = Path(cache_dir) / "index.json"
    if not p.is_file():
        raise InputError(f"{cache_dir} is not a family cache (no index.json); make one with "
                         f"`kino data cache MANIFEST --model DIR --out {cache_dir}`")
    index = json.loads(p.read_text())
    if "family" not in index or "null_text" not in index:
        raise InputError(f"{cache_dir} is a kino DiT cache (kino data cache --vae); a LoRA of an open model needs "
                         f"`kino data cache MANIFEST --model DIR`")
    return index


class FamilyClips(Dataset):
    """item -> {"latent": (C, t, h, w), "text": (L, D), "text_mask": (L,) bool, "fps", "level", "id"}.

    `level` None picks one of the clip's caption levels per item, seeded by (seed, index); `ids` keeps
    only those clips (held-out evaluation clips, for example).
    """

    def __init__(self, cache_dir: str | os.PathLike, level: str | None = None, seed: int = 0,
                 ids: list[str] | None = None) -> None:
        self.dir = Path(cache_dir)
        self.index = read_family_index(self.dir)
        clips = self.index["clips"]
        self.clips = [c for c in clips if ids is None or c["id"] in set(ids)]
        self.level, self.seed = level, seed

    def __len__(self) -> int:
        return len(self.clips)

    @property
    def shapes(self) -> list[tuple[int, int, int]]:
        return [tuple(c["latent_shape"]) for c in self.clips]

    def _tensor(self, folder: str, key: str, name: str) -> torch.Tensor:
        from safetensors.torch import load_file

        path = self.dir / folder / key[:2] / f"{key}.safetensors"
        if not path.is_file():
            raise InputError(f"{self.dir}: entry {folder}/{key[:12]}... is missing; run `kino data cache` again")
        return load_file(str(path))[name].float()

    def null_text(self) -> torch.Tensor:
        """States (L, D) of the empty prompt (what a dropped or missing caption becomes)."""
        return self._tensor("text", self.index["null_text"], "text")

    def __getitem__(self, i: int) -> dict[str, Any]:
        c = self.clips[i]
        level = caption_level(c["id"], sorted(c["levels"]), self.level, self.seed, i)
        text = self._tensor("text", c["levels"][level], "text") if level else self.null_text()  # (L, D)
        item = {"latent": self._tensor("latents", c["latent"], "latent"), "text": text,
                "text_mask": torch.ones(text.shape[0], dtype=torch.bool), "fps": float(c["fps"]), "level": level,
                "id": c["id"]}
        if c.get("conditions"):  # a conditioned Wan folder's inputs (the module doc)
            from safetensors.torch import load_file

            path = self.dir / "conditions" / c["conditions"][:2] / f"{c['conditions']}.safetensors"
            if not path.is_file():
                raise InputError(f"{self.dir}: entry conditions/{c['conditions'][:12]}... is missing; run "
                                 f"`kino data cache` again")
            item["conditions"] = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(path)).items()}
        return item
