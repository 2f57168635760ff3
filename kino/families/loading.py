"""How a folder is recognised and loaded as its family's adapter.

Detection (first match wins):
- a folder whose model_index.json names `KinoPipeline`                 -> Family.KINO
- a diffusers folder whose model_index.json names an LTX pipeline
  (`LTXPipeline`, `LTXConditionPipeline`, `LTXImageToVideoPipeline`, ...)  -> Family.LTX
- a diffusers folder whose model_index.json names a Wan pipeline
  (`WanPipeline`, `WanImageToVideoPipeline`, `WanVACEPipeline`, ...)       -> Family.WAN
- a single-file checkpoint (.safetensors) with `config=DIR` naming a diffusers folder: that folder's family
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from kino.errors import InputError, ModelError
from kino.families.base import Family, VideoModel


def read_index(folder: Path) -> dict:
    """A folder's model_index.json, or ModelError saying what a model folder holds."""
    index = folder / "model_index.json"
    if not index.is_file():
        raise ModelError(f"{folder}: no model_index.json; give a kino pipeline folder or a diffusers-format "
                         f"LTX-Video or Wan folder (or a .safetensors file with --model-config DIR)")
    try:
        return json.loads(index.read_text())
    except (OSError, ValueError) as e:
        raise ModelError(f"{index}: not readable JSON ({e})") from None


def detect_family(path: str | os.PathLike, config: str | os.PathLike | None = None) -> Family:
    """Which family a folder (or a single file with its config folder) holds; ModelError if none."""
    p = Path(path)
    if p.is_file() and config is None:
        config = env_config()
    folder = Path(config) if (p.is_file() and config is not None) else p
    if p.is_file() and config is None:
        raise ModelError(f"{p}: a single-file checkpoint needs its diffusers config folder (--model-config DIR, "
                         f"or config=DIR in KINO_MODEL_OPTIONS)")
    if not folder.is_dir():
        raise ModelError(f"model folder {folder} does not exist")
    name = str(read_index(folder).get("_class_name", ""))
    if name == "KinoPipeline":
        return Family.KINO
    if name.startswith("LTX"):
        return Family.LTX
    if name.startswith("Wan"):
        return Family.WAN
    raise ModelError(f"{folder}: model_index.json names {name or 'no class'}; kino runs KinoPipeline, "
                     f"LTX-Video (LTXPipeline, LTXConditionPipeline) and Wan (WanPipeline, ...) folders")


def load_model(path: str | os.PathLike, device: str = "cpu", dtype: str | None = None,
               config: str | os.PathLike | None = None, **options) -> VideoModel:
    """Load the model at `path` as its family's adapter (`options`: offload, tiling, attention...).

    For LTX-Video and Wan, KINO_MODEL_OPTIONS (e.g. "offload=model,vae_tiling,dtype=bfloat16,
    config=DIR") gives what the call leaves unset, so every front end (CLI, server, eval) takes them.
    """
    if Path(path).is_file() and config is None:
        config = env_config()
    family = detect_family(path, config)
    if family is not Family.KINO and os.environ.get("KINO_MODEL_OPTIONS"):
        env = parse_model_options(os.environ["KINO_MODEL_OPTIONS"])
        env.pop("config", None)
        dtype = dtype or env.pop("dtype", None)
        env.pop("dtype", None)
        options = {**env, **options}
    if family is Family.KINO:
        from kino.families.kino import KinoModel

        return KinoModel.load(path, device=device, dtype=dtype, **options)
    if family is Family.LTX:
        from kino.families.ltx import LTXModel

        return LTXModel.load(path, device=device, dtype=dtype, config=config, **options)
    from kino.families.wan import WanModel

    return WanModel.load(path, device=device, dtype=dtype, config=config, **options)


def env_config() -> str | None:
    """The config=DIR of KINO_MODEL_OPTIONS (a single-file checkpoint's diffusers folder), if any."""
    text = os.environ.get("KINO_MODEL_OPTIONS")
    return parse_model_options(text).get("config") if text else None


def parse_model_options(text: str) -> dict:
    """"offload=model,vae_tiling,first_block_cache=0.1" -> {"offload": "model", "vae_tiling": True, ...}.

    A bare name is True; numbers become floats; InputError (one line) for an empty name."""
    out: dict = {}
    for item in (x.strip() for x in text.split(",")):
        if not item:
            continue
        key, eq, value = item.partition("=")
        key = key.strip().replace("-", "_")
        if not key:
            raise InputError(f"KINO_MODEL_OPTIONS: {item!r} has no name; write e.g. offload=model,vae_tiling")
        if not eq:
            out[key] = True
            continue
        value = value.strip()
        try:
            out[key] = float(value) if key == "first_block_cache" else value
        except ValueError:
            raise InputError(f"KINO_MODEL_OPTIONS: first_block_cache={value!r} is not a number (e.g. 0.1)") from None
        if value.lower() in ("true", "false", "1", "0") and key in ("vae_tiling", "vae_slicing", "compile"):
            out[key] = value.lower() in ("true", "1")
    return out
