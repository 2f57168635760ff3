"""The model options every generating command takes (generate, extend, loop, interpolate, connect, edit,
storyboard, eval), defined once: `--model-config DIR` (the diffusers folder of a single-file checkpoint)
and `--model-option NAME[=VALUE]` (LTX-Video / Wan memory and speed, kino.families.diffusers_common.RunOptions).

`load_args` turns them into load_model's keyword arguments; the flags fill what the call leaves open and
KINO_MODEL_OPTIONS (kino.families.loading) what the flags leave open.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from kino.errors import InputError

ModelConfig = Annotated[Path | None, typer.Option(help="The diffusers folder of a single-file --model checkpoint "
                                                       "(LTX-Video, Wan).")]
ModelOption = Annotated[list[str] | None, typer.Option(help="LTX-Video / Wan memory and speed: offload=model, "
                                                            "vae_tiling, attention=flash, first_block_cache=0.1, "
                                                            "compile, dtype=bfloat16 (repeatable; see "
                                                            "docs/models.md).")]


def model_flags(model_config: Path | None, model_option: list[str] | None) -> dict:
    """run_request's model_config and model_options from the two flags (the repeated --model-option values
    joined as KINO_MODEL_OPTIONS writes them: "offload=model,vae_tiling")."""
    return {"model_config": model_config, "model_options": ",".join(model_option or ())}


def load_args(model_dir: Path, model_config: Path | None, model_options: str) -> dict:
    """load_model's keyword arguments (config, dtype and the options) from the flags; InputError (one line,
    before anything loads) for a bad option, or for options given to kino's own model, which takes none."""
    from kino.families import Family, detect_family
    from kino.families.loading import parse_model_options

    options = parse_model_options(model_options)
    config = model_config or options.pop("config", None)
    dtype = options.pop("dtype", None)
    if detect_family(model_dir, config) is Family.KINO and (options or dtype):
        raise InputError(f"--model-option {model_options} is for LTX-Video and Wan models; {model_dir} is kino's own")
    return {"config": config, "dtype": dtype, **options}
