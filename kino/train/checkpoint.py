"""Training checkpoints: save, find the latest, load, and resume exactly.

A checkpoint is a folder `run_dir/step-00001000/` holding
- `model.safetensors`: the model's state dict (buffers included), loadable without torch.load;
- `config.json`: the model's config (what `from_pretrained`-style loaders rebuild it from);
- `state.pt`: optimizer, EMA, step, data position, the RNG states of python, numpy and torch,
  and any extra plain values, so that a resumed run continues exactly where it stopped.
It is written into a temporary folder beside the target and renamed into place, so a crash
never leaves a half-written checkpoint that looks finished; only the newest `keep` are kept.

A distributed run (DDP or FSDP2) writes the model, EMA and optimizer with torch.distributed.checkpoint
(DCP) instead: `dcp/` holds each rank's shards and a metadata file, so the checkpoint reloads on any
number of processes (DCP reshards on load), one included. `state.pt` (written last, by rank 0) and
`config.json` are as above; `rng-rankNNNNN.pt` holds each rank's generator states.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import asdict, dataclass, field, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from kino.errors import ModelError
from kino.io import atomic_dir
from kino.models.files import state_dict_tensors

_STEP_DIR = re.compile(r"^step-(\d{8,})$")
MODEL_FILE, CONFIG_FILE, STATE_FILE = "model.safetensors", "config.json", "state.pt"
DCP_DIR = "dcp"


@dataclass(frozen=True)
class Checkpoint:
    """What `load_checkpoint` read back (the model/optimizer/EMA are restored in place)."""

    path: Path
    step: int
    data_position: int
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


def config_dict(config: Any) -> dict[str, Any]:
    """A dataclass config (or a dict) as a JSON-ready dict; enums become their values."""
    d = asdict(config) if is_dataclass(config) else dict(config)
    return json.loads(json.dumps(d, default=str))


def rng_state() -> dict[str, Any]:
    """The states of python's, numpy's and torch's global generators."""
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what `rng_state` captured."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    config: Any,
    optimizer: torch.optim.Optimizer | None = None,
    ema: torch.nn.Module | None = None,
    data_position: int = 0,
    extra: dict[str, Any] | None = None,
    keep: int = 3,
) -> Path:
    """Write `run_dir/step-XXXXXXXX/` atomically, drop all but the newest `keep`; returns its path."""
    from safetensors.torch import save_file

    run = Path(run_dir)
    run.mkdir(parents=True, exist_ok=True)
    final = run / f"step-{step:08d}"
    with atomic_dir(final) as tmp:  # re-saving the same step (e.g. at the end of a run) replaces it
        save_file(state_dict_tensors(model), str(tmp / MODEL_FILE))
        (tmp / CONFIG_FILE).write_text(json.dumps(config_dict(config), indent=2, sort_keys=True))
        state = {
            "step": int(step),
            "data_position": int(data_position),
            "optimizer": optimizer.state_dict() if optimizer is not None else None,
            "ema": state_dict_tensors(ema) if ema is not None else None,
            "rng": rng_state(),
            "extra": dict(extra or {}),
        }
        torch.save(state, tmp / STATE_FILE)
    for old in list_checkpoints(run)[:-keep] if keep > 0 else []:
        shutil.rmtree(old, ignore_errors=True)
    return final


def list_checkpoints(run_dir: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in `run_dir`, oldest first."""
    run = Path(run_dir)
    if not run.is_dir():
        return []
    found = [p for p in run.iterdir() if p.is_dir() and _STEP_DIR.match(p.name) and (p / STATE_FILE).exists()]
    return sorted(found, key=lambda p: int(_STEP_DIR.match(p.name).group(1)))


def latest_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint in `run_dir`, or None."""
    found = list_checkpoints(run_dir)
    return found[-1] if found else None


def load_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    ema: torch.nn.Module | None = None,
    restore_rng: bool = True,
) -> Checkpoint:
    """Read a checkpoint folder, restoring the given model/optimizer/EMA in place and the RNGs."""
    from safetensors.torch import load_file

    p = Path(path)
    missing = [f for f in (MODEL_FILE, CONFIG_FILE, STATE_FILE) if not (p / f).exists()]
    if missing:
        raise ModelError(f"{p} is not a complete checkpoint: missing {', '.join(missing)}")
    try:
        config = json.loads((p / CONFIG_FILE).read_text())
        state = torch.load(p / STATE_FILE, map_location="cpu", weights_only=False)
        if model is not None:
            model.load_state_dict(load_file(str(p / MODEL_FILE)))
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        raise ModelError(f"{p}: cannot load the checkpoint ({why})") from None
    if optimizer is not None and state.get("optimizer") is not None:
        optimizer.load_state_dict(state["optimizer"])
    if ema is not None and state.get("ema") is not None:
        ema.load_state_dict(state["ema"])
    if restore_rng:
        set_rng_state(state["rng"])
    extra = dict(state.get("extra", {}))
    return Checkpoint(p, int(state["step"]), int(state["data_position"]), config, extra)


# ----------------------------------------------------------------------------- sharded (DCP) checkpoints


def is_sharded(path: str | os.PathLike) -> bool:
    """True when the checkpoint folder holds DCP shards rather than one model.safetensors."""
    return (Path(path) / DCP_DIR).is_dir()


def _rank() -> tuple[int, int]:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def save_sharded_checkpoint(
    run_dir: str | os.PathLike,
    step: int,
    model: torch.nn.Module,
    config: Any,
    optimizer: torch.optim.Optimizer | None = None,
    ema: torch.nn.Module | None = None,
    data_position: int = 0,
    extra: dict[str, Any] | None = None,
    keep: int = 3,
) -> Path:
    """Collective: every rank writes its shards of model, EMA and optimizer (DCP) into one folder.

    The folder is built under a temporary name (`.step-XXXXXXXX.partial`, the same on every rank, so the
    run folder must be shared by all nodes) and rank 0 renames it into place after everyone finished.
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_model_state_dict, get_optimizer_state_dict

    rank, world = _rank()
    run = Path(run_dir)
    final = run / f"step-{step:08d}"
    tmp = run / f".{final.name}.partial"
    if rank == 0:
        run.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)  # a leftover of a killed save
        tmp.mkdir()
    _barrier()
    state: dict[str, Any] = {"model": get_model_state_dict(model)}  # DTensor shards under FSDP2
    if optimizer is not None:
        state["optim"] = get_optimizer_state_dict(model, optimizer)
    if ema is not None:
        state["ema"] = get_model_state_dict(ema)
    dcp.save(state, checkpoint_id=str(tmp / DCP_DIR))
    torch.save(rng_state(), tmp / f"rng-rank{rank:05d}.pt")
    _barrier()
    if rank == 0:
        (tmp / CONFIG_FILE).write_text(json.dumps(config_dict(config), indent=2, sort_keys=True))
        body = {"step": int(step), "data_position": int(data_position), "optimizer": None, "ema": None,
                "rng": rng_state(), "extra": dict(extra or {}), "format": "dcp", "world_size": world}
        torch.save(body, tmp / STATE_FILE)  # last: its presence marks the checkpoint complete
        old = None
        if final.exists():
            old = final.with_name(f".{final.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
        os.replace(tmp, final)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        for stale in list_checkpoints(run)[:-keep] if keep > 0 else []:
            shutil.rmtree(stale, ignore_errors=True)
    _barrier()
    return final


def load_sharded_checkpoint(
    path: str | os.PathLike,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer | None = None,
    ema: torch.nn.Module | None = None,
    restore_rng: bool = True,
) -> Checkpoint:
    """Restore a checkpoint of either format into a (possibly DDP- or FSDP2-wrapped) model, on any world size.

    Collective when a process group is running. A DCP checkpoint is resharded to this world size; a
    single-file checkpoint is read whole by every rank and distributed (full state dicts).
    """
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    p = Path(path)
    missing = [f for f in (CONFIG_FILE, STATE_FILE) if not (p / f).exists()]
    if missing:
        raise ModelError(f"{p} is not a complete checkpoint: missing {', '.join(missing)}")
    rank, _ = _rank()
    state = torch.load(p / STATE_FILE, map_location="cpu", weights_only=False)
    config = json.loads((p / CONFIG_FILE).read_text())
    try:
        if is_sharded(p):
            want: dict[str, Any] = {"model": get_model_state_dict(model)}
            if optimizer is not None:
                want["optim"] = get_optimizer_state_dict(model, optimizer)
            if ema is not None:
                want["ema"] = get_model_state_dict(ema)
            alone = _rank()[1] == 1 and not (torch.distributed.is_available() and torch.distributed.is_initialized())
            dcp.load(want, checkpoint_id=str(p / DCP_DIR), no_dist=alone)  # in place, resharded to this layout
            set_model_state_dict(model, want["model"])
            if optimizer is not None:
                set_optimizer_state_dict(model, optimizer, want["optim"])
            if ema is not None:
                set_model_state_dict(ema, want["ema"])
        else:
            from safetensors.torch import load_file

            full = StateDictOptions(full_state_dict=True)
            set_model_state_dict(model, load_file(str(p / MODEL_FILE)), options=full)
            if ema is not None and state.get("ema") is not None:
                set_model_state_dict(ema, state["ema"], options=full)
            if optimizer is not None and state.get("optimizer") is not None:
                set_optimizer_state_dict(model, optimizer, _by_name(model, state["optimizer"]), options=full)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        why = f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"
        raise ModelError(f"{p}: cannot load the checkpoint ({why})") from None
    if restore_rng:
        own = p / f"rng-rank{rank:05d}.pt"  # a rank the saving run did not have keeps its own generators
        rng = torch.load(own, weights_only=False) if own.exists() else state["rng"] if rank == 0 else None
        if rng is not None:
            set_rng_state(rng)
    return Checkpoint(p, int(state["step"]), int(state["data_position"]), config, dict(state.get("extra", {})))


def _by_name(model: torch.nn.Module, osd: dict[str, Any]) -> dict[str, Any]:
    """A plain optimizer state dict (parameters numbered in model.parameters() order) keyed by parameter name."""
    names = [n for n, _ in model.named_parameters()]
    groups = [{**g, "params": [names[i] for i in g["params"]]} for g in osd["param_groups"]]
    return {"state": {names[i]: v for i, v in osd["state"].items()}, "param_groups": groups}
